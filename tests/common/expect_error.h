// Assertions on the errors prunerec throws: the type and the words of the message.
//
//   const std::string msg = error_message<IoError>([&] { read(path); });
//   expect_shape_error([&] { (void)matmul(a, b); }, {"matmul", "f64[2,3]", "3 != 4"});
//
// Both fail the test (ADD_FAILURE) when nothing is thrown or another type is.
#pragma once

#include <exception>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "base/error.h"

namespace prunerec::testing {

// Runs fn, expects ErrorType, and returns its message ("" when nothing was thrown).
template <class ErrorType, class Fn>
std::string error_message(Fn&& fn) {
  try {
    fn();
  } catch (const ErrorType& e) {
    return e.what();
  } catch (const std::exception& e) {
    ADD_FAILURE() << "expected another error type, got: " << e.what();
    return e.what();
  }
  ADD_FAILURE() << "expected an exception";
  return "";
}

// Runs fn, expects ErrorType whose message contains every one of `parts`.
template <class ErrorType, class Fn>
void expect_error_with(Fn&& fn, const std::vector<std::string>& parts) {
  const std::string msg = error_message<ErrorType>(fn);
  for (const std::string& p : parts) EXPECT_NE(msg.find(p), std::string::npos) << "'" << msg << "' lacks '" << p << "'";
}

template <class Fn>
void expect_shape_error(Fn&& fn, const std::vector<std::string>& parts) {
  expect_error_with<ShapeError>(fn, parts);
}

}  // namespace prunerec::testing
