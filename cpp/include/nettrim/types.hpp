// Matrix types shared by the whole engine.
#pragma once

#include <Eigen/Core>

namespace nettrim {

// Column-major: the engine's own buffers (one contiguous column per output neuron).
template <class T>
using Matrix = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic>;

// Row-major: inputs arrive samples by features, as numpy arrays do (C order, zero copy).
template <class T>
using RowMatrix = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
template <class T>
using ConstRowRef = Eigen::Ref<const RowMatrix<T>>;

}  // namespace nettrim
