// Embedding lookups: rows of a [V, d] table gathered by index, and the scatter-add back.
#pragma once

#include <cstdint>

namespace prunerec::kernels {

// out[i,:] = table[ids[i],:], or zeros where ids[i] < 0 (padding).  ids: n, out: [n, d]
template <class T>
void embedding_gather(std::int64_t n, std::int64_t d, const T* table, const std::int32_t* ids, T* out);

// dtable[ids[i],:] += dout[i,:] for ids[i] >= 0. Deterministic: the table rows are split
// into fixed ranges, each owned by one task that scans all ids in order.
template <class T>
void embedding_scatter_add(std::int64_t n, std::int64_t d, std::int64_t V, const std::int32_t* ids, const T* dout,
                           T* dtable);

}  // namespace prunerec::kernels
