// Scalar math written so the compiler can vectorise loops over it (no branches, no calls).
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>

namespace prunerec::kernels {

// e^x for float, within 2 ulp over the whole range; 0 below -87.3 and +inf-free above
// 88.7 (clamped). A branch-free Cephes-style range reduction and degree-6 polynomial, so
// softmax loops over the catalogue vectorise (std::exp does not).
inline float exp_fast(float x) {
  x = x < -87.33654f ? -87.33654f : x;
  x = x > 88.72283f ? 88.72283f : x;
  // n = round(x / ln2). floor(v + 0.5) vectorises (roundps) and, unlike the 1.5 * 2^23
  // add-and-subtract trick, survives -fassociative-math (Note [kernel math flags]).
  const float fx = std::floor(x * 1.44269504088896341f + 0.5f);
  float r = x - fx * 0.693359375f;                             // ln2 split in hi + lo
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
  return p * scale;
}
inline double exp_fast(double x) { return std::exp(x); }

template <class T>
inline T sigmoid(T x) {
  return T(1) / (T(1) + exp_fast(-x));
}

}  // namespace prunerec::kernels
