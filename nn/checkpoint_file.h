// The single-file checkpoint container: a pb::Manifest plus named tensors.
//
//   pb::Manifest manifest;
//   *manifest.mutable_config() = model_config;
//   manifest.mutable_state()->set_step(1200);
//   write_checkpoint("run/model.prc", manifest, {{"embed.weight", embed}, {"head.bias", bias}});
//
//   LoadedCheckpoint ckpt = read_checkpoint("run/model.prc", {.mmap = true});
//   const Tensor* w = ckpt.find("embed.weight");      // null when absent
//   pb::Manifest m = read_checkpoint_manifest("run/model.prc");  // no tensor data read
//
// This file knows nothing about models; nn/ and prune/ decide which tensors to store and
// what their names mean.
//
// Note [checkpoint layout] (format version 1; every integer little-endian):
//
//   offset  size  field
//   0       8     magic "PRUNEREC"
//   8       4     u32 format_version = 1
//   12      4     u32 flags = 0 (no flags defined; anything else is refused)
//   16      8     u64 manifest_size
//   24      4     u32 crc32c of the manifest bytes
//   28      4     u32 crc32c of bytes 0..27 (the header checksum)
//   32      M     the serialized pb::Manifest (M = manifest_size, at most 256 MiB)
//   32+M    ..    zero bytes up to the next multiple of 64: that offset is data_start
//   data_start    the data section, D bytes: each tensor's raw bytes (row-major,
//                 contiguous, host little-endian), in manifest order, each starting at a
//                 64-aligned offset from data_start; the gaps are zero bytes. Each
//                 TensorRecord holds name, dtype, shape, offset (from data_start),
//                 nbytes and the crc32c of the tensor's bytes. D is the end of the last
//                 tensor (0 without tensors).
//   data_start+D  16-byte trailer: u64 D, then magic "PRNR-END".
//
// So file size == data_start + D + 16 exactly, and a truncated or extended file is
// recognised from the header, the trailer and the file size before anything is parsed.
// Every byte is covered by a check: header and manifest by their checksums, tensor bytes
// by theirs (when ReadOptions::verify_checksums), padding by being required to be zero,
// the trailer by its magic and the size equation. A flipped bit anywhere is reported.
// Tensor data at data_start + offset is 64-byte aligned in the file, so a memory map
// (page-aligned) gives aligned tensors without copying.
//
// Note [checkpoint validation]: the reader trusts nothing before checking it and
// allocates nothing whose size it has not checked against the file: manifest_size
// against 256 MiB and the file size before reading the manifest; every record (unique
// non-empty name, known dtype, non-negative dims, numel * dtype size == nbytes without
// overflow, 64-aligned offset, in order, inside the data section) before any tensor is
// allocated. Every failure is an IoError whose message starts with the path and names
// the tensor involved, e.g.
//   run/model.prc: tensor 'blocks.0.attn.q_proj.weight': checksum mismatch (stored 0x1234abcd, computed 0x9f00e1c2)
//   run/model.prc: truncated: file is 1000 bytes, header and trailer need 48
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "proto/checkpoint.pb.h"
#include "tensor/tensor.h"

namespace prunerec::nn {

inline constexpr std::uint32_t kCheckpointFormatVersion = 1;
inline constexpr std::uint64_t kMaxManifestBytes = std::uint64_t{256} << 20;

struct NamedTensor {
  std::string name;
  Tensor tensor;
};

// Writes `tensors` (any dtype, any layout; stored contiguous) and `manifest` to `path`
// atomically (Note [atomic replace] in base/atomic_file.h): a crash or an
// exception never leaves a half-written file under `path`, and an existing file stays
// intact until the new one is complete. Overwrites manifest.tensors and
// manifest.format_version. Names must be non-empty and unique, tensors defined.
// Non-contiguous tensors are copied contiguous first (kept until the write ends).
// The bytes are deterministic: the same input always gives the same file.
void write_checkpoint(const std::string& path, pb::Manifest manifest,
                      const std::vector<NamedTensor>& tensors);

// A tensor whose bytes are produced while the file is written (write_checkpoint_streamed):
// nothing of the whole tensor needs to be in memory at once.
struct StreamedTensor {
  std::string name;
  DType dtype = DType::f32;
  Shape shape;
  // Writes the tensor's bytes [begin, begin + n) (row-major, host little-endian) to out.
  // Called in order of begin, pieces covering the tensor exactly once; begin and n are
  // multiples of the dtype size. May throw: the file is then abandoned (nothing written).
  std::function<void(std::uint64_t begin, std::size_t n, unsigned char* out)> fill;
};

// Note [streamed checkpoint writes]
// ~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
// write_checkpoint_streamed writes the same bytes write_checkpoint would for tensors with
// these contents (write_checkpoint is built on it), in one pass: each piece of a tensor is
// produced into an 8 MiB staging block, its CRC-32C is taken while the piece is still in
// cache, and full blocks go to the file from a second thread while the next block is
// filled (two blocks; the order of writes does not change the bytes). The manifest (which holds the CRCs and precedes
// the data) is serialised twice: once with zero CRCs to fix its size (crc32c is a fixed32
// field, so the size does not depend on the values), and again at the end with the real
// ones, when the head of the file, kept in memory, is written last.
// Files with at least 64 MiB of tensor data are written with O_DIRECT (the staging blocks
// are 4096-aligned and the tail is padded and then truncated): through the page cache, a
// 2 GB checkpoint costs several seconds of CPU in copies and, on a VM, first touches of
// fresh page-cache memory (measured: `dd bs=8M count=256` 4.6 s of CPU buffered, 0.25 s
// with oflag=direct). Where the file system refuses O_DIRECT (tmpfs: EINVAL) the write
// goes through the page cache. Either way the file is published by AtomicFile (fsync,
// rename, fsync of the folder).
void write_checkpoint_streamed(const std::string& path, pb::Manifest manifest,
                               const std::vector<StreamedTensor>& tensors);

struct ReadOptions {
  // Check each tensor's crc32c (a few GB/s; turn off only for data already verified).
  bool verify_checksums = true;
  // Map the file (MAP_PRIVATE, copy-on-write) instead of reading it: tensors borrow the
  // mapping, which lives until the last tensor referring to it is gone; writing to a
  // tensor changes the process's copy only, never the file. If the file is truncated
  // in place by another process while mapped, touching the lost pages raises SIGBUS;
  // checkpoints written by write_checkpoint are replaced by rename, which is safe.
  // (Zero-copy needs Tensor::from_storage; until tensor/tensor.h has it, the mapped
  // path copies out of the mapping: Note [borrowed tensors] in checkpoint_file.cc.)
  bool mmap = false;
};

struct LoadedCheckpoint {
  pb::Manifest manifest;
  std::vector<NamedTensor> tensors;  // in file order

  // The tensor called `name`, or null. Linear search.
  const Tensor* find(std::string_view name) const;
};

// Reads and validates a whole checkpoint (Note [checkpoint validation]).
LoadedCheckpoint read_checkpoint(const std::string& path, const ReadOptions& opts = {});
// The same for a checkpoint's bytes in memory (opts.mmap is ignored: tensors are copied,
// so the buffer may be freed afterwards). `name` stands for the path in error messages.
LoadedCheckpoint read_checkpoint_from_memory(const void* data, std::size_t size, const std::string& name,
                                             const ReadOptions& opts = {});

// Reads and validates the header, trailer and manifest (including every tensor record)
// without reading tensor data.
pb::Manifest read_checkpoint_manifest(const std::string& path);

}  // namespace prunerec::nn
