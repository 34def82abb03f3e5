// Shared helpers for the op files (internal to autograd/ops).
#pragma once

#include <string>

#include "autograd/var.h"

namespace prunerec::ag::detail {

// "f32[2,3]" for error messages.
inline std::string sh(const Var& v) { return v.defined() ? v.value().shape_str() : std::string("undefined"); }

inline void check_same_dtype(const char* op, const Var& a, const Var& b) {
  PR_CHECK(a.dtype() == b.dtype(), op, ": dtype mismatch ", sh(a), " vs ", sh(b));
}

inline void check_targets(const char* op, const Tensor& targets, std::int64_t rows, std::int64_t V) {
  PR_CHECK(targets.defined() && targets.dtype() == DType::i32 && targets.numel() == rows, op, ": targets ",
           targets.shape_str(), " must be i32 with ", rows, " elements");
  const Tensor t = targets.contiguous();
  const std::int32_t* p = t.data<std::int32_t>();
  for (std::int64_t i = 0; i < rows; ++i)
    PR_CHECK(p[i] < V, op, ": target ", p[i], " at row ", i, " is out of range for ", V, " classes");
}

}  // namespace prunerec::ag::detail
