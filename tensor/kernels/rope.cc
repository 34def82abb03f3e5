#include "tensor/kernels/rope.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <memory>
#include <mutex>
#include <tuple>

namespace prunerec::kernels {

template <class T>
RopeTable<T> make_rope_table(std::int64_t max_pos, std::int64_t head_dim, double theta) {
  RopeTable<T> t;
  t.max_pos = max_pos;
  t.half = head_dim / 2;
  t.cos.resize(static_cast<std::size_t>(max_pos * t.half));
  t.sin.resize(t.cos.size());
  for (std::int64_t i = 0; i < t.half; ++i) {
    const double inv_freq = std::pow(theta, -2.0 * static_cast<double>(i) / static_cast<double>(head_dim));
    for (std::int64_t p = 0; p < max_pos; ++p) {
      const double a = static_cast<double>(p) * inv_freq;
      t.cos[p * t.half + i] = static_cast<T>(std::cos(a));
      t.sin[p * t.half + i] = static_cast<T>(std::sin(a));
    }
  }
  return t;
}

template <class T>
const RopeTable<T>& cached_rope_table(std::int64_t max_pos, std::int64_t head_dim, double theta) {
  static std::mutex mu;
  static auto* tables = new std::map<std::tuple<std::int64_t, double>, std::vector<std::unique_ptr<RopeTable<T>>>>;
  std::lock_guard<std::mutex> lock(mu);
  auto& versions = (*tables)[{head_dim, theta}];
  if (versions.empty() || versions.back()->max_pos < max_pos) {
    // Older, shorter tables stay alive: a caller may still hold a reference to one.
    const std::int64_t n = std::max<std::int64_t>(max_pos, versions.empty() ? 64 : 2 * versions.back()->max_pos);
    versions.push_back(std::make_unique<RopeTable<T>>(make_rope_table<T>(n, head_dim, theta)));
  }
  return *versions.back();
}

template const RopeTable<float>& cached_rope_table<float>(std::int64_t, std::int64_t, double);
template const RopeTable<double>& cached_rope_table<double>(std::int64_t, std::int64_t, double);
template RopeTable<float> make_rope_table<float>(std::int64_t, std::int64_t, double);
template RopeTable<double> make_rope_table<double>(std::int64_t, std::int64_t, double);

}  // namespace prunerec::kernels
