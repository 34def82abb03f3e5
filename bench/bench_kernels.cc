// Kernel benchmarks on the real shapes of a training step of the reference configs
// (recsys/bench_configs.h), each fast kernel next to its plain twin (STYLE.md habit 10).
//
//   build-bench/bench/bench_kernels                                  # everything, ~1 min
//   build-bench/bench/bench_kernels --benchmark_filter='gemm/medium'
//   build-bench/bench/bench_kernels --benchmark_filter='/t1$'         # one engine thread only
//
// Names: <kernel>/<config>/<what>[/<shape>]/t<engine threads>; the twins run on one
// thread and are named <kernel>_ref/... . Times are wall clock (UseRealTime: the work
// runs on the TBB pool, not the benchmark thread). Counters:
//   FLOP/s    2*M*N*K per GEMM; attention: the reference's nominal 4*B*H*T*T*dh forward
//             (full T x T) and twice that backward
//   bytes/s   memory-bound kernels: bytes read + written once
//
// gemm_ref on a training shape would take seconds per call, so it runs on the first 128
// rows of C only (same N and K, same access pattern); its FLOP/s is the rate on that
// slice, which is what the naive loop reaches at any M.
#include <benchmark/benchmark.h>

#include "bench/bench_main.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <set>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "recsys/bench_configs.h"
#include "tensor/kernels/attention.h"
#include "tensor/kernels/elementwise.h"
#include "tensor/kernels/embedding.h"
#include "tensor/kernels/gemm.h"
#include "tensor/kernels/norm.h"
#include "tensor/kernels/reference.h"
#include "tensor/kernels/rope.h"
#include "tensor/kernels/softmax.h"
#include "tensor/parallel.h"
#include "tensor/rng.h"
#include "tensor/tensor.h"

namespace prunerec::bench {
namespace {

constexpr double kMinTime = 0.2;        // seconds per benchmark
constexpr std::int64_t kRefRows = 128;  // rows of C computed by gemm_ref
constexpr double kRopeTheta = 10000.0;

// Engine thread counts to run the fast kernels at: 1 and all cores.
std::vector<int> engine_threads() {
  const int hw = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  return hw > 1 ? std::vector<int>{1, hw} : std::vector<int>{1};
}

Tensor uniform(std::int64_t n, std::uint64_t stream, double lo = -1.0, double hi = 1.0) {
  Tensor t = Tensor::empty({std::max<std::int64_t>(n, 1)});
  fill_uniform(t, lo, hi, /*seed=*/1, stream);
  return t;
}

std::vector<std::int32_t> random_ids(std::int64_t n, std::int64_t V, std::uint64_t stream) {
  Rng rng(1, stream);
  std::vector<std::int32_t> ids(static_cast<std::size_t>(n));
  for (auto& id : ids) id = static_cast<std::int32_t>(rng.below(V));
  return ids;
}

void set_flops(benchmark::State& state, double flops_per_iteration) {
  state.counters["FLOP/s"] = benchmark::Counter(flops_per_iteration, benchmark::Counter::kIsIterationInvariantRate,
                                                benchmark::Counter::kIs1000);
}

void set_bytes(benchmark::State& state, double bytes_per_iteration) {
  state.SetBytesProcessed(static_cast<std::int64_t>(bytes_per_iteration * static_cast<double>(state.iterations())));
}

benchmark::internal::Benchmark* configure(benchmark::internal::Benchmark* b) {
  return b->MinTime(kMinTime)->UseRealTime()->Unit(benchmark::kMillisecond);
}

std::string shape_label(std::int64_t M, std::int64_t N, std::int64_t K) {
  return std::to_string(M) + "x" + std::to_string(N) + "x" + std::to_string(K);
}

// ---- GEMM on the training-step shapes --------------------------------------------------

void gemm_fast(benchmark::State& state, GemmShape g, int threads) {
  set_num_threads(threads);
  const Tensor A = uniform(g.M * g.K, 1), B = uniform(g.K * g.N, 2);
  Tensor C = Tensor::zeros({g.M * g.N});
  const std::int64_t lda = g.trans_a ? g.M : g.K, ldb = g.trans_b ? g.K : g.N;
  for (auto _ : state) {
    kernels::gemm<float>(g.trans_a, g.trans_b, g.M, g.N, g.K, 1.0f, A.data<float>(), lda, B.data<float>(), ldb, 0.0f,
                         C.data<float>(), g.N);
    benchmark::ClobberMemory();
  }
  set_flops(state, 2.0 * static_cast<double>(g.M * g.N * g.K));
}

// The naive twin on the first kRefRows rows of C (see the header).
void gemm_naive(benchmark::State& state, GemmShape g) {
  const std::int64_t rows = std::min(g.M, kRefRows);
  const Tensor A = uniform(g.M * g.K, 1), B = uniform(g.K * g.N, 2);
  Tensor C = Tensor::zeros({rows * g.N});
  const std::int64_t lda = g.trans_a ? g.M : g.K, ldb = g.trans_b ? g.K : g.N;
  for (auto _ : state) {
    kernels::gemm_ref<float>(g.trans_a, g.trans_b, rows, g.N, g.K, 1.0f, A.data<float>(), lda, B.data<float>(), ldb,
                             0.0f, C.data<float>(), g.N);
    benchmark::ClobberMemory();
  }
  set_flops(state, 2.0 * static_cast<double>(rows * g.N * g.K));
}

// Rows per chunk of the fused output loss: chunk_rows() in autograd/ops/loss.cc
// (Note [fused output loss]), copied here because it is private to that file.
std::int64_t fused_loss_chunk_rows(std::int64_t n, std::int64_t V) {
  return std::clamp<std::int64_t>((std::int64_t{1} << 21) / std::max<std::int64_t>(V, 1), 32, std::max<std::int64_t>(n, 1));
}

// The output layer's three GEMMs as the fused loss runs them: per chunk of `chunk` rows,
// logits = h W^T, dh = dlogits W, dW (+)= dlogits^T h. chunk = N is the unchunked form
// (what the GEMM floor of `prunerec bench` times).
void output_layer_chunked(benchmark::State& state, Config c, std::int64_t chunk, int threads) {
  set_num_threads(threads);
  const std::int64_t N = c.positions(), d = c.hidden, V = c.items;
  const Tensor h = uniform(N * d, 1), w = uniform(V * d, 2);
  Tensor logits = uniform(std::min(chunk, N) * V, 3), dh = Tensor::zeros({N * d}), dw = Tensor::zeros({V * d});
  float* L = logits.data<float>();
  for (auto _ : state) {
    for (std::int64_t r0 = 0; r0 < N; r0 += chunk) {
      const std::int64_t rows = std::min(chunk, N - r0);
      kernels::gemm<float>(false, true, rows, V, d, 1.0f, h.data<float>() + r0 * d, d, w.data<float>(), d, 0.0f, L, V);
      kernels::gemm<float>(false, false, rows, d, V, 1.0f, L, V, w.data<float>(), d, 0.0f, dh.data<float>() + r0 * d, d);
      kernels::gemm<float>(true, false, V, d, rows, 1.0f, L, V, h.data<float>() + r0 * d, d, r0 == 0 ? 0.0f : 1.0f,
                           dw.data<float>(), d);
    }
    benchmark::ClobberMemory();
  }
  set_flops(state, 3 * 2.0 * static_cast<double>(N * V * d));
}

void register_gemms() {
  for (const Config& c : kConfigs) {
    // q, k, v and o share one shape in these configs, as do gate and up: time each
    // distinct (family, pass, shape) once.
    std::set<std::tuple<std::string, std::string, std::int64_t, std::int64_t, std::int64_t>> seen;
    for (const GemmShape& g : training_step_gemms(c)) {
      if (!seen.insert({g.family, g.pass, g.M, g.N, g.K}).second) continue;
      const std::string what = std::string(c.name) + "/" + g.family + "." + g.pass + "/" + shape_label(g.M, g.N, g.K);
      for (int t : engine_threads())
        configure(benchmark::RegisterBenchmark(("gemm/" + what + "/t" + std::to_string(t)).c_str(), gemm_fast, g, t));
      configure(benchmark::RegisterBenchmark(("gemm_ref/" + what + "/rows" + std::to_string(kRefRows)).c_str(),
                                             gemm_naive, g));
    }
    const std::int64_t engine_chunk = fused_loss_chunk_rows(c.positions(), c.items);
    const std::set<std::int64_t> chunks = {engine_chunk, std::min<std::int64_t>(2048, c.positions()), c.positions()};
    for (std::int64_t chunk : chunks) {
      for (int t : engine_threads())
        configure(benchmark::RegisterBenchmark(
            ("output_layer/" + std::string(c.name) + "/chunk" + std::to_string(chunk) +
             (chunk == engine_chunk ? "_engine" : chunk == c.positions() ? "_whole" : "") + "/t" + std::to_string(t))
                .c_str(),
            output_layer_chunked, c, chunk, t));
    }
  }
}

// ---- attention (batch 64, T 50, heads as in the configs) ----------------------------------

struct AttentionData {
  kernels::AttentionDims dims;
  Tensor q, k, v, out, lse, dout, dq, dk, dv;
  std::vector<std::int32_t> pads, kv_map;
  std::vector<float> gates;
  float scale = 1;
  explicit AttentionData(const Config& c, std::int64_t batch) {
    dims = {batch, c.length, c.heads, c.kv_heads, c.head_dim()};
    const std::int64_t nq = batch * c.length * c.heads * c.head_dim(), nk = batch * c.length * c.kv_heads * c.head_dim();
    q = uniform(nq, 1);
    k = uniform(nk, 2);
    v = uniform(nk, 3);
    dout = uniform(nq, 4);
    out = Tensor::zeros({nq});
    lse = Tensor::zeros({batch * c.heads * c.length});
    dq = Tensor::zeros({nq});
    dk = Tensor::zeros({nk});
    dv = Tensor::zeros({nk});
    pads.assign(static_cast<std::size_t>(batch), 0);
    for (std::int64_t h = 0; h < c.heads; ++h) kv_map.push_back(static_cast<std::int32_t>(h * c.kv_heads / c.heads));
    gates.assign(static_cast<std::size_t>(c.heads), 1.0f);
    scale = 1.0f / std::sqrt(static_cast<float>(c.head_dim()));
  }
  const kernels::RopeTable<float>& rope() const {
    return kernels::cached_rope_table<float>(dims.T, dims.dh, kRopeTheta);
  }
  void forward() {
    kernels::attention_forward<float>(dims, q.data<float>(), k.data<float>(), v.data<float>(), pads.data(),
                                      kv_map.data(), gates.data(), rope(), scale, out.data<float>(), lse.data<float>());
  }
  double nominal_forward_flops() const { return 4.0 * dims.B * dims.Hq * dims.T * dims.T * dims.dh; }
};

constexpr std::int64_t kAttentionBatch = 64;

void attention_fwd(benchmark::State& state, Config c, int threads) {
  set_num_threads(threads);
  AttentionData a(c, kAttentionBatch);
  for (auto _ : state) {
    a.forward();
    benchmark::ClobberMemory();
  }
  set_flops(state, a.nominal_forward_flops());
}

void attention_bwd(benchmark::State& state, Config c, int threads) {
  set_num_threads(threads);
  AttentionData a(c, kAttentionBatch);
  a.forward();
  for (auto _ : state) {
    kernels::attention_backward<float>(a.dims, a.q.data<float>(), a.k.data<float>(), a.v.data<float>(), a.pads.data(),
                                       a.kv_map.data(), a.gates.data(), a.rope(), a.scale, a.out.data<float>(),
                                       a.lse.data<float>(), a.dout.data<float>(), a.dq.data<float>(),
                                       a.dk.data<float>(), a.dv.data<float>());
    benchmark::ClobberMemory();
  }
  set_flops(state, 2.0 * a.nominal_forward_flops());
}

// The twin accumulates in double and recomputes RoPE per key: slow, so it runs on 8 rows.
void attention_naive(benchmark::State& state, Config c) {
  AttentionData a(c, 8);
  for (auto _ : state) {
    kernels::ref::attention<float>(a.dims.B, a.dims.T, a.dims.Hq, a.dims.Hkv, a.dims.dh, a.q.data<float>(),
                                   a.k.data<float>(), a.v.data<float>(), a.pads.data(), a.kv_map.data(),
                                   a.gates.data(), kRopeTheta, a.out.data<float>());
    benchmark::ClobberMemory();
  }
  set_flops(state, a.nominal_forward_flops());
}

void register_attention() {
  for (const Config& c : kConfigs) {
    const std::string what = std::string(c.name) + "/B" + std::to_string(kAttentionBatch) + "_T" +
                             std::to_string(c.length) + "_H" + std::to_string(c.heads) + "_dh" +
                             std::to_string(c.head_dim());
    for (int t : engine_threads()) {
      configure(benchmark::RegisterBenchmark(("attention_fwd/" + what + "/t" + std::to_string(t)).c_str(),
                                             attention_fwd, c, t));
      configure(benchmark::RegisterBenchmark(("attention_bwd/" + what + "/t" + std::to_string(t)).c_str(),
                                             attention_bwd, c, t));
    }
    configure(benchmark::RegisterBenchmark(
        ("attention_ref/" + std::string(c.name) + "/B8_T" + std::to_string(c.length) + "_H" +
         std::to_string(c.heads) + "_dh" + std::to_string(c.head_dim()))
            .c_str(),
        attention_naive, c));
  }
}

// ---- softmax cross-entropy over the catalogue ----------------------------------------------

// Loss and gradient per row by the textbook loop (float, std::exp), the plain version of
// kernels::cross_entropy_rows.
void plain_cross_entropy_rows(std::int64_t rows, std::int64_t V, const float* x, const std::int32_t* target,
                              float* loss, float* dx, float grad_scale) {
  for (std::int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * V;
    float m = xr[0];
    for (std::int64_t c = 1; c < V; ++c) m = std::max(m, xr[c]);
    float z = 0;
    for (std::int64_t c = 0; c < V; ++c) z += std::exp(xr[c] - m);
    loss[r] = m + std::log(z) - xr[target[r]];
    for (std::int64_t c = 0; c < V; ++c) dx[r * V + c] = std::exp(xr[c] - m) / z * grad_scale;
    dx[r * V + target[r]] -= grad_scale;
  }
}

// One chunk of the fused output loss: rows as ag::linear_cross_entropy passes them, V = 3500.
// Out of place (the fused op writes dx over x), so every iteration sees the same logits.
void cross_entropy(benchmark::State& state, Config c, int threads, bool plain) {
  set_num_threads(threads);
  const std::int64_t rows = fused_loss_chunk_rows(c.positions(), c.items), V = c.items;
  const Tensor x = uniform(rows * V, 1, -8.0, 8.0);
  Tensor dx = Tensor::zeros({rows * V});
  std::vector<float> loss(static_cast<std::size_t>(rows));
  const std::vector<std::int32_t> target = random_ids(rows, V, 5);
  const float scale = 1.0f / static_cast<float>(c.positions());
  for (auto _ : state) {
    if (plain)
      plain_cross_entropy_rows(rows, V, x.data<float>(), target.data(), loss.data(), dx.data<float>(), scale);
    else
      kernels::cross_entropy_rows<float>(rows, V, x.data<float>(), target.data(), loss.data(), dx.data<float>(), scale);
    benchmark::ClobberMemory();
  }
  state.counters["logits/s"] = benchmark::Counter(static_cast<double>(rows * V),
                                                  benchmark::Counter::kIsIterationInvariantRate);
  set_bytes(state, 2.0 * static_cast<double>(rows * V) * sizeof(float));
}

// ---- RMSNorm, SwiGLU, embedding (all positions of a step) ------------------------------------

void rmsnorm(benchmark::State& state, Config c, int threads, int mode) {  // mode 0 fwd, 1 bwd, 2 ref fwd
  set_num_threads(threads);
  const std::int64_t rows = c.positions(), d = c.hidden;
  const Tensor x = uniform(rows * d, 1), w = uniform(d, 2, 0.5, 1.5), dy = uniform(rows * d, 3);
  Tensor y = Tensor::zeros({rows * d}), inv = Tensor::zeros({rows}), dx = Tensor::zeros({rows * d}),
         dw = Tensor::zeros({d});
  kernels::rmsnorm_forward<float>(rows, d, x.data<float>(), w.data<float>(), 1e-6f, y.data<float>(), inv.data<float>());
  for (auto _ : state) {
    if (mode == 0)
      kernels::rmsnorm_forward<float>(rows, d, x.data<float>(), w.data<float>(), 1e-6f, y.data<float>(),
                                      inv.data<float>());
    else if (mode == 1)
      kernels::rmsnorm_backward<float>(rows, d, x.data<float>(), w.data<float>(), inv.data<float>(), dy.data<float>(),
                                       dx.data<float>(), dw.data<float>());
    else
      kernels::ref::rmsnorm<float>(rows, d, x.data<float>(), w.data<float>(), 1e-6, y.data<float>());
    benchmark::ClobberMemory();
  }
  set_bytes(state, (mode == 1 ? 3.0 : 2.0) * static_cast<double>(rows * d) * sizeof(float));
}

void swiglu(benchmark::State& state, Config c, int threads, int mode) {  // mode 0 fwd, 1 bwd, 2 ref fwd
  set_num_threads(threads);
  const std::int64_t rows = c.positions(), f = c.mlp;
  const Tensor g = uniform(rows * f, 1), u = uniform(rows * f, 2), dout = uniform(rows * f, 3);
  Tensor out = Tensor::zeros({rows * f}), dg = Tensor::zeros({rows * f}), du = Tensor::zeros({rows * f});
  for (auto _ : state) {
    if (mode == 0)
      kernels::swiglu_forward<float>(rows, f, g.data<float>(), u.data<float>(), nullptr, out.data<float>());
    else if (mode == 1)
      kernels::swiglu_backward<float>(rows, f, g.data<float>(), u.data<float>(), nullptr, dout.data<float>(),
                                      dg.data<float>(), du.data<float>());
    else
      kernels::ref::swiglu<float>(rows, f, g.data<float>(), u.data<float>(), nullptr, out.data<float>());
    benchmark::ClobberMemory();
  }
  set_bytes(state, (mode == 1 ? 5.0 : 3.0) * static_cast<double>(rows * f) * sizeof(float));
}

void embedding(benchmark::State& state, Config c, int threads, int mode) {  // 0 gather, 1 scatter, 2/3 plain
  set_num_threads(threads);
  const std::int64_t n = c.positions(), d = c.hidden, V = c.items;
  const Tensor table = uniform(V * d, 1), dout = uniform(n * d, 2);
  Tensor out = Tensor::zeros({n * d}), dtable = Tensor::zeros({V * d});
  const std::vector<std::int32_t> ids = random_ids(n, V, 3);
  const float* t = table.data<float>();
  const float* g = dout.data<float>();
  float* o = out.data<float>();
  float* dt = dtable.data<float>();
  for (auto _ : state) {
    if (mode == 0) {
      kernels::embedding_gather<float>(n, d, t, ids.data(), o);
    } else if (mode == 1) {
      kernels::embedding_scatter_add<float>(n, d, V, ids.data(), g, dt);
    } else if (mode == 2) {
      for (std::int64_t i = 0; i < n; ++i) std::copy(t + ids[i] * d, t + (ids[i] + 1) * d, o + i * d);
    } else {
      for (std::int64_t i = 0; i < n; ++i)
        for (std::int64_t k = 0; k < d; ++k) dt[ids[i] * d + k] += g[i * d + k];
    }
    benchmark::ClobberMemory();
  }
  set_bytes(state, (mode % 2 == 0 ? 2.0 : 3.0) * static_cast<double>(n * d) * sizeof(float));
}

void register_rowwise() {
  for (const Config& c : kConfigs) {
    const std::string name(c.name);
    const std::string ce_rows = std::to_string(fused_loss_chunk_rows(c.positions(), c.items));
    const std::string nd = std::to_string(c.positions()) + "x" + std::to_string(c.hidden);
    const std::string nf = std::to_string(c.positions()) + "x" + std::to_string(c.mlp);
    const std::string ce = name + "/" + ce_rows + "x" + std::to_string(c.items);
    for (int t : engine_threads()) {
      const std::string ts = "/t" + std::to_string(t);
      configure(benchmark::RegisterBenchmark(("cross_entropy_rows/" + ce + ts).c_str(), cross_entropy, c, t, false));
      configure(benchmark::RegisterBenchmark(("rmsnorm_fwd/" + name + "/" + nd + ts).c_str(), rmsnorm, c, t, 0));
      configure(benchmark::RegisterBenchmark(("rmsnorm_bwd/" + name + "/" + nd + ts).c_str(), rmsnorm, c, t, 1));
      configure(benchmark::RegisterBenchmark(("swiglu_fwd/" + name + "/" + nf + ts).c_str(), swiglu, c, t, 0));
      configure(benchmark::RegisterBenchmark(("swiglu_bwd/" + name + "/" + nf + ts).c_str(), swiglu, c, t, 1));
      configure(benchmark::RegisterBenchmark(("embedding_gather/" + name + "/" + nd + ts).c_str(), embedding, c, t, 0));
      configure(benchmark::RegisterBenchmark(("embedding_scatter_add/" + name + "/" + nd + ts).c_str(), embedding, c, t, 1));
    }
    configure(benchmark::RegisterBenchmark(("cross_entropy_rows_plain/" + ce).c_str(), cross_entropy, c, 1, true));
    configure(benchmark::RegisterBenchmark(("rmsnorm_ref/" + name + "/" + nd).c_str(), rmsnorm, c, 1, 2));
    configure(benchmark::RegisterBenchmark(("swiglu_ref/" + name + "/" + nf).c_str(), swiglu, c, 1, 2));
    configure(benchmark::RegisterBenchmark(("embedding_gather_plain/" + name + "/" + nd).c_str(), embedding, c, 1, 2));
    configure(benchmark::RegisterBenchmark(("embedding_scatter_add_plain/" + name + "/" + nd).c_str(), embedding, c, 1, 3));
  }
}

}  // namespace
}  // namespace prunerec::bench

int main(int argc, char** argv) {
  return prunerec::bench::run(argc, argv, [] {
    prunerec::bench::register_gemms();
    prunerec::bench::register_attention();
    prunerec::bench::register_rowwise();
  });
}
