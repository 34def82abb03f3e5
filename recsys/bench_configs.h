// The two speed-comparison configs of the PyTorch yardstick
// (../shared/reference/torch_recommender.py), its analytic FLOP counts, and the GEMMs of
// one training step. Shared by `prunerec bench` (recsys/speed_bench.h) and the kernel
// benchmarks (bench/bench_kernels.cc), so both time the same shapes. Header-only, no
// dependencies: plain data and arithmetic.
//
//   const bench::Config* c = bench::find_config("medium");        // or nullptr
//   bench::Flops f = bench::analytic_flops(*c);                   // f.train_step: FLOP per step
//   for (const bench::GemmShape& g : bench::training_step_gemms(*c)) ... g.M, g.N, g.K, g.count
//
// Note [reference FLOP formulas]: analytic_flops() copies the formulas of the reference
// line for line (multiply-add = 2 FLOP; matmuls only; attention counted as the full T x T
// both implementations compute; backward = 2 x forward), so GFLOP/s printed by either
// program divide the same numerator and can be compared directly.
#pragma once

#include <algorithm>
#include <cctype>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace prunerec::bench {

struct Config {
  std::string_view name;  // "small" or "medium" (the reference spells them SMALL, MEDIUM)
  std::int64_t items;     // catalogue size = vocabulary = output width
  std::int64_t hidden;    // d
  std::int64_t layers;    // L
  std::int64_t heads;     // H (query heads)
  std::int64_t kv_heads;  // KV (= H: no grouped-query attention in the reference configs)
  std::int64_t mlp;       // SwiGLU width (ffn)
  std::int64_t length;    // T, history length
  std::int64_t batch;     // B, rows per training step

  std::int64_t head_dim() const { return hidden / heads; }
  std::int64_t positions() const { return batch * length; }  // N = B * T
};

// CONFIGS in the reference: n_items, d, layers, heads, ffn, T, batch.
inline constexpr Config kSmall{"small", 3500, 64, 2, 2, 2, 172, 50, 128};
inline constexpr Config kMedium{"medium", 3500, 256, 4, 4, 4, 688, 50, 64};
inline constexpr Config kConfigs[] = {kSmall, kMedium};

// Case-insensitive lookup ("SMALL" and "small" both work); nullptr when unknown.
inline const Config* find_config(std::string_view name) {
  for (const Config& c : kConfigs) {
    if (c.name.size() != name.size()) continue;
    if (std::equal(name.begin(), name.end(), c.name.begin(),
                   [](char a, char b) { return std::tolower(static_cast<unsigned char>(a)) == b; }))
      return &c;
  }
  return nullptr;
}

// Note [reference FLOP formulas]. Field names follow the reference's JSON keys.
struct Flops {
  std::int64_t per_layer_mm = 0;    // weights used in GEMMs per layer
  std::int64_t fwd_gemm = 0;        // flops_fwd_gemm: projections + MLP + output layer, forward
  std::int64_t fwd_attn = 0;        // flops_fwd_attn: QK^T and PV, full T x T
  std::int64_t train_step = 0;      // flops_train_step = 3 * (fwd_gemm + fwd_attn)
  std::int64_t infer_per_user = 0;  // flops_infer_per_user: T positions through the layers, 1 output row
  std::int64_t elementwise_est(std::int64_t params, const Config& c) const {  // flops_elementwise_est
    return c.positions() * c.items * 8 + 20 * params;
  }
};

inline Flops analytic_flops(const Config& c) {
  const std::int64_t d = c.hidden, L = c.layers, H = c.heads, KV = c.kv_heads, dh = c.head_dim(), ffn = c.mlp,
                     T = c.length, B = c.batch, n_items = c.items, N = c.positions();
  Flops f;
  f.per_layer_mm = d * (H + 2 * KV) * dh + H * dh * d + 3 * d * ffn;
  f.infer_per_user = 2 * T * L * f.per_layer_mm + L * 4 * H * T * T * dh + 2 * d * n_items;
  const std::int64_t mm_params = L * f.per_layer_mm + d * n_items;
  f.fwd_gemm = 2 * N * mm_params;
  f.fwd_attn = L * 4 * B * H * T * T * dh;
  f.train_step = 3 * (f.fwd_gemm + f.fwd_attn);
  return f;
}

// One GEMM of a training step, in kernels::gemm's terms (row-major, C[M,N] = op(A) op(B)):
//   forward  y  = x W^T   gemm(false, true,  N_pos, out, in)
//   dX       dx = dy W    gemm(false, false, N_pos, in,  out)
//   dW       dW = dy^T x  gemm(true,  false, out,   in,  N_pos)
// exactly as autograd/ops/linear.cc calls them. `count` is how often the shape runs per
// step (once per layer for the block projections). `family` groups projections whose
// shapes coincide in these configs (q, k, v and o are all d x d).
struct GemmShape {
  std::string op;      // "attn.q_proj", "mlp.up_proj", "output" (tied embedding), ...
  std::string family;  // "attn_proj", "mlp_gate_up", "mlp_down", "output"
  std::string pass;    // "fwd", "dX", "dW"
  bool trans_a = false, trans_b = false;
  std::int64_t M = 0, N = 0, K = 0;
  std::int64_t count = 1;
  std::int64_t flops() const { return 2 * M * N * K * count; }
  std::string name() const { return op + " " + pass; }
};

// The GEMMs of one training step: forward, dX and dW of q, k, v, o, gate, up, down in
// every layer and of the output projection (unchunked: one [N, V] product, as the
// reference runs it; the engine's fused loss computes the same FLOPs in row chunks).
// Attention's own QK^T / PV products are not included. Their FLOPs sum to
// 3 * Flops::fwd_gemm.
inline std::vector<GemmShape> training_step_gemms(const Config& c) {
  const std::int64_t n = c.positions(), d = c.hidden, q = c.heads * c.head_dim(), kv = c.kv_heads * c.head_dim();
  struct Linear {
    const char* op;
    const char* family;
    std::int64_t in, out, count;
  };
  const Linear linears[] = {
      {"attn.q_proj", "attn_proj", d, q, c.layers},      {"attn.k_proj", "attn_proj", d, kv, c.layers},
      {"attn.v_proj", "attn_proj", d, kv, c.layers},     {"attn.o_proj", "attn_proj", q, d, c.layers},
      {"mlp.gate_proj", "mlp_gate_up", d, c.mlp, c.layers}, {"mlp.up_proj", "mlp_gate_up", d, c.mlp, c.layers},
      {"mlp.down_proj", "mlp_down", c.mlp, d, c.layers}, {"output", "output", d, c.items, 1},
  };
  std::vector<GemmShape> out;
  for (const Linear& l : linears) {
    out.push_back({l.op, l.family, "fwd", false, true, n, l.out, l.in, l.count});
    out.push_back({l.op, l.family, "dX", false, false, n, l.in, l.out, l.count});
    out.push_back({l.op, l.family, "dW", true, false, l.out, l.in, n, l.count});
  }
  return out;
}

}  // namespace prunerec::bench
