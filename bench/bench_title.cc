// Title-mode generation (recsys/title/generate.h): the output layer of one constrained
// step, the cost of one generated token against the prefix length, and users per second
// of the whole beam search at B = 20.
//
//   build/bench/bench_title                                   # everything, ~1-2 min
//   build/bench/bench_title --benchmark_filter='head/'
//
// Shapes:
//   paper  the paper's final pruned shape on Qwen2-0.5B's vocabulary: 4 layers, width 448,
//          7 heads of 64 sharing 1 KV head, MLP 448, V = 151,936, tied head
//          (../shared/reference/torch_llm_forward.py --layers 4 --width 448 --mlp 448
//          --heads 7 --kv-heads 1)
//   small  a from-scratch title model: 2 layers, width 64, heads 2 x 32 (1 KV), MLP 128,
//          V = 4,000 SentencePiece pieces
// Benchmarks:
//   head/<shape>/fused   head_logsumexp over R = 20 beam rows (Note [fused head logsumexp])
//   head/<shape>/full    head_log_softmax: the [20, V] logits materialised, then log-softmax
//   token/<shape>/cached/<prefix>     one KVCache::step of 20 rows after a prefix of that length
//   token/<shape>/recompute/<prefix>  last_hidden over the whole sequence instead (no cache)
//   attention/<shape>/<prefix>        the part of a cached step that must grow with the
//                                     prefix: ag::attention_cached of every layer, 20 rows
//   generate/<shape>     generate_titles, 20 beams, 4 users a batch, 8 users with prompts of
//                        150 tokens, over a trie of 2,000 random titles (5-12 tokens);
//                        counter users/s. Also at qwen2-0.5b, the teacher whose final
//                        pruned shape is `paper` (generate/ alone: about a minute):
//                          build/bench/bench_title --benchmark_filter='generate/'
// Random weights: speed does not depend on what the model learned, except through how many
// beams survive, which random titles of similar scores keep at the maximum (a worst case).
#include <benchmark/benchmark.h>

#include "bench/bench_main.h"

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "autograd/ops.h"
#include "nn/kv_cache.h"
#include "nn/transformer.h"
#include "recsys/title/generate.h"
#include "tensor/parallel.h"
#include "tensor/rng.h"

namespace prunerec::recsys {
namespace {

struct Shape {
  const char* name;
  int layers, hidden, heads, kv_heads, head_dim, mlp;
  std::int32_t vocab;
};
constexpr Shape kPaper{"paper", 4, 448, 7, 1, 64, 448, 151936};
constexpr Shape kSmall{"small", 2, 64, 2, 1, 32, 128, 4000};
// The paper's teacher, Qwen2-0.5B (24 layers, width 896, 14 heads of 64 sharing 2 KV heads,
// MLP 4864, tied head): generate/ only, beside generate/paper, its final pruned shape.
constexpr Shape kQwen05b{"qwen2-0.5b", 24, 896, 14, 2, 64, 4864, 151936};

const nn::Transformer& model(const Shape& s) {
  static std::map<std::string, std::unique_ptr<nn::Transformer>> models;
  auto& slot = models[s.name];
  if (!slot) {
    pb::ModelConfig c;
    c.set_name(s.name);
    c.set_vocab_size(s.vocab);
    c.set_hidden(s.hidden);
    c.set_head_dim(s.head_dim);
    c.set_max_len(2048);
    c.set_num_layers(s.layers);
    c.mutable_layer_defaults()->set_num_heads(s.heads);
    c.mutable_layer_defaults()->set_num_kv_heads(s.kv_heads);
    c.mutable_layer_defaults()->set_mlp_width(s.mlp);
    slot = std::make_unique<nn::Transformer>(c, DType::f32, 1);
  }
  return *slot;
}

constexpr std::int64_t kBeams = 20;

void head(benchmark::State& state, const Shape& s, bool fused) {
  const nn::Transformer& net = model(s);
  Tensor h = Tensor::empty({kBeams, s.hidden});
  fill_normal(h, 0, 1, 2, 0);
  const Tensor W = net.output_weight().value();
  for (auto _ : state) {
    Tensor out = fused ? head_logsumexp(h, W) : head_log_softmax(h, W);
    benchmark::DoNotOptimize(out.data<float>());
  }
  state.counters["FLOP/s"] = benchmark::Counter(2.0 * kBeams * s.vocab * s.hidden, benchmark::Counter::kIsIterationInvariantRate);
}

std::vector<std::int32_t> random_ids(std::int64_t n, std::int32_t vocab, std::uint64_t seed) {
  Rng rng(seed, 0);
  std::vector<std::int32_t> ids(static_cast<std::size_t>(n));
  for (auto& id : ids) id = static_cast<std::int32_t>(rng.below(static_cast<std::uint64_t>(vocab)));
  return ids;
}

void token(benchmark::State& state, const Shape& s, bool cached) {
  const nn::Transformer& net = model(s);
  const std::int64_t prefix = state.range(0);
  const Tensor ids = Tensor::from_vector(random_ids(kBeams * prefix, s.vocab, 3), {kBeams, prefix});
  const Tensor next = Tensor::from_vector(random_ids(kBeams, s.vocab, 4));
  nn::KVCache cache;
  if (cached) cache.prefill(net, ids);
  const Tensor pads = Tensor::zeros({kBeams}, DType::i32);
  for (auto _ : state) {
    if (cached) {
      state.PauseTiming();
      nn::KVCache c = cache;  // the same prefix every iteration
      state.ResumeTiming();
      Tensor h = c.step(net, next);
      benchmark::DoNotOptimize(h.data<float>());
    } else {
      Tensor h = net.last_hidden(ids, pads);
      benchmark::DoNotOptimize(h.data<float>());
    }
  }
}

void attention(benchmark::State& state, const Shape& s) {
  const nn::Transformer& net = model(s);
  const std::int64_t length = state.range(0) + 1, kv_width = s.kv_heads * s.head_dim;
  Tensor k = Tensor::empty({kBeams, length, kv_width}), v = Tensor::empty({kBeams, length, kv_width});
  Tensor q = Tensor::empty({kBeams, s.heads * s.head_dim});
  fill_normal(k, 0, 1, 5, 0);
  fill_normal(v, 0, 1, 6, 0);
  fill_normal(q, 0, 1, 7, 0);
  Tensor rows = Tensor::empty({kBeams, length}, DType::i32);
  for (std::int64_t b = 0; b < kBeams; ++b)
    for (std::int64_t j = 0; j < length; ++j) rows.data<std::int32_t>()[b * length + j] = static_cast<std::int32_t>(b);
  ag::NoGradGuard no_grad;
  for (auto _ : state)
    for (int l = 0; l < s.layers; ++l) {
      const nn::Attention& a = net.block(l).attn();
      ag::AttentionArgs args;
      args.head_dim = a.head_dim();
      args.rope_theta = a.rope_theta();
      args.pads = Tensor::zeros({kBeams}, DType::i32);
      args.kv_map = a.kv_map();
      Tensor out = ag::attention_cached(ag::Var(q), k, v, rows, length, args).value();
      benchmark::DoNotOptimize(out.data<float>());
    }
}

void generate(benchmark::State& state, const Shape& s) {
  const nn::Transformer& net = model(s);
  TitleTable table;
  table.eos = 2;
  Rng rng(9, 0);
  for (int t = 0; t < 2000; ++t) {
    std::vector<std::int32_t> title;
    const auto len = 5 + rng.below(8);
    for (std::uint64_t k = 0; k < len; ++k) title.push_back(static_cast<std::int32_t>(3 + rng.below(static_cast<std::uint64_t>(s.vocab - 3))));
    title.push_back(2);
    table.longest = std::max(table.longest, title.size());
    table.tokens.push_back(title);
  }
  const TitleTrie trie(table);
  const int users = 8;
  std::vector<std::vector<std::int32_t>> prompts;
  for (int u = 0; u < users; ++u) prompts.push_back(random_ids(150, s.vocab, 20 + u));
  BeamOptions o;
  o.beams = kBeams;
  o.users_per_batch = 4;
  for (auto _ : state) {
    auto out = generate_titles(net, trie, prompts, o);
    benchmark::DoNotOptimize(out.data());
  }
  state.counters["users/s"] = benchmark::Counter(users, benchmark::Counter::kIsIterationInvariantRate);
}

void register_all() {
  for (const Shape* s : {&kSmall, &kPaper}) {
    const std::string n = s->name;
    benchmark::RegisterBenchmark(("head/" + n + "/fused").c_str(), [s](benchmark::State& st) { head(st, *s, true); })
        ->UseRealTime()->Unit(benchmark::kMillisecond);
    benchmark::RegisterBenchmark(("head/" + n + "/full").c_str(), [s](benchmark::State& st) { head(st, *s, false); })
        ->UseRealTime()->Unit(benchmark::kMillisecond);
    for (bool cached : {true, false})
      benchmark::RegisterBenchmark(("token/" + n + (cached ? "/cached" : "/recompute")).c_str(),
                                   [s, cached](benchmark::State& st) { token(st, *s, cached); })
          ->Arg(64)->Arg(256)->Arg(1024)->UseRealTime()->Unit(benchmark::kMillisecond);
    benchmark::RegisterBenchmark(("attention/" + n).c_str(), [s](benchmark::State& st) { attention(st, *s); })
        ->Arg(64)->Arg(256)->Arg(1024)->UseRealTime()->Unit(benchmark::kMillisecond);
    benchmark::RegisterBenchmark(("generate/" + n).c_str(), [s](benchmark::State& st) { generate(st, *s); })
        ->UseRealTime()->Unit(benchmark::kMillisecond)->Iterations(s->vocab > 10000 ? 1 : 3);
  }
  benchmark::RegisterBenchmark("generate/qwen2-0.5b", [](benchmark::State& st) { generate(st, kQwen05b); })
      ->UseRealTime()->Unit(benchmark::kMillisecond)->Iterations(1);
}

}  // namespace
}  // namespace prunerec::recsys

int main(int argc, char** argv) {
  return prunerec::bench::run(argc, argv, [] { prunerec::recsys::register_all(); });
}
