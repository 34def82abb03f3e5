#include "tensor/allocator.h"

#include <bit>
#include <cstdlib>
#include <mutex>
#include <new>
#include <map>
#include <unordered_map>
#include <vector>

#include "tensor/error.h"

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

struct Cache {
  std::mutex mu;
  std::map<std::size_t, std::vector<void*>> free_lists;  // by block size
  std::unordered_map<void*, std::size_t> sizes;          // live block -> its size
  std::int64_t peak_live = 0;
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
      void* p = it->second.back();
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
  // shapes that vary from batch to batch cannot grow the cache without bound.
  if (c.stats.cached_bytes + static_cast<std::int64_t>(cls) > std::max<std::int64_t>(c.peak_live, kMinCacheBytes)) {
    std::free(ptr);
    return;
  }
  c.free_lists[cls].push_back(ptr);
  c.stats.cached_bytes += static_cast<std::int64_t>(cls);
}

AllocatorStats allocator_stats() {
  Cache& c = cache();
  std::lock_guard<std::mutex> lock(c.mu);
  return c.stats;
}

void release_cached() {
  Cache& c = cache();
  std::lock_guard<std::mutex> lock(c.mu);
  for (auto& [cls, list] : c.free_lists) {
    for (void* p : list) std::free(p);
    c.stats.cached_bytes -= static_cast<std::int64_t>(cls * list.size());
    list.clear();
  }
}

}  // namespace prunerec
