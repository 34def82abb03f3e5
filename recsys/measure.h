// Measuring time and memory: the one place that times repetitions and takes medians, used
// by `prunerec bench` (recsys/speed_bench.h) and the ledger's latency (prune/ledger.h).
//
//   const std::vector<double> ms = time_repeated([&] { run(); }, {.warmup = 1, .min_repetitions = 5});
//   const double typical_ms = median(ms);
//   const double rss = peak_rss_mb();
//
// Note [median]: the median of n values is the middle one for odd n and the mean of the two
// middle ones for even n (numpy's definition, and the 50th percentile of `data stats`).
// Non-finite values are left out; the median of nothing is NaN.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <vector>

namespace prunerec::recsys {

using Clock = std::chrono::steady_clock;

inline double ms_between(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double, std::milli>(b - a).count();
}

// Note [median].
double median(std::vector<double> values);

struct Repetition {
  int warmup = 1;             // untimed calls first
  int min_repetitions = 5;    // timed calls: at least this many ...
  double min_seconds = 0.5;   // ... and until this much time has passed ...
  int max_repetitions = 10000;  // ... but never more than this
};
// Milliseconds of each timed call of fn.
std::vector<double> time_repeated(const std::function<void()>& fn, const Repetition& repetition);

// Process-wide readings: peak resident set size in MB (VmHWM of /proc/self/status, which
// reset_peak_rss() restarts from the current size on Linux >= 4.0; getrusage's maximum where
// /proc is missing), minor page faults, and CPU seconds (user + system) of this process.
double peak_rss_mb();
void reset_peak_rss();
std::int64_t minor_page_faults();
double own_cpu_seconds();

// CPU time used by other processes during a block, as a fraction of the machine
// (foreign core-seconds / (cores * wall)): busy jiffies of /proc/stat minus this process's
// CPU time, the reference's ForeignLoad. NaN where /proc/stat cannot be read.
class ForeignLoad {
 public:
  void start();
  double stop() const;

 private:
  double busy0_ = 0, own0_ = 0;
  Clock::time_point t0_;
};

}  // namespace prunerec::recsys
