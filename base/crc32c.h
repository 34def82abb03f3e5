// CRC-32C (Castagnoli), the checksum of checkpoint headers, manifests and tensors.
//
//   std::uint32_t c = crc32c(buf.data(), buf.size());           // whole buffer
//   std::uint32_t d = crc32c(tail, m, crc32c(head, n));         // == crc32c(head ++ tail)
//
// Check value: crc32c("123456789", 9) == 0xE3069283. The `crc` argument is the finished
// CRC of everything before `data` (0 for nothing), so calls chain over pieces of a stream.
//
// Note [crc32c dispatch]: on x86-64 CPUs with SSE4.2 (all since 2008) the crc32
// instruction does 8 bytes per instruction, a few GB/s in one dependency chain, enough
// to check a checkpoint far faster than the disk delivers it. The choice is made once at
// run time (__builtin_cpu_supports), so the binary still runs on any x86-64 and on other
// architectures, where the portable slicing-by-8 table version (about 1 GB/s) is used.
// Both paths give identical results; tests compare them on odd lengths and alignments.
#pragma once

#include <cstddef>
#include <cstdint>

namespace prunerec {

std::uint32_t crc32c(const void* data, std::size_t n, std::uint32_t crc = 0);

namespace detail {
// The two implementations behind crc32c(), exposed for tests and benchmarks.
std::uint32_t crc32c_software(const void* data, std::size_t n, std::uint32_t crc);
// Only call when crc32c_hardware_available(); same contract as crc32c().
std::uint32_t crc32c_hardware(const void* data, std::size_t n, std::uint32_t crc);
bool crc32c_hardware_available();
}  // namespace detail

}  // namespace prunerec
