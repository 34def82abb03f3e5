// A real write(2) failure midway, for tests of what a failed write leaves behind:
// RLIMIT_FSIZE makes the kernel refuse bytes past the limit with EFBIG (SIGXFSZ ignored
// for the duration). Restores the limit and the handler on destruction.
//
//   FileSizeLimit limit(4096);
//   ASSERT_TRUE(limit.ok());
#pragma once

#include <signal.h>
#include <sys/resource.h>

namespace prunerec::testing {

class FileSizeLimit {
 public:
  explicit FileSizeLimit(rlim_t bytes) {
    ::getrlimit(RLIMIT_FSIZE, &saved_);
    old_handler_ = ::signal(SIGXFSZ, SIG_IGN);
    rlimit lim = saved_;
    lim.rlim_cur = bytes;
    ok_ = ::setrlimit(RLIMIT_FSIZE, &lim) == 0;
  }
  ~FileSizeLimit() {
    ::setrlimit(RLIMIT_FSIZE, &saved_);
    ::signal(SIGXFSZ, old_handler_);
  }
  FileSizeLimit(const FileSizeLimit&) = delete;
  FileSizeLimit& operator=(const FileSizeLimit&) = delete;
  bool ok() const { return ok_; }

 private:
  rlimit saved_{};
  void (*old_handler_)(int) = nullptr;
  bool ok_ = false;
};

}  // namespace prunerec::testing
