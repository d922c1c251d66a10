// The data of one layer, as read-only views (no copies of the large input X).
#pragma once

#include <optional>
#include <vector>

#include <Eigen/Core>

#include "nettrim/result.hpp"

namespace nettrim {

template <class T>
using RowMatrix = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
template <class T>
using ConstRowRef = Eigen::Ref<const RowMatrix<T>>;

// Shapes use samples by features, as numpy arrays do (C order, zero copy):
//   X: P x N  layer inputs, the bias column of ones already appended if wanted
//   Y: P x M  target outputs (ReLU outputs in relu mode)
//   V: P x M  upper bound on pre-activations where Y == 0 (cascade); absent means 0
// eps holds one value (joint) or M values (per-neuron); ignored in the regularized form.
template <class T>
struct Problem {
  ConstRowRef<T> X;
  ConstRowRef<T> Y;
  std::optional<ConstRowRef<T>> V;
  std::vector<double> eps;
  const Matrix<T>* U0 = nullptr;    // warm start: initial U (e.g. the trained W)
  const State<T>* state = nullptr;  // warm start: a full ADMM state (takes precedence)

  Problem(ConstRowRef<T> X_, ConstRowRef<T> Y_) : X(X_), Y(Y_) {}
};

}  // namespace nettrim
