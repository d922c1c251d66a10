// The registry of backends this build has.
#include <stdexcept>
#include <string>
#include <vector>

#include "cpu/cpu_backend.hpp"
#include "nettrim/backend.hpp"

#ifdef NETTRIM_WITH_CUDA
#include "cuda_backend.hpp"
#endif

namespace nettrim {

std::vector<std::string> available_backends() {
  std::vector<std::string> names = {"cpu"};
#ifdef NETTRIM_WITH_CUDA
  if (cuda::device_count() > 0) names.push_back("cuda");
#endif
  return names;
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

}  // namespace nettrim
