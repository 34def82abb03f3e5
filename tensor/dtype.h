// Element types of tensors: f32 for compute, i32/i64 for indices, f64 for gradient checks.
#pragma once

#include <cstddef>
#include <cstdint>

namespace prunerec {

enum class DType : std::uint8_t { f32 = 0, i32 = 1, i64 = 2, f64 = 3 };

constexpr std::size_t dtype_size(DType t) {
  switch (t) {
    case DType::f32: return 4;
    case DType::i32: return 4;
    case DType::i64: return 8;
    case DType::f64: return 8;
  }
  return 0;
}

constexpr const char* dtype_name(DType t) {
  switch (t) {
    case DType::f32: return "f32";
    case DType::i32: return "i32";
    case DType::i64: return "i64";
    case DType::f64: return "f64";
  }
  return "?";
}

constexpr bool is_floating(DType t) { return t == DType::f32 || t == DType::f64; }

template <class T>
struct DTypeOf;
template <> struct DTypeOf<float> { static constexpr DType value = DType::f32; };
template <> struct DTypeOf<double> { static constexpr DType value = DType::f64; };
template <> struct DTypeOf<std::int32_t> { static constexpr DType value = DType::i32; };
template <> struct DTypeOf<std::int64_t> { static constexpr DType value = DType::i64; };
template <class T>
constexpr DType dtype_of = DTypeOf<T>::value;

// Calls f(T{}) with T the C++ type of a floating dtype: the one place that turns a runtime
// dtype into a template argument for the float kernels.
template <class F>
decltype(auto) dispatch_floating(DType t, const char* op, F&& f);

}  // namespace prunerec

#include "base/error.h"

namespace prunerec {
template <class F>
decltype(auto) dispatch_floating(DType t, const char* op, F&& f) {
  switch (t) {
    case DType::f32: return f(float{});
    case DType::f64: return f(double{});
    default: break;
  }
  throw ShapeError(detail::str_cat(op, ": expected a floating tensor (f32 or f64), got ", dtype_name(t)));
}
}  // namespace prunerec
