// The registry of backends this build has.
#include <stdexcept>
#include <string>
#include <vector>

#include "../cuda/cuda_backend.hpp"   // (cuda::capabilities in every build; the rest with NETTRIM_WITH_CUDA)
#include "cpu/cpu_backend.hpp"
#include "nettrim/backend.hpp"

namespace nettrim {

std::vector<std::string> available_backends() {
  std::vector<std::string> names = {"cpu"};
#ifdef NETTRIM_WITH_CUDA
  if (cuda::device_count() > 0) names.push_back("cuda");
#endif
  return names;
}

BackendCapabilities backend_capabilities(const std::string& name) {
  if (name == "cpu") return cpu::CpuBackend<float>::kCapabilities;
  if (name == "cuda" || name == "cuda:tf32") {
    BackendCapabilities c = cuda::capabilities(name == "cuda:tf32");
#ifdef NETTRIM_WITH_CUDA
    c.available = cuda::device_count() > 0;
#endif
    return c;
  }
  throw std::invalid_argument("backend: expected one of 'cpu', 'cuda', 'cuda:tf32', got '" + name + "'");
}

template <class T>
std::unique_ptr<Backend<T>> make_backend(const std::string& name) {
  if (name == "cpu") return std::make_unique<cpu::CpuBackend<T>>();
#ifdef NETTRIM_WITH_CUDA
  // "cuda:tf32": the same backend, its float32 products on TF32 tensor cores (opt-in).
  if (name == "cuda" || name == "cuda:tf32") {
    if (cuda::device_count() == 0) {
      throw std::invalid_argument("backend: '" + name + "' is built in, but no CUDA device is visible");
    }
    return cuda::make_backend<T>(name == "cuda:tf32");
  }
#endif
  std::string have;
  for (const std::string& n : available_backends()) have += (have.empty() ? "'" : ", '") + n + "'";
  throw std::invalid_argument("backend: expected one of " + have + ", got '" + name + "'" +
                              (name.rfind("cuda", 0) == 0 ? " (this build has no CUDA backend)" : ""));
}

template std::unique_ptr<Backend<float>> make_backend(const std::string&);
template std::unique_ptr<Backend<double>> make_backend(const std::string&);

std::size_t backend_workspace_bytes(const std::string& name, bool float64, long P, long N, long M, bool has_bound) {
  if (P < 0 || N < 0 || M < 0) {
    throw std::invalid_argument("workspace_bytes: expected sizes P, N, M >= 0, got " + std::to_string(P) + ", " +
                                std::to_string(N) + ", " + std::to_string(M));
  }
  if (float64) return make_backend<double>(name)->workspace_bytes(P, N, M, has_bound);
  return make_backend<float>(name)->workspace_bytes(P, N, M, has_bound);
}

}  // namespace nettrim
