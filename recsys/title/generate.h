// Title generation: a beam search constrained by the title trie, so every answer is a
// catalogue title, with a KV cache so each new token costs one position's work plus
// attention over the prefix.
//
//   prompts [U] token lists -> prefill the KV cache, one row per user     h [U, d]
//   per step: rows = the live beams of every user of the batch            h [R, d]
//     lse[r]      = logsumexp_v (h[r] . W[v])       fused head pass, no [R, V] logits kept
//     logp[r, c]  = h[r] . W[c] - lse[r]            only for the trie's children c of row r
//     per user: candidates (beam, child) by summed log-probability; an EOS child finishes a
//       title (score = sum / length^length_penalty); the best B others live on
//     cache.reorder(parents); cache.step(next tokens)
//   -> per user, the B best finished titles by score, each with its items
//
// Note [constrained beam search]: the search follows Hugging Face's beam search as D3's
// evaluation runs it (spec 2.6: B beams, B returned, length_penalty 1.0, at most 64 new
// tokens, disallowed tokens never chosen), with two differences that only make it more
// exhaustive. (1) Every candidate that ends a title is offered to the finished list (HF
// offers only EOS candidates ranked within the top B of its 2B candidates). (2) The search
// of a user stops when B titles are finished and no live beam can still beat the worst
// of them: with log-probabilities <= 0 and a length penalty p >= 0, a beam with summed
// log-probability s at depth n that can reach at most depth n + trie.height(node) ends
// with a score <= s / (n + height)^p, an exact bound (HF's early stopping heuristic
// uses s / n^p). Length = generated tokens, EOS included. Consequence: when B is at least
// the number of titles, no prefix is ever dropped, and the result is exactly the
// catalogue's titles sorted by score (tests/recsys/title_test.cc checks it against
// scoring every title with full forward passes).
//
// Note [fused head logsumexp]: a constrained step needs the log-probability of the few
// tokens the trie allows, but the normaliser is over the whole vocabulary. The head is
// computed in blocks of 1,024 vocabulary rows; each block's logits [R, 1024] live in a
// per-thread buffer just long enough to fold them into a per-(block, row) max and sum of
// exponentials, and the blocks are combined in block order (bits independent of the thread
// count). The FLOPs are the full head's (R x V x d): the normaliser is exact; what is saved
// is writing and re-reading the [R, V] logits (the full-head path materialises them, then
// takes a log-softmax). bench/bench_title.cc measures both.
#pragma once

#include <cstdint>
#include <vector>

#include "nn/transformer.h"
#include "recsys/title/trie.h"

namespace prunerec::recsys {

struct BeamOptions {
  int beams = 20;               // B: beams kept and titles returned
  int max_new_tokens = 64;
  double length_penalty = 1.0;  // score = sum of log-probabilities / length^length_penalty
  int users_per_batch = 8;      // users decoded together (their beams share one cache)
  bool use_cache = true;        // false: recompute the whole sequence every step (tests)
};

struct GeneratedTitle {
  std::int32_t node = 0;                // the trie's terminal node
  std::vector<std::int32_t> tokens;     // generated tokens, EOS last
  double log_prob = 0;                  // sum of the tokens' log-probabilities
  double score = 0;                     // log_prob / tokens.size()^length_penalty
};

// Per prompt (token ids, non-empty), up to B generated titles, best score first. Items of
// a title: trie.items(title.node). ConfigError for an empty prompt, a prompt that leaves no
// room for the longest title in the model's context, or bad options.
std::vector<std::vector<GeneratedTitle>> generate_titles(const nn::Transformer& net, const TitleTrie& trie,
                                                         const std::vector<std::vector<std::int32_t>>& prompts,
                                                         const BeamOptions& options);

// Note [fused head logsumexp]: lse[r] = log sum_v exp(h[r] . W[v]). h f32 [R, d], W f32 [V, d].
Tensor head_logsumexp(const Tensor& h, const Tensor& W);  // -> f32 [R]
// The plain path it replaces: logits [R, V] materialised, then a log-softmax.
Tensor head_log_softmax(const Tensor& h, const Tensor& W);  // -> f32 [R, V]

}  // namespace prunerec::recsys
