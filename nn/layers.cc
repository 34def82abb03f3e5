#include "nn/layers.h"

namespace prunerec::nn {

// ---- Linear -------------------------------------------------------------------------------

namespace {
// A new parameter: unfilled, or zeros (ones for norm gains).
Tensor new_parameter(const Shape& shape, DType dtype, ParamInit init, double value) {
  if (init == ParamInit::unfilled) return Tensor::empty(shape, dtype);
  return value == 0.0 ? Tensor::zeros(shape, dtype) : Tensor::ones(shape, dtype);
}
}  // namespace

Linear::Linear(std::int64_t in, std::int64_t out, bool bias, DType dtype, ParamInit init)
    : weight_(register_parameter("weight", new_parameter({out, in}, dtype, init, 0.0))) {
  if (bias) bias_ = register_parameter("bias", new_parameter({out}, dtype, init, 0.0));
}

void Linear::check_own_invariants(const std::string& path) const {
  PR_INVARIANT(weight_.dim() == 2, path, "weight is ", weight_.value().shape_str());
  if (bias_.defined())
    PR_INVARIANT(bias_.dim() == 1 && bias_.size(0) == out_features(), path, "bias ", bias_.value().shape_str(),
                 " for weight ", weight_.value().shape_str());
}

// ---- Embedding, RMSNorm -----------------------------------------------------------------------

Embedding::Embedding(std::int64_t num, std::int64_t dim, DType dtype, ParamInit init)
    : weight_(register_parameter("weight", new_parameter({num, dim}, dtype, init, 0.0))) {}

RMSNorm::RMSNorm(std::int64_t dim, double eps, DType dtype, ParamInit init)
    : weight_(register_parameter("weight", new_parameter({dim}, dtype, init, 1.0))), eps_(eps) {}

// ---- Attention ------------------------------------------------------------------------------

Attention::Attention(std::int64_t hidden, std::int64_t num_heads, std::int64_t num_kv_heads,
                     std::vector<std::int32_t> kv_map, std::int64_t head_dim, double rope_theta, bool qkv_bias,
                     DType dtype, ParamInit init)
    : kv_map_(std::move(kv_map)), head_dim_(head_dim), rope_theta_(rope_theta) {
  q_ = &register_module("q_proj", std::make_unique<Linear>(hidden, num_heads * head_dim, qkv_bias, dtype, init));
  k_ = &register_module("k_proj", std::make_unique<Linear>(hidden, num_kv_heads * head_dim, qkv_bias, dtype, init));
  v_ = &register_module("v_proj", std::make_unique<Linear>(hidden, num_kv_heads * head_dim, qkv_bias, dtype, init));
  o_ = &register_module("o_proj", std::make_unique<Linear>(num_heads * head_dim, hidden, false, dtype, init));
  head_gate_ = &register_buffer("head_gate", Tensor::ones({num_heads}, dtype));
}

ag::AttentionArgs Attention::attention_args(const Tensor& pads) const {
  ag::AttentionArgs args;
  args.head_dim = head_dim_;
  args.rope_theta = rope_theta_;
  args.pads = pads;
  args.kv_map = kv_map_;
  args.head_gates = *head_gate_;
  return args;
}

void Attention::set_query_scale(const std::vector<double>& scales) {
  if (scales.empty()) {
    query_scale_ = Tensor();
    return;
  }
  PR_CHECK_T(ShapeError, static_cast<std::int64_t>(scales.size()) == num_heads(), "set_query_scale: ", scales.size(),
             " scales for ", num_heads(), " heads");
  Tensor s = Tensor::ones({num_heads() * head_dim_}, head_gate_->dtype());
  for (std::int64_t h = 0; h < num_heads(); ++h)
    for (std::int64_t j = 0; j < head_dim_; ++j) s.set({h * head_dim_ + j}, scales[static_cast<std::size_t>(h)]);
  query_scale_ = s;
}

ag::Var Attention::scaled_query(const ag::Var& q) const {
  return query_scale_.defined() ? ag::mul_channels(q, query_scale_) : q;
}

ag::Var Attention::forward(const ag::Var& x, const Tensor& pads, Tensor* heads_out) const {
  ag::Var heads = ag::attention(scaled_query(q_->forward(x)), k_->forward(x), v_->forward(x), attention_args(pads));
  if (heads_out) *heads_out = heads.value();
  return o_->forward(heads);
}

ag::Var Attention::forward_last(const ag::Var& x, const Tensor& pads) const {
  const ag::Var x_last(x.value().select(1, x.size(1) - 1).contiguous());  // [B, hidden]
  return o_->forward(ag::attention_last(scaled_query(q_->forward(x_last)), k_->forward(x), v_->forward(x), attention_args(pads)));
}

ag::Var Attention::forward_cached(const ag::Var& x_last, const Tensor& k_rot, const Tensor& v, const Tensor& rows,
                                  std::int64_t length, const Tensor& pads) const {
  return o_->forward(
      ag::attention_cached(scaled_query(q_->forward(x_last)), k_rot, v, rows, length, attention_args(pads)));
}

void Attention::check_own_invariants(const std::string& path) const {
  const std::int64_t hq = q_->out_features(), hkv = k_->out_features();
  PR_INVARIANT(head_dim_ > 0 && head_dim_ % 2 == 0, path, "head_dim ", head_dim_, " must be positive and even");
  PR_INVARIANT(hq % head_dim_ == 0 && hkv % head_dim_ == 0, path, "q/k widths ", hq, "/", hkv,
               " are not multiples of head_dim ", head_dim_);
  PR_INVARIANT(v_->out_features() == hkv, path, "v_proj width ", v_->out_features(), " != k_proj width ", hkv);
  PR_INVARIANT(o_->in_features() == hq, path, "o_proj input ", o_->in_features(), " != q_proj width ", hq);
  const std::int64_t hidden = q_->in_features();
  PR_INVARIANT(k_->in_features() == hidden && v_->in_features() == hidden && o_->out_features() == hidden, path,
               "projections disagree on the hidden width ", hidden);
  PR_INVARIANT(static_cast<std::int64_t>(kv_map_.size()) == num_heads(), path, "kv_map has ", kv_map_.size(),
               " entries for ", num_heads(), " heads");
  std::vector<bool> used(static_cast<std::size_t>(num_kv_heads()), false);
  for (std::int32_t g : kv_map_) {
    PR_INVARIANT(g >= 0 && g < num_kv_heads(), path, "kv_map entry ", g, " out of range for ", num_kv_heads(),
                 " KV heads");
    used[g] = true;
  }
  for (std::size_t g = 0; g < used.size(); ++g)
    PR_INVARIANT(used[g], path, "KV head ", g, " is read by no query head");
  PR_INVARIANT(head_gate_->dim() == 1 && head_gate_->size(0) == num_heads(), path, "head_gate ",
               head_gate_->shape_str(), " for ", num_heads(), " heads");
  PR_INVARIANT(!query_scale_.defined() || query_scale_.numel() == hq, path, "query scale of ", query_scale_.numel(),
               " columns for a q width of ", hq);
}

// ---- MLP ------------------------------------------------------------------------------------

MLP::MLP(std::int64_t hidden, std::int64_t width, DType dtype, ParamInit init) {
  gate_ = &register_module("gate_proj", std::make_unique<Linear>(hidden, width, false, dtype, init));
  up_ = &register_module("up_proj", std::make_unique<Linear>(hidden, width, false, dtype, init));
  down_ = &register_module("down_proj", std::make_unique<Linear>(width, hidden, false, dtype, init));
  channel_gate_ = &register_buffer("channel_gate", Tensor::ones({width}, dtype));
}

ag::Var MLP::forward(const ag::Var& x, Tensor* up_out, Tensor* act_out) const {
  ag::Var up = up_->forward(x);
  if (up_out) *up_out = up.value();
  ag::Var act = ag::swiglu(gate_->forward(x), up, *channel_gate_);
  if (act_out) *act_out = act.value();
  return down_->forward(act);
}

void MLP::check_own_invariants(const std::string& path) const {
  PR_INVARIANT(up_->out_features() == width() && down_->in_features() == width(), path,
               "gate/up/down widths disagree: ", width(), ", ", up_->out_features(), ", ", down_->in_features());
  PR_INVARIANT(gate_->in_features() == up_->in_features() && down_->out_features() == gate_->in_features(), path,
               "hidden widths disagree");
  PR_INVARIANT(channel_gate_->dim() == 1 && channel_gate_->size(0) == width(), path, "channel_gate ",
               channel_gate_->shape_str(), " for width ", width());
}

// ---- Block ----------------------------------------------------------------------------------

Block::Block(std::int64_t hidden, std::int64_t num_heads, std::int64_t num_kv_heads, std::vector<std::int32_t> kv_map,
             std::int64_t mlp_width, std::int64_t head_dim, double rope_theta, double eps, bool qkv_bias, DType dtype,
             ParamInit init) {
  attn_norm_ = &register_module("attn_norm", std::make_unique<RMSNorm>(hidden, eps, dtype, init));
  attn_ = &register_module("attn", std::make_unique<Attention>(hidden, num_heads, num_kv_heads, std::move(kv_map),
                                                               head_dim, rope_theta, qkv_bias, dtype, init));
  mlp_norm_ = &register_module("mlp_norm", std::make_unique<RMSNorm>(hidden, eps, dtype, init));
  mlp_ = &register_module("mlp", std::make_unique<MLP>(hidden, mlp_width, dtype, init));
}

void Block::check_own_invariants(const std::string& path) const {
  const std::int64_t hidden = attn_norm_->dim();
  PR_INVARIANT(mlp_norm_->dim() == hidden && attn_->q_proj().in_features() == hidden &&
                   mlp_->gate_proj().in_features() == hidden,
               path, "norms and projections disagree on the hidden width ", hidden);
}

}  // namespace prunerec::nn
