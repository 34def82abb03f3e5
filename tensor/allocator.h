// Tensor memory: 64-byte aligned blocks from a caching allocator.
//
// Note [caching allocator]: page faults cost 2-3.5 us per 4 KiB page on this machine
// kind, so a fresh 90 MB buffer costs 40-70 ms where refilling a reused one costs about 5.
// A training step allocates the same sizes every time, so freed blocks are kept in
// per-size-class free lists and handed out again. Size classes are 8 per power of two
// (at most 12.5% waste); a request takes the smallest cached block up to 1.5x its size,
// so batches of varying length share blocks. The cache never holds more than the peak
// live bytes (at least 64 MiB): when a freed block would exceed that, the least recently
// freed blocks go back to the system to make room. Memory stays bounded by about twice the
// working set, and the cache follows the working set when it changes (inference after
// training: measured 44 system allocations, about 12% of the time in page faults, per
// batch-256 forward of the MEDIUM bench before eviction). release_cached() gives
// everything cached back to the system.
#pragma once

#include <cstddef>
#include <cstdint>

namespace prunerec {

void* allocate_bytes(std::size_t nbytes);          // never null; throws Error on failure
void free_bytes(void* ptr, std::size_t nbytes);    // nbytes as passed to allocate_bytes

struct AllocatorStats {
  std::int64_t live_bytes = 0;     // handed out and not yet freed (rounded sizes)
  std::int64_t cached_bytes = 0;   // freed, kept for reuse
  std::int64_t peak_bytes = 0;     // max of live + cached
  std::int64_t system_allocs = 0;  // blocks obtained from the system
  std::int64_t reuses = 0;         // blocks served from the cache
  std::int64_t evictions = 0;      // cached blocks given back to make room for newer ones
  std::int64_t cache_limit_bytes = 0;  // most the cache holds: max(peak live, 64 MiB)
};
AllocatorStats allocator_stats();
void release_cached();

// Total allocation guard: a request beyond this many bytes is refused with an Error rather
// than attempted (protects embedders from a corrupt file or a runaway shape).
constexpr std::size_t kMaxAllocationBytes = std::size_t{64} << 30;

}  // namespace prunerec
