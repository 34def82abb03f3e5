#include "prune/surgery.h"

#include <algorithm>
#include <map>
#include <set>

namespace prunerec::prune {
namespace {

using Index = std::vector<std::int64_t>;

// Checks `kept` is strictly ascending within [0, n).
void check_indices(const google::protobuf::RepeatedField<std::int32_t>& kept, std::int64_t n, const std::string& what,
                   bool allow_empty) {
  PR_CHECK_T(ConfigError, allow_empty || !kept.empty(), "plan: ", what, " keeps nothing");
  for (int i = 0; i < kept.size(); ++i) {
    PR_CHECK_T(ConfigError, kept[i] >= 0 && kept[i] < n, "plan: ", what, ": index ", kept[i], " is out of range [0, ", n, ")");
    PR_CHECK_T(ConfigError, i == 0 || kept[i] > kept[i - 1], "plan: ", what, ": indices must be strictly ascending (",
               kept[i - 1], " then ", kept[i], ")");
  }
}

void fill_all(google::protobuf::RepeatedField<std::int32_t>* kept, std::int64_t n) {
  kept->Clear();
  for (std::int64_t i = 0; i < n; ++i) kept->Add(static_cast<std::int32_t>(i));
}

Index to_index(const google::protobuf::RepeatedField<std::int32_t>& kept) { return Index(kept.begin(), kept.end()); }

// Rows of whole heads: head h covers [h*dh, (h+1)*dh).
Index head_rows(const google::protobuf::RepeatedField<std::int32_t>& heads, std::int64_t dh) {
  Index rows;
  for (int h : heads)
    for (std::int64_t j = 0; j < dh; ++j) rows.push_back(h * dh + j);
  return rows;
}

// t[rows][:, cols] as a fresh contiguous tensor (a null index keeps that dim whole). t
// is a parameter (1-D or 2-D, contiguous) or its optimizer moment.
Tensor slice2(const Tensor& t, const Index* rows, const Index* cols) {
  PR_ASSERT(t.dim() == 1 || t.dim() == 2);
  const Tensor src = t.contiguous();
  const std::int64_t R = src.size(0), C = src.dim() == 2 ? src.size(1) : 1;
  const std::int64_t out_r = rows ? static_cast<std::int64_t>(rows->size()) : R;
  const std::int64_t out_c = cols && src.dim() == 2 ? static_cast<std::int64_t>(cols->size()) : C;
  Tensor out = Tensor::empty(src.dim() == 2 ? Shape{out_r, out_c} : Shape{out_r}, src.dtype());
  dispatch_floating(src.dtype(), "surgery", [&](auto tag) {
    using T = decltype(tag);
    const T* in = src.data<T>();
    T* o = out.data<T>();
    for (std::int64_t i = 0; i < out_r; ++i) {
      const std::int64_t r = rows ? (*rows)[i] : i;
      if (cols && src.dim() == 2)
        for (std::int64_t j = 0; j < out_c; ++j) o[i * out_c + j] = in[r * C + (*cols)[j]];
      else
        std::copy(in + r * C, in + (r + 1) * C, o + i * out_c);
    }
  });
  return out;
}

struct Slice {
  const Index* rows = nullptr;
  const Index* cols = nullptr;
};

}  // namespace

pb::PrunePlan identity_plan(const nn::Transformer& model) { return normalize_plan(pb::PrunePlan(), model); }

pb::PrunePlan normalize_plan(const pb::PrunePlan& in, const nn::Transformer& model) {
  pb::PrunePlan plan = in;
  const int L = model.num_layers();
  if (plan.layers_size() == 0)
    for (int l = 0; l < L; ++l) plan.add_layers();
  PR_CHECK_T(ConfigError, plan.layers_size() == L, "plan: has ", plan.layers_size(), " layer entries for a model with ", L,
             " layers");
  for (int l = 0; l < L; ++l) {
    const nn::Attention& attn = model.block(l).attn();
    pb::LayerPlan& lp = *plan.mutable_layers(l);
    const std::string where = "layer " + std::to_string(l);
    if (lp.keep_all_heads()) fill_all(lp.mutable_kept_heads(), attn.num_heads());
    lp.set_keep_all_heads(false);
    check_indices(lp.kept_heads(), attn.num_heads(), where + " heads", /*allow_empty=*/true);
    std::set<int> kv;
    for (int h : lp.kept_heads()) kv.insert(attn.kv_map()[h]);
    if (lp.kept_kv_heads_size() > 0) {
      PR_CHECK_T(ConfigError, std::set<int>(lp.kept_kv_heads().begin(), lp.kept_kv_heads().end()) == kv,
                 "plan: ", where, ": kept_kv_heads must be exactly the KV heads the kept query heads read");
    }
    lp.clear_kept_kv_heads();
    for (int g : kv) lp.add_kept_kv_heads(g);
    if (lp.keep_all_mlp()) fill_all(lp.mutable_kept_mlp(), model.block(l).mlp().width());
    lp.set_keep_all_mlp(false);
    check_indices(lp.kept_mlp(), model.block(l).mlp().width(), where + " MLP channels", /*allow_empty=*/true);
  }
  if (plan.keep_all_hidden()) fill_all(plan.mutable_kept_hidden(), model.hidden_size());
  plan.set_keep_all_hidden(false);
  check_indices(plan.kept_hidden(), model.hidden_size(), "hidden channels", /*allow_empty=*/false);
  PR_CHECK_T(ConfigError, plan.kept_hidden_size() >= 1, "plan: keeps no hidden channel");
  if (plan.keep_all_layers()) fill_all(plan.mutable_kept_layers(), L);
  plan.set_keep_all_layers(false);
  check_indices(plan.kept_layers(), L, "layers", /*allow_empty=*/false);
  return plan;
}

pb::PrunePlan apply_plan(nn::Transformer& model, const pb::PrunePlan& raw, nn::AdamW* optimizer) {
  const pb::PrunePlan plan = normalize_plan(raw, model);  // throws before anything changes
  const std::int64_t dh = model.config().head_dim();
  const Index hidden = to_index(plan.kept_hidden());

  // Per-layer index lists (kept alive while slicing).
  const int L = model.num_layers();
  std::vector<Index> q_rows(L), kv_rows(L), mlp(L);
  std::map<std::string, Slice> slices;
  slices["embed.weight"] = {nullptr, &hidden};
  slices["final_norm.weight"] = {&hidden, nullptr};
  slices["lm_head.weight"] = {nullptr, &hidden};
  for (int l = 0; l < L; ++l) {
    const pb::LayerPlan& lp = plan.layers(l);
    q_rows[l] = head_rows(lp.kept_heads(), dh);
    kv_rows[l] = head_rows(lp.kept_kv_heads(), dh);
    mlp[l] = to_index(lp.kept_mlp());
    const std::string p = "blocks." + std::to_string(l) + ".";
    slices[p + "attn_norm.weight"] = {&hidden, nullptr};
    slices[p + "mlp_norm.weight"] = {&hidden, nullptr};
    slices[p + "attn.q_proj.weight"] = {&q_rows[l], &hidden};
    slices[p + "attn.q_proj.bias"] = {&q_rows[l], nullptr};
    slices[p + "attn.k_proj.weight"] = {&kv_rows[l], &hidden};
    slices[p + "attn.k_proj.bias"] = {&kv_rows[l], nullptr};
    slices[p + "attn.v_proj.weight"] = {&kv_rows[l], &hidden};
    slices[p + "attn.v_proj.bias"] = {&kv_rows[l], nullptr};
    slices[p + "attn.o_proj.weight"] = {&hidden, &q_rows[l]};
    slices[p + "mlp.gate_proj.weight"] = {&mlp[l], &hidden};
    slices[p + "mlp.up_proj.weight"] = {&mlp[l], &hidden};
    slices[p + "mlp.down_proj.weight"] = {&hidden, &mlp[l]};
  }

  for (auto& [name, var] : model.named_parameters()) {
    const auto it = slices.find(name);
    PR_CHECK_T(InternalError, it != slices.end(), "surgery: no slicing rule for parameter '", name, "'");
    var.set_value(slice2(var.value(), it->second.rows, it->second.cols));
    if (optimizer) {
      auto st = optimizer->state().find(name);
      if (st != optimizer->state().end()) {
        st->second.exp_avg = slice2(st->second.exp_avg, it->second.rows, it->second.cols);
        st->second.exp_avg_sq = slice2(st->second.exp_avg_sq, it->second.rows, it->second.cols);
      }
    }
  }
  for (int l = 0; l < L; ++l) {
    const pb::LayerPlan& lp = plan.layers(l);
    nn::Attention& attn = model.block(l).attn();
    std::vector<std::int32_t> kv_map;
    for (int h : lp.kept_heads()) {
      const int g = attn.kv_map()[h];
      kv_map.push_back(static_cast<std::int32_t>(
          std::lower_bound(lp.kept_kv_heads().begin(), lp.kept_kv_heads().end(), g) - lp.kept_kv_heads().begin()));
    }
    attn.set_kv_map(std::move(kv_map));
    const Index heads = to_index(lp.kept_heads());
    attn.head_gate() = slice2(attn.head_gate(), &heads, nullptr);
    nn::MLP& m = model.block(l).mlp();
    m.channel_gate() = slice2(m.channel_gate(), &mlp[l], nullptr);
  }

  // Layers last: names shift, so optimizer moments are renamed with them.
  if (plan.kept_layers_size() < L) {
    model.keep_layers(std::vector<int>(plan.kept_layers().begin(), plan.kept_layers().end()));
    if (optimizer) {
      std::map<std::string, nn::AdamW::State> renamed;
      for (auto& [name, st] : optimizer->state()) {
        if (name.rfind("blocks.", 0) != 0) {
          renamed[name] = std::move(st);
          continue;
        }
        const auto dot = name.find('.', 7);
        const int old = std::stoi(name.substr(7, dot - 7));
        const auto pos = std::find(plan.kept_layers().begin(), plan.kept_layers().end(), old);
        if (pos == plan.kept_layers().end()) continue;
        renamed["blocks." + std::to_string(pos - plan.kept_layers().begin()) + name.substr(dot)] = std::move(st);
      }
      optimizer->state() = std::move(renamed);
    }
  }
  model.check_invariants();
  return plan;
}

nn::ForwardOptions apply_mask(nn::Transformer& model, const pb::PrunePlan& raw) {
  const pb::PrunePlan plan = normalize_plan(raw, model);
  PR_CHECK_T(ConfigError, plan.kept_hidden_size() == model.hidden_size(),
             "apply_mask: hidden channels cannot be masked under RMSNorm; slice them with apply_plan");
  nn::ForwardOptions fo;
  const int L = model.num_layers();
  fo.skip_attention.assign(L, true);
  fo.skip_mlp.assign(L, true);
  for (int l : plan.kept_layers()) fo.skip_attention[l] = fo.skip_mlp[l] = false;
  for (int l = 0; l < L; ++l) {
    const pb::LayerPlan& lp = plan.layers(l);
    Tensor& hg = model.block(l).attn().head_gate();
    std::vector<bool> keep(static_cast<std::size_t>(hg.numel()), false);
    for (int h : lp.kept_heads()) keep[h] = true;
    for (std::int64_t h = 0; h < hg.numel(); ++h)
      if (!keep[h]) hg.set({h}, 0.0);
    if (lp.kept_heads_size() == 0) fo.skip_attention[l] = true;
    Tensor& cg = model.block(l).mlp().channel_gate();
    std::vector<bool> keep_c(static_cast<std::size_t>(cg.numel()), false);
    for (int j : lp.kept_mlp()) keep_c[j] = true;
    for (std::int64_t j = 0; j < cg.numel(); ++j)
      if (!keep_c[j]) cg.set({j}, 0.0);
    if (lp.kept_mlp_size() == 0) fo.skip_mlp[l] = true;
  }
  return fo;
}

}  // namespace prunerec::prune
