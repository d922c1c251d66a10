#include <cmath>
#include <cstdio>
#include <stdexcept>
#include <string>

#include "nettrim/result.hpp"
#include "nettrim/settings.hpp"

namespace nettrim {

namespace {
void require(bool ok, const char* field, const std::string& expected, double got) {
  if (!ok) {
    char text[32];
    std::snprintf(text, sizeof text, "%.6g", got);
    throw std::invalid_argument(std::string(field) + ": expected " + expected + ", got " + text);
  }
}
}  // namespace

void Settings::validate() const {
  require(std::isfinite(lam) && lam >= 0, "lam", "a finite value >= 0", lam);
  require(std::isfinite(rho) && rho > 0, "rho", "a finite value > 0", rho);
  require(std::isfinite(sigma) && sigma >= 0, "sigma", "a finite value >= 0 (0: automatic)", sigma);
  require(adapt_every >= 1, "adapt_every", "an integer >= 1", adapt_every);
  require(std::isfinite(adapt_bias) && adapt_bias > 0, "adapt_bias", "a finite value > 0", adapt_bias);
  require(std::isfinite(adapt_threshold) && adapt_threshold >= 1, "adapt_threshold", "a finite value >= 1", adapt_threshold);
  require(alpha > 0 && alpha < 2, "alpha", "a value in (0, 2)", alpha);
  require(max_iter >= 0, "max_iter", "an integer >= 0", max_iter);
  require(std::isfinite(time_limit) && time_limit >= 0, "time_limit", "seconds >= 0 (0: none)", time_limit);
  require(std::isfinite(tol) && tol >= 0, "tol", "a finite value >= 0", tol);
  require(std::isfinite(dual_tol) && dual_tol >= 0, "dual_tol", "a finite value >= 0", dual_tol);
  require(std::isfinite(gap_tol) && gap_tol >= 0, "gap_tol", "a finite value >= 0 (0: no certificate)", gap_tol);
  require(std::isfinite(certify_bias) && certify_bias > 0, "certify_bias", "a finite value > 0", certify_bias);
  require(polish_margin >= 0 && polish_margin < 1, "polish_margin", "a value in [0, 1)", polish_margin);
  require(threads >= 0 && threads <= kMaxThreads, "threads",
          "an integer in [0, " + std::to_string(kMaxThreads) + "] (0: automatic)", threads);
  require(bias_row >= -1, "bias_row", "a row index or -1", bias_row);
}

const char* status_name(Status s) {
  switch (s) {
    case Status::converged: return "converged";
    case Status::max_iterations: return "max_iterations";
    case Status::time_limit: return "time_limit";
    case Status::interrupted: return "interrupted";
    case Status::numerical_error: return "numerical_error";
  }
  return "unknown";
}

}  // namespace nettrim
