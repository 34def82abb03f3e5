// Scalar math written so the compiler can vectorise loops over it (no branches, no calls).
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>

namespace prunerec::kernels {

// e^x for float within 2 ulp for x in [-87.3, 88.37]: a branch-free Cephes-style range
// reduction and degree-6 polynomial, so loops over the catalogue vectorise (std::exp does
// not). Inputs are clamped: below -87.3 the result is ~1.2e-38 (the smallest normal
// float, effectively 0 for softmax), above 88.3762626 it is ~2.4e38 (finite).
//
// Note [no fast-math]: the kernels are compiled without -ffast-math or
// -fassociative-math. Reassociation would fold the two-part ln2 reduction below into one
// constant (61 ulp errors) and let vectorised and scalar tails of a loop round
// differently, so results would depend on where a thread's piece begins. Reductions that
// must vectorise use explicit lanes instead (lane_sum, lane_max).
//
// Note [kernel math flags]
// ~~~~~~~~~~~~~~~~~~~~~~~~
// The floating-point contract of the kernels, and what it guarantees:
//   * -ffp-contract=off (every target, cmake/PrunerecCompileOptions.cmake): a * b + c is
//     a rounded multiply and a rounded add, never an FMA. GCC and Clang both contract by
//     default, and only where the target has FMA, so without this flag the AVX2 path
//     (and any -march=x86-64-v3 build) rounded differently from the baseline.
//   * No reassociation (Note [no fast-math]): vectorised loops keep the source order of
//     every sum; cross-element reductions use explicit lanes (lane_sum), whose order
//     depends on the length only. Vector width therefore never changes a result.
//   * -fno-trapping-math for the kernel files (tensor/CMakeLists.txt): no FP-exception
//     flags are read, so clamps may become vector selects. It does not change values.
//   * The compiler may still choose different instruction orders per code path (for
//     example the three variants of cross_entropy_rows); each is checked against exact
//     values (tests/tensor/kernels_test.cc), not against the others.
// So the baseline (SSE2) and AVX2 + FMA copies of the dispatched kernels (Note [kernel
// dispatch] in tensor/kernels/isa.h) give the same bits; kernels_test checks it for
// every dispatched kernel. What may still differ between machines: matrix products
// (OpenBLAS picks its own kernel per CPU and may use FMA), and std::exp/log/sqrt of
// double (glibc selects FMA variants at run time). The guarantee is therefore: the same
// binary on the same machine with the same thread count gives the same bits (Note
// [threading policy] in tensor/parallel.h); across machines, results agree to rounding.
inline float exp_fast(float x) {
  x = x < -87.33654f ? -87.33654f : x;
  x = x > 88.3762626f ? 88.3762626f : x;
  // n = round(x / ln2) by the 1.5 * 2^23 trick: adding and subtracting the constant
  // rounds to an integer in float arithmetic, with no call (std::floor becomes a call to
  // floorf under the default -ftrapping-math, which stops vectorisation). It relies on the
  // kernels being compiled without reassociation (Note [no fast-math]).
  float fx = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
  fx = fx == fx ? fx : 0.0f;  // NaN in: keep the integer conversion below defined
  float r = x - fx * 0.693359375f;  // ln2 split in hi + lo
  r = r - fx * -2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  const std::int32_t e = (static_cast<std::int32_t>(fx) + 127) << 23;  // 2^fx
  float scale;
  std::memcpy(&scale, &e, sizeof scale);
  return x == x ? p * scale : x;  // NaN in, NaN out
}
inline double exp_fast(double x) { return std::exp(x); }

// Sum and maximum of x[0:n] over 16 independent lanes: the inner loops vectorise without
// reassociation flags, and the order of additions is fixed by n alone.
template <class T>
inline T lane_sum(const T* x, std::int64_t n) {
  constexpr int kLanes = 16;
  T lane[kLanes] = {};
  std::int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes)
    for (int j = 0; j < kLanes; ++j) lane[j] += x[i + j];
  for (int j = 0; j < kLanes && i < n; ++i, ++j) lane[j] += x[i];
  T s = 0;
  for (int j = 0; j < kLanes; ++j) s += lane[j];
  return s;
}

// Maximum ignoring NaNs (-inf for n == 0).
template <class T>
inline T lane_max(const T* x, std::int64_t n) {
  constexpr int kLanes = 16;
  T lane[kLanes];
  for (int j = 0; j < kLanes; ++j) lane[j] = -std::numeric_limits<T>::infinity();
  std::int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes)
    for (int j = 0; j < kLanes; ++j) lane[j] = x[i + j] > lane[j] ? x[i + j] : lane[j];
  for (int j = 0; j < kLanes && i < n; ++i, ++j) lane[j] = x[i] > lane[j] ? x[i] : lane[j];
  T m = lane[0];
  for (int j = 1; j < kLanes; ++j) m = lane[j] > m ? lane[j] : m;
  return m;
}

template <class T>
inline T sigmoid(T x) {
  return T(1) / (T(1) + exp_fast(-x));
}

}  // namespace prunerec::kernels
