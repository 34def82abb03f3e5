#include "recsys/eval/blocked_ranking.h"

#include <algorithm>
#include <cstring>
#include <mutex>

#include <chrono>
#include <numeric>

#include "base/error.h"
#include "tensor/parallel.h"

namespace prunerec::recsys {
namespace {

constexpr std::int64_t kItemBlock = 512;  // 512 x d f32 rows: 128 KiB at d = 64 (L2)
constexpr int kGroup = 4;                 // users scored together per item row

// Eight float lanes as a GCC/Clang vector: element-wise arithmetic, no reassociation, so a
// lane's sum is the same sequence of roundings wherever it is computed.
using Lanes = float __attribute__((vector_size(32)));
// GCC warns (-Wpsabi) that passing a 32-byte vector by value has a different ABI with and
// without AVX. Lanes never cross a translation unit (these helpers are internal and
// inlined), so no two builds ever disagree about a call; the warning is silenced here only.
#pragma GCC diagnostic ignored "-Wpsabi"


inline Lanes load8(const float* p) {
  Lanes v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

// The lanes (plus the width's tail, lane by lane) combined in a fixed tree.
inline float finish(Lanes acc, const float* h, const float* w, std::int64_t c, std::int64_t d) {
  float l[8];
  std::memcpy(l, &acc, sizeof l);
  for (int k = 0; c < d; ++c, ++k) l[k] += h[c] * w[c];
  return ((l[0] + l[4]) + (l[1] + l[5])) + ((l[2] + l[6]) + (l[3] + l[7]));
}

// Four users (rows of h, stride d) against one item row: four dot8 results, the same
// arithmetic per user as dot8 (Note [blocked ranking]).
inline void dot8x4(const float* h, const float* w, std::int64_t d, float* out) {
  Lanes a0{}, a1{}, a2{}, a3{};
  const float *h0 = h, *h1 = h + d, *h2 = h + 2 * d, *h3 = h + 3 * d;
  std::int64_t c = 0;
  for (; c + 8 <= d; c += 8) {
    const Lanes wl = load8(w + c);
    a0 += load8(h0 + c) * wl;
    a1 += load8(h1 + c) * wl;
    a2 += load8(h2 + c) * wl;
    a3 += load8(h3 + c) * wl;
  }
  out[0] = finish(a0, h0, w, c, d);
  out[1] = finish(a1, h1, w, c, d);
  out[2] = finish(a2, h2, w, c, d);
  out[3] = finish(a3, h3, w, c, d);
}

struct Scored {
  float score;
  std::int32_t item;
};
// a ranks before b: higher score, then lower index.
inline bool before(const Scored& a, const Scored& b) {
  return a.score > b.score || (a.score == b.score && a.item < b.item);
}

// Running top-k: a heap whose front is the worst kept item.
class RunningTopK {
 public:
  explicit RunningTopK(int k) : k_(k) { heap_.reserve(static_cast<std::size_t>(k)); }
  void offer(float score, std::int32_t item) {
    if (score != score) return;  // NaN: never recommended
    const Scored s{score, item};
    if (static_cast<int>(heap_.size()) < k_) {
      heap_.push_back(s);
      std::push_heap(heap_.begin(), heap_.end(), before);
    } else if (before(s, heap_.front())) {
      std::pop_heap(heap_.begin(), heap_.end(), before);
      heap_.back() = s;
      std::push_heap(heap_.begin(), heap_.end(), before);
    }
  }
  void merge(const RunningTopK& other) {
    for (const Scored& s : other.heap_) offer(s.score, s.item);
  }
  TopK sorted() const {
    std::vector<Scored> v = heap_;
    std::sort(v.begin(), v.end(), before);
    TopK out;
    for (const Scored& s : v) {
      out.items.push_back(s.item);
      out.scores.push_back(s.score);
    }
    return out;
  }

 private:
  int k_;
  std::vector<Scored> heap_;
};

// h as f32, padded with zero rows to a multiple of kGroup.
std::vector<float> padded_users(const Tensor& h, std::int64_t d) {
  PR_CHECK(h.defined() && h.dim() == 2 && h.size(1) == d && is_floating(h.dtype()), "blocked ranking: h ",
           h.defined() ? h.shape_str() : "undefined", " must be floating [B, ", d, "]");
  const Tensor hf = h.to(DType::f32).contiguous();
  const std::int64_t B = h.size(0), padded = (B + kGroup - 1) / kGroup * kGroup;
  std::vector<float> out(static_cast<std::size_t>(padded * d), 0.0f);
  std::copy(hf.data<float>(), hf.data<float>() + B * d, out.begin());
  return out;
}

std::vector<std::vector<std::int32_t>> sorted_exclusions(const std::vector<std::vector<std::int32_t>>& excluded,
                                                         std::int64_t B, std::int64_t V) {
  PR_CHECK(excluded.empty() || static_cast<std::int64_t>(excluded.size()) == B, "blocked ranking: ", excluded.size(),
           " exclusion lists for ", B, " users");
  std::vector<std::vector<std::int32_t>> out(static_cast<std::size_t>(B));
  for (std::size_t b = 0; b < excluded.size(); ++b) {
    out[b] = excluded[b];
    for (std::int32_t j : out[b])
      PR_CHECK(j >= 0 && j < V, "blocked ranking: excluded item ", j, " of user ", b, " is out of range for ", V, " items");
    std::sort(out[b].begin(), out[b].end());
    out[b].erase(std::unique(out[b].begin(), out[b].end()), out[b].end());
  }
  return out;
}

// Calls visit(b, j, score) for every user b < B and item j in [j0, j1), users in groups
// of four; `w` holds rows j0..j1 as f32.
template <class Visit>
void score_block(const std::vector<float>& hp, std::int64_t B, std::int64_t d, const float* w, std::int64_t j0,
                 std::int64_t j1, Visit&& visit) {
  float s[kGroup];
  const std::int64_t full = B / kGroup * kGroup;
  for (std::int64_t g = 0; g < full; g += kGroup) {
    const float* hg = hp.data() + g * d;
    for (std::int64_t j = j0; j < j1; ++j) {
      dot8x4(hg, w + (j - j0) * d, d, s);
      for (int u = 0; u < kGroup; ++u) visit(g + u, j, s[u]);
    }
  }
  // The last B % 4 users one by one: dot8 has the same per-user arithmetic as dot8x4
  // (the tests compare blocked results with dot8 scores bit for bit).
  for (std::int64_t b = full; b < B; ++b)
    for (std::int64_t j = j0; j < j1; ++j) visit(b, j, dot8(hp.data() + b * d, w + (j - j0) * d, d));
}

}  // namespace

std::uint16_t f32_to_bf16(float x) {
  std::uint32_t u;
  std::memcpy(&u, &x, sizeof u);
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<std::uint16_t>((u >> 16) | 0x40);  // NaN stays NaN
  u += 0x7fffu + ((u >> 16) & 1u);  // round to nearest, ties to even
  return static_cast<std::uint16_t>(u >> 16);
}

float bf16_to_f32(std::uint16_t x) {
  const std::uint32_t u = static_cast<std::uint32_t>(x) << 16;
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
}

float dot8(const float* h, const float* w, std::int64_t d) {
  Lanes a{};
  std::int64_t c = 0;
  for (; c + 8 <= d; c += 8) a += load8(h + c) * load8(w + c);
  return finish(a, h, w, c, d);
}

ServingTable::ServingTable(const Tensor& weight, TableFormat format) : format_(format) {
  PR_CHECK(weight.defined() && weight.dim() == 2 && is_floating(weight.dtype()), "serving table: weight ",
           weight.defined() ? weight.shape_str() : "undefined", " must be floating [V, d]");
  items_ = weight.size(0);
  dim_ = weight.size(1);
  const Tensor w = weight.to(DType::f32).contiguous();
  const float* p = w.data<float>();
  if (format == TableFormat::kF32) {
    f32_ = w;
  } else {
    bf16_.resize(static_cast<std::size_t>(w.numel()));
    for (std::int64_t i = 0; i < w.numel(); ++i) bf16_[i] = f32_to_bf16(p[i]);
  }
}

std::int64_t ServingTable::bytes() const {
  return format_ == TableFormat::kF32 ? f32_.numel() * static_cast<std::int64_t>(sizeof(float))
                                      : static_cast<std::int64_t>(bf16_.size() * sizeof(std::uint16_t));
}

void ServingTable::rows_f32(std::int64_t j0, std::int64_t j1, float* out) const {
  const std::int64_t n = (j1 - j0) * dim_;
  if (format_ == TableFormat::kF32) {
    std::memcpy(out, f32_.data<float>() + j0 * dim_, static_cast<std::size_t>(n) * sizeof(float));
  } else {
    // Widen eight at a time: bf16 is the high half of an f32 (exact).
    using Half8 = std::uint16_t __attribute__((vector_size(16)));
    using Word8 = std::uint32_t __attribute__((vector_size(32)));
    const std::uint16_t* src = bf16_.data() + j0 * dim_;
    std::int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
      Half8 h;
      std::memcpy(&h, src + i, sizeof h);
      const Word8 w = __builtin_convertvector(h, Word8) << 16;
      std::memcpy(out + i, &w, sizeof w);
    }
    for (; i < n; ++i) out[i] = bf16_to_f32(src[i]);
  }
}

std::vector<TopK> blocked_top_k(const Tensor& h, const ServingTable& table, int k,
                                const std::vector<std::vector<std::int32_t>>& excluded) {
  PR_CHECK_T(ConfigError, k > 0, "blocked_top_k: k must be positive, got ", k);
  const std::int64_t d = table.dim(), V = table.items();
  const std::vector<float> hp = padded_users(h, d);
  const std::int64_t B = h.size(0);
  const auto ex = sorted_exclusions(excluded, B, V);
  std::vector<RunningTopK> best(static_cast<std::size_t>(B), RunningTopK(k));
  std::mutex merge_mutex;
  const std::int64_t blocks = (V + kItemBlock - 1) / kItemBlock;
  // Item blocks in parallel, each task with its own running lists; merging is exact in any
  // order because the order of items is total (score, then index).
  parallel_for(0, blocks, 1, [&](std::int64_t lo, std::int64_t hi) {
    std::vector<RunningTopK> local(static_cast<std::size_t>(B), RunningTopK(k));
    std::vector<float> w(static_cast<std::size_t>(kItemBlock * d));
    std::vector<std::size_t> cursor(static_cast<std::size_t>(B));
    const std::int64_t first = lo * kItemBlock;
    for (std::int64_t b = 0; b < B; ++b)
      cursor[b] = static_cast<std::size_t>(std::lower_bound(ex[b].begin(), ex[b].end(), first) - ex[b].begin());
    for (std::int64_t blk = lo; blk < hi; ++blk) {
      const std::int64_t j0 = blk * kItemBlock, j1 = std::min(V, j0 + kItemBlock);
      table.rows_f32(j0, j1, w.data());
      score_block(hp, B, d, w.data(), j0, j1, [&](std::int64_t b, std::int64_t j, float s) {
        const auto& e = ex[b];
        std::size_t& c = cursor[b];
        while (c < e.size() && e[c] < j) ++c;
        if (c < e.size() && e[c] == j) return;
        local[b].offer(s, static_cast<std::int32_t>(j));
      });
    }
    std::lock_guard<std::mutex> lock(merge_mutex);
    for (std::int64_t b = 0; b < B; ++b) best[b].merge(local[b]);
  });
  std::vector<TopK> out;
  out.reserve(static_cast<std::size_t>(B));
  for (const RunningTopK& r : best) out.push_back(r.sorted());
  return out;
}

std::vector<std::int64_t> blocked_target_ranks(const Tensor& h, const ServingTable& table,
                                               std::span<const std::int32_t> targets,
                                               const std::vector<std::vector<std::int32_t>>& excluded) {
  const std::int64_t d = table.dim(), V = table.items();
  const std::vector<float> hp = padded_users(h, d);
  const std::int64_t B = h.size(0);
  PR_CHECK(static_cast<std::int64_t>(targets.size()) == B, "blocked_target_ranks: ", targets.size(), " targets for ", B,
           " users");
  const auto ex = sorted_exclusions(excluded, B, V);
  // The target's own score, through the same dot (Note [blocked ranking]).
  std::vector<float> target_score(static_cast<std::size_t>(B)), row(static_cast<std::size_t>(d));
  for (std::int64_t b = 0; b < B; ++b) {
    PR_CHECK(targets[b] >= 0 && targets[b] < V, "blocked_target_ranks: target ", targets[b], " of user ", b,
             " is out of range for ", V, " items");
    table.rows_f32(targets[b], targets[b] + 1, row.data());
    float s[kGroup];
    std::vector<float> group(static_cast<std::size_t>(kGroup * d), 0.0f);
    std::copy(hp.begin() + b * d, hp.begin() + (b + 1) * d, group.begin());
    dot8x4(group.data(), row.data(), d, s);
    target_score[b] = s[0];
  }
  std::vector<std::int64_t> ranks(static_cast<std::size_t>(B), 0);
  std::mutex merge_mutex;
  const std::int64_t blocks = (V + kItemBlock - 1) / kItemBlock;
  parallel_for(0, blocks, 1, [&](std::int64_t lo, std::int64_t hi) {
    std::vector<std::int64_t> local(static_cast<std::size_t>(B), 0);
    std::vector<float> w(static_cast<std::size_t>(kItemBlock * d));
    std::vector<std::size_t> cursor(static_cast<std::size_t>(B));
    const std::int64_t first = lo * kItemBlock;
    for (std::int64_t b = 0; b < B; ++b)
      cursor[b] = static_cast<std::size_t>(std::lower_bound(ex[b].begin(), ex[b].end(), first) - ex[b].begin());
    for (std::int64_t blk = lo; blk < hi; ++blk) {
      const std::int64_t j0 = blk * kItemBlock, j1 = std::min(V, j0 + kItemBlock);
      table.rows_f32(j0, j1, w.data());
      score_block(hp, B, d, w.data(), j0, j1, [&](std::int64_t b, std::int64_t j, float s) {
        if (j == targets[b] || s < target_score[b]) return;  // !(s < s_t): ties and NaN count
        const auto& e = ex[b];
        std::size_t& c = cursor[b];
        while (c < e.size() && e[c] < j) ++c;
        if (c < e.size() && e[c] == j) return;
        ++local[b];
      });
    }
    std::lock_guard<std::mutex> lock(merge_mutex);
    for (std::int64_t b = 0; b < B; ++b) ranks[b] += local[b];
  });
  return ranks;
}

EvalResult evaluate_blocked(const nn::Transformer& net, const SequenceDataset& data, const DataSplit& split,
                            const EvalOptions& options, Progress* progress) {
  const auto t0 = std::chrono::steady_clock::now();
  Protocol protocol = options.protocol;
  protocol.split_kind = split.kind;
  validate(protocol);
  PR_CHECK_T(ConfigError, protocol.ranking != "sampled", "evaluate: blocked ranking is for full ranking only");
  PR_CHECK_T(ConfigError, protocol.split == "valid" || protocol.split == "test", "evaluate: split must be valid or test, got '",
             protocol.split, "'");
  PR_CHECK_T(ConfigError, net.vocab_size() == split.num_items, "evaluate: model scores ", net.vocab_size(),
             " items but the data has ", split.num_items);
  const std::vector<EvalExample>& all = protocol.split == "valid" ? split.valid : split.test;
  const std::int64_t n = options.limit > 0 ? std::min<std::int64_t>(options.limit, all.size()) : all.size();
  PR_CHECK_T(ConfigError, n > 0, "evaluate: the ", protocol.split, " split has no examples");
  PR_CHECK_T(ConfigError, options.batch_size > 0 && options.max_len > 0, "evaluate: batch_size and max_len must be positive");
  // The same batching by history length as evaluate().
  std::vector<std::int64_t> order(static_cast<std::size_t>(n));
  std::iota(order.begin(), order.end(), 0);
  auto len = [&](std::int64_t i) { return std::min<std::int64_t>(options.max_len, all[i].prefix_len); };
  std::stable_sort(order.begin(), order.end(), [&](std::int64_t a, std::int64_t b) { return len(a) < len(b); });
  const ServingTable table(net.output_weight().value(), TableFormat::kF32);
  std::vector<std::int64_t> ranks(static_cast<std::size_t>(n), 0);
  Communicator& comm = options.comm ? *options.comm : world();  // Note [data-parallel evaluation]
  for (std::int64_t b0 = 0; b0 < n; b0 += options.batch_size) {
    if ((b0 / options.batch_size) % comm.size() != comm.rank()) continue;
    const std::vector<std::int64_t> rows(order.begin() + b0, order.begin() + std::min<std::int64_t>(n, b0 + options.batch_size));
    const Batch batch = make_eval_batch(data, all, rows, options.max_len);
    Tensor h;
    {
      ag::NoGradGuard no_grad;
      h = net.last_hidden(batch.ids, batch.pads);
    }
    std::vector<std::int32_t> targets;
    std::vector<std::vector<std::int32_t>> histories(rows.size());
    for (std::size_t r = 0; r < rows.size(); ++r) {
      const EvalExample& e = all[rows[r]];
      targets.push_back(e.target);
      if (protocol.exclude_history) {
        const auto& seq = data.sequences[e.user];
        histories[r].assign(seq.begin(), seq.begin() + e.prefix_len);
      }
    }
    const std::vector<std::int64_t> batch_ranks = blocked_target_ranks(h, table, targets, histories);
    for (std::size_t r = 0; r < rows.size(); ++r) ranks[rows[r]] = batch_ranks[r];
    if (progress) progress->update(b0 + static_cast<std::int64_t>(rows.size()), "");
  }
  if (comm.size() > 1) comm.allreduce_sum(ranks.data(), n);
  MetricAccumulator acc;
  for (std::int64_t r : ranks) acc.add(r);
  EvalResult result;
  result.protocol = protocol;
  result.metrics = acc.result();
  result.num_examples = n;
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return result;
}

}  // namespace prunerec::recsys
