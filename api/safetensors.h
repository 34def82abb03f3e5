// Writing and reading the safetensors format (https://huggingface.co/docs/safetensors), as
// used by the `safetensors` package, PyTorch and the Hugging Face loaders.
//
//   write_safetensors("out/model.safetensors",
//                     {{"model.norm.weight", norm}, {"lm_head.weight", head}},
//                     {{"format", "pt"}});
//
//   SafetensorsFile f("hf/model.safetensors");        // maps the file, checks the header
//   for (const SafetensorsEntry& e : f.entries()) ...  // name, dtype, shape, offsets
//   f.read_f32(*f.find("model.norm.weight"), dst);     // F32/F16/BF16 -> f32, then the
//                                                      // pages are dropped from memory
//
// Note [safetensors layout]
// ~~~~~~~~~~~~~~~~~~~~~~~~~
//   bytes 0..7     N, the header length, unsigned 64-bit little-endian
//   bytes 8..8+N   a JSON object, UTF-8: "__metadata__" (string -> string, optional) and one
//                  entry per tensor {"dtype":"F32","shape":[...],"data_offsets":[begin,end]}
//   the rest       the byte buffer; offsets are relative to its start
// What this writer guarantees (a reader may check all of it): keys are unique and written
// in byte order ("__metadata__" sorts first, before any lower-case name); tensor data is
// laid out in the same order, contiguous, with no gap and nothing after the last tensor;
// every tensor is F32, row-major, little-endian; the header is padded with spaces so the
// buffer starts at an 8-byte boundary (the format allows trailing whitespace in the
// header). A tensor with a zero dimension is valid: its offsets are [x, x].
// The file is written through AtomicFile: a reader sees the old file or the whole new one.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "tensor/tensor.h"

namespace prunerec::hf {

// (name, value): any floating dtype and layout; written as F32.
using NamedTensor = std::pair<std::string, Tensor>;

// The header bytes (JSON plus padding, without the 8-byte length) for tensors of these
// names and shapes, and each tensor's data offsets, in the order tensors will be written
// (sorted by name). ConfigError on an empty or repeated name or "__metadata__".
struct SafetensorsLayout {
  std::string header;                                   // size % 8 == 0 (with the length prefix)
  std::vector<std::pair<std::string, Shape>> tensors;   // sorted by name
  std::vector<std::pair<std::uint64_t, std::uint64_t>> offsets;  // [begin, end) per tensor
  std::uint64_t data_bytes = 0;
};
SafetensorsLayout plan_safetensors(const std::vector<std::pair<std::string, Shape>>& tensors,
                                   const std::map<std::string, std::string>& metadata);

// Writes the file (Note [safetensors layout]). Returns its size in bytes.
std::uint64_t write_safetensors(const std::string& path, const std::vector<NamedTensor>& tensors,
                                const std::map<std::string, std::string>& metadata = {});

// ---- Reading ---------------------------------------------------------------------------
//
// Note [safetensors validation]
// ~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
// The reader trusts nothing in the file. Before any tensor is touched it checks: the file
// holds the 8-byte length and the header; the header is at most 100 MB (the format's own
// limit) and a JSON object (parsed by Protobuf's JSON parser into google.protobuf.Struct,
// no hand-written parser); "__metadata__", if present, maps strings to strings; every
// other key is a tensor {"dtype", "shape", "data_offsets"} with nothing else; dtype is one
// the engine reads (F32, F16, BF16, F64); dims and offsets are non-negative integers
// (exact in a double, below 2^53); numel * dtype size == end - begin without overflow; and
// the tensors, ordered by offset, tile the byte buffer exactly: no overlap, no gap, nothing
// after the last one, the buffer ending at the end of the file (as the reference Rust
// implementation requires). Every failure is an IoError that starts with the path and
// names the tensor or field, e.g.
//   hf/model.safetensors: tensor 'model.norm.weight': data_offsets [0, 60] hold 60 bytes, F32[16] needs 64

enum class StDType { f32, f16, bf16, f64 };
const char* st_dtype_name(StDType t);
std::size_t st_dtype_size(StDType t);

struct SafetensorsEntry {
  std::string name;
  StDType dtype = StDType::f32;
  Shape shape;
  std::uint64_t begin = 0, end = 0;  // relative to the byte buffer
};

struct SafetensorsHeader {
  std::vector<SafetensorsEntry> entries;  // in the header's key order
  std::map<std::string, std::string> metadata;
  std::uint64_t data_start = 0;           // 8 + header length
};

// Parses and validates the header of a file of `file_size` bytes whose first bytes are
// `prefix` (at least the 8-byte length and the header: IoError otherwise). `path` only
// names the file in errors. Exposed for the fuzz target.
SafetensorsHeader parse_safetensors_header(std::string_view prefix, std::uint64_t file_size, const std::string& path);

// A read-only memory map of one safetensors file with its validated header.
class SafetensorsFile {
 public:
  explicit SafetensorsFile(const std::string& path);
  ~SafetensorsFile();
  SafetensorsFile(SafetensorsFile&& other) noexcept;
  SafetensorsFile(const SafetensorsFile&) = delete;
  SafetensorsFile& operator=(const SafetensorsFile&) = delete;
  SafetensorsFile& operator=(SafetensorsFile&&) = delete;

  const std::string& path() const { return path_; }
  std::uint64_t file_size() const { return size_; }
  const std::vector<SafetensorsEntry>& entries() const { return header_.entries; }
  const std::map<std::string, std::string>& metadata() const { return header_.metadata; }
  const SafetensorsEntry* find(std::string_view name) const;  // null when absent

  // The tensor's raw bytes (little-endian, row-major), inside the map.
  std::string_view bytes(const SafetensorsEntry& e) const;
  // Converts the tensor to f32 into dst (numel floats; f64 is rounded to nearest), then
  // drops its pages (drop_pages).
  void read_f32(const SafetensorsEntry& e, float* dst) const;
  // Elements [first, first + count) of the tensor (flat, row-major) to f32 in dst.
  void convert_f32(const SafetensorsEntry& e, std::uint64_t first, std::uint64_t count, float* dst) const;
  // Tells the kernel the tensor's pages are no longer needed, so streaming a whole file
  // keeps at most about one tensor's source bytes resident.
  void drop_pages(const SafetensorsEntry& e) const;
  // The same into a new f32 tensor of the entry's shape.
  Tensor read_f32(const SafetensorsEntry& e) const;

 private:
  std::string path_;
  const unsigned char* map_ = nullptr;
  std::uint64_t size_ = 0;
  SafetensorsHeader header_;
};

// bf16 / IEEE half bits to float (exact: every bf16 and f16 value is a float).
float bf16_to_f32(std::uint16_t bits);
float f16_to_f32(std::uint16_t bits);
// The same over n little-endian values at src (any alignment): branch-free loops the
// compiler vectorises, checked against the two functions above on every bit pattern.
void bf16_to_f32(const unsigned char* src, std::size_t n, float* dst);
void f16_to_f32(const unsigned char* src, std::size_t n, float* dst);

}  // namespace prunerec::hf
