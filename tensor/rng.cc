#include "tensor/rng.h"

#include <cmath>

#include "tensor/parallel.h"
#include "tensor/tensor.h"

namespace prunerec {

std::array<std::uint32_t, 4> philox4x32(std::uint64_t key, std::uint64_t counter_hi, std::uint64_t counter_lo) {
  constexpr std::uint32_t kMul0 = 0xD2511F53, kMul1 = 0xCD9E8D57;
  constexpr std::uint32_t kW0 = 0x9E3779B9, kW1 = 0xBB67AE85;
  std::uint32_t c0 = static_cast<std::uint32_t>(counter_lo), c1 = static_cast<std::uint32_t>(counter_lo >> 32);
  std::uint32_t c2 = static_cast<std::uint32_t>(counter_hi), c3 = static_cast<std::uint32_t>(counter_hi >> 32);
  std::uint32_t k0 = static_cast<std::uint32_t>(key), k1 = static_cast<std::uint32_t>(key >> 32);
  for (int round = 0; round < 10; ++round) {
    const std::uint64_t p0 = static_cast<std::uint64_t>(kMul0) * c0;
    const std::uint64_t p1 = static_cast<std::uint64_t>(kMul1) * c2;
    const std::uint32_t n0 = static_cast<std::uint32_t>(p1 >> 32) ^ c1 ^ k0;
    const std::uint32_t n1 = static_cast<std::uint32_t>(p1);
    const std::uint32_t n2 = static_cast<std::uint32_t>(p0 >> 32) ^ c3 ^ k1;
    const std::uint32_t n3 = static_cast<std::uint32_t>(p0);
    c0 = n0; c1 = n1; c2 = n2; c3 = n3;
    k0 += kW0;
    k1 += kW1;
  }
  return {c0, c1, c2, c3};
}

namespace {
std::uint64_t splitmix64(std::uint64_t x) {
  x += 0x9E3779B97F4A7C15ULL;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
  return x ^ (x >> 31);
}
}  // namespace

std::uint64_t hash_stream(std::uint64_t a, std::uint64_t b, std::uint64_t c, std::uint64_t d) {
  return splitmix64(splitmix64(splitmix64(splitmix64(a) ^ b) ^ c) ^ d);
}

std::uint64_t Rng::next_u64() {
  const auto w = philox4x32(state_.seed, state_.stream, state_.counter++);
  return (static_cast<std::uint64_t>(w[0]) << 32) | w[1];
}

double Rng::uniform() { return static_cast<double>(next_u64() >> 11) * (1.0 / 9007199254740992.0); }

double Rng::normal() {
  // Box-Muller; u1 in (0, 1] so log is finite.
  const double u1 = 1.0 - uniform(), u2 = uniform();
  return std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * M_PI * u2);
}

std::uint64_t Rng::below(std::uint64_t n) {
  PR_CHECK(n > 0, "Rng::below: n must be positive");
  const std::uint64_t limit = ~std::uint64_t{0} - (~std::uint64_t{0} % n);  // reject the biased tail
  for (;;) {
    const std::uint64_t x = next_u64();
    if (x < limit) return x % n;
  }
}

namespace {
// Element i of a counter-based normal tensor: pairs (2j, 2j+1) share block j.
template <class T>
void normal_fill(T* p, std::int64_t n, double mean, double stddev, std::uint64_t seed, std::uint64_t stream) {
  parallel_for(0, (n + 1) / 2, 4096, [&](std::int64_t lo, std::int64_t hi) {
    for (std::int64_t j = lo; j < hi; ++j) {
      const auto w = philox4x32(seed, stream, static_cast<std::uint64_t>(j));
      const double u1 = 1.0 - (static_cast<double>((static_cast<std::uint64_t>(w[0]) << 21) ^ w[1]) *
                               (1.0 / 9007199254740992.0));
      const double u2 = static_cast<double>((static_cast<std::uint64_t>(w[2]) << 21) ^ w[3]) *
                        (1.0 / 9007199254740992.0);
      const double r = std::sqrt(-2.0 * std::log(u1));
      p[2 * j] = static_cast<T>(mean + stddev * r * std::cos(2.0 * M_PI * u2));
      if (2 * j + 1 < n) p[2 * j + 1] = static_cast<T>(mean + stddev * r * std::sin(2.0 * M_PI * u2));
    }
  });
}
template <class T>
void uniform_fill(T* p, std::int64_t n, double lo_v, double hi_v, std::uint64_t seed, std::uint64_t stream) {
  parallel_for(0, n, 4096, [&](std::int64_t lo, std::int64_t hi) {
    for (std::int64_t i = lo; i < hi; ++i) {
      const auto w = philox4x32(seed, stream, static_cast<std::uint64_t>(i));
      const double u = static_cast<double>((static_cast<std::uint64_t>(w[0]) << 21) ^ w[1]) * (1.0 / 9007199254740992.0);
      p[i] = static_cast<T>(lo_v + (hi_v - lo_v) * u);
    }
  });
}
}  // namespace

void fill_normal(Tensor& t, double mean, double stddev, std::uint64_t seed, std::uint64_t stream) {
  PR_CHECK(t.is_contiguous(), "fill_normal: tensor ", t.shape_str(), " must be contiguous");
  dispatch_floating(t.dtype(), "fill_normal", [&](auto tag) {
    using T = decltype(tag);
    normal_fill(t.data<T>(), t.numel(), mean, stddev, seed, stream);
  });
}

void fill_uniform(Tensor& t, double lo, double hi, std::uint64_t seed, std::uint64_t stream) {
  PR_CHECK(t.is_contiguous(), "fill_uniform: tensor ", t.shape_str(), " must be contiguous");
  dispatch_floating(t.dtype(), "fill_uniform", [&](auto tag) {
    using T = decltype(tag);
    uniform_fill(t.data<T>(), t.numel(), lo, hi, seed, stream);
  });
}

}  // namespace prunerec
