// Shared pieces of the libFuzzer targets (tests/fuzz/*.cc; docs/reliability.md).
//
//   extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
//     const std::string_view input = fuzz::as_text(data, size);
//     fuzz::expect_errors("read_dataset", [&] { recsys::read_dataset(dir.write("a.txt", input)); });
//     return 0;
//   }
//
// Note [what a finding is]: our own errors (prunerec::Error and its subclasses) are the
// expected answer to bad input, except InternalError, which by its definition in
// base/error.h is "a bug in prunerec, not in the caller's input": a target aborts on it,
// on any other exception (std::bad_alloc, std::out_of_range, ...), and libFuzzer reports
// crashes, sanitizer reports, timeouts (-timeout) and memory beyond -rss_limit_mb /
// -malloc_limit_mb. An input must never make the library allocate more than the limit:
// every size in a file is checked against the file before it sizes an allocation.
//
// Note [input sections]: targets that need several files (a data file and its titles, a
// recipe and a plan) cut the input at lines holding exactly "%%". Seeds in
// tests/fuzz/corpus/<target>/ show the layout of each target.
#pragma once

#include <sys/mman.h>
#include <unistd.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <exception>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>
#include <vector>

#include <google/protobuf/stubs/logging.h>

#include "base/error.h"
#include "tensor/tensor.h"

namespace prunerec::fuzz {

inline std::string_view as_text(const std::uint8_t* data, std::size_t size) {
  return {reinterpret_cast<const char*>(data), size};
}

[[noreturn]] inline void finding(std::string_view what, std::string_view message) {
  std::fprintf(stderr, "\n==== prunerec fuzz finding in %.*s: %.*s\n", static_cast<int>(what.size()), what.data(),
               static_cast<int>(message.size()), message.data());
  std::fflush(stderr);
  std::abort();
}

// Runs fn; returns true when it returned, false when it threw one of our errors (the
// expected outcome for bad input); aborts on anything else (Note [what a finding is]).
template <class Fn>
bool expect_errors(std::string_view what, Fn&& fn) {
  try {
    fn();
    return true;
  } catch (const InternalError& e) {
    finding(what, std::string("InternalError: ") + e.what());
  } catch (const Error&) {
    return false;
  } catch (const std::exception& e) {
    finding(what, std::string("non-prunerec exception: ") + e.what());
  } catch (...) {
    finding(what, "unknown exception");
  }
}

// An invariant of the target itself (e.g. "strict read succeeded, so the lenient read must").
inline void require(bool ok, std::string_view what, std::string_view message) {
  if (!ok) finding(what, message);
}

// The input cut at lines that hold exactly "%%" (Note [input sections]).
inline std::vector<std::string_view> sections(std::string_view input, std::size_t max_sections) {
  std::vector<std::string_view> out;
  std::size_t start = 0;
  while (out.size() + 1 < max_sections) {
    std::size_t pos = input.find("%%\n", start);
    while (pos != std::string_view::npos && pos != start && input[pos - 1] != '\n') pos = input.find("%%\n", pos + 1);
    if (pos == std::string_view::npos) break;
    out.push_back(input.substr(start, pos - start));
    start = pos + 3;
  }
  out.push_back(input.substr(start));
  return out;
}

// A private directory for the files one target writes, removed at exit. On tmpfs
// (/dev/shm) when there is one: targets write a few files per input.
class ScratchDir {
 public:
  ScratchDir() {
    std::filesystem::path base = "/dev/shm";
    std::error_code ec;
    if (!std::filesystem::is_directory(base, ec) || ::access(base.c_str(), W_OK) != 0)
      base = std::filesystem::temp_directory_path();
    root_ = base / ("prunerec-fuzz-" + std::to_string(::getpid()));
    std::filesystem::remove_all(root_, ec);
    std::filesystem::create_directories(root_);
  }
  ~ScratchDir() {
    std::error_code ec;
    std::filesystem::remove_all(root_, ec);
  }
  ScratchDir(const ScratchDir&) = delete;
  ScratchDir& operator=(const ScratchDir&) = delete;

  // Empties the directory (between inputs).
  void clear() const {
    std::error_code ec;
    for (const auto& entry : std::filesystem::directory_iterator(root_, ec)) std::filesystem::remove_all(entry.path(), ec);
  }
  // Writes bytes to root/name (creating folders) and returns the path.
  std::string write(const std::string& name, std::string_view bytes) const {
    const std::filesystem::path p = root_ / name;
    std::filesystem::create_directories(p.parent_path());
    std::ofstream out(p, std::ios::binary | std::ios::trunc);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    out.close();
    if (!out) finding("scratch dir", "cannot write " + p.string());
    return p.string();
  }
  std::string path(const std::string& name) const { return (root_ / name).string(); }
  const std::filesystem::path& root() const { return root_; }

 private:
  std::filesystem::path root_;
};

// Protobuf logs a line for some malformed messages (invalid UTF-8 in a string field);
// the fuzzer produces millions of those.
inline void silence_protobuf_logging() { google::protobuf::SetLogHandler(nullptr); }

}  // namespace prunerec::fuzz
