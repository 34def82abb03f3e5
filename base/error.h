// Errors of the whole engine.
//
// Every failure the library reports is an exception derived from prunerec::Error, with a
// message that names the op, tensor, file or line and what was expected, e.g.
//   matmul: [32,64] @ [48,16]: inner dims 64 != 48
// The library never calls exit() or abort(); the command line catches at main().
//
//   PR_CHECK(a.dim() == 2, "matmul: expected a matrix, got ", a.shape_str());
//   PR_ASSERT(offset >= 0);  // internal invariant, also a thrown error (InternalError)
#pragma once

#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>

namespace prunerec {

// Base of every error the library throws.
class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& what) : std::runtime_error(what) {}
};

// A shape, dtype or argument does not fit the op (a caller's mistake).
class ShapeError : public Error {
 public:
  using Error::Error;
};

// A file could not be read or written, or its content is malformed. The message names the
// file and, where it applies, the line or tensor.
class IoError : public Error {
 public:
  using Error::Error;
};

// A configuration, plan or command-line value is invalid.
class ConfigError : public Error {
 public:
  using Error::Error;
};

// A NaN or Inf appeared in training; the message names the step and tensor.
class NumericError : public Error {
 public:
  using Error::Error;
};

// A run was asked to stop (SIGINT/SIGTERM) and stopped cleanly after saving.
class Interrupted : public Error {
 public:
  using Error::Error;
};

// An internal invariant broke: a bug in prunerec, not in the caller's input.
class InternalError : public Error {
 public:
  using Error::Error;
};

namespace detail {
template <class... Args>
std::string str_cat(Args&&... args) {
  std::ostringstream os;
  (os << ... << std::forward<Args>(args));
  return os.str();
}
}  // namespace detail

}  // namespace prunerec

// Throws ErrorType with the concatenated message when cond is false.
#define PR_CHECK_T(ErrorType, cond, ...)                                   \
  do {                                                                     \
    if (!(cond)) throw ErrorType(::prunerec::detail::str_cat(__VA_ARGS__)); \
  } while (0)

#define PR_CHECK(cond, ...) PR_CHECK_T(::prunerec::ShapeError, cond, __VA_ARGS__)

#define PR_ASSERT(cond)                                                                \
  do {                                                                                 \
    if (!(cond))                                                                       \
      throw ::prunerec::InternalError(::prunerec::detail::str_cat(                     \
          "internal error: ", #cond, " failed at ", __FILE__, ":", __LINE__));         \
  } while (0)
