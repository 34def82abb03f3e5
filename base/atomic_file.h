// Crash-safe file writing and bounded file reading.
//
//   AtomicFile out("run/model.prc");   // creates run/model.prc.tmp.<pid>.<n>
//   out.write(header, 32);
//   out.write(payload.data(), payload.size());
//   out.commit();                       // fsync, rename over run/model.prc, fsync run/
//
//   write_file_atomic("run/report.json", json);
//   std::string text = read_file("recipe.pbtxt", 16 << 20);  // refuses files over 16 MiB
//
// Note [atomic replace]: the new content is written to a temporary file in the target's
// own directory (rename is only atomic within one file system), flushed to disk with
// fsync, and renamed over the target; then the directory is fsynced so the rename itself
// survives a power cut. A reader therefore sees either the whole old file or the whole
// new one, never a mix or a prefix, and an existing file stays untouched until the new
// one is complete. If anything fails before commit() (an exception, a full disk), the
// destructor deletes the temporary and the target is unchanged. A crash of the whole
// process can leave a `<target>.tmp.<pid>.<n>` file behind, never a damaged target.
// The new file gets mode 0666 & ~umask; the old file's mode is not carried over.
//
// All errors are IoError with messages that start with the path and end with
// strerror(errno), e.g. `run/model.prc: rename from run/model.prc.tmp.12.0: Permission denied`.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace prunerec {

class AtomicFile {
 public:
  // Creates the temporary file next to `target`. Throws IoError if it cannot.
  explicit AtomicFile(std::string target);
  // Removes the temporary file unless commit() succeeded. Never throws.
  ~AtomicFile();
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;

  // Appends bytes. Unbuffered (one write(2) loop per call): write in large pieces.
  void write(const void* data, std::size_t n);
  void write(std::string_view bytes) { write(bytes.data(), bytes.size()); }

  // Makes the written content appear under the target name, durably (Note [atomic
  // replace]). After commit() no more writes are allowed.
  void commit();

  const std::string& target() const { return target_; }
  const std::string& temp_path() const { return temp_path_; }
  std::uint64_t bytes_written() const { return bytes_written_; }

 private:
  void close_and_remove() noexcept;

  std::string target_;
  std::string temp_path_;
  int fd_ = -1;
  std::uint64_t bytes_written_ = 0;
  bool committed_ = false;
};

// A folder published like a file: written into a staging folder next to `target`, then
// moved into place in one step, so `target` is either absent, the whole old folder or the
// whole new one (Note [atomic folder]).
//
//   AtomicDirectory out("runs/export");                  // creates runs/export.tmp.<pid>.<n>
//   write_file_atomic(out.path("config.json"), text);    // files inside as usual
//   out.commit();                                        // replaces runs/export
//
// Note [atomic folder]: commit() fsyncs the staging folder (each file in it was fsynced by
// its own AtomicFile), then renames it to `target` when that does not exist, or exchanges
// the two atomically (renameat2 RENAME_EXCHANGE) and removes the old folder. Where the
// file system cannot exchange, the old folder is renamed aside first; a crash between the
// two renames leaves it under `<target>.old.<pid>`, never a half-written `target`. Then the
// parent folder is fsynced. Whether an existing `target` may be replaced is the caller's
// decision (check it before writing). If commit() is never reached, the destructor
// removes the staging folder.
class AtomicDirectory {
 public:
  explicit AtomicDirectory(std::string target);
  ~AtomicDirectory();
  AtomicDirectory(const AtomicDirectory&) = delete;
  AtomicDirectory& operator=(const AtomicDirectory&) = delete;

  // `name` inside the staging folder.
  std::string path(const std::string& name) const;
  void commit();

  const std::string& target() const { return target_; }

 private:
  std::string target_, staging_;
  bool committed_ = false;
};

// fsyncs a folder so renames in it survive a power cut; IoError starting with `what`
// unless the file system cannot fsync folders (EINVAL).
void fsync_directory(const std::string& dir, const std::string& what);

// Replaces `path` with `content` through an AtomicFile.
void write_file_atomic(const std::string& path, std::string_view content);

// The whole content of `path`. Throws IoError if it cannot be read or holds more than
// `max_bytes` bytes (a guard against reading a wrong, huge file into memory).
std::string read_file(const std::string& path, std::size_t max_bytes);

// An owned POSIX file descriptor, closed on destruction. -1 means none.
class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) : fd_(fd) {}
  ~UniqueFd() { reset(); }
  UniqueFd(UniqueFd&& other) noexcept : fd_(other.release()) {}
  UniqueFd& operator=(UniqueFd&& other) noexcept {
    if (this != &other) {
      reset();
      fd_ = other.release();
    }
    return *this;
  }
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;

  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  int release() {
    const int fd = fd_;
    fd_ = -1;
    return fd;
  }
  void reset() noexcept;  // closes, ignoring errors (read-only use)

 private:
  int fd_ = -1;
};

// Opens `path` read-only (O_CLOEXEC). Throws IoError naming the path on failure.
UniqueFd open_for_reading(const std::string& path);

// Reads exactly n bytes at `offset`, retrying short reads and EINTR. Throws IoError
// `<path>: truncated: ...` if the file ends first, or naming strerror(errno); `what`
// says what was being read ("manifest", "tensor 'x'").
void pread_exact(int fd, void* buf, std::size_t n, std::uint64_t offset, const std::string& path,
                 std::string_view what);

}  // namespace prunerec
