// Writing the safetensors format (https://huggingface.co/docs/safetensors), as read by the
// `safetensors` package, PyTorch and the Hugging Face loaders.
//
//   write_safetensors("out/model.safetensors",
//                     {{"model.norm.weight", norm}, {"lm_head.weight", head}},
//                     {{"format", "pt"}});
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

#include <map>
#include <string>
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

}  // namespace prunerec::hf
