// Timing, medians and rusage readings (see measure.h).
#include "recsys/measure.h"

#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <string>

#include "recsys/progress.h"

#include "base/error.h"

namespace prunerec::recsys {
namespace {

rusage self_usage() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return ru;
}

double machine_busy_seconds() {
  std::ifstream f("/proc/stat");
  std::string cpu;
  long long user = 0, nice = 0, system = 0, idle = 0, iowait = 0, irq = 0, softirq = 0;
  if (!(f >> cpu >> user >> nice >> system >> idle >> iowait >> irq >> softirq) || cpu != "cpu") return std::nan("");
  return static_cast<double>(user + nice + system + irq + softirq) / static_cast<double>(sysconf(_SC_CLK_TCK));
}

}  // namespace

double median(std::vector<double> v) {
  std::erase_if(v, [](double x) { return !std::isfinite(x); });
  if (v.empty()) return std::nan("");
  std::sort(v.begin(), v.end());
  const std::size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

std::vector<double> time_repeated(const std::function<void()>& fn, const Repetition& r) {
  PR_CHECK_T(ConfigError, r.min_repetitions >= 1 && r.max_repetitions >= r.min_repetitions && r.warmup >= 0,
             "time_repeated: need 1 <= min_repetitions <= max_repetitions and warmup >= 0, got ", r.min_repetitions,
             ", ", r.max_repetitions, ", ", r.warmup);
  for (int i = 0; i < r.warmup; ++i) fn();
  std::vector<double> ms;
  const auto start = Clock::now();
  while (static_cast<int>(ms.size()) < r.max_repetitions &&
         (static_cast<int>(ms.size()) < r.min_repetitions || ms_between(start, Clock::now()) < 1e3 * r.min_seconds)) {
    stop_point("timing");  // Note [stopping long work]
    const auto t0 = Clock::now();
    fn();
    ms.push_back(ms_between(t0, Clock::now()));
  }
  return ms;
}

double peak_rss_mb() {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line))
    if (line.rfind("VmHWM:", 0) == 0) return std::stod(line.substr(6)) / 1024.0;  // kB
  return static_cast<double>(self_usage().ru_maxrss) / 1024.0;                    // Linux: kilobytes
}

void reset_peak_rss() { std::ofstream("/proc/self/clear_refs") << "5"; }

std::int64_t minor_page_faults() { return self_usage().ru_minflt; }

double own_cpu_seconds() {
  const rusage ru = self_usage();
  return static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
         static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

void ForeignLoad::start() {
  busy0_ = machine_busy_seconds();
  own0_ = own_cpu_seconds();
  t0_ = Clock::now();
}

double ForeignLoad::stop() const {
  const double wall = ms_between(t0_, Clock::now()) / 1e3;
  const double busy = machine_busy_seconds() - busy0_, own = own_cpu_seconds() - own0_;
  const long cpus = sysconf(_SC_NPROCESSORS_ONLN);
  if (!(wall > 0) || std::isnan(busy) || cpus <= 0) return std::nan("");
  return std::max(0.0, busy - own) / (static_cast<double>(cpus) * wall);
}

}  // namespace prunerec::recsys
