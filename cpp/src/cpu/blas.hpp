// The CPU backend's large products, from an optimised BLAS/LAPACK when the build has one.
//
// With NETTRIM_HAVE_BLAS the products go to OpenBLAS (PyPI's scipy-openblas32, whose symbols
// carry the prefix "scipy_", or a system OpenBLAS): it picks its kernels for the CPU it runs
// on at run time, so a portable build is as fast as a -march=native one.  Measured for one
// ADMM iteration's two 785 x 10000 x 300 float32 products: Eigen -march=native 96 ms, Eigen
// portable (SSE2) 390 ms, OpenBLAS 73 ms (one thread).  Without a BLAS, Eigen computes them.
//
// All matrices are column-major; a row-major X (P x N, leading dimension ld) is the
// column-major N x P matrix with the same ld, which is how X is passed here.
#pragma once

#include <algorithm>
#include <type_traits>
#include <vector>

#include <Eigen/Core>
#include <Eigen/Eigenvalues>
#ifdef _OPENMP
#include <omp.h>
#endif

#ifdef NETTRIM_HAVE_BLAS
#ifndef NETTRIM_BLAS_PREFIX
#define NETTRIM_BLAS_PREFIX
#endif
#define NETTRIM_BLAS_CAT_(a, b) a##b
#define NETTRIM_BLAS_CAT(a, b) NETTRIM_BLAS_CAT_(a, b)
#define NETTRIM_BLAS(name) NETTRIM_BLAS_CAT(NETTRIM_BLAS_PREFIX, name)

extern "C" {
void NETTRIM_BLAS(cblas_sgemm)(int order, int transa, int transb, int m, int n, int k, float alpha, const float* a,
                               int lda, const float* b, int ldb, float beta, float* c, int ldc);
void NETTRIM_BLAS(cblas_dgemm)(int order, int transa, int transb, int m, int n, int k, double alpha,
                               const double* a, int lda, const double* b, int ldb, double beta, double* c, int ldc);
void NETTRIM_BLAS(cblas_dsyrk)(int order, int uplo, int trans, int n, int k, double alpha, const double* a, int lda,
                               double beta, double* c, int ldc);
void NETTRIM_BLAS(dsyevd_)(const char* jobz, const char* uplo, const int* n, double* a, const int* lda, double* w,
                           double* work, const int* lwork, int* iwork, const int* liwork, int* info);
void NETTRIM_BLAS(openblas_set_num_threads)(int n);
}
#endif

namespace nettrim::cpu::blas {

inline constexpr bool available() {
#ifdef NETTRIM_HAVE_BLAS
  return true;
#else
  return false;
#endif
}

// The machine's processors (1 without OpenMP).
inline int processors() {
#ifdef _OPENMP
  return std::max(1, omp_get_num_procs());
#else
  return 1;
#endif
}

// The BLAS's own threads (OpenBLAS keeps a pool of its own, apart from OpenMP's).
inline void set_threads(int n) {
#ifdef NETTRIM_HAVE_BLAS
  NETTRIM_BLAS(openblas_set_num_threads)(n);
#else
  (void)n;
#endif
}

// This thread's OpenMP thread count (which Eigen's products read) set to 1 for a scope.
class SerialScope {
 public:
#ifdef _OPENMP
  SerialScope() : saved_(omp_get_max_threads()) { omp_set_num_threads(1); }
  ~SerialScope() { omp_set_num_threads(saved_); }

 private:
  int saved_;
#else
  SerialScope() {}
#endif
};

// C = alpha op(A) op(B) + beta C, column-major; op is a transpose when the flag says so.
template <class T>
void gemm(bool ta, bool tb, long m, long n, long k, T alpha, const T* A, long lda, const T* B, long ldb, T beta,
          T* C, long ldc) {
  if (m == 0 || n == 0) return;
#ifdef NETTRIM_HAVE_BLAS
  constexpr int col_major = 102, no = 111, yes = 112;
  if constexpr (std::is_same_v<T, float>) {
    NETTRIM_BLAS(cblas_sgemm)(col_major, ta ? yes : no, tb ? yes : no, int(m), int(n), int(k), alpha, A, int(lda), B,
                              int(ldb), beta, C, int(ldc));
  } else {
    NETTRIM_BLAS(cblas_dgemm)(col_major, ta ? yes : no, tb ? yes : no, int(m), int(n), int(k), alpha, A, int(lda), B,
                              int(ldb), beta, C, int(ldc));
  }
#else
  // Eigen on one thread: its blocking, and with it the rounding, depends on its thread count
  // (the callers share the columns out themselves, see gemm_columns).
  const SerialScope serial;
  using Mat = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic>;
  using Map = Eigen::Map<const Mat, 0, Eigen::OuterStride<>>;
  Eigen::Map<Mat, 0, Eigen::OuterStride<>> c(C, m, n, Eigen::OuterStride<>(ldc));
  const Map a(A, ta ? k : m, ta ? m : k, Eigen::OuterStride<>(lda));
  const Map b(B, tb ? n : k, tb ? k : n, Eigen::OuterStride<>(ldb));
  if (beta == T(0)) {
    if (ta && tb) c.noalias() = alpha * (a.transpose() * b.transpose());
    else if (ta) c.noalias() = alpha * (a.transpose() * b);
    else if (tb) c.noalias() = alpha * (a * b.transpose());
    else c.noalias() = alpha * (a * b);
  } else {
    c *= beta;
    if (ta && tb) c.noalias() += alpha * (a.transpose() * b.transpose());
    else if (ta) c.noalias() += alpha * (a.transpose() * b);
    else if (tb) c.noalias() += alpha * (a * b.transpose());
    else c.noalias() += alpha * (a * b);
  }
#endif
}

// gemm with the columns of C shared out among ``threads`` OpenMP threads, each running a
// single-threaded BLAS call.  One pool of threads for the whole iteration: OpenBLAS's own pool
// beside OpenMP's made the two wait on each other, measured on 2 cores: one iteration of a
// 785 x 10000 x 300 layer took 84 ms on 2 threads against 96 ms on 1.
//
// The columns go in ``chunks`` calls whose bounds never depend on the number of threads (the
// caller fixes them per machine, see CpuBackend::chunks_): a BLAS rounds differently with the
// shape it is given (OpenBLAS takes a small-matrix kernel below a size, e.g. for 129 x 129 x 32
// and not for x 64), so with the columns cut per thread the solves on 1 and 2 threads differed
// from the first iteration, and whole networks pruned with threads=0, whose count follows the
// machine's load, differed from run to run.
template <class T>
void gemm_columns(int threads, int chunks, bool ta, bool tb, long m, long n, long k, T alpha, const T* A, long lda,
                  const T* B, long ldb, T beta, T* C, long ldc) {
  const long parts = std::clamp(std::min<long>(chunks, n / 2), 1L, std::max(1L, n));
#pragma omp parallel for schedule(static) num_threads(std::max(1, threads)) if (threads > 1 && parts > 1)
  for (long c = 0; c < parts; ++c) {
    const long c0 = n * c / parts, c1 = n * (c + 1) / parts;
    // column c of op(B) starts at B + c * ldb (no transpose) or B + c (transpose)
    const T* b = tb ? B + c0 : B + c0 * ldb;
    gemm<T>(ta, tb, m, c1 - c0, k, alpha, A, lda, b, ldb, beta, C + c0 * ldc, ldc);
  }
}

// G (n x n, lower triangle) += A A^T for A n x k (column-major, leading dimension lda), in double.
inline void syrk_lower(long n, long k, const double* A, long lda, double* G) {
#ifdef NETTRIM_HAVE_BLAS
  constexpr int col_major = 102, lower = 122, no = 111;
  NETTRIM_BLAS(cblas_dsyrk)(col_major, lower, no, int(n), int(k), 1.0, A, int(lda), 1.0, G, int(n));
#else
  Eigen::Map<Eigen::MatrixXd> g(G, n, n);
  const Eigen::Map<const Eigen::MatrixXd, 0, Eigen::OuterStride<>> a(A, n, k, Eigen::OuterStride<>(lda));
  g.selfadjointView<Eigen::Lower>().rankUpdate(a);
#endif
}

// Eigenvalues (ascending, into w) and eigenvectors (overwriting G's columns) of the symmetric
// n x n matrix whose lower triangle G holds; false when LAPACK reports a failure.
inline bool eigh_lower(long n, double* G, double* w) {
#ifdef NETTRIM_HAVE_BLAS
  const int nn = int(n);
  int info = 0, lwork = -1, liwork = -1, iwork_query = 0;
  double work_query = 0;
  NETTRIM_BLAS(dsyevd_)("V", "L", &nn, G, &nn, w, &work_query, &lwork, &iwork_query, &liwork, &info);
  if (info != 0) return false;
  lwork = int(work_query);
  liwork = iwork_query;
  std::vector<double> work(std::max(1, lwork));
  std::vector<int> iwork(std::max(1, liwork));
  NETTRIM_BLAS(dsyevd_)("V", "L", &nn, G, &nn, w, work.data(), &lwork, iwork.data(), &liwork, &info);
  return info == 0;
#else
  Eigen::Map<Eigen::MatrixXd> g(G, n, n);
  Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd> eig(g, Eigen::ComputeEigenvectors);  // reads the lower triangle
  if (eig.info() != Eigen::Success) return false;
  g = eig.eigenvectors();
  Eigen::Map<Eigen::VectorXd>(w, n) = eig.eigenvalues();
  return true;
#endif
}

}  // namespace nettrim::cpu::blas
