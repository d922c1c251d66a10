// The CUDA backend's entry points (cpp/cuda/cuda_backend.cu), for the registry
// (cpp/src/backends.cpp) and the Python module.  No CUDA header is needed to include this:
// everything CUDA stays in the .cu file, compiled by nvcc only when NETTRIM_CUDA is ON.  The
// registry includes it in every build, for capabilities() alone.
#pragma once

#include <memory>
#include <string>

#include "nettrim/backend.hpp"

namespace nettrim::cuda {

// What the CUDA backend can do, in any build: the bounded program only (inactive = relu is
// not done, see README.md), float32 and float64, on the GPU.  built: this build has it;
// available is left false (whether a device is visible: the registry and an instance say).
constexpr BackendCapabilities capabilities(bool tf32) {
  BackendCapabilities c;
  c.name = tf32 ? "cuda:tf32" : "cuda";
#ifdef NETTRIM_WITH_CUDA
  c.built = true;
#endif
  c.gpu = true;
  c.float32 = c.float64 = true;
  c.inactive_bounded = true;
  c.inactive_relu = false;
  return c;
}

// CUDA devices visible to this process; 0 when there is no GPU, no driver, or the runtime
// reports any error (never throws).
int device_count() noexcept;

// A backend on the current device.  tf32: float32 products on TF32 tensor cores (about
// 1e-3 relative rounding instead of 1e-7; no effect in float64).  Throws
// std::runtime_error (naming the call) when the device cannot be set up.
template <class T>
std::unique_ptr<Backend<T>> make_backend(bool tf32 = false);

extern template std::unique_ptr<Backend<float>> make_backend(bool);
extern template std::unique_ptr<Backend<double>> make_backend(bool);

// The current device's name and compute capability, e.g. "NVIDIA H100 80GB HBM3 (sm_90)".
std::string device_name();

// Median seconds of one ADMM iteration's two large products with cuBLAS on the current
// device, A = X U (P x N by N x M) and R = X^T B, on random data, timed with CUDA events:
// what the benchmark compares the backend's iterations with.
double gemm_seconds(long P, long N, long M, bool float64, bool tf32, int repeats);

}  // namespace nettrim::cuda
