// RAII for the CUDA backend: device and pinned host buffers, the stream and the library
// handles, and the checks that turn every failed CUDA, cuBLAS or cuSOLVER call into an
// exception naming the call (nettrim::MemoryError for an allocation, else
// std::runtime_error).  Nothing here aborts; destructors never throw.
#pragma once

#include <cstddef>
#include <string>
#include <utility>

#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <cusolverDn.h>

#include "nettrim/errors.hpp"

namespace nettrim::cuda {

inline const char* cublas_status_name(cublasStatus_t s) {
  switch (s) {
    case CUBLAS_STATUS_SUCCESS: return "CUBLAS_STATUS_SUCCESS";
    case CUBLAS_STATUS_NOT_INITIALIZED: return "CUBLAS_STATUS_NOT_INITIALIZED";
    case CUBLAS_STATUS_ALLOC_FAILED: return "CUBLAS_STATUS_ALLOC_FAILED";
    case CUBLAS_STATUS_INVALID_VALUE: return "CUBLAS_STATUS_INVALID_VALUE";
    case CUBLAS_STATUS_ARCH_MISMATCH: return "CUBLAS_STATUS_ARCH_MISMATCH";
    case CUBLAS_STATUS_MAPPING_ERROR: return "CUBLAS_STATUS_MAPPING_ERROR";
    case CUBLAS_STATUS_EXECUTION_FAILED: return "CUBLAS_STATUS_EXECUTION_FAILED";
    case CUBLAS_STATUS_INTERNAL_ERROR: return "CUBLAS_STATUS_INTERNAL_ERROR";
    case CUBLAS_STATUS_NOT_SUPPORTED: return "CUBLAS_STATUS_NOT_SUPPORTED";
    case CUBLAS_STATUS_LICENSE_ERROR: return "CUBLAS_STATUS_LICENSE_ERROR";
    default: return "an unknown cuBLAS status";
  }
}

inline const char* cusolver_status_name(cusolverStatus_t s) {
  switch (s) {
    case CUSOLVER_STATUS_SUCCESS: return "CUSOLVER_STATUS_SUCCESS";
    case CUSOLVER_STATUS_NOT_INITIALIZED: return "CUSOLVER_STATUS_NOT_INITIALIZED";
    case CUSOLVER_STATUS_ALLOC_FAILED: return "CUSOLVER_STATUS_ALLOC_FAILED";
    case CUSOLVER_STATUS_INVALID_VALUE: return "CUSOLVER_STATUS_INVALID_VALUE";
    case CUSOLVER_STATUS_ARCH_MISMATCH: return "CUSOLVER_STATUS_ARCH_MISMATCH";
    case CUSOLVER_STATUS_EXECUTION_FAILED: return "CUSOLVER_STATUS_EXECUTION_FAILED";
    case CUSOLVER_STATUS_INTERNAL_ERROR: return "CUSOLVER_STATUS_INTERNAL_ERROR";
    case CUSOLVER_STATUS_NOT_SUPPORTED: return "CUSOLVER_STATUS_NOT_SUPPORTED";
    default: return "an unknown cuSOLVER status";
  }
}

inline void check(cudaError_t e, const char* call) {
  if (e == cudaSuccess) return;
  const std::string what = std::string("CUDA backend: ") + call + " failed: " + cudaGetErrorName(e) + " (" +
                           cudaGetErrorString(e) + ")";
  if (e == cudaErrorMemoryAllocation) throw MemoryError(what);
  throw std::runtime_error(what);
}

inline void check(cublasStatus_t s, const char* call) {
  if (s == CUBLAS_STATUS_SUCCESS) return;
  const std::string what = std::string("CUDA backend: ") + call + " failed: " + cublas_status_name(s);
  if (s == CUBLAS_STATUS_ALLOC_FAILED) throw MemoryError(what);
  throw std::runtime_error(what);
}

inline void check(cusolverStatus_t s, const char* call) {
  if (s == CUSOLVER_STATUS_SUCCESS) return;
  const std::string what = std::string("CUDA backend: ") + call + " failed: " + cusolver_status_name(s);
  if (s == CUSOLVER_STATUS_ALLOC_FAILED) throw MemoryError(what);
  throw std::runtime_error(what);
}

// Every call through this names itself in the exception.
#define NETTRIM_CUDA_CHECK(call) ::nettrim::cuda::check((call), #call)

// A typed device allocation; move-only; empty after default construction.
template <class T>
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  explicit DeviceBuffer(std::size_t n) { resize(n); }
  ~DeviceBuffer() { release(); }
  DeviceBuffer(DeviceBuffer&& o) noexcept : ptr_(std::exchange(o.ptr_, nullptr)), size_(std::exchange(o.size_, 0)) {}
  DeviceBuffer& operator=(DeviceBuffer&& o) noexcept {
    if (this != &o) {
      release();
      ptr_ = std::exchange(o.ptr_, nullptr);
      size_ = std::exchange(o.size_, 0);
    }
    return *this;
  }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;

  // Exactly n elements (contents undefined); frees first, so memory is never held twice.
  void resize(std::size_t n) {
    if (n == size_ && ptr_) return;
    release();
    if (n == 0) return;
    void* p = nullptr;
    const cudaError_t e = cudaMalloc(&p, n * sizeof(T));
    if (e != cudaSuccess) {
      (void)cudaGetLastError();   // clear the sticky-free error state of a failed allocation
      throw MemoryError("CUDA backend: cudaMalloc of " + std::to_string((n * sizeof(T)) >> 20) +
                        " MiB failed: " + cudaGetErrorString(e));
    }
    ptr_ = static_cast<T*>(p);
    size_ = n;
  }
  void release() noexcept {
    if (ptr_) (void)cudaFree(ptr_);
    ptr_ = nullptr;
    size_ = 0;
  }
  T* get() const { return ptr_; }
  std::size_t size() const { return size_; }
  bool empty() const { return ptr_ == nullptr; }

  friend void swap(DeviceBuffer& a, DeviceBuffer& b) noexcept {
    std::swap(a.ptr_, b.ptr_);
    std::swap(a.size_, b.size_);
  }

 private:
  T* ptr_ = nullptr;
  std::size_t size_ = 0;
};

// Page-locked host memory for the small per-iteration transfers (sums down, scales up).
template <class T>
class PinnedBuffer {
 public:
  PinnedBuffer() = default;
  ~PinnedBuffer() { release(); }
  PinnedBuffer(const PinnedBuffer&) = delete;
  PinnedBuffer& operator=(const PinnedBuffer&) = delete;
  void resize(std::size_t n) {
    if (n <= size_ && ptr_) return;
    release();
    if (n == 0) return;
    void* p = nullptr;
    const cudaError_t e = cudaMallocHost(&p, n * sizeof(T));
    if (e != cudaSuccess) {
      (void)cudaGetLastError();
      throw MemoryError(std::string("CUDA backend: cudaMallocHost failed: ") + cudaGetErrorString(e));
    }
    ptr_ = static_cast<T*>(p);
    size_ = n;
  }
  void release() noexcept {
    if (ptr_) (void)cudaFreeHost(ptr_);
    ptr_ = nullptr;
    size_ = 0;
  }
  T* get() const { return ptr_; }
  T& operator[](std::size_t i) const { return ptr_[i]; }

 private:
  T* ptr_ = nullptr;
  std::size_t size_ = 0;
};

// The backend's own stream (so that several solvers on one GPU can overlap) and the
// cuBLAS and cuSOLVER handles bound to it.
class Stream {
 public:
  Stream() { NETTRIM_CUDA_CHECK(cudaStreamCreateWithFlags(&s_, cudaStreamNonBlocking)); }
  ~Stream() {
    if (s_) (void)cudaStreamDestroy(s_);
  }
  Stream(const Stream&) = delete;
  Stream& operator=(const Stream&) = delete;
  cudaStream_t get() const { return s_; }
  void sync() const { NETTRIM_CUDA_CHECK(cudaStreamSynchronize(s_)); }

 private:
  cudaStream_t s_ = nullptr;
};

class CublasHandle {
 public:
  explicit CublasHandle(cudaStream_t stream) {
    NETTRIM_CUDA_CHECK(cublasCreate(&h_));
    const cublasStatus_t s = cublasSetStream(h_, stream);
    if (s != CUBLAS_STATUS_SUCCESS) {
      (void)cublasDestroy(h_);
      check(s, "cublasSetStream(h_, stream)");
    }
  }
  ~CublasHandle() {
    if (h_) (void)cublasDestroy(h_);
  }
  CublasHandle(const CublasHandle&) = delete;
  CublasHandle& operator=(const CublasHandle&) = delete;
  cublasHandle_t get() const { return h_; }

 private:
  cublasHandle_t h_ = nullptr;
};

class CusolverHandle {
 public:
  explicit CusolverHandle(cudaStream_t stream) {
    NETTRIM_CUDA_CHECK(cusolverDnCreate(&h_));
    const cusolverStatus_t s = cusolverDnSetStream(h_, stream);
    if (s != CUSOLVER_STATUS_SUCCESS) {
      (void)cusolverDnDestroy(h_);
      check(s, "cusolverDnSetStream(h_, stream)");
    }
  }
  ~CusolverHandle() {
    if (h_) (void)cusolverDnDestroy(h_);
  }
  CusolverHandle(const CusolverHandle&) = delete;
  CusolverHandle& operator=(const CusolverHandle&) = delete;
  cusolverDnHandle_t get() const { return h_; }

 private:
  cusolverDnHandle_t h_ = nullptr;
};

// Makes `device` current on this thread for a scope (calls may come from any thread).
class DeviceScope {
 public:
  explicit DeviceScope(int device) {
    NETTRIM_CUDA_CHECK(cudaGetDevice(&saved_));
    if (saved_ != device) NETTRIM_CUDA_CHECK(cudaSetDevice(device));
    changed_ = saved_ != device;
  }
  ~DeviceScope() {
    if (changed_) (void)cudaSetDevice(saved_);
  }
  DeviceScope(const DeviceScope&) = delete;
  DeviceScope& operator=(const DeviceScope&) = delete;

 private:
  int saved_ = 0;
  bool changed_ = false;
};

}  // namespace nettrim::cuda
