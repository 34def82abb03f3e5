#include "api/hf_names.h"

#include <charconv>
#include <utility>

namespace prunerec::hf {
namespace {

// Whole-model tensors.
constexpr std::pair<std::string_view, std::string_view> kGlobal[] = {
    {"embed.weight", "model.embed_tokens.weight"},
    {"final_norm.weight", "model.norm.weight"},
    {"lm_head.weight", "lm_head.weight"},
};

// Per-layer tensors, after "blocks.<i>." and "model.layers.<i>." respectively.
constexpr std::pair<std::string_view, std::string_view> kLayer[] = {
    {"attn_norm.weight", "input_layernorm.weight"},
    {"attn.q_proj.weight", "self_attn.q_proj.weight"},
    {"attn.q_proj.bias", "self_attn.q_proj.bias"},
    {"attn.k_proj.weight", "self_attn.k_proj.weight"},
    {"attn.k_proj.bias", "self_attn.k_proj.bias"},
    {"attn.v_proj.weight", "self_attn.v_proj.weight"},
    {"attn.v_proj.bias", "self_attn.v_proj.bias"},
    {"attn.o_proj.weight", "self_attn.o_proj.weight"},
    {"mlp_norm.weight", "post_attention_layernorm.weight"},
    {"mlp.gate_proj.weight", "mlp.gate_proj.weight"},
    {"mlp.up_proj.weight", "mlp.up_proj.weight"},
    {"mlp.down_proj.weight", "mlp.down_proj.weight"},
};

// Splits "<prefix><digits>.<rest>" into the layer number and rest; false if `name` is not
// of that form (digits without a leading zero, so each layer has exactly one spelling).
bool split_layer(std::string_view name, std::string_view prefix, std::string_view* index, std::string_view* rest) {
  if (name.substr(0, prefix.size()) != prefix) return false;
  name.remove_prefix(prefix.size());
  const std::size_t dot = name.find('.');
  if (dot == 0 || dot == std::string_view::npos || dot > 9) return false;
  const std::string_view digits = name.substr(0, dot);
  if (digits.size() > 1 && digits[0] == '0') return false;
  int value = 0;
  const auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), value);
  if (ec != std::errc() || end != digits.data() + digits.size()) return false;
  *index = digits;
  *rest = name.substr(dot + 1);
  return true;
}

std::string map_name(std::string_view name, bool to_hf) {
  for (const auto& [engine, hf] : kGlobal)
    if (name == (to_hf ? engine : hf)) return std::string(to_hf ? hf : engine);
  const std::string_view from_prefix = to_hf ? "blocks." : "model.layers.";
  const std::string_view to_prefix = to_hf ? "model.layers." : "blocks.";
  std::string_view index, rest;
  if (!split_layer(name, from_prefix, &index, &rest)) return {};
  for (const auto& [engine, hf] : kLayer)
    if (rest == (to_hf ? engine : hf))
      return std::string(to_prefix).append(index).append(".").append(to_hf ? hf : engine);
  return {};
}

}  // namespace

std::string to_hf_name(std::string_view engine_name) { return map_name(engine_name, true); }
std::string from_hf_name(std::string_view hf_name) { return map_name(hf_name, false); }

}  // namespace prunerec::hf
