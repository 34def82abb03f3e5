#include "recsys/progress.h"

#include "base/error.h"
#include "base/format.h"

#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <iostream>
#include <sstream>

namespace prunerec {

bool Progress::is_terminal(const std::ostream& os) {
  if (&os == &std::cerr || &os == &std::clog) return ::isatty(STDERR_FILENO) == 1;
  if (&os == &std::cout) return ::isatty(STDOUT_FILENO) == 1;
  return false;
}

Progress::Progress(std::ostream& os, std::string label, std::int64_t total, Mode mode)
    : os_(os),
      label_(std::move(label)),
      total_(total),
      live_(mode == Mode::kLive || (mode == Mode::kAuto && is_terminal(os))),
      silent_(mode == Mode::kSilent),
      start_(std::chrono::steady_clock::now()),
      last_draw_(start_) {}

Progress::~Progress() { clear(); }

void Progress::restart(std::string label, std::int64_t total) {
  clear();
  label_ = std::move(label);
  total_ = total;
  start_ = last_draw_ = std::chrono::steady_clock::now();
}

void Progress::update(std::int64_t done, const std::string& fields) {
  if (!live_) return;
  const auto now = std::chrono::steady_clock::now();
  if (drawn_ && now - last_draw_ < std::chrono::milliseconds(100) && done < total_) return;
  last_draw_ = now;
  const double elapsed = std::chrono::duration<double>(now - start_).count();
  std::ostringstream line;
  line << label_ << " [";
  constexpr int kWidth = 20;
  const int filled = total_ > 0 ? static_cast<int>(kWidth * std::min<double>(1.0, double(done) / double(total_))) : 0;
  for (int i = 0; i < kWidth; ++i) line << (i < filled ? '#' : '.');
  line << "] " << done << "/" << total_;
  if (!fields.empty()) line << " " << fields;
  if (done > 0 && total_ > done && elapsed > 0.5)
    line << " " << format_duration(elapsed / double(done) * double(total_ - done)) << " left";
  os_ << "\r\033[K" << line.str() << std::flush;
  drawn_ = true;
}

void Progress::clear() {
  if (drawn_) {
    os_ << "\r\033[K" << std::flush;
    drawn_ = false;
  }
}

void Progress::log(const std::string& line) {
  if (silent_) return;
  clear();
  os_ << line << "\n" << std::flush;
}

namespace {
std::atomic<bool> g_stop{false};
static_assert(std::atomic<bool>::is_always_lock_free, "the stop request is set from a signal handler");
}  // namespace

std::atomic<bool>& process_stop_flag() { return g_stop; }
bool request_stop() noexcept { return g_stop.exchange(true); }
bool stop_requested() noexcept { return g_stop.load(std::memory_order_relaxed); }
void clear_stop_request() noexcept { g_stop.store(false); }

void WorkMeter::begin(std::string_view what, std::int64_t total) {
  done_ = 0;
  progress_.restart(prefix_.empty() ? std::string(what) : detail::str_cat(prefix_, ": ", what), total);
  progress_.update(0, "");
}

void WorkMeter::next_unit() { progress_.update(done_++, ""); }

WorkPhase::WorkPhase(WorkMeter* meter, std::string_view what, std::int64_t total) : meter_(meter), what_(what) {
  if (meter_) meter_->begin(what_, total);
}

WorkPhase::~WorkPhase() {
  if (meter_) meter_->clear();
}

void WorkPhase::next_unit() {
  stop_point(what_);
  if (meter_) meter_->next_unit();
}

void stop_point(std::string_view what) {
  if (stop_requested())
    throw Interrupted(detail::str_cat(what, ": stopped on request (SIGINT/SIGTERM); nothing of it was written"));
}

}  // namespace prunerec
