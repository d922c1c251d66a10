// What the backends say they can do agrees with what they do; the machine helpers; the
// settings' list of fields.
#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

#include "check.hpp"

using namespace nettrim;

template <class T>
void check_backend(const std::string& name) {
  const BackendCapabilities caps = backend_capabilities(name);
  std::unique_ptr<Backend<T>> backend = make_backend<T>(name);
  const BackendCapabilities own = backend->capabilities();
  CHECK(std::string(own.name) == name);
  CHECK(own.available && own.built);
  CHECK(own.gpu == caps.gpu && own.inactive_bounded == caps.inactive_bounded && own.inactive_relu == caps.inactive_relu);
  CHECK((std::is_same_v<T, float> ? caps.float32 : caps.float64));
  // The registry's workspace is the backend's own.
  CHECK(backend_workspace_bytes(name, std::is_same_v<T, double>, 500, 40, 7, true) ==
        backend->workspace_bytes(500, 40, 7, true));
  // A program the backend says it solves sets up; one it lacks is refused, naming inactive.
  const Layer<T> L = random_layer<T>(5, 60, 6, 3);
  for (Inactive inactive : {Inactive::bounded, Inactive::relu}) {
    Settings s;
    s.bias_row = 6;
    s.inactive = inactive;
    Solver<T> solver(name);
    if (caps.solves(inactive)) {
      solver.setup(L.X, s);
      solver.update_target(L.Y);
      solver.update_eps({0.1 * omega_norm(L)});
      CHECK(solver.solve().info.status == Status::converged);
    } else {
      CHECK_THROWS(solver.setup(L.X, s), std::invalid_argument, "inactive: ");
    }
  }
}

int main() {
  // The CPU backend: both programs, both precisions, on the host.
  const BackendCapabilities cpu = backend_capabilities("cpu");
  CHECK(std::string(cpu.name) == "cpu");
  CHECK(cpu.built && cpu.available && !cpu.gpu);
  CHECK(cpu.float32 && cpu.float64);
  CHECK(cpu.solves(Inactive::bounded) && cpu.solves(Inactive::relu));
  // The CUDA backend answers in every build (built and available say whether it is here).
  for (const char* name : {"cuda", "cuda:tf32"}) {
    const BackendCapabilities c = backend_capabilities(name);
    CHECK(std::string(c.name) == name);
    CHECK(c.gpu && c.solves(Inactive::bounded) && !c.solves(Inactive::relu));
    CHECK(!c.available || c.built);
  }
  CHECK_THROWS(backend_capabilities("gpu"), std::invalid_argument, "backend: expected one of 'cpu', 'cuda'");
  CHECK_THROWS(backend_workspace_bytes("gpu", false, 10, 2, 1, false), std::invalid_argument, "backend: ");
  CHECK_THROWS(backend_workspace_bytes("cpu", false, -1, 2, 1, false), std::invalid_argument, "workspace_bytes: ");
  // Every available backend says so, and does what it says.
  for (const std::string& name : available_backends()) {
    CHECK(backend_capabilities(name).available);
    check_backend<float>(name);
    check_backend<double>(name);
  }

  // The machine.
  CHECK(processors() >= 1);
  CHECK(resolve_threads(3, 1e9) == std::min(3, processors()));
  CHECK(resolve_threads(0, 10) == 1);
  const int automatic = resolve_threads(0, 1e9);
  CHECK(automatic >= 1 && automatic <= processors());
#ifdef __linux__
  CHECK(available_memory() > 0);
#endif

  // The settings' list: every field once, in order, with its member.
  std::vector<std::string> names;
  for_each_setting([&names](const char* name, auto) { names.emplace_back(name); });
  CHECK(names.size() == detail::field_count<Settings>());
  CHECK(names.front() == "mode" && names.back() == "threads");
  std::vector<std::string> sorted = names;
  std::sort(sorted.begin(), sorted.end());
  CHECK(std::adjacent_find(sorted.begin(), sorted.end()) == sorted.end());
  Settings s;
  for_each_setting([&s](const char* name, auto member) {
    if (std::strcmp(name, "max_iter") == 0) {
      if constexpr (std::is_same_v<decltype(member), int Settings::*>) s.*member = 7;
    }
  });
  CHECK(s.max_iter == 7);

  return report("capabilities");
}
