// The CUDA backend: the engine's Backend<T> (nettrim/backend.hpp) on one GPU.
//
// Everything a solve touches lives on the device from setup to the returned matrix:
// X, Y, V, the iterates and duals, and the U solve's K = (X^T X + sigma I)^{-1}.
// The layout and the arithmetic mirror the CPU backend (cpp/src/cpu/cpu_backend.cpp)
// step by step, so that the driver sees the same sums:
//
//   X        stored as X^T, N x P column-major (the caller's row-major P x N, one copy)
//   P x M    A = X U, A_old, LB (L1, or B = L1 + Z1hat), Z1, Y, V: one column per neuron
//   N x M    U, U_old, Z2, L2, R (right-hand sides), the candidate
//   N x N    K; N x r F (eigenvectors, or X^T Q when P < N) and F diag(w)
//
// Products are cuBLAS GEMMs (cublasGemmEx): per iteration R = X^T B and A = X U (the
// two P x N x M products; on TF32 tensor cores when asked for, float32 only) and
// U = K R (N x N x M, always full precision, as are K, the candidate's responses and the
// certificate's X^T nu).  The Gram matrix is accumulated in float64 on the device
// (cublasDsyrk over blocks of X converted to double) and eigendecomposed once per setup
// on the device in float64 (cusolverDnXsyevd); a new sigma rebuilds K with one
// N x N x r GEMM, as on the CPU.
//
// The elementwise work is fused into one kernel per pass of the CPU backend.  Passes
// that reduce (norms, residuals, the candidate's sums) run one thread block per output
// column and accumulate in float64, so per-column results come back in the order the
// CPU sums them; the host adds the columns up.  What crosses the bus per iteration is
// what the driver must see: M column norms down, M ball scales up; at a convergence
// check, 10 sums per column; and the returned matrix at the end.
// Eigen (through nettrim/backend.hpp) is host code here: no device annotations for it.
#define EIGEN_NO_CUDA 1
#include "cuda_backend.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <type_traits>
#include <vector>

#include "device.hpp"

namespace nettrim::cuda {

namespace {

constexpr int kThreads = 256;        // elementwise kernels
constexpr int kColumnThreads = 256;  // one block per output column (reductions)
// Doubles in one block of X converted to float64 (64 MiB): the Gram accumulation and
// the exact check of the candidate work through X in blocks of this size.
constexpr std::size_t kBlockElems = std::size_t(1) << 23;

unsigned grid_for(std::size_t n) {
  const std::size_t blocks = (n + kThreads - 1) / kThreads;
  return static_cast<unsigned>(std::clamp<std::size_t>(blocks, 1, std::size_t(1) << 16));
}

#define NETTRIM_GRID_STRIDE(i, n) \
  for (std::size_t i = blockIdx.x * std::size_t(blockDim.x) + threadIdx.x; i < (n); i += std::size_t(gridDim.x) * blockDim.x)

void check_launch(const char* kernel) { check(cudaGetLastError(), kernel); }

// --- block reductions (blockDim.x a multiple of 32, at most 1024) ---------------------
template <int K>
__device__ void block_sum(double (&v)[K]) {
  __shared__ double shared[K][32];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
  for (int k = 0; k < K; ++k)
    for (int o = 16; o > 0; o >>= 1) v[k] += __shfl_down_sync(0xffffffffu, v[k], o);
  if (lane == 0)
    for (int k = 0; k < K; ++k) shared[k][warp] = v[k];
  __syncthreads();
  if (warp == 0) {
    for (int k = 0; k < K; ++k) {
      v[k] = lane < warps ? shared[k][lane] : 0.0;
      for (int o = 16; o > 0; o >>= 1) v[k] += __shfl_down_sync(0xffffffffu, v[k], o);
    }
  }
  __syncthreads();   // shared may be reused by the next reduction
}

// The largest value, NaN ignored (as std::max(top, e) with top never NaN).
__device__ double max_ignore_nan(double a, double b) { return a < b ? b : a; }
// The largest value, NaN winning (as `if (e > excess || isnan(e)) excess = e`).
__device__ double max_keep_nan(double a, double b) { return (isnan(b) || b > a) ? b : a; }

// The result is valid in thread 0; every thread must call it.
template <bool KeepNan>
__device__ double block_max(double v) {
  __shared__ double shared[32];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
  for (int o = 16; o > 0; o >>= 1) {
    const double other = __shfl_down_sync(0xffffffffu, v, o);
    v = KeepNan ? max_keep_nan(v, other) : max_ignore_nan(v, other);
  }
  if (lane == 0) shared[warp] = v;
  __syncthreads();
  if (warp == 0) {
    v = lane < warps ? shared[lane] : -INFINITY;
    for (int o = 16; o > 0; o >>= 1) {
      const double other = __shfl_down_sync(0xffffffffu, v, o);
      v = KeepNan ? max_keep_nan(v, other) : max_ignore_nan(v, other);
    }
  }
  __syncthreads();
  return v;
}

__device__ int block_count(int c) {
  double v[1] = {double(c)};
  block_sum<1>(v);
  return int(v[0]);
}

template <class T>
__device__ bool in_omega(bool relu, T y) {
  return !relu || y > T(0);
}

// --- setup kernels --------------------------------------------------------------------
// dst (rows x cols, leading dimension ldd) = src (leading dimension lds), converted.
template <class S, class D>
__global__ void k_convert(long rows, long cols, const S* src, long lds, D* dst, long ldd) {
  const std::size_t n = std::size_t(rows) * cols;
  NETTRIM_GRID_STRIDE(i, n) {
    const long r = long(i % rows), c = long(i / rows);
    dst[r + std::size_t(c) * ldd] = static_cast<D>(src[r + std::size_t(c) * lds]);
  }
}

// Column-major P x M from the dense row-major P x M that arrived from the host.
template <class T>
__global__ void k_transpose(long P, long M, const T* row_major, T* col_major) {
  const std::size_t n = std::size_t(P) * M;
  NETTRIM_GRID_STRIDE(i, n) {
    const long p = long(i % P), m = long(i / P);
    col_major[i] = row_major[std::size_t(p) * M + m];
  }
}

// ||X[:, n]||^2 in double, X^T stored N x P.
template <class T>
__global__ void k_column_norms2(long N, long P, const T* Xt, double* out) {
  NETTRIM_GRID_STRIDE(n, std::size_t(N)) {
    double s = 0;
    for (long p = 0; p < P; ++p) {
      const double x = double(Xt[n + std::size_t(p) * N]);
      s += x * x;
    }
    out[n] = s;
  }
}

// Per column: ||Y_Omega||^2, |Omega|, and whether V < 0 somewhere on Omega^c.
template <class T>
__global__ void k_target_norms(long P, long M, const T* Y, const T* V, bool relu, double* out) {
  const long m = blockIdx.x;
  const T* y = Y + std::size_t(m) * P;
  const T* v = V ? V + std::size_t(m) * P : nullptr;
  double s[3] = {0, 0, 0};
  for (long p = threadIdx.x; p < P; p += blockDim.x) {
    if (in_omega(relu, y[p])) {
      s[0] += double(y[p]) * double(y[p]);
      s[1] += 1;
    } else if (v && v[p] < T(0)) {
      s[2] = 1;
    }
  }
  block_sum<3>(s);
  if (threadIdx.x == 0) {
    out[m] = s[0];
    out[M + m] = s[1];
    out[2 * M + m] = s[2];
  }
}

// F diag(w) with w_j = 1 / (l_j + sigma), or -1 / (sigma (l_j + sigma)) (Woodbury).
template <class T>
__global__ void k_scale_eigen_columns(long N, long r, const T* F, const double* eig, double sigma, bool woodbury,
                                      T* Fw) {
  const std::size_t n = std::size_t(N) * r;
  NETTRIM_GRID_STRIDE(i, n) {
    const double l = eig[i / N];
    const T w = static_cast<T>(woodbury ? -1.0 / (sigma * (l + sigma)) : 1.0 / (l + sigma));
    Fw[i] = F[i] * w;
  }
}

template <class T>
__global__ void k_add_diagonal(long N, T* K, T c) {
  NETTRIM_GRID_STRIDE(n, std::size_t(N)) K[n + n * std::size_t(N)] += c;
}

// --- elementwise helpers --------------------------------------------------------------
template <class T>
__global__ void k_subtract(std::size_t n, T* a, const T* b) {
  NETTRIM_GRID_STRIDE(i, n) a[i] -= b[i];
}

template <class T>
__global__ void k_divide(std::size_t n, T* a, T f) {
  NETTRIM_GRID_STRIDE(i, n) a[i] /= f;
}

template <class T>
__global__ void k_add_scaled(std::size_t n, T* a, T s, const T* b) {
  NETTRIM_GRID_STRIDE(i, n) a[i] += s * b[i];
}

// --- one iteration --------------------------------------------------------------------
// Pass 1: the pending dual update L1 = B - A, and ||(A - L1 - Y)_Omega||^2 per column.
template <class T>
__global__ void k_omega_norms(long P, T* LB, const T* A, const T* Y, bool relu, bool fused, double* colsum) {
  const long m = blockIdx.x;
  const std::size_t off = std::size_t(m) * P;
  double s[1] = {0};
  for (long p = threadIdx.x; p < P; p += blockDim.x) {
    const std::size_t i = off + p;
    T lb = LB[i];
    const T a = A[i], y = Y[i];
    if (fused) {
      lb -= a;
      LB[i] = lb;
    }
    if (in_omega(relu, y)) {
      const double d = double(a) - double(lb) - double(y);
      s[0] += d * d;
    }
  }
  block_sum<1>(s);
  if (threadIdx.x == 0) colsum[m] = s[0];
}

// Pass 2: Z1 = Proj_C(A - L1), relaxed, and B = L1 + Z1hat into LB.
template <class T>
__global__ void k_z_step(long P, long M, T* LB, const T* A, const T* Y, const T* V, T* Z1, const T* scale, bool relu,
                         bool regularized, T lam_w, T alpha) {
  const std::size_t n = std::size_t(P) * M;
  NETTRIM_GRID_STRIDE(i, n) {
    const T a = A[i], y = Y[i];
    const T t = a - LB[i];
    T z;
    if (in_omega(relu, y)) {
      z = regularized ? t + lam_w * (y - t) : y + (t - y) * scale[i / P];
    } else {
      const T v = V ? V[i] : T(0);
      z = v < t ? v : t;   // std::min(t, v), NaN included
    }
    if (Z1) Z1[i] = z;
    LB[i] += alpha * z + (T(1) - alpha) * a;
  }
}

// The group penalty's row norms ||(U - L2)[n, :]||.
template <class T>
__global__ void k_group_row_norms(long N, long M, const T* U, const T* L2, double* rownorm) {
  NETTRIM_GRID_STRIDE(n, std::size_t(N)) {
    double s = 0;
    for (long m = 0; m < M; ++m) {
      const std::size_t i = n + std::size_t(m) * N;
      const double w = double(U[i] - L2[i]);
      s += w * w;
    }
    rownorm[n] = sqrt(s);
  }
}

// Z2 = prox of the penalty at U - L2; L2 <- L2 + Z2hat.
template <class T>
__global__ void k_prox(long N, long M, const T* U, T* L2, T* Z2, T thr, T alpha, bool group, long bias_row,
                       const double* rownorm) {
  const std::size_t count = std::size_t(N) * M;
  NETTRIM_GRID_STRIDE(i, count) {
    const long n = long(i % N);
    const T u = U[i];
    const T w = u - L2[i];
    T z;
    if (group && n != bias_row) {
      const double rn = rownorm[n];
      z = rn > double(thr) ? static_cast<T>(w * (1.0 - double(thr) / rn)) : T(0);
    } else {
      z = fabs(w) - thr;
      z = z < T(0) ? T(0) : z;   // std::max(z, 0), NaN included
      z = w < T(0) ? -z : z;
    }
    Z2[i] = z;
    L2[i] += alpha * z + (T(1) - alpha) * u;
  }
}

// The residual sums of one column: block 1 over P (finishing the dual update), block 2 over N.
template <class T>
__global__ void k_residual_sums(long P, long N, T* LB, const T* A, const T* A_old, const T* Z1, bool fused, const T* Z2,
                                const T* U, const T* U_old, const T* L2, double* out) {
  const long m = blockIdx.x;
  double s[10] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
  const std::size_t off1 = std::size_t(m) * P;
  for (long p = threadIdx.x; p < P; p += blockDim.x) {
    const std::size_t i = off1 + p;
    T lb = LB[i];
    const T a = A[i], a0 = A_old[i], z = Z1[i];
    if (fused) {
      lb -= a;
      LB[i] = lb;
    }
    const double r = double(z) - double(a), d = double(a) - double(a0);
    s[0] += r * r;
    s[1] += double(z) * double(z);
    s[2] += double(a) * double(a);
    s[3] += d * d;
    s[4] += double(lb) * double(lb);
  }
  const std::size_t off2 = std::size_t(m) * N;
  for (long n = threadIdx.x; n < N; n += blockDim.x) {
    const std::size_t i = off2 + n;
    const T z = Z2[i], u = U[i];
    const double r = double(T(z - u)), d = double(T(u - U_old[i])), l = double(L2[i]);
    s[5] += r * r;
    s[6] += double(z) * double(z);
    s[7] += double(u) * double(u);
    s[8] += d * d;
    s[9] += l * l;
  }
  block_sum<10>(s);
  if (threadIdx.x == 0)
    for (int k = 0; k < 10; ++k) out[std::size_t(m) * 10 + k] = s[k];
}

// Penalties: sum |Z| per column (l1), or per row its 2-norm (the bias row: its l1 norm).
template <class T>
__global__ void k_abs_column_sums(long N, const T* Z, double* out) {
  const long m = blockIdx.x;
  double s[1] = {0};
  for (long n = threadIdx.x; n < N; n += blockDim.x) s[0] += fabs(double(Z[std::size_t(m) * N + n]));
  block_sum<1>(s);
  if (threadIdx.x == 0) out[m] = s[0];
}

template <class T>
__global__ void k_group_row_penalty(long N, long M, const T* Z, long bias_row, double* out) {
  NETTRIM_GRID_STRIDE(n, std::size_t(N)) {
    double s = 0;
    const bool bias = long(n) == bias_row;
    for (long m = 0; m < M; ++m) {
      const double z = double(Z[n + std::size_t(m) * N]);
      s += bias ? fabs(z) : z * z;
    }
    out[n] = bias ? s : sqrt(s);
  }
}

// The dual point nu (into Z1) and its sums a_m, d2_m (see CpuBackend::dual_sums).
template <class T>
__global__ void k_dual_point(long P, T* Z1, const T* A_old, const T* A, const T* LB, const T* Y, const T* V, bool relu,
                             T r1, T alpha, double* out_a, double* out_d2) {
  const long m = blockIdx.x;
  const std::size_t off = std::size_t(m) * P;
  double s[2] = {0, 0};
  for (long p = threadIdx.x; p < P; p += blockDim.x) {
    const std::size_t i = off + p;
    const T y = Y[i];
    T nu;
    if constexpr (std::is_same_v<T, double>) {
      nu = r1 * ((T(2) - alpha) * A_old[i] + (alpha - T(1)) * Z1[i] - LB[i] - A[i]);
    } else {
      nu = -r1 * LB[i];   // float32: the scaled dual itself (see the CPU backend)
      if (relu && !(y > T(0)) && nu < T(0)) nu = T(0);
    }
    Z1[i] = nu;
    if (in_omega(relu, y)) {
      s[0] -= double(nu) * double(y);
      s[1] += double(nu) * double(nu);
    } else if (V) {
      s[0] -= double(nu) * double(V[i]);
    }
  }
  block_sum<2>(s);
  if (threadIdx.x == 0) {
    out_a[m] = s[0];
    out_d2[m] = s[1];
  }
}

// Per column of R = X^T nu: the largest |entry|, and how many entries are not finite.
template <class T>
__global__ void k_column_absmax(long N, const T* R, double* out, int* bad) {
  const long m = blockIdx.x;
  double top = 0;
  int nonfinite = 0;
  for (long n = threadIdx.x; n < N; n += blockDim.x) {
    const double r = double(R[std::size_t(m) * N + n]);
    if (!isfinite(r)) ++nonfinite;
    top = max_ignore_nan(top, fabs(r));
  }
  top = block_max<false>(top);
  nonfinite = block_count(nonfinite);
  if (threadIdx.x == 0) {
    out[m] = top;
    bad[m] = nonfinite;
  }
}

// Per row of R: its squared 2-norm (the bias row: its largest |entry|), and non-finite entries.
template <class T>
__global__ void k_row_norms2(long N, long M, const T* R, long bias_row, double* out, int* bad) {
  NETTRIM_GRID_STRIDE(n, std::size_t(N)) {
    double s = 0, top = 0;
    int nonfinite = 0;
    for (long m = 0; m < M; ++m) {
      const double r = double(R[n + std::size_t(m) * N]);
      if (!isfinite(r)) ++nonfinite;
      s += r * r;
      top = max_ignore_nan(top, fabs(r));
    }
    out[n] = long(n) == bias_row ? top : s;
    bad[n] = nonfinite;
  }
}

// The candidate's column: the bias shift that makes Omega^c feasible, then the excess on
// Omega^c and the squared error on Omega (see CpuBackend::candidate).
template <class T>
__global__ void k_candidate(long P, long N, const T* Ac, const T* Y, const T* V, T* cand, bool relu, bool shift,
                            long shift_row, double* out_excess, double* out_err2, int* bad) {
  const long m = blockIdx.x;
  const std::size_t off = std::size_t(m) * P;
  __shared__ double shared_top;
  double top = -INFINITY;
  if (relu) {
    for (long p = threadIdx.x; p < P; p += blockDim.x) {
      const std::size_t i = off + p;
      if (!(Y[i] > T(0))) top = max_ignore_nan(top, double(Ac[i]) - double(V ? V[i] : T(0)));
    }
  }
  top = block_max<false>(top);
  if (threadIdx.x == 0) {
    shared_top = top;
    if (shift && top > 0) cand[std::size_t(m) * N + shift_row] -= static_cast<T>(top);
  }
  __syncthreads();
  top = shared_top;
  const T drop = (shift && top > 0) ? static_cast<T>(top) : T(0);
  double excess = -INFINITY, err2[1] = {0};
  for (long p = threadIdx.x; p < P; p += blockDim.x) {
    const std::size_t i = off + p;
    const T ac = Ac[i] - drop, y = Y[i];
    if (in_omega(relu, y)) {
      const double d = double(ac) - double(y);
      err2[0] += d * d;
    } else {
      excess = max_keep_nan(excess, double(ac) - double(V ? V[i] : T(0)));
    }
  }
  int nonfinite = 0;
  for (long n = threadIdx.x; n < N; n += blockDim.x)
    if (!isfinite(double(cand[std::size_t(m) * N + n]))) ++nonfinite;
  excess = block_max<true>(excess);
  block_sum<1>(err2);
  nonfinite = block_count(nonfinite);
  if (threadIdx.x == 0) {
    out_excess[m] = excess;
    out_err2[m] = err2[0];
    bad[m] = nonfinite;
  }
}

__global__ void k_init_exact(long M, double* excess, double* err2) {
  NETTRIM_GRID_STRIDE(m, std::size_t(M)) {
    excess[m] = -INFINITY;
    err2[m] = 0;
  }
}

// One block of rows p0 .. p0 + rows of the exact (float64) check: responses Ad (rows x M).
template <class T>
__global__ void k_exact_block(long rows, long p0, long P, const double* Ad, const T* Y, const T* V, bool relu,
                              double* excess_io, double* err2_io) {
  const long m = blockIdx.x;
  double excess = -INFINITY, err2[1] = {0};
  for (long p = threadIdx.x; p < rows; p += blockDim.x) {
    const double a = Ad[std::size_t(m) * rows + p];
    const std::size_t i = std::size_t(m) * P + p0 + p;
    const T y = Y[i];
    if (in_omega(relu, y)) {
      const double d = a - double(y);
      err2[0] += d * d;
    } else {
      excess = max_keep_nan(excess, a - double(V ? V[i] : T(0)));
    }
  }
  excess = block_max<true>(excess);
  block_sum<1>(err2);
  if (threadIdx.x == 0) {
    excess_io[m] = max_keep_nan(excess_io[m], excess);
    err2_io[m] += err2[0];
  }
}

template <class T>
__global__ void k_fill_pattern(std::size_t n, T* a, unsigned seed) {
  NETTRIM_GRID_STRIDE(i, n) {
    std::uint32_t h = std::uint32_t(i) * 2654435761u ^ seed;
    h ^= h >> 15;
    h *= 2246822519u;
    h ^= h >> 13;
    a[i] = static_cast<T>(double(h & 0xffffff) / double(0x1000000));
  }
}

// --- cuBLAS --------------------------------------------------------------------------
template <class S>
void gemm(cublasHandle_t h, bool tf32, cublasOperation_t ta, cublasOperation_t tb, long m, long n, long k, const S* A,
          long lda, const S* B, long ldb, S beta, S* C, long ldc) {
  const S one = S(1);
  if constexpr (std::is_same_v<S, float>) {
    NETTRIM_CUDA_CHECK(cublasGemmEx_64(h, ta, tb, m, n, k, &one, A, CUDA_R_32F, lda, B, CUDA_R_32F, ldb, &beta, C,
                                       CUDA_R_32F, ldc,
                                       tf32 ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
  } else {
    (void)tf32;
    NETTRIM_CUDA_CHECK(cublasGemmEx_64(h, ta, tb, m, n, k, &one, A, CUDA_R_64F, lda, B, CUDA_R_64F, ldb, &beta, C,
                                       CUDA_R_64F, ldc, CUBLAS_COMPUTE_64F, CUBLAS_GEMM_DEFAULT));
  }
}

class SolverParams {
 public:
  SolverParams() { NETTRIM_CUDA_CHECK(cusolverDnCreateParams(&p_)); }
  ~SolverParams() {
    if (p_) (void)cusolverDnDestroyParams(p_);
  }
  SolverParams(const SolverParams&) = delete;
  SolverParams& operator=(const SolverParams&) = delete;
  cusolverDnParams_t get() const { return p_; }

 private:
  cusolverDnParams_t p_ = nullptr;
};

int current_device() {
  int d = 0;
  NETTRIM_CUDA_CHECK(cudaGetDevice(&d));
  return d;
}

// --- the backend ---------------------------------------------------------------------
template <class T>
class CudaBackend final : public Backend<T> {
 public:
  explicit CudaBackend(bool tf32)
      : device_(current_device()), stream_(), blas_(stream_.get()), solver_(stream_.get()), tf32_(tf32) {
    // cuBLAS may pick TF32 for float32 only where we ask for it (cublasGemmEx's compute type).
    NETTRIM_CUDA_CHECK(cublasSetMathMode(blas_.get(), CUBLAS_DEFAULT_MATH));
  }
  ~CudaBackend() override { (void)cudaStreamSynchronize(stream_.get()); }

  const char* name() const override { return cuda::capabilities(tf32_).name; }
  BackendCapabilities capabilities() const override {
    BackendCapabilities c = cuda::capabilities(tf32_);
    c.available = true;   // (made on a device)
    return c;
  }
  void set_threads(int) override {}   // the host does little but launch

  void set_inputs(ConstRowRef<T> X, const std::function<bool()>& interrupted) override;
  double gram_diag_max() const override { return diag_max_; }
  double gram_norm() const override { return eig_max_; }
  void set_target(ConstRowRef<T> Y, bool relu) override;
  void set_bound(const ConstRowRef<T>* V) override;
  const TargetNorms& target_norms() const override { return norms_; }
  void set_sigma(double sigma) override;

  void reset(const Matrix<T>* U0) override;
  void load_state(const State<T>& state) override;
  void save_state(State<T>& state) override;
  void rescale_duals(double f1, double f2) override;

  void omega_norms(std::vector<double>& colsum) override;
  void z_step(const std::vector<T>& ball_scale, const ZStepSettings& z) override;
  void prox_step(double threshold, double alpha, Penalty penalty, int bias_row) override;
  void u_step() override;
  void residual_sums(ResidualSums& sums) override;
  double z2_penalty(Penalty penalty, int bias_row) override { return penalty_of(Z2_.get(), penalty, bias_row); }
  void dual_sums(double rho1, double alpha, Penalty penalty, int bias_row, DualSums& sums) override;

  void candidate(int shift_row, CandidateSums& sums) override;
  void exact_sums(CandidateSums& sums) override;
  double candidate_penalty(Penalty penalty, int bias_row) override {
    return penalty_of(cand_.get(), penalty, bias_row);
  }
  void copy_candidate(Matrix<T>& out) const override;

  std::size_t workspace_bytes(long P, long N, long M, bool has_bound) const override;

 private:
  cudaStream_t stream() const { return stream_.get(); }
  std::size_t pm() const { return std::size_t(P_) * std::size_t(M_); }
  std::size_t nm() const { return std::size_t(N_) * std::size_t(M_); }
  // A = X U (P x M) for U (N x M); tf32 only for the iteration's products.
  void responses(const T* U, T* A, bool fast) {
    gemm<T>(blas_.get(), fast && tf32_, CUBLAS_OP_T, CUBLAS_OP_N, P_, M_, N_, X_.get(), N_, U, N_, T(0), A, P_);
  }
  // R = X^T B (N x M) for B (P x M).
  void adjoint(const T* B, T* R, bool fast) {
    gemm<T>(blas_.get(), fast && tf32_, CUBLAS_OP_N, CUBLAS_OP_N, N_, M_, P_, X_.get(), N_, B, P_, T(0), R, N_);
  }
  void finish_dual();
  void allocate(long M);
  void release_layer();
  void update_norms();
  void upload_columns(ConstRowRef<T> src, T* dst);   // row-major P x M host -> column-major device
  void download(double* host, const double* device, std::size_t n) {
    NETTRIM_CUDA_CHECK(cudaMemcpyAsync(host, device, n * sizeof(double), cudaMemcpyDeviceToHost, stream()));
  }
  void sync() { stream_.sync(); }
  double penalty_of(const T* Z, Penalty penalty, int bias_row);
  std::size_t device_bytes(long P, long N, long M, bool has_bound) const;
  void require_device_memory(std::size_t need, const char* what) const;

  int device_;
  Stream stream_;   // declared before every buffer: destroyed after them
  CublasHandle blas_;
  CusolverHandle solver_;
  bool tf32_;

  long P_ = 0, N_ = 0, M_ = 0, r_ = 0;
  bool woodbury_ = false, relu_ = true, has_bound_ = false, lb_holds_b_ = false, cand_finite_ = true;
  double diag_max_ = 0, eig_max_ = 0, sigma_ = 0;
  long exact_rows_ = 0;
  TargetNorms norms_;

  DeviceBuffer<T> X_, K_, F_, Fw_;
  DeviceBuffer<double> eig_;
  DeviceBuffer<T> Y_, V_, A_, A_old_, LB_, Z1_;   // P x M
  DeviceBuffer<T> U_, U_old_, Z2_, L2_, R_, cand_, scale_;   // N x M (scale_: M)
  DeviceBuffer<double> exact_X_, exact_U_, exact_A_;          // float32's exact check
  DeviceBuffer<double> dsum_;   // per-column (or per-row) sums on their way to the host
  DeviceBuffer<int> dbad_;      // counts of non-finite entries
  PinnedBuffer<double> hsum_;
  PinnedBuffer<int> hbad_;
  PinnedBuffer<T> hscale_;
};

template <class T>
std::size_t CudaBackend<T>::device_bytes(long P, long N, long M, bool has_bound) const {
  const double p = double(P), n = double(N), m = double(M), r = double(std::min(N, P));
  const double block = double(kBlockElems);
  // X, K, F, F w; P x M: Y, A, A_old, LB, Z1 (and V); N x M: U, U_old, Z2, L2, R, candidate.
  double scalars = p * n + n * n + 2 * n * r + p * m * (5 + (has_bound ? 1 : 0)) + n * m * 6 + m;
  // eigenvalues, sums; float32's exact check: a block of X, the candidate and its responses.
  double doubles = r + 10 * std::max(m, n) + 64;
  if (std::is_same_v<T, float> && M > 0) doubles += std::min(block, p * n) + n * m + std::min(block, p * m);
  return static_cast<std::size_t>(scalars * double(sizeof(T)) + doubles * 8.0);
}

template <class T>
void CudaBackend<T>::require_device_memory(std::size_t need, const char* what) const {
  std::size_t free = 0, total = 0;
  NETTRIM_CUDA_CHECK(cudaMemGetInfo(&free, &total));
  if (need > free) {
    throw MemoryError("a layer of N=" + std::to_string(N_) + ", P=" + std::to_string(P_) + ", M=" +
                      std::to_string(M_) + " needs about " + std::to_string(need >> 20) + " MiB of GPU memory " +
                      what + ", but only " + std::to_string(free >> 20) + " MiB of the device's " +
                      std::to_string(total >> 20) +
                      " MiB are free; reduce the calibration samples P or use float32");
  }
}

// Host memory this backend allocates (what the driver checks against the host's free
// memory): the pinned staging of the sums.  The device's own memory is checked against
// cudaMemGetInfo before allocating (see device_bytes).
template <class T>
std::size_t CudaBackend<T>::workspace_bytes(long P, long N, long M, bool has_bound) const {
  (void)P;
  (void)has_bound;
  const std::size_t staging = std::size_t(std::max(10 * M, 3 * N) + 64);
  return staging * (sizeof(double) + sizeof(int)) + std::size_t(M) * sizeof(T);
}

template <class T>
void CudaBackend<T>::release_layer() {
  for (DeviceBuffer<T>* b : {&Y_, &V_, &A_, &A_old_, &LB_, &Z1_, &U_, &U_old_, &Z2_, &L2_, &R_, &cand_, &scale_})
    b->release();
  exact_X_.release();
  exact_U_.release();
  exact_A_.release();
  M_ = 0;
  has_bound_ = false;
}

template <class T>
void CudaBackend<T>::set_inputs(ConstRowRef<T> X, const std::function<bool()>& interrupted) {
  DeviceScope scope(device_);
  sync();
  release_layer();
  X_.release();
  K_.release();
  F_.release();
  Fw_.release();
  P_ = X.rows();
  N_ = X.cols();
  woodbury_ = P_ < N_;
  r_ = woodbury_ ? P_ : N_;
  const auto poll = [&] {
    if (interrupted && interrupted()) {
      (void)cudaStreamSynchronize(stream());
      throw Interrupted();
    }
  };
  const double r = double(r_);
  const std::size_t setup_need = device_bytes(P_, N_, 0, false) +
                                 static_cast<std::size_t>((3 * r * r + 2 * double(kBlockElems)) * 8.0);
  require_device_memory(setup_need, "to set up");

  // X^T, N x P column-major: the caller's rows are its columns.
  X_.resize(std::size_t(P_) * N_);
  NETTRIM_CUDA_CHECK(cudaMemcpy2DAsync(X_.get(), std::size_t(N_) * sizeof(T), X.data(),
                                       std::size_t(X.outerStride()) * sizeof(T), std::size_t(N_) * sizeof(T), P_,
                                       cudaMemcpyHostToDevice, stream()));

  // The Gram matrix in float64, lower triangle: X^T X (N x N), or X X^T (P x P) when P < N,
  // accumulated over blocks of X converted to double.
  DeviceBuffer<double> G(std::size_t(r_) * r_);
  NETTRIM_CUDA_CHECK(cudaMemsetAsync(G.get(), 0, G.size() * sizeof(double), stream()));
  DeviceBuffer<double> block;
  const double one = 1.0;
  if (!woodbury_) {
    const long rows = std::clamp<long>(long(kBlockElems / std::size_t(N_)), 1, P_);
    block.resize(std::size_t(N_) * rows);
    for (long p0 = 0; p0 < P_; p0 += rows) {
      poll();
      const long k = std::min(rows, P_ - p0);
      k_convert<T, double><<<grid_for(std::size_t(N_) * k), kThreads, 0, stream()>>>(
          N_, k, X_.get() + std::size_t(p0) * N_, N_, block.get(), N_);
      check_launch("k_convert (Gram block)");
      NETTRIM_CUDA_CHECK(cublasDsyrk_64(blas_.get(), CUBLAS_FILL_MODE_LOWER, CUBLAS_OP_N, N_, k, &one, block.get(),
                                        N_, &one, G.get(), N_));
    }
  } else {
    const long cols = std::clamp<long>(long(kBlockElems / std::size_t(P_)), 1, N_);
    block.resize(std::size_t(cols) * P_);
    for (long n0 = 0; n0 < N_; n0 += cols) {
      poll();
      const long k = std::min(cols, N_ - n0);
      k_convert<T, double><<<grid_for(std::size_t(k) * P_), kThreads, 0, stream()>>>(k, P_, X_.get() + n0, N_,
                                                                                      block.get(), k);
      check_launch("k_convert (Gram block)");
      NETTRIM_CUDA_CHECK(cublasDsyrk_64(blas_.get(), CUBLAS_FILL_MODE_LOWER, CUBLAS_OP_T, P_, k, &one, block.get(), k,
                                        &one, G.get(), P_));
    }
  }

  // max_n ||X[:, n]||^2: the Gram diagonal, or (P < N) its own pass over X.
  std::vector<double> diag(N_);
  if (!woodbury_) {
    NETTRIM_CUDA_CHECK(cudaMemcpy2DAsync(diag.data(), sizeof(double), G.get(), (std::size_t(N_) + 1) * sizeof(double),
                                         sizeof(double), N_, cudaMemcpyDeviceToHost, stream()));
  } else {
    DeviceBuffer<double> d(N_);
    k_column_norms2<T><<<grid_for(N_), kThreads, 0, stream()>>>(N_, P_, X_.get(), d.get());
    check_launch("k_column_norms2");
    download(diag.data(), d.get(), N_);
    sync();
  }
  poll();

  // The eigendecomposition, once per setup, in float64 on the device.
  eig_.resize(r_);
  {
    SolverParams params;
    std::size_t device_ws = 0, host_ws = 0;
    NETTRIM_CUDA_CHECK(cusolverDnXsyevd_bufferSize(solver_.get(), params.get(), CUSOLVER_EIG_MODE_VECTOR,
                                                   CUBLAS_FILL_MODE_LOWER, r_, CUDA_R_64F, G.get(), r_, CUDA_R_64F,
                                                   eig_.get(), CUDA_R_64F, &device_ws, &host_ws));
    DeviceBuffer<char> dwork(std::max<std::size_t>(device_ws, 1));
    std::vector<char> hwork(std::max<std::size_t>(host_ws, 1));
    DeviceBuffer<int> dinfo(1);
    NETTRIM_CUDA_CHECK(cusolverDnXsyevd(solver_.get(), params.get(), CUSOLVER_EIG_MODE_VECTOR, CUBLAS_FILL_MODE_LOWER,
                                        r_, CUDA_R_64F, G.get(), r_, CUDA_R_64F, eig_.get(), CUDA_R_64F, dwork.get(),
                                        device_ws, host_ws ? hwork.data() : nullptr, host_ws, dinfo.get()));
    int info = 0;
    NETTRIM_CUDA_CHECK(cudaMemcpyAsync(&info, dinfo.get(), sizeof(int), cudaMemcpyDeviceToHost, stream()));
    sync();
    if (info > 0) throw std::runtime_error("the eigendecomposition of the Gram matrix X^T X did not converge");
    if (info < 0) {
      throw std::runtime_error("CUDA backend: cusolverDnXsyevd rejected its argument " + std::to_string(-info));
    }
  }
  poll();
  diag_max_ = 0;
  for (double d : diag) diag_max_ = std::max(diag_max_, d);
  std::vector<double> eig(r_);
  download(eig.data(), eig_.get(), r_);
  sync();
  eig_max_ = 0;
  for (double& l : eig) {
    l = std::max(l, 0.0);
    eig_max_ = std::max(eig_max_, l);
  }
  NETTRIM_CUDA_CHECK(cudaMemcpyAsync(eig_.get(), eig.data(), r_ * sizeof(double), cudaMemcpyHostToDevice, stream()));

  // F: the eigenvectors, or X^T Q (N x P, in float64 over blocks of rows of X^T) when P < N.
  F_.resize(std::size_t(N_) * r_);
  if (!woodbury_) {
    k_convert<double, T><<<grid_for(G.size()), kThreads, 0, stream()>>>(N_, N_, G.get(), N_, F_.get(), N_);
    check_launch("k_convert (eigenvectors)");
  } else {
    const long cols = std::clamp<long>(long(kBlockElems / std::size_t(P_)), 1, N_);
    DeviceBuffer<double> product(std::size_t(cols) * P_);
    const double zero = 0.0;
    for (long n0 = 0; n0 < N_; n0 += cols) {
      poll();
      const long k = std::min(cols, N_ - n0);
      k_convert<T, double><<<grid_for(std::size_t(k) * P_), kThreads, 0, stream()>>>(k, P_, X_.get() + n0, N_,
                                                                                      block.get(), k);
      check_launch("k_convert (X^T Q block)");
      NETTRIM_CUDA_CHECK(cublasGemmEx_64(blas_.get(), CUBLAS_OP_N, CUBLAS_OP_N, k, P_, P_, &one, block.get(),
                                         CUDA_R_64F, k, G.get(), CUDA_R_64F, P_, &zero, product.get(), CUDA_R_64F, k,
                                         CUBLAS_COMPUTE_64F, CUBLAS_GEMM_DEFAULT));
      k_convert<double, T><<<grid_for(std::size_t(k) * P_), kThreads, 0, stream()>>>(k, P_, product.get(), k,
                                                                                      F_.get() + n0, N_);
      check_launch("k_convert (X^T Q)");
    }
    sync();   // `product` is freed at the end of this scope
  }
  Fw_.resize(std::size_t(N_) * r_);
  K_.resize(std::size_t(N_) * N_);
  sync();   // before G and the block are freed
}

template <class T>
void CudaBackend<T>::set_sigma(double sigma) {
  DeviceScope scope(device_);
  sigma_ = sigma;
  k_scale_eigen_columns<T><<<grid_for(std::size_t(N_) * r_), kThreads, 0, stream()>>>(N_, r_, F_.get(), eig_.get(),
                                                                                       sigma, woodbury_, Fw_.get());
  check_launch("k_scale_eigen_columns");
  gemm<T>(blas_.get(), false, CUBLAS_OP_N, CUBLAS_OP_T, N_, N_, r_, Fw_.get(), N_, F_.get(), N_, T(0), K_.get(), N_);
  if (woodbury_) {
    k_add_diagonal<T><<<grid_for(N_), kThreads, 0, stream()>>>(N_, K_.get(), static_cast<T>(1.0 / sigma));
    check_launch("k_add_diagonal");
  }
}

template <class T>
void CudaBackend<T>::allocate(long M) {
  sync();
  release_layer();
  M_ = M;
  require_device_memory(device_bytes(P_, N_, M_, false) - device_bytes(P_, N_, 0, false), "for its iterates");
  for (DeviceBuffer<T>* b : {&Y_, &A_, &A_old_, &LB_, &Z1_}) b->resize(pm());
  for (DeviceBuffer<T>* b : {&U_, &U_old_, &Z2_, &L2_, &R_, &cand_}) b->resize(nm());
  scale_.resize(M_);
  if constexpr (std::is_same_v<T, float>) {
    exact_rows_ = std::clamp<long>(long(kBlockElems / std::size_t(std::max(N_, M_))), 1, P_);
    exact_X_.resize(std::size_t(N_) * exact_rows_);
    exact_U_.resize(nm());
    exact_A_.resize(std::size_t(exact_rows_) * M_);
  }
  const std::size_t staging = std::size_t(std::max(10 * M_, 3 * N_) + 64);
  dsum_.resize(staging);
  dbad_.resize(staging);
  hsum_.resize(staging);
  hbad_.resize(staging);
  hscale_.resize(M_);
}

template <class T>
void CudaBackend<T>::upload_columns(ConstRowRef<T> src, T* dst) {
  // The rows arrive into Z1 (free between iterations: every pass that reads it writes it
  // first in the same iteration), dense row-major, and are transposed on the device.
  NETTRIM_CUDA_CHECK(cudaMemcpy2DAsync(Z1_.get(), std::size_t(M_) * sizeof(T), src.data(),
                                       std::size_t(src.outerStride()) * sizeof(T), std::size_t(M_) * sizeof(T), P_,
                                       cudaMemcpyHostToDevice, stream()));
  k_transpose<T><<<grid_for(pm()), kThreads, 0, stream()>>>(P_, M_, Z1_.get(), dst);
  check_launch("k_transpose");
}

template <class T>
void CudaBackend<T>::set_target(ConstRowRef<T> Y, bool relu) {
  DeviceScope scope(device_);
  if (Y.cols() != M_ || Y_.empty()) allocate(Y.cols());   // a new width: the bound goes (as on the CPU)
  relu_ = relu;
  upload_columns(Y, Y_.get());
  update_norms();
}

template <class T>
void CudaBackend<T>::set_bound(const ConstRowRef<T>* V) {
  DeviceScope scope(device_);
  if (V) {
    if (V_.empty()) {
      require_device_memory(pm() * sizeof(T), "for the bound V");
      V_.resize(pm());
    }
    upload_columns(*V, V_.get());
    has_bound_ = true;
  } else {
    sync();
    V_.release();
    has_bound_ = false;
  }
  update_norms();
}

template <class T>
void CudaBackend<T>::update_norms() {
  k_target_norms<T><<<M_, kColumnThreads, 0, stream()>>>(P_, M_, Y_.get(), has_bound_ ? V_.get() : nullptr, relu_,
                                                         dsum_.get());
  check_launch("k_target_norms");
  download(hsum_.get(), dsum_.get(), 3 * std::size_t(M_));
  sync();
  norms_.omega_norm2.assign(M_, 0.0);
  norms_.omega_count = 0;
  norms_.zero_meets_bound = true;
  double total = 0;
  for (long m = 0; m < M_; ++m) {
    norms_.omega_norm2[m] = hsum_[m];
    total += hsum_[m];
    norms_.omega_count += static_cast<long>(hsum_[M_ + m]);
    if (hsum_[2 * M_ + m] != 0) norms_.zero_meets_bound = false;
  }
  norms_.omega_norm2_total = total;
}

template <class T>
void CudaBackend<T>::reset(const Matrix<T>* U0) {
  DeviceScope scope(device_);
  if (U0) {
    NETTRIM_CUDA_CHECK(cudaMemcpyAsync(U_.get(), U0->data(), nm() * sizeof(T), cudaMemcpyHostToDevice, stream()));
    responses(U_.get(), A_.get(), true);
  } else {
    NETTRIM_CUDA_CHECK(cudaMemsetAsync(U_.get(), 0, nm() * sizeof(T), stream()));
    NETTRIM_CUDA_CHECK(cudaMemsetAsync(A_.get(), 0, pm() * sizeof(T), stream()));   // X 0, exactly
  }
  NETTRIM_CUDA_CHECK(cudaMemsetAsync(LB_.get(), 0, pm() * sizeof(T), stream()));
  NETTRIM_CUDA_CHECK(cudaMemsetAsync(L2_.get(), 0, nm() * sizeof(T), stream()));
  lb_holds_b_ = false;
  NETTRIM_CUDA_CHECK(cudaMemcpyAsync(Z2_.get(), U_.get(), nm() * sizeof(T), cudaMemcpyDeviceToDevice, stream()));
  sync();   // the host's U0 may go once this returns
}

template <class T>
void CudaBackend<T>::load_state(const State<T>& state) {
  DeviceScope scope(device_);
  NETTRIM_CUDA_CHECK(cudaMemcpyAsync(U_.get(), state.U.data(), nm() * sizeof(T), cudaMemcpyHostToDevice, stream()));
  NETTRIM_CUDA_CHECK(cudaMemcpyAsync(LB_.get(), state.L1.data(), pm() * sizeof(T), cudaMemcpyHostToDevice, stream()));
  NETTRIM_CUDA_CHECK(cudaMemcpyAsync(L2_.get(), state.L2.data(), nm() * sizeof(T), cudaMemcpyHostToDevice, stream()));
  lb_holds_b_ = false;
  responses(U_.get(), A_.get(), true);
  NETTRIM_CUDA_CHECK(cudaMemcpyAsync(Z2_.get(), U_.get(), nm() * sizeof(T), cudaMemcpyDeviceToDevice, stream()));
  sync();
}

template <class T>
void CudaBackend<T>::finish_dual() {
  if (lb_holds_b_) {
    k_subtract<T><<<grid_for(pm()), kThreads, 0, stream()>>>(pm(), LB_.get(), A_.get());
    check_launch("k_subtract (dual update)");
  }
  lb_holds_b_ = false;
}

template <class T>
void CudaBackend<T>::save_state(State<T>& state) {
  DeviceScope scope(device_);
  finish_dual();
  state.U.resize(N_, M_);
  state.L1.resize(P_, M_);
  state.L2.resize(N_, M_);
  NETTRIM_CUDA_CHECK(cudaMemcpyAsync(state.U.data(), U_.get(), nm() * sizeof(T), cudaMemcpyDeviceToHost, stream()));
  NETTRIM_CUDA_CHECK(cudaMemcpyAsync(state.L1.data(), LB_.get(), pm() * sizeof(T), cudaMemcpyDeviceToHost, stream()));
  NETTRIM_CUDA_CHECK(cudaMemcpyAsync(state.L2.data(), L2_.get(), nm() * sizeof(T), cudaMemcpyDeviceToHost, stream()));
  sync();
}

template <class T>
void CudaBackend<T>::rescale_duals(double f1, double f2) {
  DeviceScope scope(device_);
  finish_dual();
  k_divide<T><<<grid_for(pm()), kThreads, 0, stream()>>>(pm(), LB_.get(), static_cast<T>(f1));
  check_launch("k_divide (L1)");
  k_divide<T><<<grid_for(nm()), kThreads, 0, stream()>>>(nm(), L2_.get(), static_cast<T>(f2));
  check_launch("k_divide (L2)");
}

template <class T>
void CudaBackend<T>::omega_norms(std::vector<double>& colsum) {
  DeviceScope scope(device_);
  colsum.resize(M_);
  k_omega_norms<T><<<M_, kColumnThreads, 0, stream()>>>(P_, LB_.get(), A_.get(), Y_.get(), relu_, lb_holds_b_,
                                                        dsum_.get());
  check_launch("k_omega_norms");
  lb_holds_b_ = false;
  download(hsum_.get(), dsum_.get(), M_);
  sync();
  std::copy(hsum_.get(), hsum_.get() + M_, colsum.begin());
}

template <class T>
void CudaBackend<T>::z_step(const std::vector<T>& scale, const ZStepSettings& zs) {
  DeviceScope scope(device_);
  std::copy(scale.begin(), scale.begin() + M_, hscale_.get());
  NETTRIM_CUDA_CHECK(
      cudaMemcpyAsync(scale_.get(), hscale_.get(), std::size_t(M_) * sizeof(T), cudaMemcpyHostToDevice, stream()));
  k_z_step<T><<<grid_for(pm()), kThreads, 0, stream()>>>(
      P_, M_, LB_.get(), A_.get(), Y_.get(), has_bound_ ? V_.get() : nullptr, zs.keep_z1 ? Z1_.get() : nullptr,
      scale_.get(), relu_, zs.regularized, static_cast<T>(zs.lam_weight), static_cast<T>(zs.alpha));
  check_launch("k_z_step");
  // hscale_ is rewritten by the next z_step only after omega_norms has synchronised.
}

template <class T>
void CudaBackend<T>::prox_step(double threshold, double alpha, Penalty penalty, int bias_row) {
  DeviceScope scope(device_);
  const bool group = penalty == Penalty::group;
  if (group) {
    k_group_row_norms<T><<<grid_for(N_), kThreads, 0, stream()>>>(N_, M_, U_.get(), L2_.get(), dsum_.get());
    check_launch("k_group_row_norms");
  }
  k_prox<T><<<grid_for(nm()), kThreads, 0, stream()>>>(N_, M_, U_.get(), L2_.get(), Z2_.get(),
                                                       static_cast<T>(threshold), static_cast<T>(alpha), group,
                                                       bias_row, dsum_.get());
  check_launch("k_prox");
}

// U solve: (X^T X + sigma I) U = X^T B + sigma (Z2hat + L2), where L2 holds Z2hat + L2.
template <class T>
void CudaBackend<T>::u_step() {
  DeviceScope scope(device_);
  swap(U_, U_old_);
  swap(A_, A_old_);
  adjoint(LB_.get(), R_.get(), true);
  k_add_scaled<T><<<grid_for(nm()), kThreads, 0, stream()>>>(nm(), R_.get(), static_cast<T>(sigma_), L2_.get());
  check_launch("k_add_scaled");
  gemm<T>(blas_.get(), false, CUBLAS_OP_N, CUBLAS_OP_N, N_, M_, N_, K_.get(), N_, R_.get(), N_, T(0), U_.get(), N_);
  responses(U_.get(), A_.get(), true);
  k_subtract<T><<<grid_for(nm()), kThreads, 0, stream()>>>(nm(), L2_.get(), U_.get());
  check_launch("k_subtract (L2)");
  lb_holds_b_ = true;
}

template <class T>
void CudaBackend<T>::residual_sums(ResidualSums& out) {
  DeviceScope scope(device_);
  k_residual_sums<T><<<M_, kColumnThreads, 0, stream()>>>(P_, N_, LB_.get(), A_.get(), A_old_.get(), Z1_.get(),
                                                          lb_holds_b_, Z2_.get(), U_.get(), U_old_.get(), L2_.get(),
                                                          dsum_.get());
  check_launch("k_residual_sums");
  lb_holds_b_ = false;
  download(hsum_.get(), dsum_.get(), 10 * std::size_t(M_));
  sync();
  double s[10] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
  for (long m = 0; m < M_; ++m)
    for (int k = 0; k < 10; ++k) s[k] += hsum_[std::size_t(m) * 10 + k];
  out.r1 = s[0];
  out.z1 = s[1];
  out.a = s[2];
  out.da = s[3];
  out.l1 = s[4];
  out.r2 = s[5];
  out.z2 = s[6];
  out.u = s[7];
  out.du = s[8];
  out.l2 = s[9];
}

template <class T>
double CudaBackend<T>::penalty_of(const T* Z, Penalty penalty, int bias_row) {
  DeviceScope scope(device_);
  long count = 0;
  if (penalty == Penalty::l1) {
    k_abs_column_sums<T><<<M_, kColumnThreads, 0, stream()>>>(N_, Z, dsum_.get());
    check_launch("k_abs_column_sums");
    count = M_;
  } else {
    k_group_row_penalty<T><<<grid_for(N_), kThreads, 0, stream()>>>(N_, M_, Z, bias_row, dsum_.get());
    check_launch("k_group_row_penalty");
    count = N_;
  }
  download(hsum_.get(), dsum_.get(), count);
  sync();
  double value = 0;
  for (long i = 0; i < count; ++i) value += hsum_[i];
  return value;
}

// nu = rho1 (T - Z1) rebuilt from the buffers after residual_sums (see the CPU backend);
// nu overwrites Z1, X^T nu goes to R (full float32 or float64: the bound must be sound).
template <class T>
void CudaBackend<T>::dual_sums(double rho1, double alpha, Penalty penalty, int bias_row, DualSums& sums) {
  DeviceScope scope(device_);
  finish_dual();
  k_dual_point<T><<<M_, kColumnThreads, 0, stream()>>>(P_, Z1_.get(), A_old_.get(), A_.get(), LB_.get(), Y_.get(),
                                                       has_bound_ ? V_.get() : nullptr, relu_, static_cast<T>(rho1),
                                                       static_cast<T>(alpha), dsum_.get(), dsum_.get() + M_);
  check_launch("k_dual_point");
  adjoint(Z1_.get(), R_.get(), false);
  const bool l1 = penalty == Penalty::l1;
  if (l1) {
    k_column_absmax<T><<<M_, kColumnThreads, 0, stream()>>>(N_, R_.get(), dsum_.get() + 2 * M_, dbad_.get());
    check_launch("k_column_absmax");
  } else {
    k_row_norms2<T><<<grid_for(N_), kThreads, 0, stream()>>>(N_, M_, R_.get(), bias_row, dsum_.get() + 2 * M_,
                                                             dbad_.get());
    check_launch("k_row_norms2");
  }
  const long per = l1 ? M_ : N_;
  download(hsum_.get(), dsum_.get(), 2 * std::size_t(M_) + per);
  NETTRIM_CUDA_CHECK(cudaMemcpyAsync(hbad_.get(), dbad_.get(), per * sizeof(int), cudaMemcpyDeviceToHost, stream()));
  sync();
  sums.a.assign(hsum_.get(), hsum_.get() + M_);
  sums.d2.assign(hsum_.get() + M_, hsum_.get() + 2 * M_);
  sums.finite = true;
  for (long i = 0; i < per; ++i) sums.finite = sums.finite && hbad_[i] == 0;
  for (double x : sums.a) sums.finite = sums.finite && std::isfinite(x);
  const double* v = hsum_.get() + 2 * M_;
  if (l1) {
    sums.colmax.assign(v, v + M_);
  } else {
    sums.rownorm2.assign(N_, 0.0);
    sums.bias_absmax = 0;
    for (long n = 0; n < N_; ++n) {
      if (n == bias_row) sums.bias_absmax = v[n];
      else sums.rownorm2[n] = v[n];
    }
  }
}

// The returned matrix: Z2, then the bias shift that makes Omega^c feasible.  Z1 holds
// the responses (full precision even with TF32: this is the convergence test's matrix).
template <class T>
void CudaBackend<T>::candidate(int shift_row, CandidateSums& sums) {
  DeviceScope scope(device_);
  NETTRIM_CUDA_CHECK(cudaMemcpyAsync(cand_.get(), Z2_.get(), nm() * sizeof(T), cudaMemcpyDeviceToDevice, stream()));
  responses(cand_.get(), Z1_.get(), false);
  const bool shift = relu_ && shift_row >= 0;
  k_candidate<T><<<M_, kColumnThreads, 0, stream()>>>(P_, N_, Z1_.get(), Y_.get(), has_bound_ ? V_.get() : nullptr,
                                                      cand_.get(), relu_, shift, shift_row, dsum_.get(),
                                                      dsum_.get() + M_, dbad_.get());
  check_launch("k_candidate");
  download(hsum_.get(), dsum_.get(), 2 * std::size_t(M_));
  NETTRIM_CUDA_CHECK(cudaMemcpyAsync(hbad_.get(), dbad_.get(), M_ * sizeof(int), cudaMemcpyDeviceToHost, stream()));
  sync();
  sums.excess.assign(hsum_.get(), hsum_.get() + M_);
  sums.err2.assign(hsum_.get() + M_, hsum_.get() + 2 * M_);
  cand_finite_ = true;
  for (long m = 0; m < M_; ++m) cand_finite_ = cand_finite_ && hbad_[m] == 0;
  sums.finite = cand_finite_;
  for (double e : sums.err2) sums.finite = sums.finite && std::isfinite(e);
}

// The candidate's sums again with X U in float64 (X converted in blocks of rows).  In
// float64 the candidate pass already was exact.
template <class T>
void CudaBackend<T>::exact_sums(CandidateSums& sums) {
  if constexpr (std::is_same_v<T, double>) {
    (void)sums;
    return;
  } else {
    DeviceScope scope(device_);
    k_convert<T, double><<<grid_for(nm()), kThreads, 0, stream()>>>(N_, M_, cand_.get(), N_, exact_U_.get(), N_);
    check_launch("k_convert (candidate)");
    double* excess = dsum_.get();
    double* err2 = dsum_.get() + M_;
    k_init_exact<<<grid_for(M_), kThreads, 0, stream()>>>(M_, excess, err2);
    check_launch("k_init_exact");
    for (long p0 = 0; p0 < P_; p0 += exact_rows_) {
      const long rows = std::min(exact_rows_, P_ - p0);
      k_convert<T, double><<<grid_for(std::size_t(N_) * rows), kThreads, 0, stream()>>>(
          N_, rows, X_.get() + std::size_t(p0) * N_, N_, exact_X_.get(), N_);
      check_launch("k_convert (exact block)");
      gemm<double>(blas_.get(), false, CUBLAS_OP_T, CUBLAS_OP_N, rows, M_, N_, exact_X_.get(), N_, exact_U_.get(), N_,
                   0.0, exact_A_.get(), rows);
      k_exact_block<T><<<M_, kColumnThreads, 0, stream()>>>(rows, p0, P_, exact_A_.get(), Y_.get(),
                                                            has_bound_ ? V_.get() : nullptr, relu_, excess, err2);
      check_launch("k_exact_block");
    }
    download(hsum_.get(), dsum_.get(), 2 * std::size_t(M_));
    sync();
    sums.excess.assign(hsum_.get(), hsum_.get() + M_);
    sums.err2.assign(hsum_.get() + M_, hsum_.get() + 2 * M_);
    sums.finite = cand_finite_;
    for (double e : sums.err2) sums.finite = sums.finite && std::isfinite(e);
  }
}

template <class T>
void CudaBackend<T>::copy_candidate(Matrix<T>& out) const {
  DeviceScope scope(device_);
  out.resize(N_, M_);
  NETTRIM_CUDA_CHECK(cudaMemcpyAsync(out.data(), cand_.get(), nm() * sizeof(T), cudaMemcpyDeviceToHost, stream()));
  stream_.sync();
}

}  // namespace

// --- entry points --------------------------------------------------------------------
int device_count() noexcept {
  int n = 0;
  const cudaError_t e = cudaGetDeviceCount(&n);
  if (e != cudaSuccess) {
    (void)cudaGetLastError();   // no driver, no device: not an error for the caller
    return 0;
  }
  return n;
}

template <class T>
std::unique_ptr<Backend<T>> make_backend(bool tf32) {
  return std::make_unique<CudaBackend<T>>(tf32);
}

template std::unique_ptr<Backend<float>> make_backend(bool);
template std::unique_ptr<Backend<double>> make_backend(bool);

std::string device_name() {
  int d = current_device();
  cudaDeviceProp prop{};
  NETTRIM_CUDA_CHECK(cudaGetDeviceProperties(&prop, d));
  return std::string(prop.name) + " (sm_" + std::to_string(prop.major) + std::to_string(prop.minor) + ")";
}

namespace {
template <class S>
double gemm_seconds_of(long P, long N, long M, bool tf32, int repeats) {
  Stream stream;
  CublasHandle blas(stream.get());
  DeviceBuffer<S> X(std::size_t(P) * N), U(std::size_t(N) * M), B(std::size_t(P) * M), A(std::size_t(P) * M),
      R(std::size_t(N) * M);
  unsigned seed = 1;
  for (DeviceBuffer<S>* b : {&X, &U, &B}) {
    k_fill_pattern<S><<<grid_for(b->size()), kThreads, 0, stream.get()>>>(b->size(), b->get(), seed++);
    check_launch("k_fill_pattern");
  }
  cudaEvent_t start = nullptr, stop = nullptr;
  NETTRIM_CUDA_CHECK(cudaEventCreate(&start));
  const cudaError_t e = cudaEventCreate(&stop);
  if (e != cudaSuccess) {
    (void)cudaEventDestroy(start);
    check(e, "cudaEventCreate(&stop)");
  }
  std::vector<double> times;
  try {
    for (int i = 0; i <= std::max(repeats, 1); ++i) {   // the first run warms up
      NETTRIM_CUDA_CHECK(cudaEventRecord(start, stream.get()));
      gemm<S>(blas.get(), tf32, CUBLAS_OP_T, CUBLAS_OP_N, P, M, N, X.get(), N, U.get(), N, S(0), A.get(), P);
      gemm<S>(blas.get(), tf32, CUBLAS_OP_N, CUBLAS_OP_N, N, M, P, X.get(), N, B.get(), P, S(0), R.get(), N);
      NETTRIM_CUDA_CHECK(cudaEventRecord(stop, stream.get()));
      NETTRIM_CUDA_CHECK(cudaEventSynchronize(stop));
      float ms = 0;
      NETTRIM_CUDA_CHECK(cudaEventElapsedTime(&ms, start, stop));
      if (i > 0) times.push_back(ms * 1e-3);
    }
  } catch (...) {
    (void)cudaEventDestroy(start);
    (void)cudaEventDestroy(stop);
    throw;
  }
  (void)cudaEventDestroy(start);
  (void)cudaEventDestroy(stop);
  std::sort(times.begin(), times.end());
  const std::size_t k = times.size();
  return k % 2 ? times[k / 2] : 0.5 * (times[k / 2 - 1] + times[k / 2]);
}
}  // namespace

double gemm_seconds(long P, long N, long M, bool float64, bool tf32, int repeats) {
  if (P <= 0 || N <= 0 || M <= 0) throw std::invalid_argument("gemm_seconds: expected P, N, M > 0");
  return float64 ? gemm_seconds_of<double>(P, N, M, false, repeats) : gemm_seconds_of<float>(P, N, M, tf32, repeats);
}

}  // namespace nettrim::cuda
