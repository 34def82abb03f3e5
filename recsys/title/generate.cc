#include "recsys/title/generate.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "base/error.h"
#include "nn/kv_cache.h"
#include "tensor/kernels/gemm.h"
#include "tensor/parallel.h"

namespace prunerec::recsys {
namespace {

constexpr std::int64_t kHeadBlock = 1024;  // vocabulary rows per fused-head block

// A live beam of one user.
struct Beam {
  std::int32_t user = 0;                // index into the batch's users
  std::int32_t node = 0;                // trie node reached
  double log_prob = 0;
  std::vector<std::int32_t> tokens;
};

struct Candidate {
  std::int32_t row = 0;    // parent beam's row
  std::int32_t token = 0;
  std::int32_t node = 0;
  double log_prob = 0;
};

// Left-padded i32 [B, T] of the rows.
Tensor pad_rows(const std::vector<std::vector<std::int32_t>>& rows) {
  std::size_t T = 1;
  for (const auto& r : rows) T = std::max(T, r.size());
  Tensor ids = Tensor::full({static_cast<std::int64_t>(rows.size()), static_cast<std::int64_t>(T)}, -1, DType::i32);
  for (std::size_t b = 0; b < rows.size(); ++b)
    std::copy(rows[b].begin(), rows[b].end(), ids.data<std::int32_t>() + b * T + (T - rows[b].size()));
  return ids;
}

double dot(const float* a, const float* b, std::int64_t n) {
  double s = 0;
  for (std::int64_t i = 0; i < n; ++i) s += static_cast<double>(a[i]) * b[i];
  return s;
}

// One batch of users.
void generate_batch(const nn::Transformer& net, const TitleTrie& trie, const Tensor& W,
                    const std::vector<std::vector<std::int32_t>>& prompts, const BeamOptions& o,
                    std::vector<std::vector<GeneratedTitle>>& out) {
  const auto U = static_cast<std::int32_t>(prompts.size());
  const std::int64_t d = net.hidden_size();
  nn::KVCache cache;
  Tensor h;
  std::vector<Beam> live(static_cast<std::size_t>(U));
  for (std::int32_t u = 0; u < U; ++u) live[static_cast<std::size_t>(u)].user = u;
  if (o.use_cache) {
    h = cache.prefill(net, pad_rows(prompts), o.max_new_tokens);
  } else {
    const Tensor ids = pad_rows(prompts);
    h = net.last_hidden(ids, nn::pads_from_ids(ids));
  }
  std::vector<std::vector<GeneratedTitle>> finished(static_cast<std::size_t>(U));
  for (int step = 0; step < o.max_new_tokens && !live.empty(); ++step) {
    // Log-probabilities of every allowed child of every live row.
    const Tensor lse = head_logsumexp(h, W);
    const auto R = static_cast<std::int64_t>(live.size());
    std::vector<std::vector<Candidate>> per_user(static_cast<std::size_t>(U));
    std::vector<std::vector<Candidate>> per_row(static_cast<std::size_t>(R));
    parallel_for(0, R, 4, [&](std::int64_t lo, std::int64_t hi) {
      for (std::int64_t r = lo; r < hi; ++r) {
        const Beam& beam = live[static_cast<std::size_t>(r)];
        const float* hr = h.data<float>() + r * d;
        for (const TitleTrie::Edge& e : trie.children(beam.node)) {
          const double logit = dot(hr, W.data<float>() + static_cast<std::int64_t>(e.token) * d, d);
          per_row[static_cast<std::size_t>(r)].push_back(
              {static_cast<std::int32_t>(r), e.token, e.node, beam.log_prob + logit - lse.data<float>()[r]});
        }
      }
    });
    for (std::int64_t r = 0; r < R; ++r)
      for (const Candidate& c : per_row[static_cast<std::size_t>(r)])
        per_user[static_cast<std::size_t>(live[static_cast<std::size_t>(r)].user)].push_back(c);

    std::vector<Beam> next;
    std::vector<std::int32_t> parents, next_tokens;
    const auto length = static_cast<double>(step + 1);
    for (std::int32_t u = 0; u < U; ++u) {
      auto& cands = per_user[static_cast<std::size_t>(u)];
      // Summed log-probability, then parent row and token: a fixed order for ties.
      std::stable_sort(cands.begin(), cands.end(),
                       [](const Candidate& a, const Candidate& b) { return a.log_prob > b.log_prob; });
      auto& done = finished[static_cast<std::size_t>(u)];
      int kept = 0;
      for (const Candidate& c : cands) {
        if (trie.terminal(c.node)) {
          GeneratedTitle g;
          g.node = c.node;
          g.tokens = live[static_cast<std::size_t>(c.row)].tokens;
          g.tokens.push_back(c.token);
          g.log_prob = c.log_prob;
          g.score = c.log_prob / std::pow(length, o.length_penalty);
          // Insert after every title with a score >= g's (earlier titles win ties), keep B.
          auto at = std::upper_bound(done.begin(), done.end(), g.score,
                                     [](double s, const GeneratedTitle& t) { return s > t.score; });
          if (at - done.begin() < o.beams) {
            done.insert(at, std::move(g));
            if (static_cast<int>(done.size()) > o.beams) done.pop_back();
          }
        } else if (kept < o.beams) {
          ++kept;
          Beam b;
          b.user = u;
          b.node = c.node;
          b.log_prob = c.log_prob;
          b.tokens = live[static_cast<std::size_t>(c.row)].tokens;
          b.tokens.push_back(c.token);
          next.push_back(std::move(b));
          parents.push_back(c.row);
          next_tokens.push_back(c.token);
        }
      }
    }
    // Users whose worst finished title no live beam can beat stop here (Note
    // [constrained beam search]: the bound is exact).
    std::vector<Beam> still;
    std::vector<std::int32_t> still_parents, still_tokens;
    for (std::size_t i = 0; i < next.size(); ++i) {
      const Beam& b = next[i];
      const auto& done = finished[static_cast<std::size_t>(b.user)];
      if (static_cast<int>(done.size()) == o.beams) {
        const double longest = static_cast<double>(b.tokens.size()) + trie.height(b.node);
        const double bound = b.log_prob / std::pow(longest, o.length_penalty);
        if (bound <= done.back().score) continue;
      }
      still.push_back(next[i]);
      still_parents.push_back(parents[i]);
      still_tokens.push_back(next_tokens[i]);
    }
    live = std::move(still);
    if (live.empty()) break;
    if (o.use_cache) {
      cache.reorder(still_parents);
      h = cache.step(net, Tensor::from_vector(still_tokens));
    } else {
      std::vector<std::vector<std::int32_t>> rows;
      for (const Beam& b : live) {
        rows.push_back(prompts[static_cast<std::size_t>(b.user)]);
        rows.back().insert(rows.back().end(), b.tokens.begin(), b.tokens.end());
      }
      const Tensor ids = pad_rows(rows);
      h = net.last_hidden(ids, nn::pads_from_ids(ids));
    }
  }
  for (std::int32_t u = 0; u < U; ++u) out[static_cast<std::size_t>(u)] = std::move(finished[static_cast<std::size_t>(u)]);
}

}  // namespace

Tensor head_logsumexp(const Tensor& h_in, const Tensor& W_in) {
  PR_CHECK(h_in.dim() == 2 && W_in.dim() == 2 && h_in.size(1) == W_in.size(1) && h_in.dtype() == DType::f32 &&
               W_in.dtype() == DType::f32,
           "head_logsumexp: h ", h_in.shape_str(), " and W ", W_in.shape_str(), " must be f32 [R, d] and [V, d]");
  const Tensor h = h_in.contiguous(), W = W_in.contiguous();
  const std::int64_t R = h.size(0), V = W.size(0), d = h.size(1);
  const std::int64_t blocks = (V + kHeadBlock - 1) / kHeadBlock;
  std::vector<float> block_max(static_cast<std::size_t>(blocks * R)), block_sum(static_cast<std::size_t>(blocks * R));
  parallel_for(0, blocks, 1, [&](std::int64_t lo, std::int64_t hi) {
    thread_local std::vector<float> logits;
    for (std::int64_t blk = lo; blk < hi; ++blk) {
      const std::int64_t v0 = blk * kHeadBlock, n = std::min(kHeadBlock, V - v0);
      logits.resize(static_cast<std::size_t>(R * n));
      kernels::gemm_serial<float>(false, true, R, n, d, 1.0f, h.data<float>(), d, W.data<float>() + v0 * d, d, 0.0f,
                                  logits.data(), n);
      for (std::int64_t r = 0; r < R; ++r) {
        const float* row = logits.data() + r * n;
        float m = -std::numeric_limits<float>::infinity();
        for (std::int64_t j = 0; j < n; ++j) m = std::max(m, row[j]);
        double s = 0;
        for (std::int64_t j = 0; j < n; ++j) s += std::exp(static_cast<double>(row[j] - m));
        block_max[static_cast<std::size_t>(blk * R + r)] = m;
        block_sum[static_cast<std::size_t>(blk * R + r)] = static_cast<float>(s);
      }
    }
  });
  Tensor out = Tensor::empty({R}, DType::f32);
  for (std::int64_t r = 0; r < R; ++r) {
    float m = -std::numeric_limits<float>::infinity();
    for (std::int64_t b = 0; b < blocks; ++b) m = std::max(m, block_max[static_cast<std::size_t>(b * R + r)]);
    double s = 0;
    for (std::int64_t b = 0; b < blocks; ++b)
      s += static_cast<double>(block_sum[static_cast<std::size_t>(b * R + r)]) *
           std::exp(static_cast<double>(block_max[static_cast<std::size_t>(b * R + r)] - m));
    out.data<float>()[r] = static_cast<float>(m + std::log(s));
  }
  return out;
}

Tensor head_log_softmax(const Tensor& h_in, const Tensor& W_in) {
  PR_CHECK(h_in.dim() == 2 && W_in.dim() == 2 && h_in.size(1) == W_in.size(1) && h_in.dtype() == DType::f32 &&
               W_in.dtype() == DType::f32,
           "head_log_softmax: h ", h_in.shape_str(), " and W ", W_in.shape_str(), " must be f32 [R, d] and [V, d]");
  const Tensor h = h_in.contiguous(), W = W_in.contiguous();
  const std::int64_t R = h.size(0), V = W.size(0), d = h.size(1);
  Tensor logits = Tensor::empty({R, V}, DType::f32);
  kernels::gemm<float>(false, true, R, V, d, 1.0f, h.data<float>(), d, W.data<float>(), d, 0.0f,
                       logits.data<float>(), V);
  parallel_for(0, R, 1, [&](std::int64_t lo, std::int64_t hi) {
    for (std::int64_t r = lo; r < hi; ++r) {
      float* row = logits.data<float>() + r * V;
      float m = -std::numeric_limits<float>::infinity();
      for (std::int64_t j = 0; j < V; ++j) m = std::max(m, row[j]);
      double s = 0;
      for (std::int64_t j = 0; j < V; ++j) s += std::exp(static_cast<double>(row[j] - m));
      const auto lse = static_cast<float>(m + std::log(s));
      for (std::int64_t j = 0; j < V; ++j) row[j] -= lse;
    }
  });
  return logits;
}

std::vector<std::vector<GeneratedTitle>> generate_titles(const nn::Transformer& net, const TitleTrie& trie,
                                                         const std::vector<std::vector<std::int32_t>>& prompts,
                                                         const BeamOptions& options) {
  PR_CHECK_T(ConfigError, options.beams > 0 && options.max_new_tokens > 0 && options.users_per_batch > 0 &&
                              options.length_penalty >= 0,
             "generate_titles: beams (", options.beams, "), max_new_tokens (", options.max_new_tokens,
             ") and users_per_batch (", options.users_per_batch, ") must be > 0 and length_penalty (",
             options.length_penalty, ") >= 0");
  PR_CHECK_T(ConfigError, net.dtype() == DType::f32, "generate_titles: the model must be f32");
  const std::int64_t context = net.config().max_len();
  for (std::size_t p = 0; p < prompts.size(); ++p) {
    PR_CHECK_T(ConfigError, !prompts[p].empty(), "generate_titles: prompt ", p, " is empty");
    for (std::int32_t t : prompts[p])
      PR_CHECK_T(ConfigError, t >= 0 && t < net.vocab_size(), "generate_titles: prompt ", p, " holds token ", t,
                 " outside the model's vocabulary of ", net.vocab_size());
    PR_CHECK_T(ConfigError,
               context <= 0 || static_cast<std::int64_t>(prompts[p].size()) + trie.height(trie.root()) <= context,
               "generate_titles: prompt ", p, " has ", prompts[p].size(), " tokens; with the longest title (",
               trie.height(trie.root()), " tokens) it exceeds the model's context of ", context);
  }
  const Tensor W = net.output_weight().value().contiguous();
  std::vector<std::vector<GeneratedTitle>> out(prompts.size());
  for (std::size_t lo = 0; lo < prompts.size(); lo += static_cast<std::size_t>(options.users_per_batch)) {
    const std::size_t hi = std::min(prompts.size(), lo + static_cast<std::size_t>(options.users_per_batch));
    std::vector<std::vector<std::int32_t>> batch(prompts.begin() + static_cast<std::ptrdiff_t>(lo),
                                                 prompts.begin() + static_cast<std::ptrdiff_t>(hi));
    std::vector<std::vector<GeneratedTitle>> part(batch.size());
    generate_batch(net, trie, W, batch, options, part);
    for (std::size_t i = 0; i < part.size(); ++i) out[lo + i] = std::move(part[i]);
  }
  return out;
}

}  // namespace prunerec::recsys
