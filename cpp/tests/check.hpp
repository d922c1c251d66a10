// A minimal test harness: CHECK(condition) and CHECK_THROWS(statement, exception, text).
#pragma once

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>

#include "nettrim/nettrim.hpp"

inline int g_failures = 0;

#define CHECK(cond)                                                            \
  do {                                                                         \
    if (!(cond)) {                                                             \
      std::fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
      ++g_failures;                                                            \
    }                                                                          \
  } while (0)

#define CHECK_THROWS(statement, exception, text)                               \
  do {                                                                         \
    bool thrown_ = false;                                                      \
    try {                                                                      \
      statement;                                                               \
    } catch (const exception& e_) {                                            \
      thrown_ = std::string(e_.what()).find(text) != std::string::npos;        \
      if (!thrown_) std::fprintf(stderr, "%s:%d: message '%s' lacks '%s'\n", __FILE__, __LINE__, e_.what(), text); \
    }                                                                          \
    if (!thrown_) {                                                            \
      std::fprintf(stderr, "%s:%d: expected %s from %s\n", __FILE__, __LINE__, #exception, #statement); \
      ++g_failures;                                                            \
    }                                                                          \
  } while (0)

inline int report(const char* name) {
  if (g_failures) {
    std::fprintf(stderr, "%s: %d check(s) failed\n", name, g_failures);
    return 1;
  }
  std::printf("%s: all checks passed\n", name);
  return 0;
}

// A random ReLU layer: X (P x n_in) with a column of ones appended, Y = relu(X W + b).
template <class T>
struct Layer {
  nettrim::RowMatrix<T> X, Y;
  nettrim::Matrix<T> W;   // (n_in + 1) x M, bias as the last row
};

template <class T>
Layer<T> random_layer(unsigned seed, long P, long n_in, long M, double density = 1.0) {
  std::mt19937 gen(seed);
  std::normal_distribution<double> normal;
  std::uniform_real_distribution<double> uniform;
  Layer<T> L;
  L.X.resize(P, n_in + 1);
  for (long p = 0; p < P; ++p) {
    for (long n = 0; n < n_in; ++n) L.X(p, n) = T(normal(gen));
    L.X(p, n_in) = T(1);
  }
  L.W.resize(n_in + 1, M);
  for (long m = 0; m < M; ++m)
    for (long n = 0; n <= n_in; ++n)
      L.W(n, m) = (n == n_in || uniform(gen) < density) ? T(normal(gen) / std::sqrt(double(n_in))) : T(0);
  L.Y = (L.X * L.W).cwiseMax(T(0));
  return L;
}

// ||(X U - Y)_Omega||_F, in double.
template <class T>
double omega_error(const Layer<T>& L, const nettrim::Matrix<T>& U) {
  const Eigen::MatrixXd A = L.X.template cast<double>() * U.template cast<double>();
  double s = 0;
  for (long p = 0; p < A.rows(); ++p)
    for (long m = 0; m < A.cols(); ++m)
      if (L.Y(p, m) > 0) s += (A(p, m) - double(L.Y(p, m))) * (A(p, m) - double(L.Y(p, m)));
  return std::sqrt(s);
}

template <class T>
double omega_norm(const Layer<T>& L) {
  return std::sqrt(L.Y.template cast<double>().squaredNorm());
}
