#include "base/atomic_file.h"

#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <climits>
#include <cstring>
#include <filesystem>

#include "base/error.h"

namespace prunerec {
namespace {

std::string errno_text(int err) { return std::strerror(err); }

[[noreturn]] void throw_errno(const std::string& path, std::string_view what, int err) {
  throw IoError(detail::str_cat(path, ": ", what, ": ", errno_text(err)));
}

// The directory holding `path` ("." for a bare file name), for the fsync after rename.
std::string parent_directory(const std::string& path) {
  const std::size_t slash = path.find_last_of('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

// Largest single read/write we issue: Linux moves at most 0x7ffff000 bytes per call anyway.
constexpr std::size_t kMaxIoChunk = std::size_t{1} << 30;

}  // namespace

// ---- AtomicFile -----------------------------------------------------------------------

AtomicFile::AtomicFile(std::string target) : target_(std::move(target)) {
  if (target_.empty()) throw IoError("AtomicFile: empty path");
  static std::atomic<std::uint64_t> counter{0};
  temp_path_ = detail::str_cat(target_, ".tmp.", ::getpid(), ".", counter.fetch_add(1));
  int fd;
  do {
    fd = ::open(temp_path_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
  } while (fd < 0 && errno == EINTR);
  if (fd < 0) throw_errno(target_, detail::str_cat("cannot create temporary file ", temp_path_), errno);
  fd_ = fd;
}

AtomicFile::~AtomicFile() {
  if (!committed_) close_and_remove();
}

void AtomicFile::close_and_remove() noexcept {
  if (fd_ >= 0) {
    ::close(fd_);
    fd_ = -1;
  }
  if (!temp_path_.empty()) ::unlink(temp_path_.c_str());
}

void AtomicFile::write(const void* data, std::size_t n) {
  if (committed_ || fd_ < 0)
    throw IoError(detail::str_cat(target_, ": write after commit or after a failed commit"));
  const auto* p = static_cast<const char*>(data);
  while (n > 0) {
    const ssize_t done = ::write(fd_, p, n < kMaxIoChunk ? n : kMaxIoChunk);
    if (done < 0) {
      if (errno == EINTR) continue;
      throw_errno(target_, detail::str_cat("write to ", temp_path_, " failed after ", bytes_written_, " bytes"),
                  errno);
    }
    p += done;
    n -= static_cast<std::size_t>(done);
    bytes_written_ += static_cast<std::uint64_t>(done);
  }
}

void AtomicFile::commit() {
  if (committed_ || fd_ < 0)
    throw IoError(detail::str_cat(target_, ": commit called twice or after a failed commit"));
  if (::fsync(fd_) != 0) throw_errno(target_, detail::str_cat("fsync of ", temp_path_), errno);
  const int fd = fd_;
  fd_ = -1;  // close() releases the descriptor even when it reports an error
  if (::close(fd) != 0) throw_errno(target_, detail::str_cat("close of ", temp_path_), errno);
  if (::rename(temp_path_.c_str(), target_.c_str()) != 0)
    throw_errno(target_, detail::str_cat("rename from ", temp_path_), errno);
  committed_ = true;  // the target now holds the new content; nothing left to clean up

  // Make the rename durable.
  fsync_directory(parent_directory(target_), target_);
}

void fsync_directory(const std::string& dir, const std::string& what) {
  // Some file systems cannot fsync a directory (EINVAL); the data itself is already on disk
  // then, so that case is not an error.
  const int dir_fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir_fd < 0) throw_errno(what, detail::str_cat("open of directory ", dir, " for fsync"), errno);
  const int rc = ::fsync(dir_fd);
  const int err = errno;
  ::close(dir_fd);
  if (rc != 0 && err != EINVAL) throw_errno(what, detail::str_cat("fsync of directory ", dir), err);
}

// ---- AtomicDirectory --------------------------------------------------------------------

AtomicDirectory::AtomicDirectory(std::string target) : target_(std::move(target)) {
  while (target_.size() > 1 && target_.back() == '/') target_.pop_back();
  if (target_.empty()) throw IoError("AtomicDirectory: empty path");
  static std::atomic<std::uint64_t> counter{0};
  staging_ = detail::str_cat(target_, ".tmp.", ::getpid(), ".", counter.fetch_add(1));
  if (::mkdir(staging_.c_str(), 0777) != 0)
    throw_errno(target_, detail::str_cat("cannot create the staging folder ", staging_), errno);
}

AtomicDirectory::~AtomicDirectory() {
  std::error_code ec;
  if (!staging_.empty()) std::filesystem::remove_all(staging_, ec);
}

std::string AtomicDirectory::path(const std::string& name) const { return staging_ + "/" + name; }

void AtomicDirectory::commit() {
  if (committed_) throw IoError(detail::str_cat(target_, ": commit called twice"));
  fsync_directory(staging_, target_);
  struct stat st {};
  if (::lstat(target_.c_str(), &st) != 0) {
    if (::rename(staging_.c_str(), target_.c_str()) != 0)
      throw_errno(target_, detail::str_cat("rename from ", staging_), errno);
    staging_.clear();
  } else if (::renameat2(AT_FDCWD, staging_.c_str(), AT_FDCWD, target_.c_str(), RENAME_EXCHANGE) == 0) {
    // staging_ now holds the old folder; the destructor removes it.
  } else {
    if (errno != EINVAL && errno != ENOSYS && errno != ENOTSUP)
      throw_errno(target_, detail::str_cat("exchange with ", staging_), errno);
    const std::string old = detail::str_cat(target_, ".old.", ::getpid());
    if (::rename(target_.c_str(), old.c_str()) != 0) throw_errno(target_, detail::str_cat("rename to ", old), errno);
    if (::rename(staging_.c_str(), target_.c_str()) != 0) {
      const int err = errno;
      (void)::rename(old.c_str(), target_.c_str());
      throw_errno(target_, detail::str_cat("rename from ", staging_), err);
    }
    staging_ = old;  // removed by the destructor
  }
  committed_ = true;
  fsync_directory(parent_directory(target_), target_);
  std::error_code ec;
  if (!staging_.empty()) std::filesystem::remove_all(staging_, ec);
  staging_.clear();
}

void write_file_atomic(const std::string& path, std::string_view content) {
  AtomicFile file(path);
  file.write(content);
  file.commit();
}

// ---- reading --------------------------------------------------------------------------

void UniqueFd::reset() noexcept {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

UniqueFd open_for_reading(const std::string& path) {
  int fd;
  do {
    fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  } while (fd < 0 && errno == EINTR);
  if (fd < 0) throw_errno(path, "cannot open for reading", errno);
  return UniqueFd(fd);
}

void pread_exact(int fd, void* buf, std::size_t n, std::uint64_t offset, const std::string& path,
                 std::string_view what) {
  auto* p = static_cast<char*>(buf);
  std::size_t done_total = 0;
  while (done_total < n) {
    const std::size_t want = n - done_total < kMaxIoChunk ? n - done_total : kMaxIoChunk;
    const ssize_t done = ::pread(fd, p + done_total, want, static_cast<off_t>(offset + done_total));
    if (done < 0) {
      if (errno == EINTR) continue;
      throw_errno(path, detail::str_cat("read of ", what, " at offset ", offset + done_total), errno);
    }
    if (done == 0)
      throw IoError(detail::str_cat(path, ": truncated: file ended at offset ", offset + done_total,
                                    " while reading ", what, " (", n, " bytes at offset ", offset, ")"));
    done_total += static_cast<std::size_t>(done);
  }
}

std::string read_file(const std::string& path, std::size_t max_bytes) {
  UniqueFd fd = open_for_reading(path);
  struct stat st;
  if (::fstat(fd.get(), &st) != 0) throw_errno(path, "stat", errno);
  if (S_ISDIR(st.st_mode)) throw IoError(detail::str_cat(path, ": is a directory, expected a file"));
  if (st.st_size > 0 && static_cast<std::uint64_t>(st.st_size) > max_bytes)
    throw IoError(detail::str_cat(path, ": file is ", st.st_size, " bytes, larger than the limit of ",
                                  max_bytes, " bytes for this kind of file"));
  // Read to the end rather than trusting st_size: pipes and /proc files report 0, and a
  // file may grow while we read. One byte beyond the limit tells us it is too large.
  std::string content;
  content.resize(st.st_size > 0 ? static_cast<std::size_t>(st.st_size) : std::size_t{4096});
  std::size_t used = 0;
  for (;;) {
    if (used == content.size()) {
      if (used > max_bytes) break;
      content.resize(std::min(max_bytes + 1, std::max<std::size_t>(used * 2, 4096)));
    }
    const ssize_t done = ::read(fd.get(), content.data() + used, content.size() - used);
    if (done < 0) {
      if (errno == EINTR) continue;
      throw_errno(path, "read", errno);
    }
    if (done == 0) break;
    used += static_cast<std::size_t>(done);
  }
  if (used > max_bytes)
    throw IoError(detail::str_cat(path, ": file is larger than the limit of ", max_bytes,
                                  " bytes for this kind of file"));
  content.resize(used);
  return content;
}

}  // namespace prunerec
