#include "nn/transformer.h"

#include <algorithm>

#include "tensor/rng.h"

namespace prunerec::nn {

namespace {

// Stable across platforms (std::hash is not): FNV-1a.
std::uint64_t fnv1a(const std::string& s) {
  std::uint64_t h = 1469598103934665603ULL;
  for (unsigned char c : s) {
    h ^= c;
    h *= 1099511628211ULL;
  }
  return h;
}

enum DropoutSite : std::uint64_t { kEmbed = 1, kAttn = 2, kMlp = 3 };

// Dropout of one residual branch v [B,T,d] (layer -1: the embedding), with the masks of its
// rows' places in the global batch (Note [global dropout masks]); the identity when opt has
// none.
ag::Var dropout_site(const ag::Var& v, const ForwardOptions& opt, int layer, DropoutSite site) {
  if (opt.dropout <= 0) return v;
  PR_CHECK(v.dim() == 3 && opt.global_row >= 0 && (opt.global_length == 0 || opt.global_length >= v.shape()[1]),
           "Transformer: dropout of ", v.value().shape_str(), " at global row ", opt.global_row,
           " of a batch of length ", opt.global_length, ": the batch is longer than the global one");
  const ag::DropoutRows at{opt.global_row, opt.global_length * v.shape()[2]};
  return ag::dropout(v, opt.dropout, opt.seed, hash_stream(opt.step, static_cast<std::uint64_t>(layer), site), at);
}

// Non-embedding parameters of a normalised config, counted in N: std::int64_t for the
// exact count, double for normalize_config's overflow-safe bound.
template <class N>
N non_embedding_count(const pb::ModelConfig& c) {
  const N d = c.hidden(), dh = c.head_dim();
  N n = d;  // final norm
  for (const auto& L : c.layers()) {
    const N q = L.num_heads() * dh, kv = L.num_kv_heads() * dh;
    n += 2 * d;                                  // norms
    n += d * q + 2 * d * kv + q * d;             // q, k, v, o
    if (c.qkv_bias()) n += q + 2 * kv;
    n += 3 * d * L.mlp_width();                  // gate, up, down
  }
  if (!c.tie_embeddings()) n += c.vocab_size() * d;
  return n;
}

}  // namespace

pb::ModelConfig normalize_config(const pb::ModelConfig& in) {
  pb::ModelConfig c = in;
  // Limits far beyond any model this engine trains, so a corrupt or hostile config is
  // refused before anything is allocated (and the parameter counts below cannot overflow).
  constexpr int kMaxLayers = 4096, kMaxHeads = 4096, kMaxWidth = 1 << 20, kMaxMlp = 1 << 22, kMaxVocab = 1 << 28;
  PR_CHECK_T(ConfigError, c.num_layers() <= kMaxLayers && c.layers_size() <= kMaxLayers, "model config: at most ",
             kMaxLayers, " layers");
  PR_CHECK_T(ConfigError, c.vocab_size() <= kMaxVocab && c.hidden() <= kMaxWidth && c.head_dim() <= kMaxWidth &&
                 c.max_len() <= kMaxWidth,
             "model config: vocab_size, hidden, head_dim or max_len is beyond the supported range");
  for (const pb::LayerConfig* L : {&c.layer_defaults()})
    PR_CHECK_T(ConfigError, L->num_heads() <= kMaxHeads && L->num_kv_heads() <= kMaxHeads && L->mlp_width() <= kMaxMlp,
               "model config: layer_defaults widths are beyond the supported range");
  for (const auto& L : c.layers())
    PR_CHECK_T(ConfigError, L.num_heads() <= kMaxHeads && L.num_kv_heads() <= kMaxHeads && L.mlp_width() <= kMaxMlp &&
                   L.kv_map_size() <= kMaxHeads,
               "model config: layer widths are beyond the supported range");
  if (c.layers_size() == 0) {
    PR_CHECK_T(ConfigError, c.num_layers() > 0, "model config: give `layers { ... }` per layer or num_layers > 0 with layer_defaults");
    for (int l = 0; l < c.num_layers(); ++l) *c.add_layers() = c.layer_defaults();
  } else {
    PR_CHECK_T(ConfigError, !c.has_num_layers() || c.num_layers() == c.layers_size(), "model config: num_layers ",
               c.num_layers(), " disagrees with ", c.layers_size(), " `layers` entries");
  }
  c.clear_num_layers();
  c.clear_layer_defaults();
  // Stored configs spell out every default, so they mean the same if defaults change.
  c.set_head_dim(c.head_dim());
  c.set_rope_theta(c.rope_theta());
  c.set_norm_eps(c.norm_eps());
  c.set_qkv_bias(c.qkv_bias());
  c.set_tie_embeddings(c.tie_embeddings());
  c.set_max_len(c.max_len());
  c.set_init_std(c.init_std());
  PR_CHECK_T(ConfigError, c.vocab_size() > 0, "model config: vocab_size must be positive, got ", c.vocab_size());
  PR_CHECK_T(ConfigError, c.hidden() > 0, "model config: hidden must be positive, got ", c.hidden());
  PR_CHECK_T(ConfigError, c.head_dim() > 0 && c.head_dim() % 2 == 0, "model config: head_dim must be positive and even, got ",
             c.head_dim());
  PR_CHECK_T(ConfigError, c.rope_theta() > 0, "model config: rope_theta must be positive");
  PR_CHECK_T(ConfigError, c.norm_eps() > 0, "model config: norm_eps must be positive");
  PR_CHECK_T(ConfigError, c.max_len() > 0, "model config: max_len must be positive");
  PR_CHECK_T(ConfigError, c.init_std() >= 0, "model config: init_std must be non-negative");
  for (int l = 0; l < c.layers_size(); ++l) {
    pb::LayerConfig& L = *c.mutable_layers(l);
    // Zero widths are allowed: a layer with no heads has no attention sub-block, one with
    // mlp_width 0 no MLP (depth pruning by sub-blocks, Note [zero-width sub-blocks]).
    PR_CHECK_T(ConfigError, L.num_heads() >= 0 && L.mlp_width() >= 0, "model config: layers[", l,
               "]: num_heads and mlp_width must not be negative");
    PR_CHECK_T(ConfigError, (L.num_heads() == 0) == (L.num_kv_heads() == 0), "model config: layers[", l,
               "]: num_kv_heads must be 0 exactly when num_heads is 0");
    PR_CHECK_T(ConfigError, L.num_kv_heads() >= 0 && L.num_kv_heads() <= L.num_heads(), "model config: layers[", l,
               "].num_kv_heads must be in [1, num_heads], got ", L.num_kv_heads());
    if (L.kv_map_size() == 0 && L.num_heads() > 0) {
      PR_CHECK_T(ConfigError, L.num_heads() % L.num_kv_heads() == 0, "model config: layers[", l, "]: ", L.num_heads(),
                 " heads do not split into ", L.num_kv_heads(), " equal groups; give kv_map explicitly");
      const int group = L.num_heads() / L.num_kv_heads();
      for (int h = 0; h < L.num_heads(); ++h) L.add_kv_map(h / group);
    }
    PR_CHECK_T(ConfigError, L.kv_map_size() == L.num_heads(), "model config: layers[", l, "].kv_map has ",
               L.kv_map_size(), " entries for ", L.num_heads(), " heads");
    std::vector<bool> used(static_cast<std::size_t>(L.num_kv_heads()), false);
    for (int g : L.kv_map()) {
      PR_CHECK_T(ConfigError, g >= 0 && g < L.num_kv_heads(), "model config: layers[", l, "].kv_map entry ", g,
                 " out of range for ", L.num_kv_heads(), " KV heads");
      used[g] = true;
    }
    for (std::size_t g = 0; g < used.size(); ++g)
      PR_CHECK_T(ConfigError, used[g], "model config: layers[", l, "]: KV head ", g, " is read by no query head");
  }
  // The per-field limits above still allow products beyond int64 (4096 layers of width
  // 2^20 with 2^32-wide attention), so the total is bounded too, counted in floating point.
  constexpr double kMaxParameters = 1e12;
  const double total = static_cast<double>(c.vocab_size()) * c.hidden() + non_embedding_count<double>(c);
  PR_CHECK_T(ConfigError, total <= kMaxParameters, "model config: about ", total,
             " parameters, beyond the supported 1e12");
  return c;
}

std::int64_t count_non_embedding_parameters(const pb::ModelConfig& raw) {
  return non_embedding_count<std::int64_t>(normalize_config(raw));
}

std::vector<TensorSpec> tensor_specs(const pb::ModelConfig& raw) {
  const pb::ModelConfig c = normalize_config(raw);
  const std::int64_t d = c.hidden(), dh = c.head_dim(), V = c.vocab_size();
  std::vector<TensorSpec> out;
  out.push_back({"embed.weight", {V, d}});
  for (int l = 0; l < c.layers_size(); ++l) {
    const auto& L = c.layers(l);
    const std::string p = "blocks." + std::to_string(l) + ".";
    const std::int64_t q = L.num_heads() * dh, kv = L.num_kv_heads() * dh, f = L.mlp_width();
    out.push_back({p + "attn_norm.weight", {d}});
    for (const auto& [name, rows] : {std::pair<const char*, std::int64_t>{"q_proj", q}, {"k_proj", kv}, {"v_proj", kv}}) {
      out.push_back({p + "attn." + name + ".weight", {rows, d}});
      if (c.qkv_bias()) out.push_back({p + "attn." + name + ".bias", {rows}});
    }
    out.push_back({p + "attn.o_proj.weight", {d, q}});
    out.push_back({p + "mlp_norm.weight", {d}});
    out.push_back({p + "mlp.gate_proj.weight", {f, d}});
    out.push_back({p + "mlp.up_proj.weight", {f, d}});
    out.push_back({p + "mlp.down_proj.weight", {d, f}});
  }
  out.push_back({"final_norm.weight", {d}});
  if (!c.tie_embeddings()) out.push_back({"lm_head.weight", {V, d}});
  for (int l = 0; l < c.layers_size(); ++l) {
    const std::string p = "blocks." + std::to_string(l) + ".";
    out.push_back({p + "attn.head_gate", {c.layers(l).num_heads()}, true});
    out.push_back({p + "mlp.channel_gate", {c.layers(l).mlp_width()}, true});
  }
  return out;
}

Transformer::Transformer(const pb::ModelConfig& config, DType dtype, std::uint64_t seed)
    : Transformer(config, dtype, seed, true) {}

std::unique_ptr<Transformer> Transformer::uninitialized(const pb::ModelConfig& config, DType dtype) {
  return std::unique_ptr<Transformer>(new Transformer(config, dtype, 0, false));
}

Transformer::Transformer(const pb::ModelConfig& raw, DType dtype, std::uint64_t seed, bool initialize) {
  const pb::ModelConfig c = normalize_config(raw);
  hyper_ = c;
  hyper_.clear_layers();
  const std::int64_t d = c.hidden();
  // Note [unfilled parameters]: a model built to be loaded into never writes its
  // parameters' memory (the loader replaces or overwrites each one), so loading a large
  // model does not first touch gigabytes of fresh pages with zeros.
  const ParamInit init = initialize ? ParamInit::values : ParamInit::unfilled;
  embed_ = &register_module("embed", std::make_unique<Embedding>(c.vocab_size(), d, dtype, init));
  blocks_ = &register_module("blocks", std::make_unique<ModuleList>());
  for (const auto& L : c.layers()) {
    blocks_->append(std::make_unique<Block>(d, L.num_heads(), L.num_kv_heads(),
                                            std::vector<std::int32_t>(L.kv_map().begin(), L.kv_map().end()),
                                            L.mlp_width(), c.head_dim(), c.rope_theta(), c.norm_eps(), c.qkv_bias(),
                                            dtype, init));
  }
  final_norm_ = &register_module("final_norm", std::make_unique<RMSNorm>(d, c.norm_eps(), dtype, init));
  if (!c.tie_embeddings())
    lm_head_ = &register_module("lm_head", std::make_unique<Linear>(d, c.vocab_size(), false, dtype, init));

  for (auto& [name, var] : named_parameters()) {
    if (!initialize || var.dim() < 2) continue;  // biases stay 0, norm gains 1
    Tensor t = var.value();
    fill_normal(t, 0.0, c.init_std(), seed, fnv1a(name));
  }
  check_invariants();
}

const ag::Var& Transformer::output_weight() const { return lm_head_ ? lm_head_->weight() : embed_->weight(); }

ag::Var Transformer::hidden(const Tensor& ids, const Tensor& pads, const ForwardOptions& opt) const {
  PR_CHECK(ids.dim() == 2, "Transformer: ids must be [B, T], got ", ids.shape_str());
  const int L = num_layers();
  PR_CHECK(opt.skip_attention.empty() || static_cast<int>(opt.skip_attention.size()) == L,
           "Transformer: skip_attention has ", opt.skip_attention.size(), " entries for ", L, " layers");
  PR_CHECK(opt.skip_mlp.empty() || static_cast<int>(opt.skip_mlp.size()) == L, "Transformer: skip_mlp has ",
           opt.skip_mlp.size(), " entries for ", L, " layers");
  ag::Var x = dropout_site(embed_->forward(ids), opt, -1, kEmbed);
  for (int l = 0; l < L; ++l) x = layer_forward(l, x, pads, opt);
  if (opt.hooks) opt.hooks->on_residual(L, x);
  ag::Var h = final_norm_->forward(x);
  if (opt.hooks) opt.hooks->on_normalized(L, 0, h.value());
  return h;
}

ag::Var Transformer::layer_forward(int l, ag::Var x, const Tensor& pads, const ForwardOptions& opt) const {
  if (opt.hooks) opt.hooks->on_residual(l, x);
  const Block& b = block(l);
  if ((opt.skip_attention.empty() || !opt.skip_attention[l]) && b.attn().num_heads() > 0) {
    Tensor heads;
    ag::Var n = b.attn_norm().forward(x);
    if (opt.hooks) opt.hooks->on_normalized(l, 0, n.value());
    ag::Var a = b.attn().forward(n, pads, opt.hooks ? &heads : nullptr);
    if (opt.hooks) opt.hooks->on_attention_heads(l, heads);
    x = ag::add(x, dropout_site(a, opt, l, kAttn));
  }
  if (opt.hooks) opt.hooks->on_residual_mid(l, x);
  if ((opt.skip_mlp.empty() || !opt.skip_mlp[l]) && b.mlp().width() > 0) {
    Tensor up, act;
    ag::Var n = b.mlp_norm().forward(x);
    if (opt.hooks) opt.hooks->on_normalized(l, 1, n.value());
    ag::Var m = b.mlp().forward(n, opt.hooks ? &up : nullptr, opt.hooks ? &act : nullptr);
    if (opt.hooks) opt.hooks->on_mlp(l, up, act);
    x = ag::add(x, dropout_site(m, opt, l, kMlp));
  }
  return x;
}

// Note [last-position inference]: scoring the next item needs the final hidden state at
// each row's last position only (left padding puts it at T-1 for every row). Every layer
// but the last must still run at all positions, because the next layer's keys and values
// come from them; the last layer needs its keys and values at all positions but its
// query, attention output, o_proj, MLP and norms at the last one alone. For the 4-layer
// teacher that is about a fifth of the forward FLOPs saved, and the attention of that
// layer costs O(T) instead of O(T^2). Training and importance scoring (which need every
// position, hooks and dropout) keep using hidden().
Tensor Transformer::last_hidden(const Tensor& ids, const Tensor& pads) const {
  PR_CHECK(ids.dim() == 2 && ids.size(1) > 0, "Transformer: ids must be [B, T] with T > 0, got ", ids.shape_str());
  ag::NoGradGuard no_grad;
  const int L = num_layers();
  const std::int64_t T = ids.size(1);
  ag::Var x = embed_->forward(ids);
  const ForwardOptions plain;  // no hooks, dropout or skips
  for (int l = 0; l + 1 < L; ++l) x = layer_forward(l, x, pads, plain);
  ag::Var last(x.value().select(1, T - 1).contiguous());  // [B, d]
  if (L > 0) {
    const Block& b = block(L - 1);
    if (b.attn().num_heads() > 0) last = ag::add(last, b.attn().forward_last(b.attn_norm().forward(x), pads));
    if (b.mlp().width() > 0) last = ag::add(last, b.mlp().forward(b.mlp_norm().forward(last)));
  }
  return final_norm_->forward(last).value();
}

ag::Var Transformer::logits(const ag::Var& h) const {
  const ag::Var& w = output_weight();
  const Shape shape = h.shape();
  ag::Var flat = ag::reshape(h, {h.numel() / hidden_size(), hidden_size()});
  ag::Var out = ag::linear(flat, w);
  Shape out_shape = shape;
  out_shape.back() = vocab_size();
  return ag::reshape(out, out_shape);
}

ag::Var Transformer::loss(const Tensor& ids, const Tensor& pads, const Tensor& targets, const ForwardOptions& opt) const {
  PR_CHECK(targets.shape() == ids.shape(), "Transformer::loss: targets ", targets.shape_str(), " for ids ",
           ids.shape_str());
  ag::Var h = hidden(ids, pads, opt);
  ag::Var flat = ag::reshape(h, {ids.numel(), hidden_size()});
  // Note [loss on the target rows]: the output layer costs 2 V d FLOPs per row, forward and
  // twice that backward, often more than the whole stack beneath it; rows that predict
  // nothing (padding; a title-mode prompt, 80-90% of its sequence) are dropped before it
  // by a differentiable row gather. The loss is the same mean over the same rows.
  const TargetRows kept = target_rows(targets);
  if (kept.all) return ag::linear_cross_entropy(flat, output_weight(), kept.targets);
  return ag::linear_cross_entropy(ag::embedding(flat, kept.rows), output_weight(), kept.targets);
}

TargetRows target_rows(const Tensor& targets) {
  const Tensor tc = targets.contiguous();
  const std::int32_t* tp = tc.data<std::int32_t>();
  const std::int64_t n = tc.numel();
  const auto kept = static_cast<std::int64_t>(std::count_if(tp, tp + n, [](std::int32_t t) { return t >= 0; }));
  TargetRows out;
  // No row kept: the loss over all rows (every one ignored) is the defined 0 of
  // linear_cross_entropy, as before the gather existed.
  if (kept == n || kept == 0) {
    out.all = true;
    out.targets = tc.reshape({n});
    return out;
  }
  out.rows = Tensor::empty({kept}, DType::i32);
  out.targets = Tensor::empty({kept}, DType::i32);
  for (std::int64_t i = 0, r = 0; i < n; ++i) {
    if (tp[i] < 0) continue;
    out.rows.data<std::int32_t>()[r] = static_cast<std::int32_t>(i);
    out.targets.data<std::int32_t>()[r++] = tp[i];
  }
  return out;
}

pb::ModelConfig Transformer::config() const {
  pb::ModelConfig c = hyper_;
  c.set_vocab_size(static_cast<std::int32_t>(vocab_size()));
  c.set_hidden(static_cast<std::int32_t>(hidden_size()));
  c.set_tie_embeddings(tied());
  for (int l = 0; l < num_layers(); ++l) {
    const Block& b = block(l);
    pb::LayerConfig* L = c.add_layers();
    L->set_num_heads(static_cast<std::int32_t>(b.attn().num_heads()));
    L->set_num_kv_heads(static_cast<std::int32_t>(b.attn().num_kv_heads()));
    L->set_mlp_width(static_cast<std::int32_t>(b.mlp().width()));
    for (std::int32_t g : b.attn().kv_map()) L->add_kv_map(g);
  }
  return c;
}

void Transformer::check_own_invariants(const std::string& path) const {
  const std::int64_t d = hidden_size();
  PR_INVARIANT(final_norm_->dim() == d, path, "final_norm width ", final_norm_->dim(), " != hidden ", d);
  for (int l = 0; l < num_layers(); ++l) {
    const Block& b = block(l);
    PR_INVARIANT(b.attn_norm().dim() == d, path, "blocks.", l, " hidden width ", b.attn_norm().dim(), " != ", d);
    PR_INVARIANT(b.attn().head_dim() == hyper_.head_dim(), path, "blocks.", l, " head_dim ", b.attn().head_dim(),
                 " != ", hyper_.head_dim());
  }
  if (lm_head_)
    PR_INVARIANT(lm_head_->in_features() == d && lm_head_->out_features() == vocab_size(), path, "lm_head ",
                 lm_head_->weight().value().shape_str(), " for vocab ", vocab_size(), " and hidden ", d);
}

Tensor pads_from_ids(const Tensor& ids) {
  PR_CHECK(ids.dim() == 2 && ids.dtype() == DType::i32, "pads_from_ids: ids must be i32 [B, T], got ", ids.shape_str());
  const Tensor c = ids.contiguous();
  const std::int64_t B = ids.size(0), T = ids.size(1);
  Tensor pads = Tensor::empty({B}, DType::i32);
  const std::int32_t* p = c.data<std::int32_t>();
  for (std::int64_t b = 0; b < B; ++b) {
    std::int64_t pad = 0;
    while (pad < T && p[b * T + pad] == -1) ++pad;
    for (std::int64_t t = pad; t < T; ++t)
      PR_CHECK(p[b * T + t] >= 0, "pads_from_ids: row ", b, " has id ", p[b * T + t], " at position ", t,
               " after real tokens (padding must be leading -1s)");
    pads.data<std::int32_t>()[b] = static_cast<std::int32_t>(pad);
  }
  return pads;
}

}  // namespace prunerec::nn
