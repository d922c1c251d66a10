// Errors the engine throws.  Outcomes of a valid solve (iteration limit, numerical
// trouble, ...) are not errors: they are a Status in the Result.
//   std::invalid_argument  bad data or settings; the message names the argument
//   nettrim::MemoryError   the buffers would not fit (checked before allocating)
//   nettrim::Interrupted   the interrupt hook asked to stop during setup
#pragma once

#include <stdexcept>

namespace nettrim {

class MemoryError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class Interrupted : public std::runtime_error {
 public:
  Interrupted() : std::runtime_error("interrupted") {}
};

}  // namespace nettrim
