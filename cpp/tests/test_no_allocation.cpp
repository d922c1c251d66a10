// The iteration loop allocates nothing: setup and the start of a solve own every buffer.
//
// Every malloc, calloc, realloc, posix_memalign and aligned_alloc of the core (wrapped at
// link time, see CMakeLists.txt) and every operator new is counted while `counting` is
// on; the progress hook, called at each convergence check, turns counting on at the
// first check and records the count at every later one.  Between the first and the last
// check there are iterations, residuals, rho adaptation (with rebuilds of the U solve)
// and candidate checks: they must not allocate.  The layer is small enough that Eigen's
// GEMM packs its blocks on the stack (above 128 KB of blocking space Eigen takes it from
// the heap per product, which is Eigen's, not the loop's).
#include <cstdlib>
#include <new>

#include "check.hpp"

namespace {
bool counting = false;
long allocations = 0;
}  // namespace

extern "C" {
void* __real_malloc(std::size_t);
void* __real_calloc(std::size_t, std::size_t);
void* __real_realloc(void*, std::size_t);
int __real_posix_memalign(void**, std::size_t, std::size_t);
void* __real_aligned_alloc(std::size_t, std::size_t);

void* __wrap_malloc(std::size_t n) {
  if (counting) ++allocations;
  return __real_malloc(n);
}
void* __wrap_calloc(std::size_t n, std::size_t size) {
  if (counting) ++allocations;
  return __real_calloc(n, size);
}
void* __wrap_realloc(void* p, std::size_t n) {
  if (counting) ++allocations;
  return __real_realloc(p, n);
}
int __wrap_posix_memalign(void** p, std::size_t align, std::size_t n) {
  if (counting) ++allocations;
  return __real_posix_memalign(p, align, n);
}
void* __wrap_aligned_alloc(std::size_t align, std::size_t n) {
  if (counting) ++allocations;
  return __real_aligned_alloc(align, n);
}
}

void* operator new(std::size_t n) {
  if (counting) ++allocations;
  void* p = __real_malloc(n ? n : 1);
  if (!p) throw std::bad_alloc();
  return p;
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }

template <class T>
void loop_allocates_nothing() {
  using namespace nettrim;
  const Layer<T> L = random_layer<T>(31, 300, 20, 6);
  Settings s;
  s.bias_row = 20;
  s.threads = 1;
  s.max_iter = 400;
  Solver<T> solver;
  solver.setup(L.X, s);
  solver.update_target(L.Y);
  solver.update_eps({0.05 * omega_norm(L)});
  long at_first = -1, at_last = -1;
  int checks = 0;
  Hooks hooks;
  hooks.progress = [&](const Progress&) {
    if (!counting) {
      counting = true;
      at_first = allocations;
    }
    at_last = allocations;
    ++checks;
  };
  const Result<T> r = solver.solve(hooks);
  counting = false;
  CHECK(checks >= 5);
  CHECK(r.info.rho_updates >= 1);   // the window saw rho adaptation too
  CHECK(at_last - at_first == 0);
  if (at_last != at_first) std::fprintf(stderr, "%ld allocations inside the loop\n", at_last - at_first);
}

int main() {
  loop_allocates_nothing<float>();
  loop_allocates_nothing<double>();
  return report("no_allocation");
}
