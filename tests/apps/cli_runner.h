// Helpers for the tests that drive the built `prunerec` executable as a subprocess
// (tests/apps/*_test.cc): run a command and collect its exit status and output, start one
// and kill it, watch a folder for the files a run writes, compare checkpoints bit for bit.
//
//   Workdir dir;                                       // fresh folder, removed afterwards
//   const std::string data = dir.write("seq.txt", "1 10 11 12\n...");
//   RunResult r = run_prunerec({"train", "--data", data, "--config", recipe, "--out", dir.path("m.prc")});
//   EXPECT_EQ(r.exit_code, 0) << r.err;
//
// PRUNEREC_EXE (a compile definition: $<TARGET_FILE:prunerec>) is the program under test;
// the environment variable PRUNEREC_TEST_EXE overrides it (e.g. to test an installed one).
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "nn/checkpoint_file.h"

namespace prunerec::apps_test {

// The program under test.
std::string prunerec_exe();

struct RunResult {
  int exit_code = -1;  // the process's exit status, or -1 when a signal ended it
  int signal = 0;      // the signal that ended it, or 0
  std::string out, err;
  double seconds = 0;

  // stderr without a trailing newline, split in lines.
  std::vector<std::string> err_lines() const;
};

// Runs `prunerec args...` to the end (stdin is /dev/null), in the folder `cwd` ("" = this
// process's). A run that outlives `timeout` is killed (SIGKILL) and reported as a test failure.
RunResult run_prunerec(const std::vector<std::string>& args,
                       std::chrono::seconds timeout = std::chrono::seconds(600), const std::string& cwd = "");

// A started `prunerec args...` (stdin /dev/null; stdout and stderr to files in a log
// folder under ::testing::TempDir(), named after `log_name`, read back by wait()). It runs
// in a process group of its own, with default SIGINT/SIGTERM handling.
class Process {
 public:
  explicit Process(const std::vector<std::string>& args, const std::string& log_name = "prunerec",
                   const std::string& cwd = "");
  ~Process();  // kills and reaps a process still running
  Process(const Process&) = delete;
  Process& operator=(const Process&) = delete;

  int pid() const { return pid_; }
  // Sends a signal (no-op once reaped).
  void signal(int sig);
  // Whether it has ended (reaps it when it has).
  bool finished();
  // Waits for the end; the result holds the exit status and the output so far.
  RunResult wait(std::chrono::seconds timeout = std::chrono::seconds(600));

 private:
  void reap(int status);
  int pid_ = -1;
  bool reaped_ = false;
  int status_ = 0;
  std::string out_path_, err_path_;
  std::chrono::steady_clock::time_point start_;
};

// A fresh folder under ::testing::TempDir(), named after the test, removed at the end
// unless the test failed (then it is kept for a look and its path printed).
class Workdir {
 public:
  Workdir();
  ~Workdir();
  Workdir(const Workdir&) = delete;
  Workdir& operator=(const Workdir&) = delete;

  std::string write(const std::string& name, std::string_view content) const;  // returns the path
  std::string path(const std::string& name) const;
  const std::string& root() const { return root_; }

 private:
  std::string root_;
};

// Inotify on one folder: tells when a file whose name contains `part` is created
// (IN_CREATE: the temporary file of an atomic write) or renamed into place (IN_MOVED_TO).
class FolderWatch {
 public:
  explicit FolderWatch(const std::string& dir);
  ~FolderWatch();
  FolderWatch(const FolderWatch&) = delete;
  FolderWatch& operator=(const FolderWatch&) = delete;

  enum class Event { kCreated, kRenamedInto };
  // Waits up to `timeout` for the `count`-th matching event counted from now; false on
  // timeout or when `alive()` turns false first.
  template <class Alive>
  bool wait_for(Event event, const std::string& part, int count, std::chrono::milliseconds timeout, Alive&& alive) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    int seen = 0;
    while (std::chrono::steady_clock::now() < deadline) {
      seen += poll(event, part, std::chrono::milliseconds(5));
      if (seen >= count) return true;
      if (!alive()) return false;
    }
    return false;
  }

 private:
  int poll(Event event, const std::string& part, std::chrono::milliseconds wait);
  int fd_ = -1;
  std::string dir_;
};

// Every file under `dir` (relative path -> content).
std::map<std::string, std::string> snapshot(const std::string& dir);
// Relative paths of files under `dir` whose name holds ".tmp." (atomic-write leftovers).
std::vector<std::string> temp_files(const std::string& dir);
std::string read_bytes(const std::string& path);

// Compares two checkpoints: every tensor (name, dtype, shape, bytes) and the manifests
// with the wall-clock field (state.seconds) cleared. Returns "" when equal, else the first
// difference.
std::string compare_checkpoints(const std::string& a, const std::string& b);

// Environment knob: PRUNEREC_TEST_SMALL=1 (set by tools/test_sanitize.sh) makes the
// subprocess tests shorter (fewer kills, fewer inputs), for slow sanitizer builds.
bool small_test_mode();

}  // namespace prunerec::apps_test
