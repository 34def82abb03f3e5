#include "tensor/allocator.h"

#include <bit>
#include <cstdlib>
#include <deque>
#include <map>
#include <mutex>
#include <new>
#include <unordered_map>

#include "base/error.h"

namespace prunerec {
namespace {

constexpr std::size_t kAlign = 64;

// Rounds n up to its size class: multiples of 64 below 4 KiB, then 8 classes per
// power of two.
std::size_t size_class(std::size_t n) {
  if (n <= 4096) return (n + kAlign - 1) / kAlign * kAlign;
  const int top = std::bit_width(n - 1) - 1;  // 2^top < n <= 2^(top+1)
  const std::size_t step = std::size_t{1} << (top - 3);
  return (n + step - 1) / step * step;
}

constexpr std::int64_t kMinCacheBytes = std::int64_t{64} << 20;

// A cached block and when it was freed (a counter, not a clock).
struct CachedBlock {
  void* ptr;
  std::uint64_t freed_at;
};

struct Cache {
  std::mutex mu;
  // By block size; each list is oldest first, so front() is its least recently freed block.
  std::map<std::size_t, std::deque<CachedBlock>> free_lists;
  std::unordered_map<void*, std::size_t> sizes;  // live block -> its size
  std::int64_t peak_live = 0;
  std::uint64_t frees = 0;
  AllocatorStats stats;
};

Cache& cache() {
  static Cache* c = new Cache;  // leaked on purpose: outlives static tensors at exit
  return *c;
}

// PRUNEREC_NO_ALLOC_CACHE=1 turns the cache off, so memory checkers (valgrind, ASan)
// see every allocation and free.
bool cache_enabled() {
  static const bool enabled = [] {
    const char* v = std::getenv("PRUNEREC_NO_ALLOC_CACHE");
    return v == nullptr || v[0] == '\0' || v[0] == '0';
  }();
  return enabled;
}

std::int64_t cache_limit(const Cache& c) { return std::max<std::int64_t>(c.peak_live, kMinCacheBytes); }

// Gives the least recently freed cached block back to the system. Requires c.mu held and
// something cached. Linear in the number of size classes in use (a few dozen).
void evict_oldest(Cache& c) {
  auto oldest = c.free_lists.end();
  for (auto it = c.free_lists.begin(); it != c.free_lists.end(); ++it)
    if (!it->second.empty() && (oldest == c.free_lists.end() || it->second.front().freed_at < oldest->second.front().freed_at))
      oldest = it;
  PR_ASSERT(oldest != c.free_lists.end());
  std::free(oldest->second.front().ptr);
  oldest->second.pop_front();
  c.stats.cached_bytes -= static_cast<std::int64_t>(oldest->first);
  ++c.stats.evictions;
}

}  // namespace

void* allocate_bytes(std::size_t nbytes) {
  if (nbytes == 0) nbytes = 1;
  if (nbytes > kMaxAllocationBytes)
    throw Error(detail::str_cat("allocate: ", nbytes, " bytes requested, above the limit of ",
                                kMaxAllocationBytes, " bytes"));
  const std::size_t cls = size_class(nbytes);
  Cache& c = cache();
  if (cache_enabled()) {
    std::lock_guard<std::mutex> lock(c.mu);
    // The smallest cached block of at least cls bytes and at most 1.5x that (best fit
    // over the size classes, which are 12.5% apart).
    auto it = c.free_lists.lower_bound(cls);
    while (it != c.free_lists.end() && it->first <= cls + cls / 2 && it->second.empty()) ++it;
    if (it != c.free_lists.end() && it->first <= cls + cls / 2) {
      void* p = it->second.back().ptr;
      it->second.pop_back();
      c.stats.cached_bytes -= static_cast<std::int64_t>(it->first);
      c.stats.live_bytes += static_cast<std::int64_t>(it->first);
      ++c.stats.reuses;
      c.sizes[p] = it->first;
      c.peak_live = std::max(c.peak_live, c.stats.live_bytes);
      return p;
    }
  }
  void* p = std::aligned_alloc(kAlign, cls);
  if (p == nullptr) {
    release_cached();
    p = std::aligned_alloc(kAlign, cls);
  }
  if (p == nullptr) throw Error(detail::str_cat("allocate: out of memory for ", cls, " bytes"));
  std::lock_guard<std::mutex> lock(c.mu);
  c.stats.live_bytes += static_cast<std::int64_t>(cls);
  if (cache_enabled()) c.sizes[p] = cls;
  c.peak_live = std::max(c.peak_live, c.stats.live_bytes);
  ++c.stats.system_allocs;
  const std::int64_t total = c.stats.live_bytes + c.stats.cached_bytes;
  if (total > c.stats.peak_bytes) c.stats.peak_bytes = total;
  return p;
}

void free_bytes(void* ptr, std::size_t nbytes) {
  if (ptr == nullptr) return;
  if (nbytes == 0) nbytes = 1;
  Cache& c = cache();
  std::lock_guard<std::mutex> lock(c.mu);
  if (!cache_enabled()) {
    c.stats.live_bytes -= static_cast<std::int64_t>(size_class(nbytes));
    std::free(ptr);
    return;
  }
  // The block's real size (it may have been served from a larger class).
  const auto found = c.sizes.find(ptr);
  const std::size_t cls = found != c.sizes.end() ? found->second : size_class(nbytes);
  if (found != c.sizes.end()) c.sizes.erase(found);
  c.stats.live_bytes -= static_cast<std::int64_t>(cls);
  // Keep at most as much cached as is live at the peak (a training step's working set), so
  // shapes that vary from batch to batch cannot grow the cache without bound. When the
  // cache is full, the least recently freed blocks make room: the cache follows the
  // current working set (inference after training) instead of keeping stale shapes.
  const std::int64_t limit = cache_limit(c);
  if (static_cast<std::int64_t>(cls) > limit) {
    std::free(ptr);
    return;
  }
  while (c.stats.cached_bytes + static_cast<std::int64_t>(cls) > limit) evict_oldest(c);
  c.free_lists[cls].push_back({ptr, ++c.frees});
  c.stats.cached_bytes += static_cast<std::int64_t>(cls);
}

AllocatorStats allocator_stats() {
  Cache& c = cache();
  std::lock_guard<std::mutex> lock(c.mu);
  AllocatorStats s = c.stats;
  s.cache_limit_bytes = cache_limit(c);
  return s;
}

void release_cached() {
  Cache& c = cache();
  std::lock_guard<std::mutex> lock(c.mu);
  for (auto& [cls, list] : c.free_lists) {
    for (const CachedBlock& b : list) std::free(b.ptr);
    c.stats.cached_bytes -= static_cast<std::int64_t>(cls * list.size());
    list.clear();
  }
}

}  // namespace prunerec
