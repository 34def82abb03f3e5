// Rotary position embedding, rotate-half convention (Qwen2 / LLaMA):
//   inv_freq[i] = theta^(-2i/dh), i < dh/2;  angle = pos * inv_freq[i]
//   y[i]        = x[i] * cos - x[i + dh/2] * sin
//   y[i + dh/2] = x[i + dh/2] * cos + x[i] * sin
// The backward is the rotation by -angle (the transpose of an orthogonal rotation).
#pragma once

#include <cstdint>
#include <vector>

namespace prunerec::kernels {

// cos/sin tables [max_pos, dh/2], computed in double and rounded once.
template <class T>
struct RopeTable {
  std::int64_t max_pos = 0, half = 0;
  std::vector<T> cos, sin;
};
template <class T>
RopeTable<T> make_rope_table(std::int64_t max_pos, std::int64_t head_dim, double theta);

// A shared table covering at least max_pos positions (thread-safe; tables live until exit
// and are rebuilt only when a longer one is needed).
template <class T>
const RopeTable<T>& cached_rope_table(std::int64_t max_pos, std::int64_t head_dim, double theta);

// Rotates one head vector x (dh) at position pos into y (may alias x); inverse = rotate back.
template <class T>
inline void rope_rotate(const RopeTable<T>& tab, std::int64_t pos, const T* x, T* y, bool inverse) {
  const std::int64_t h = tab.half;
  const T* c = tab.cos.data() + pos * h;
  const T* s = tab.sin.data() + pos * h;
  for (std::int64_t i = 0; i < h; ++i) {
    const T a = x[i], b = x[i + h];
    const T sn = inverse ? -s[i] : s[i];
    y[i] = a * c[i] - b * sn;
    y[i + h] = b * c[i] + a * sn;
  }
}

}  // namespace prunerec::kernels
