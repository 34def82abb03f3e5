// The score kernels of recsys/eval/blocked_ranking.h (Note [blocked ranking], Note [item
// dot]), included twice by blocked_ranking.cc: into kernels::baseline and, compiled for
// AVX2 + FMA, into kernels::avx2 (Note [kernel dispatch] in tensor/kernels/isa.h). Both
// copies do the same IEEE operations in the same order (-ffp-contract=off, Note [kernel
// math flags] in tensor/kernels/math.h), so they give the same bits. No include guard, no
// includes; everything sits in namespace `ranking` of the copy, so no name here can meet
// a tensor kernel's at link time.
namespace ranking {

// Eight float lanes as a GCC/Clang vector: element-wise arithmetic, no reassociation, so a
// lane's sum is the same sequence of roundings wherever it is computed.
using Lanes = float __attribute__((vector_size(32)));
using Half8 = std::uint16_t __attribute__((vector_size(16)));
using Word8 = std::uint32_t __attribute__((vector_size(32)));

inline Lanes load8(const float* p) {
  Lanes v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

// Eight bf16 values widened to f32: bf16 is the high half of an f32, so this is exact.
inline Lanes load8(const std::uint16_t* p) {
  Half8 half;
  std::memcpy(&half, p, sizeof half);
  const Word8 word = __builtin_convertvector(half, Word8) << 16;
  Lanes v;
  std::memcpy(&v, &word, sizeof v);
  return v;
}

inline float widen(float x) { return x; }
inline float widen(std::uint16_t x) { return recsys::bf16_to_f32(x); }

// The lanes (plus the width's tail, lane by lane) combined in a fixed tree.
template <class W>
inline float finish(Lanes acc, const float* h, const W* w, std::int64_t c, std::int64_t d) {
  float l[8];
  std::memcpy(l, &acc, sizeof l);
  for (int k = 0; c < d; ++c, ++k) l[k] += h[c] * widen(w[c]);
  return ((l[0] + l[4]) + (l[1] + l[5])) + ((l[2] + l[6]) + (l[3] + l[7]));
}

// The score of Note [blocked ranking]: h f32 [d] . w [d] (f32, or bf16 widened).
template <class W>
inline float dot8(const float* h, const W* w, std::int64_t d) {
  Lanes a{};
  std::int64_t c = 0;
  for (; c + 8 <= d; c += 8) a += load8(h + c) * load8(w + c);
  return finish(a, h, w, c, d);
}

// Eight rows' lanes (no width tail) combined by finish's tree, all eight at once: lane k
// of the result is ((l0 + l4) + (l1 + l5)) + ((l2 + l6) + (l3 + l7)) of a[k], the same
// three levels of additions as finish (an addition's operand order does not change its
// result), done as vector additions of shuffled lanes instead of 8 x 7 scalar ones.
inline Lanes finish8(const Lanes* a) {
  // Level 1, t_k = l_k + l_(k+4): rows (r, r + 4) share a vector, r in the low half.
  Lanes t[4];
  for (int r = 0; r < 4; ++r)
    t[r] = __builtin_shufflevector(a[r], a[r + 4], 0, 1, 2, 3, 8, 9, 10, 11) +
           __builtin_shufflevector(a[r], a[r + 4], 4, 5, 6, 7, 12, 13, 14, 15);
  // Level 2, t0 + t1 and t2 + t3: rows (0, 1 | 4, 5) and (2, 3 | 6, 7).
  const Lanes u01 = __builtin_shufflevector(t[0], t[1], 0, 2, 8, 10, 4, 6, 12, 14) +
                    __builtin_shufflevector(t[0], t[1], 1, 3, 9, 11, 5, 7, 13, 15);
  const Lanes u23 = __builtin_shufflevector(t[2], t[3], 0, 2, 8, 10, 4, 6, 12, 14) +
                    __builtin_shufflevector(t[2], t[3], 1, 3, 9, 11, 5, 7, 13, 15);
  // Level 3, (t0 + t1) + (t2 + t3): rows 0..3 | 4..7, in order.
  return __builtin_shufflevector(u01, u23, 0, 2, 8, 10, 4, 6, 12, 14) +
         __builtin_shufflevector(u01, u23, 1, 3, 9, 11, 5, 7, 13, 15);
}

// Note [item dot]: one user against n rows, eight rows per pass over the user's vector.
// Each chunk of eight of h is loaded once and multiplied into eight rows' accumulators
// (eight vector registers), so a row costs one load, one multiply and one add per chunk
// and the loop carries eight independent sums instead of one. Row r's accumulator sees
// exactly dot8's sequence of operations (chunk by chunk, then finish's tree; finish8 when
// d is a multiple of 8, which sums the eight trees as vectors), so every score is bit for
// bit dot8(h, row) (tests/recsys/blocked_ranking_test.cc, ItemDot.*). The last
// n % 8 rows go through dot8 itself.
template <class W>
void item_dot(const float* h, const W* w, std::int64_t n, std::int64_t d, float* out) {
  constexpr int kRows = 8;
  std::int64_t i = 0;
  for (; i + kRows <= n; i += kRows) {
    const W* rows = w + i * d;
    Lanes a[kRows] = {};
    std::int64_t c = 0;
    for (; c + 8 <= d; c += 8) {
      const Lanes hc = load8(h + c);
      for (int r = 0; r < kRows; ++r) a[r] += hc * load8(rows + r * d + c);
    }
    if (c == d) {
      const Lanes sums = finish8(a);
      std::memcpy(out + i, &sums, sizeof sums);
    } else {
      for (int r = 0; r < kRows; ++r) out[i + r] = finish(a[r], h, rows + r * d, c, d);
    }
  }
  for (; i < n; ++i) out[i] = dot8(h, w + i * d, d);
}

// n bf16 values widened to f32, eight at a time.
inline void widen_bf16(const std::uint16_t* src, std::int64_t n, float* out) {
  std::int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const Lanes v = load8(src + i);
    std::memcpy(out + i, &v, sizeof v);
  }
  for (; i < n; ++i) out[i] = recsys::bf16_to_f32(src[i]);
}

}  // namespace ranking
