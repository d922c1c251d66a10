// K = (X^T X + sigma I)^{-1} for any sigma > 0, from one eigendecomposition per layer.
//
// The U update of the ADMM solves (X^T X + sigma I) U = R with sigma = rho2 / rho1.
// Adaptive rho changes sigma, so instead of refactoring we eigendecompose once and
// rebuild K = F diag(w) F^T (+ c I) for a new sigma with one GEMM.  When there are
// fewer samples than features (P < N) the P x P Gram matrix is decomposed instead and
// K follows from the Woodbury identity:
//   (X^T X + s I)^{-1} = (1/s) (I - X^T (X X^T + s I)^{-1} X).
// (X here is P x N, samples by features.)
#pragma once

#include <algorithm>
#include <functional>
#include <stdexcept>

#include <Eigen/Dense>

#include "cpu/blas.hpp"
#include "nettrim/errors.hpp"

namespace nettrim::detail {

namespace blas = nettrim::cpu::blas;

template <class T>
class GramInverse {
 public:
  using Mat = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic>;

  // Rows of X accumulated into X^T X per block; the interrupt hook is polled between
  // blocks (a block of 1024 rows of a 1001-column X takes about 10 ms).
  static constexpr Eigen::Index kBlockRows = 1024;

  template <class XType>
  void compute(const XType& X, const std::function<bool()>& interrupted) {
    // The decomposition runs in double whatever T is: it happens once, and float32
    // eigenvectors of a badly scaled Gram matrix would cost accuracy for the whole solve.
    using MatD = Eigen::MatrixXd;
    const Eigen::Index P = X.rows(), N = X.cols();
    woodbury_ = P < N;
    const auto poll = [&] {
      if (interrupted && interrupted()) throw Interrupted();
    };
    const Eigen::Index r = woodbury_ ? P : N;
    MatD G = MatD::Zero(r, r);
    MatD Xd;
    if (woodbury_) {  // P < N: X itself is small enough to hold in double
      Xd = X.template cast<double>();                          // P x N
      blas::syrk_lower(P, N, Xd.data(), P, G.data());          // X X^T
    } else {  // accumulate X^T X in double over row blocks, never copying all of X
      MatD block(N, kBlockRows);                               // a block of rows of X, transposed
      for (Eigen::Index p0 = 0; p0 < P; p0 += kBlockRows) {
        poll();
        const Eigen::Index rows = std::min(kBlockRows, P - p0);
        block.leftCols(rows) = X.middleRows(p0, rows).transpose().template cast<double>();
        blas::syrk_lower(N, rows, block.data(), N, G.data());
      }
    }
    poll();
    eigenvalues_.resize(r);
    if (!blas::eigh_lower(r, G.data(), eigenvalues_.data())) {
      throw std::runtime_error("the eigendecomposition of the Gram matrix X^T X did not converge");
    }
    poll();
    if (woodbury_) {
      MatD F(N, P);
      blas::gemm<double>(true, false, N, P, P, 1.0, Xd.data(), P, G.data(), P, 0.0, F.data(), N);  // X^T Q
      F_ = F.template cast<T>();
    } else {
      F_ = G.template cast<T>();
    }
    eigenvalues_ = eigenvalues_.cwiseMax(0.0);
    K_.resize(N, N);
    w_.resize(eigenvalues_.size());
    Fw_.resize(F_.rows(), F_.cols());
  }

  // Rebuild K for a new sigma: one N x r x N GEMM (r = min(N, P)), into buffers
  // allocated once (the ADMM loop allocates nothing).
  void set_sigma(double sigma) {
    sigma_ = sigma;
    for (Eigen::Index i = 0; i < w_.size(); ++i) {
      const double l = eigenvalues_[i];
      w_[i] = static_cast<T>(woodbury_ ? -1.0 / (sigma * (l + sigma)) : 1.0 / (l + sigma));
    }
    Fw_.noalias() = F_ * w_.asDiagonal();
    const Eigen::Index N = F_.rows(), r = F_.cols();
    // On one BLAS thread, as the set-up: the rounding of K must not depend on the thread count
    // (and another thread of the process, e.g. numpy's threadpoolctl, may have changed it).
    blas::set_threads(1);
    blas::gemm<T>(false, true, N, N, r, T(1), Fw_.data(), N, F_.data(), N, T(0), K_.data(), N);
    if (woodbury_) K_.diagonal().array() += static_cast<T>(1.0 / sigma);
  }

  double sigma() const { return sigma_; }
  double largest_eigenvalue() const { return eigenvalues_.size() ? eigenvalues_.maxCoeff() : 0.0; }
  const Mat& K() const { return K_; }

 private:
  bool woodbury_ = false;
  Eigen::VectorXd eigenvalues_;
  Mat F_, Fw_;
  Mat K_;
  Eigen::Matrix<T, Eigen::Dynamic, 1> w_;
  double sigma_ = 0;
};

}  // namespace nettrim::detail
