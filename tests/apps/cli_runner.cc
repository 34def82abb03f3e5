#include "tests/apps/cli_runner.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/inotify.h>
#include <sys/wait.h>
#include <poll.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include <google/protobuf/util/message_differencer.h>

#include "base/error.h"

extern char** environ;

namespace prunerec::apps_test {

namespace fs = std::filesystem;

namespace {

// Output of every subprocess goes here, outside the folders the tests inspect.
const std::string& log_dir() {
  static const std::string dir = [] {
    fs::path p = fs::path(::testing::TempDir()) / ("prunerec_apps_logs_" + std::to_string(::getpid()));
    fs::create_directories(p);
    std::atexit([] {
      std::error_code ec;
      fs::remove_all(fs::path(::testing::TempDir()) / ("prunerec_apps_logs_" + std::to_string(::getpid())), ec);
    });
    return p.string();
  }();
  return dir;
}

std::atomic<int> g_run_counter{0};

}  // namespace

std::string prunerec_exe() {
  const char* override_exe = std::getenv("PRUNEREC_TEST_EXE");
  return override_exe != nullptr && override_exe[0] != '\0' ? override_exe : PRUNEREC_EXE;
}

std::vector<std::string> RunResult::err_lines() const {
  std::vector<std::string> lines;
  std::istringstream is(err);
  for (std::string line; std::getline(is, line);) lines.push_back(line);
  return lines;
}

std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream os;
  os << in.rdbuf();
  return os.str();
}

Process::Process(const std::vector<std::string>& args, const std::string& log_name, const std::string& cwd) {
  const int n = g_run_counter++;
  out_path_ = (fs::path(log_dir()) / (log_name + "." + std::to_string(n) + ".out")).string();
  err_path_ = (fs::path(log_dir()) / (log_name + "." + std::to_string(n) + ".err")).string();
  std::vector<std::string> argv_strings;
  argv_strings.push_back(prunerec_exe());
  argv_strings.insert(argv_strings.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& s : argv_strings) argv.push_back(s.data());
  argv.push_back(nullptr);

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&actions, 1, out_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_addopen(&actions, 2, err_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (!cwd.empty()) posix_spawn_file_actions_addchdir_np(&actions, cwd.c_str());
  // A fresh process group, so a signal sent to the test's group never reaches it, and
  // default signal dispositions whatever the test runner set.
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t defaults, empty;
  sigemptyset(&empty);
  sigemptyset(&defaults);
  sigaddset(&defaults, SIGINT);
  sigaddset(&defaults, SIGTERM);
  posix_spawnattr_setsigdefault(&attr, &defaults);
  posix_spawnattr_setsigmask(&attr, &empty);
  posix_spawnattr_setpgroup(&attr, 0);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETPGROUP);
  start_ = std::chrono::steady_clock::now();
  const int rc = posix_spawn(&pid_, argv[0], &actions, &attr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  if (rc != 0) throw IoError("posix_spawn " + prunerec_exe() + ": " + std::strerror(rc));
}

Process::~Process() {
  if (!reaped_ && pid_ > 0) {
    ::kill(pid_, SIGKILL);
    int status = 0;
    ::waitpid(pid_, &status, 0);
  }
}

void Process::signal(int sig) {
  if (!reaped_ && pid_ > 0) ::kill(pid_, sig);
}

void Process::reap(int status) {
  reaped_ = true;
  status_ = status;
}

bool Process::finished() {
  if (reaped_) return true;
  int status = 0;
  const pid_t r = ::waitpid(pid_, &status, WNOHANG);
  if (r == pid_) reap(status);
  return reaped_;
}

RunResult Process::wait(std::chrono::seconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!finished()) {
    if (std::chrono::steady_clock::now() > deadline) {
      ADD_FAILURE() << "prunerec (pid " << pid_ << ") still running after " << timeout.count() << " s; killed";
      ::kill(pid_, SIGKILL);
      int status = 0;
      ::waitpid(pid_, &status, 0);
      reap(status);
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  RunResult r;
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  if (WIFEXITED(status_)) r.exit_code = WEXITSTATUS(status_);
  if (WIFSIGNALED(status_)) r.signal = WTERMSIG(status_);
  r.out = read_bytes(out_path_);
  r.err = read_bytes(err_path_);
  std::error_code ec;
  fs::remove(out_path_, ec);
  fs::remove(err_path_, ec);
  return r;
}

RunResult run_prunerec(const std::vector<std::string>& args, std::chrono::seconds timeout, const std::string& cwd) {
  Process p(args, args.empty() ? "prunerec" : args[0], cwd);
  return p.wait(timeout);
}

Workdir::Workdir() {
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  std::string name = std::string("prunerec_apps_") + info->test_suite_name() + "_" + info->name();
  for (char& c : name)
    if (c == '/') c = '_';
  root_ = (fs::path(::testing::TempDir()) / name).string();
  fs::remove_all(root_);
  fs::create_directories(root_);
}

Workdir::~Workdir() {
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  if (info != nullptr && info->result()->Failed()) {
    std::fprintf(stderr, "kept the files of the failed test in %s\n", root_.c_str());
    return;
  }
  std::error_code ec;
  fs::remove_all(root_, ec);
}

std::string Workdir::write(const std::string& name, std::string_view content) const {
  const fs::path p = fs::path(root_) / name;
  fs::create_directories(p.parent_path());
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out.write(content.data(), static_cast<std::streamsize>(content.size()));
  return p.string();
}

std::string Workdir::path(const std::string& name) const { return (fs::path(root_) / name).string(); }

FolderWatch::FolderWatch(const std::string& dir) : dir_(dir) {
  fd_ = ::inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  if (fd_ < 0) throw IoError("inotify_init1: " + std::string(std::strerror(errno)));
  if (::inotify_add_watch(fd_, dir.c_str(), IN_CREATE | IN_MOVED_TO) < 0)
    throw IoError(dir + ": inotify_add_watch: " + std::strerror(errno));
}

FolderWatch::~FolderWatch() {
  if (fd_ >= 0) ::close(fd_);
}

int FolderWatch::poll(Event event, const std::string& part, std::chrono::milliseconds wait) {
  pollfd p{fd_, POLLIN, 0};
  if (::poll(&p, 1, static_cast<int>(wait.count())) <= 0) return 0;
  alignas(inotify_event) char buf[8192];
  const ssize_t n = ::read(fd_, buf, sizeof buf);
  int matches = 0;
  for (ssize_t off = 0; off < n;) {
    const auto* e = reinterpret_cast<const inotify_event*>(buf + off);
    const std::string name = e->len > 0 ? std::string(e->name) : std::string();
    const bool kind = event == Event::kCreated ? (e->mask & IN_CREATE) != 0 : (e->mask & IN_MOVED_TO) != 0;
    if (kind && name.find(part) != std::string::npos) ++matches;
    off += static_cast<ssize_t>(sizeof(inotify_event) + e->len);
  }
  return matches;
}

std::map<std::string, std::string> snapshot(const std::string& dir) {
  std::map<std::string, std::string> files;
  if (!fs::exists(dir)) return files;
  for (const auto& e : fs::recursive_directory_iterator(dir))
    if (e.is_regular_file()) files[fs::relative(e.path(), dir).string()] = read_bytes(e.path().string());
  return files;
}

std::vector<std::string> temp_files(const std::string& dir) {
  std::vector<std::string> out;
  if (!fs::exists(dir)) return out;
  for (const auto& e : fs::recursive_directory_iterator(dir))
    if (e.path().filename().string().find(".tmp.") != std::string::npos) out.push_back(fs::relative(e.path(), dir).string());
  return out;
}

std::string compare_checkpoints(const std::string& a, const std::string& b) {
  nn::LoadedCheckpoint x, y;
  try {
    x = nn::read_checkpoint(a);
    y = nn::read_checkpoint(b);
  } catch (const Error& e) {
    return e.what();
  }
  if (x.tensors.size() != y.tensors.size())
    return detail::str_cat(a, " has ", x.tensors.size(), " tensors, ", b, " has ", y.tensors.size());
  for (std::size_t i = 0; i < x.tensors.size(); ++i) {
    const auto& s = x.tensors[i];
    const auto& t = y.tensors[i];
    if (s.name != t.name) return detail::str_cat("tensor #", i, ": '", s.name, "' vs '", t.name, "'");
    if (s.tensor.dtype() != t.tensor.dtype() || s.tensor.shape() != t.tensor.shape())
      return detail::str_cat("tensor '", s.name, "': ", s.tensor.shape_str(), " vs ", t.tensor.shape_str());
    if (s.tensor.nbytes() != t.tensor.nbytes() ||
        std::memcmp(s.tensor.raw_data(), t.tensor.raw_data(), s.tensor.nbytes()) != 0)
      return detail::str_cat("tensor '", s.name, "' ", s.tensor.shape_str(), ": values differ");
  }
  x.manifest.mutable_state()->clear_seconds();
  y.manifest.mutable_state()->clear_seconds();
  google::protobuf::util::MessageDifferencer differ;
  std::string report;
  differ.ReportDifferencesToString(&report);
  if (!differ.Compare(x.manifest, y.manifest)) return detail::str_cat("manifests of ", a, " and ", b, " differ:\n", report);
  return "";
}

bool small_test_mode() {
  const char* v = std::getenv("PRUNEREC_TEST_SMALL");
  return v != nullptr && v[0] != '\0' && v[0] != '0';
}

}  // namespace prunerec::apps_test
