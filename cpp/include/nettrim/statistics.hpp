// The samples of a linear layer, compressed to what its program needs (docs: "The linear
// program at any number of samples").
//
// Without a ReLU the constraint is on ||X U - Y||, and for every U
//   ||X U - Y||^2 = tr(U^T G U) - 2 tr(U^T C) + ||Y||^2   with G = X^T X, C = X^T Y,
// so G, C and the column norms of Y hold all that the program sees of the P samples.  They
// are summed batch by batch, in float64, and a calibration set of any length streams
// through a fixed N x N + N x M of memory:
//
//   nettrim::SampleStatistics stats(n_in, M, /*ones_column=*/true);
//   for (auto& [X, Y] : batches) stats.add<float>(X, Y);     // X: rows x n_in, Y: rows x M
//   nettrim::Solver<float> solver;
//   solver.setup(stats, settings);                            // settings.mode = Mode::linear
//   solver.update_eps({eps});                                 // in the units of ||X U - Y||
//
// The solver turns them into the same program on min(N, rank) rows (compress() below), so
// that an iteration costs O(N^2 M) whatever P is.
#pragma once

#include <vector>

#include <Eigen/Core>

#include "nettrim/types.hpp"

namespace nettrim {

class SampleStatistics {
 public:
  // inputs: features of X (n_in); outputs: columns of Y (M).  ones_column appends a
  // constant-one feature (the bias), so that inputs() is n_in + 1.
  SampleStatistics(long inputs, long outputs, bool ones_column = false);

  // Adds a batch of rows: X (rows x n_in) and Y (rows x M), float32 or float64; the sums are
  // float64 whatever T is.  Rows are summed in blocks of a fixed count, so the sums depend on
  // the rows and their order alone: the same rows give bit-identical sums whether they come
  // in one batch or many, on any number of threads.  Throws std::invalid_argument naming X
  // or Y for a shape that does not match or a value that is not finite; nothing is added then.
  template <class T>
  void add(ConstRowRef<T> X, ConstRowRef<T> Y);

  long samples() const { return P_; }          // rows added so far
  long inputs() const { return long(G_.rows()); }   // N (with the ones column)
  long outputs() const { return long(C_.cols()); }  // M
  bool ones_column() const { return ones_; }
  // The sums (each first takes in the rows still waiting for a full block):
  const Eigen::MatrixXd& gram() const;             // X^T X (N x N; its lower triangle is summed)
  const Eigen::MatrixXd& cross() const;            // X^T Y (N x M)
  const Eigen::VectorXd& target_norm2() const;     // ||Y[:, m]||^2

 private:
  void flush() const;

  bool ones_;
  long P_ = 0;
  // The sums, and the rows not yet in them: X transposed (N x block) and Y (block x M), in
  // double.  Mutable: reading the sums first adds the waiting rows.
  mutable Eigen::MatrixXd G_, C_;
  mutable Eigen::VectorXd y2_;
  mutable Eigen::MatrixXd Xt_, Yb_;
  mutable long waiting_ = 0;
};

// The program on rows that the statistics stand for: R (k x N) and Yc (k x M) with
//   ||X U - Y||^2 = ||R U - Yc||^2 + floor2   column by column, for every U,
// from G = V diag(l) V^T: R = diag(sqrt l) V^T and Yc = diag(1/sqrt l) V^T C over the k
// eigenvalues above rank_tol (those below are the null space of X, which C does not reach).
// floor2[m] = ||Y_m||^2 - ||Yc_m||^2 is the least-squares residual of column m: no U does
// better, so a tolerance eps below sqrt(sum floor2) (joint) cannot be met.
struct CompressedSamples {
  RowMatrix<double> R;            // k x N
  RowMatrix<double> Y;            // k x M
  Eigen::VectorXd floor2;         // per column, >= 0
  // What rounding leaves uncertain in ||X U - Y||^2 from these figures, per unit of
  // ||Y_m||^2 + ||R u_m||^2: the float64 sums of P products and the eigendecomposition.
  double relative_uncertainty = 0;
  long rank = 0;                  // k
};

CompressedSamples compress(const SampleStatistics& stats);

}  // namespace nettrim
