// The transformer's building blocks. Widths are read from parameter shapes, never stored
// twice: Linear::out_features() is weight.size(0), Attention::num_heads() is
// q_proj.out_features() / head_dim. Only what no shape holds is stored (head_dim, rope
// theta, eps, the query-to-KV-head map).
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "autograd/ops.h"
#include "nn/module.h"

namespace prunerec::nn {

// How a layer's parameters start: `values` (zeros; ones for norm gains) or `unfilled`,
// memory that is allocated but never written, for a caller that replaces or overwrites
// every parameter before use (Transformer::uninitialized: loading a checkpoint). Buffers
// (gates) always start at one.
enum class ParamInit { values, unfilled };

class Linear : public Module {
 public:
  Linear(std::int64_t in, std::int64_t out, bool bias, DType dtype, ParamInit init = ParamInit::values);
  ag::Var forward(const ag::Var& x) const { return ag::linear(x, weight_, bias_); }
  std::int64_t in_features() const { return weight_.size(1); }
  std::int64_t out_features() const { return weight_.size(0); }
  bool has_bias() const { return bias_.defined(); }
  const ag::Var& weight() const { return weight_; }
  const ag::Var& bias() const { return bias_; }

 protected:
  void check_own_invariants(const std::string& path) const override;

 private:
  ag::Var weight_;  // [out, in]
  ag::Var bias_;    // [out] or undefined
};

class Embedding : public Module {
 public:
  Embedding(std::int64_t num, std::int64_t dim, DType dtype, ParamInit init = ParamInit::values);
  ag::Var forward(const Tensor& ids) const { return ag::embedding(weight_, ids); }
  std::int64_t num_embeddings() const { return weight_.size(0); }
  std::int64_t dim() const { return weight_.size(1); }
  const ag::Var& weight() const { return weight_; }

 private:
  ag::Var weight_;  // [num, dim]
};

class RMSNorm : public Module {
 public:
  RMSNorm(std::int64_t dim, double eps, DType dtype, ParamInit init = ParamInit::values);
  ag::Var forward(const ag::Var& x) const { return ag::rmsnorm(x, weight_, eps_); }
  std::int64_t dim() const { return weight_.size(0); }
  double eps() const { return eps_; }
  const ag::Var& weight() const { return weight_; }

 private:
  ag::Var weight_;  // [dim]
  double eps_;
};

// Grouped-query attention with RoPE, Qwen2-style biases on q/k/v, and per-head gates
// (buffer "head_gate" [Hq], ones unless a masked plan silences heads).
class Attention : public Module {
 public:
  Attention(std::int64_t hidden, std::int64_t num_heads, std::int64_t num_kv_heads, std::vector<std::int32_t> kv_map,
            std::int64_t head_dim, double rope_theta, bool qkv_bias, DType dtype, ParamInit init = ParamInit::values);
  // x [B,T,hidden] -> [B,T,hidden]; heads_out (optional) receives the gated head outputs
  // before o_proj, [B,T,Hq*dh].
  ag::Var forward(const ag::Var& x, const Tensor& pads, Tensor* heads_out = nullptr) const;
  // Inference only: the output at the last position alone, x [B,T,hidden] -> [B,hidden];
  // equals forward(x, pads)[:, T-1] (Note [last-position inference] in nn/transformer.cc).
  ag::Var forward_last(const ag::Var& x, const Tensor& pads) const;
  // Inference only, for incremental decoding (nn/kv_cache.h, Note [cached decoding]): the
  // output at the newest position length-1, x_last [B,hidden] (already normed), given this
  // layer's cache: k_rot, v [P,C,Hkv*dh] (keys already rotated, the newest position
  // included) and rows i32 [B,C], the physical row of each position (ag::attention_cached).
  ag::Var forward_cached(const ag::Var& x_last, const Tensor& k_rot, const Tensor& v, const Tensor& rows,
                         std::int64_t length, const Tensor& pads) const;

  std::int64_t num_heads() const { return q_proj().out_features() / head_dim_; }
  std::int64_t num_kv_heads() const { return k_proj().out_features() / head_dim_; }
  std::int64_t head_dim() const { return head_dim_; }
  double rope_theta() const { return rope_theta_; }
  const std::vector<std::int32_t>& kv_map() const { return kv_map_; }
  void set_kv_map(std::vector<std::int32_t> m) { kv_map_ = std::move(m); }
  Tensor& head_gate() { return *head_gate_; }
  const Tensor& head_gate() const { return *head_gate_; }
  // Note [query-scale mask]: multiplies head h's query by scales[h] after the q bias and
  // before RoPE (RoPE is applied inside ag::attention), the way the paper's released code
  // masks a head while scoring it (scale 1e-4: the head's attention becomes nearly uniform
  // over the positions it sees, its output roughly the mean of V; it is not zeroed). Not a
  // parameter or buffer: scoring sets it and clears it, checkpoints never hold it. An empty
  // vector (the default) is no scaling at all.
  void set_query_scale(const std::vector<double>& scales);
  bool has_query_scale() const { return query_scale_.defined(); }

  const Linear& q_proj() const { return *q_; }
  const Linear& k_proj() const { return *k_; }
  const Linear& v_proj() const { return *v_; }
  const Linear& o_proj() const { return *o_; }

 protected:
  void check_own_invariants(const std::string& path) const override;

 private:
  ag::AttentionArgs attention_args(const Tensor& pads) const;  // this layer's heads, map, gates, RoPE

  Linear *q_, *k_, *v_, *o_;
  ag::Var scaled_query(const ag::Var& q) const;  // q times query_scale_ when set
  Tensor* head_gate_;
  Tensor query_scale_;  // [Hq*dh] per-column scale, or undefined (Note [query-scale mask])
  std::vector<std::int32_t> kv_map_;
  std::int64_t head_dim_;
  double rope_theta_;
};

// SwiGLU MLP: down(silu(gate(x)) * up(x) * channel_gate), buffer "channel_gate" [F].
class MLP : public Module {
 public:
  MLP(std::int64_t hidden, std::int64_t width, DType dtype, ParamInit init = ParamInit::values);
  // up_out / act_out (optional) receive up(x) and the gated activation, [.., F].
  ag::Var forward(const ag::Var& x, Tensor* up_out = nullptr, Tensor* act_out = nullptr) const;
  std::int64_t width() const { return gate_->out_features(); }
  Tensor& channel_gate() { return *channel_gate_; }
  const Tensor& channel_gate() const { return *channel_gate_; }
  const Linear& gate_proj() const { return *gate_; }
  const Linear& up_proj() const { return *up_; }
  const Linear& down_proj() const { return *down_; }

 protected:
  void check_own_invariants(const std::string& path) const override;

 private:
  Linear *gate_, *up_, *down_;
  Tensor* channel_gate_;
};

// Pre-norm decoder block: x + attn(norm(x)), then x + mlp(norm(x)).
class Block : public Module {
 public:
  Block(std::int64_t hidden, std::int64_t num_heads, std::int64_t num_kv_heads, std::vector<std::int32_t> kv_map,
        std::int64_t mlp_width, std::int64_t head_dim, double rope_theta, double eps, bool qkv_bias, DType dtype,
        ParamInit init = ParamInit::values);
  const RMSNorm& attn_norm() const { return *attn_norm_; }
  const Attention& attn() const { return *attn_; }
  Attention& attn() { return *attn_; }
  const RMSNorm& mlp_norm() const { return *mlp_norm_; }
  const MLP& mlp() const { return *mlp_; }
  MLP& mlp() { return *mlp_; }

 protected:
  void check_own_invariants(const std::string& path) const override;

 private:
  RMSNorm* attn_norm_;
  Attention* attn_;
  RMSNorm* mlp_norm_;
  MLP* mlp_;
};

}  // namespace prunerec::nn
