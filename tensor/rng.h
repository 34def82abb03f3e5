// Seeded, counter-based random numbers (Philox4x32-10).
//
// Note [counter-based RNG]: a draw is a pure function of (seed, stream, counter), so any
// element of any random tensor can be computed independently: parallel fills and dropout
// masks give the same bits whatever the thread count or timing, and a run's RNG state is
// just three integers (checkpointed with the run).
//
//   Rng rng(seed);                 // sequential use: shuffles, sampling
//   double u = rng.uniform();      // [0, 1)
//   fill_normal(w, 0.0, 0.02, seed, /*stream=*/7);  // w[i] depends only on (seed, 7, i)
#pragma once

#include <array>
#include <cstdint>
#include <utility>
#include <vector>

namespace prunerec {

class Tensor;

// One Philox4x32-10 block: four 32-bit words for (key, counter).
std::array<std::uint32_t, 4> philox4x32(std::uint64_t key, std::uint64_t counter_hi, std::uint64_t counter_lo);

// Mixes several integers into one stream id (splitmix64 chain); for deriving per-purpose
// streams such as hash_stream(kDropout, step, layer).
std::uint64_t hash_stream(std::uint64_t a, std::uint64_t b = 0, std::uint64_t c = 0, std::uint64_t d = 0);

// Uniform float in [0, 1) from a 32-bit word (24 significant bits).
inline float u32_to_unit_float(std::uint32_t x) { return static_cast<float>(x >> 8) * (1.0f / 16777216.0f); }

class Rng {
 public:
  struct State {
    std::uint64_t seed = 0, stream = 0, counter = 0;
    bool operator==(const State&) const = default;
  };

  explicit Rng(std::uint64_t seed = 0, std::uint64_t stream = 0) : state_{seed, stream, 0} {}
  explicit Rng(State s) : state_(s) {}

  std::uint64_t next_u64();
  std::uint32_t next_u32() { return static_cast<std::uint32_t>(next_u64()); }
  double uniform();                          // [0, 1), 53 bits
  double normal();                           // N(0, 1)
  std::uint64_t below(std::uint64_t n);      // uniform in [0, n), unbiased; n > 0
  template <class T>
  void shuffle(std::vector<T>& v) {          // Fisher-Yates
    for (std::size_t i = v.size(); i > 1; --i) std::swap(v[i - 1], v[below(i)]);
  }

  State state() const { return state_; }
  void set_state(State s) { state_ = s; }

 private:
  State state_;  // each next_u64 uses one Philox block (counter += 1)
};

// Fills a contiguous floating tensor: element i depends only on (seed, stream, i).
void fill_normal(Tensor& t, double mean, double stddev, std::uint64_t seed, std::uint64_t stream);
void fill_uniform(Tensor& t, double lo, double hi, std::uint64_t seed, std::uint64_t stream);

}  // namespace prunerec
