// Progress for long work: a live line on a terminal, quiet in logs.
//
// On a terminal the line is redrawn at most 10 times a second:
//   train epoch 3/50 [#########.........] 1200/2000 step 5200 loss 7.123 41k pos/s 0:42 left
// When the stream is not a terminal (a log file, CI) nothing is drawn; only the lines
// passed to log() appear, so logs get one line per epoch rather than thousands.
//
//   Progress p(std::cerr, "train epoch 1/50", total_batches);
//   for (...) p.update(done, "loss 7.1 41k pos/s");
//   p.log("epoch 1: loss 7.0, valid NDCG@10 0.0412");   // always printed, on its own line
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <iosfwd>
#include <string>
#include <string_view>

#include "base/format.h"  // format_duration, format_count: used with progress lines

namespace prunerec {

class Progress {
 public:
  enum class Mode { kAuto, kLive, kQuiet, kSilent };  // kSilent also drops log() lines

  Progress(std::ostream& os, std::string label, std::int64_t total, Mode mode = Mode::kAuto);
  ~Progress();
  Progress(const Progress&) = delete;
  Progress& operator=(const Progress&) = delete;

  // Starts a new phase (label and total) without losing the stream settings.
  void restart(std::string label, std::int64_t total);
  // done items of total; `fields` is free text (loss, rate). Time left is estimated from
  // the rate since the phase started.
  void update(std::int64_t done, const std::string& fields);
  // A line that always appears (unless silent), clearing any live line first.
  void log(const std::string& line);
  void clear();  // erases the live line

  bool live() const { return live_; }

  // Whether the stream is a terminal (stderr/stdout only; other streams are not).
  static bool is_terminal(const std::ostream& os);

 private:
  std::ostream& os_;
  std::string label_;
  std::int64_t total_;
  bool live_, silent_;
  bool drawn_ = false;
  std::chrono::steady_clock::time_point start_, last_draw_;
};

// Note [progress of nested work]: library code doing long work for a caller that owns the
// progress line (importance scoring and the calibration loss for the schedule) reports
// through a WorkMeter the caller hands down, or none. The work opens a WorkPhase naming
// itself and its total units, and calls next_unit() before each unit; next_unit() is also
// the work's stop point (Note [stopping long work]), with or without a meter. On a terminal
// the caller's Progress then shows
//   stage1-width-attention: head scoring (kl) [######..............] 12/40 0:31 left
// and nothing in a log; the line is erased when the phase ends, so the caller's next
// log line starts clean.
class WorkMeter {
 public:
  // `prefix` names the caller's part of the run ("stage1-width-attention").
  WorkMeter(Progress& progress, std::string prefix) : progress_(progress), prefix_(std::move(prefix)) {}
  void set_prefix(std::string prefix) { prefix_ = std::move(prefix); }
  // A new piece of work of `total` units; the line restarts (rate and time left are its own).
  void begin(std::string_view what, std::int64_t total);
  // The units before the next one are done.
  void next_unit();
  void clear() { progress_.clear(); }  // erases the live line

 private:
  Progress& progress_;
  std::string prefix_;
  std::int64_t done_ = 0;
};

// One piece of work on an optional meter: begins it on construction, erases its line on
// destruction.
class WorkPhase {
 public:
  WorkPhase(WorkMeter* meter, std::string_view what, std::int64_t total);
  ~WorkPhase();
  WorkPhase(const WorkPhase&) = delete;
  WorkPhase& operator=(const WorkPhase&) = delete;
  // The next unit starts: throws Interrupted naming the work when a stop was requested.
  void next_unit();

 private:
  WorkMeter* meter_;
  std::string what_;
};

// Note [stopping long work]: one process-wide request says "stop". The command line's
// SIGINT/SIGTERM handler sets it (request_stop() is async-signal-safe); an embedder may
// set it from any thread. Every long loop calls stop_point("what") between units of work
// (a training step, an evaluation batch, a calibration batch, an importance candidate, a
// latency repetition); it throws Interrupted naming the work. The trainer checks
// stop_requested() itself so it can save its resume state before throwing. Nothing is
// half-written: files are only ever published whole (base/atomic_file.h), so a loop that
// stops has written either complete files or none. The command line maps Interrupted to
// exit code 130.
std::atomic<bool>& process_stop_flag();
// Sets the request; returns whether it was already set (a second signal kills).
bool request_stop() noexcept;
bool stop_requested() noexcept;
// Clears it (tests; an embedder that goes on after a stop).
void clear_stop_request() noexcept;
// Throws Interrupted("<what>: stopped on request; ...") when a stop was requested.
void stop_point(std::string_view what);

}  // namespace prunerec
