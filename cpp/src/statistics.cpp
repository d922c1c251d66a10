// SampleStatistics and compress() (nettrim/statistics.hpp).
#include "nettrim/statistics.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <string>

#include <Eigen/Eigenvalues>

#include "cpu/blas.hpp"
#include "nettrim/machine.hpp"

namespace nettrim {

namespace blas = cpu::blas;

namespace {

// Rows are summed in blocks of this many; the column chunks of X^T Y are fixed too, so the
// rounding depends on the rows and their order alone, never on the thread count.
constexpr long kBlockRows = 2048;
constexpr int kColumnChunks = 8;

std::string shape(long rows, long cols) {
  return "(" + std::to_string(rows) + ", " + std::to_string(cols) + ")";
}

}  // namespace

SampleStatistics::SampleStatistics(long inputs, long outputs, bool ones_column) : ones_(ones_column) {
  if (inputs < 1 || outputs < 1) {
    throw std::invalid_argument("SampleStatistics: expected inputs >= 1 and outputs >= 1, got " +
                                std::to_string(inputs) + " and " + std::to_string(outputs));
  }
  const long N = inputs + (ones_column ? 1 : 0);
  G_ = Eigen::MatrixXd::Zero(N, N);
  C_ = Eigen::MatrixXd::Zero(N, outputs);
  y2_ = Eigen::VectorXd::Zero(outputs);
  Xt_.resize(N, kBlockRows);
  Yb_.resize(kBlockRows, outputs);
  if (ones_) Xt_.row(inputs).setOnes();
}

template <class T>
void SampleStatistics::add(ConstRowRef<T> X, ConstRowRef<T> Y) {
  const long n_in = inputs() - (ones_ ? 1 : 0), M = outputs();
  if (X.cols() != n_in) {
    throw std::invalid_argument("X: expected " + std::to_string(n_in) + " columns, got shape " +
                                shape(X.rows(), X.cols()));
  }
  if (Y.rows() != X.rows() || Y.cols() != M) {
    throw std::invalid_argument("Y: expected shape " + shape(X.rows(), M) + " (a row per row of X), got " +
                                shape(Y.rows(), Y.cols()));
  }
  if (!X.allFinite()) throw std::invalid_argument("X: expected finite values, got NaN or Inf");
  if (!Y.allFinite()) throw std::invalid_argument("Y: expected finite values, got NaN or Inf");
  for (long p0 = 0; p0 < X.rows();) {
    const long rows = std::min(kBlockRows - waiting_, X.rows() - p0);
    Xt_.block(0, waiting_, n_in, rows) = X.middleRows(p0, rows).transpose().template cast<double>();
    Yb_.middleRows(waiting_, rows) = Y.middleRows(p0, rows).template cast<double>();
    waiting_ += rows;
    p0 += rows;
    if (waiting_ == kBlockRows) flush();
  }
  P_ += X.rows();
}

void SampleStatistics::flush() const {
  if (waiting_ == 0) return;
  const long N = inputs(), M = outputs(), rows = waiting_;
  const int threads = resolve_threads(0, double(rows) * double(N) * double(M));
  ThreadScope scope(threads);
  blas::set_threads(1);   // (syrk on one thread: its rounding must not follow the thread count)
  blas::syrk_lower(N, rows, Xt_.data(), N, G_.data());
  blas::gemm_columns<double>(threads, kColumnChunks, false, false, N, M, rows, 1.0, Xt_.data(), N, Yb_.data(),
                             kBlockRows, 1.0, C_.data(), N);
  y2_ += Yb_.topRows(rows).colwise().squaredNorm().transpose();
  waiting_ = 0;
}

const Eigen::MatrixXd& SampleStatistics::gram() const {
  flush();
  G_.triangularView<Eigen::StrictlyUpper>() = G_.transpose();   // (syrk sums the lower triangle)
  return G_;
}

const Eigen::MatrixXd& SampleStatistics::cross() const {
  flush();
  return C_;
}

const Eigen::VectorXd& SampleStatistics::target_norm2() const {
  flush();
  return y2_;
}

template void SampleStatistics::add<float>(ConstRowRef<float>, ConstRowRef<float>);
template void SampleStatistics::add<double>(ConstRowRef<double>, ConstRowRef<double>);

CompressedSamples compress(const SampleStatistics& stats) {
  if (stats.samples() == 0) {
    throw std::invalid_argument("statistics: expected at least one sample, got none (add batches first)");
  }
  const long N = stats.inputs(), M = stats.outputs();
  Eigen::MatrixXd V = stats.gram();   // lower triangle; overwritten by the eigenvectors
  Eigen::VectorXd lambda(N);
  blas::set_threads(1);
  if (!blas::eigh_lower(N, V.data(), lambda.data())) {
    throw std::runtime_error("the eigendecomposition of the Gram matrix X^T X did not converge");
  }
  // Eigenvalues below this are the rounding of zero: N eps of the largest, as numpy's
  // matrix_rank, and G's own sums over P rows round at P eps of it.
  const double eps64 = std::numeric_limits<double>::epsilon();
  const double top = std::max(lambda.maxCoeff(), 0.0);
  const double rank_tol = top * eps64 * double(std::max(N, stats.samples()));
  CompressedSamples out;
  std::vector<long> kept;
  for (long i = N - 1; i >= 0; --i)
    if (lambda[i] > rank_tol) kept.push_back(i);   // largest first
  const long k = long(kept.size());
  out.rank = k;
  out.R.resize(k, N);
  out.Y.resize(k, M);
  // Yc = diag(1/sqrt l) V^T C, one row per kept eigenvector.
  const Eigen::MatrixXd VtC = V.transpose() * stats.cross();   // N x M
  for (long r = 0; r < k; ++r) {
    const long i = kept[r];
    const double s = std::sqrt(lambda[i]);
    out.R.row(r) = s * V.col(i).transpose();
    out.Y.row(r) = VtC.row(i) / s;
  }
  out.floor2 = (stats.target_norm2() - out.Y.colwise().squaredNorm().transpose()).cwiseMax(0.0);
  // ||Y||^2 - ||Yc||^2 subtracts two sums of P products each rounded at about P eps64, and
  // the eigendecomposition adds N eps64 of G's scale (k as the rank tolerance above).
  out.relative_uncertainty = eps64 * double(std::max(N, stats.samples())) * 4.0;
  return out;
}

}  // namespace nettrim
