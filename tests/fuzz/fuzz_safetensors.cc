// Fuzz target for the Hugging Face readers: the safetensors reader (api/safetensors.h, Note
// [safetensors validation]) and config.json parsing (api/hf_import.h, Note [exact configs]).
// The first input byte picks the reader:
//   even: the rest is a safetensors file (in a memfd, opened by path, so the real mmap path
//         runs): SafetensorsFile, then every tensor converted to f32;
//   odd:  the rest is config.json text: parse_hf_config.
// Checked beyond "no crash": a file that opens has entries lying inside it that tile its
// data buffer, so reading them never touches memory outside the map.
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>

#include "api/hf_import.h"
#include "api/safetensors.h"
#include "tests/fuzz/fuzz_common.h"

namespace prunerec::fuzz {
namespace {

class MemFile {
 public:
  MemFile() : fd_(::memfd_create("prunerec-fuzz-safetensors", MFD_CLOEXEC)) {
    if (fd_ < 0) finding("memfd", "memfd_create failed");
    path_ = "/proc/self/fd/" + std::to_string(fd_);
  }
  void set(std::string_view bytes) const {
    if (::ftruncate(fd_, 0) != 0 || ::pwrite(fd_, bytes.data(), bytes.size(), 0) != static_cast<ssize_t>(bytes.size()))
      finding("memfd", "write failed");
  }
  const std::string& path() const { return path_; }

 private:
  int fd_;
  std::string path_;
};

}  // namespace
}  // namespace prunerec::fuzz

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace prunerec;
  static const bool quiet = (fuzz::silence_protobuf_logging(), true);
  (void)quiet;
  if (size == 0) return 0;
  const std::string_view rest = fuzz::as_text(data + 1, size - 1);
  if (data[0] % 2 == 1) {
    fuzz::expect_errors("parse_hf_config", [&] { hf::parse_hf_config(rest, "config.json"); });
    return 0;
  }
  static const fuzz::MemFile file;
  file.set(rest);
  fuzz::expect_errors("SafetensorsFile", [&] {
    const hf::SafetensorsFile f(file.path());
    std::uint64_t covered = 0;
    for (const hf::SafetensorsEntry& e : f.entries()) {
      fuzz::require(e.begin <= e.end && e.end <= f.file_size(), "SafetensorsFile", "an entry lies outside the file");
      covered += e.end - e.begin;
      const Tensor t = f.read_f32(e);
      fuzz::require(t.numel() * static_cast<std::int64_t>(hf::st_dtype_size(e.dtype)) ==
                        static_cast<std::int64_t>(e.end - e.begin),
                    "SafetensorsFile", "a tensor's size disagrees with its byte range");
    }
    fuzz::require(covered <= f.file_size(), "SafetensorsFile", "entries cover more than the file");
  });
  return 0;
}
