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

#include <Eigen/Dense>

#include "nettrim/errors.hpp"

namespace nettrim::detail {

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
    Eigen::SelfAdjointEigenSolver<MatD> eig;
    if (woodbury_) {  // P < N: X itself is small enough to hold in double
      const MatD Xd = X.template cast<double>();
      eig.compute(Xd * Xd.transpose());
      F_ = (Xd.transpose() * eig.eigenvectors()).template cast<T>();
    } else {  // accumulate X^T X in double over row blocks, never copying all of X
      MatD G = MatD::Zero(N, N);
      for (Eigen::Index p0 = 0; p0 < P; p0 += kBlockRows) {
        poll();
        const Eigen::Index rows = std::min(kBlockRows, P - p0);
        const MatD Xc = X.middleRows(p0, rows).template cast<double>();
        G.template selfadjointView<Eigen::Lower>().rankUpdate(Xc.transpose());
      }
      poll();
      eig.compute(G, Eigen::ComputeEigenvectors);  // reads the lower triangle
      F_ = eig.eigenvectors().template cast<T>();
    }
    poll();
    eigenvalues_ = eig.eigenvalues().cwiseMax(0.0);
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
    K_.noalias() = Fw_ * F_.transpose();
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
