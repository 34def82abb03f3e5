// Exporting a recommender for PyTorch / Hugging Face users: Qwen2 tensor names in a
// safetensors file, a Qwen2 config.json that also lists every layer's widths, and the item
// table that maps output rows (logits) back to item ids. `prunerec export` is a thin CLI
// over export_qwen2; docs/export.md shows how to load and check an export.
//
//   recsys::Recommender rec = recsys::load_recommender("runs/ml1m/teacher.prc");
//   hf::ExportSummary s = hf::export_qwen2(rec, "out/ml1m-hf", {.source = "runs/ml1m/teacher.prc"});
//
// The folder it writes:
//   model.safetensors  F32 tensors under Qwen2 names (Note [Qwen2 names])
//   config.json        Qwen2 fields plus per-layer lists (Note [uneven config])
//   items.tsv          header "index<TAB>item_id<TAB>title", then one line per item: logit
//                      column / token id, raw id, title (\\, \t, \n, \r escaped as written)
//   check.json         only with check_histories: histories and prunerec's logits for them
//                      (Note [export check])
//
// Note [Qwen2 names]
// ~~~~~~~~~~~~~~~~~~
//   embed.weight                  -> model.embed_tokens.weight            [V, d]
//   blocks.i.attn_norm.weight     -> model.layers.i.input_layernorm.weight [d]
//   blocks.i.attn.{q,k,v}_proj.*  -> model.layers.i.self_attn.{q,k,v}_proj.{weight,bias}
//   blocks.i.attn.o_proj.weight   -> model.layers.i.self_attn.o_proj.weight  (head gates folded in)
//   blocks.i.mlp_norm.weight      -> model.layers.i.post_attention_layernorm.weight
//   blocks.i.mlp.{gate,up,down}_proj.weight -> model.layers.i.mlp.{gate,up,down}_proj.weight
//                                    (channel gates folded into down_proj's columns)
//   final_norm.weight             -> model.norm.weight
//   lm_head.weight                -> lm_head.weight (untied models only; tied ones reuse
//                                    model.embed_tokens.weight, tie_word_embeddings true)
// Qwen2 always has q/k/v biases; a model built with qkv_bias false exports zero biases. A
// masked (gated) head or channel is folded into the following projection, so the exported
// weights compute what the gated model computes, without gate buffers. Zero-width
// sub-blocks (a layer with no heads or no MLP channels) export as tensors with a zero
// dimension, e.g. q_proj.weight [0, d]; such a layer's branch adds exactly zero.
//
// Note [uneven config]
// ~~~~~~~~~~~~~~~~~~~~
// Stock transformers Qwen2 builds every layer alike from num_attention_heads,
// num_key_value_heads and intermediate_size, groups query heads onto KV heads contiguously
// (repeat_kv), and needs every width > 0. A pruned model usually breaks all three, so
// config.json also carries the authoritative per-layer lists
//   layer_num_attention_heads [L], layer_num_key_value_heads [L], layer_intermediate_size [L],
//   layer_kv_map [L][heads]   (query head h of layer l reads KV head layer_kv_map[l][h])
// and "uniform_layers": true only when stock Qwen2ForCausalLM computes the same function
// (same widths in every layer, all > 0, contiguous kv maps; it also needs a transformers
// version that honours "head_dim"). The scalar fields hold the widest layer's values. Any
// export, uneven or not, loads with tools/check_export.py (load_export / build_model).
// Item-token mode semantics: input ids are item indices (items.tsv), histories are
// left-padded, padded positions are masked and RoPE positions count from the first real
// item, and the last position's logits score the next item.
//
// Note [export check]
// ~~~~~~~~~~~~~~~~~~~
// check.json lets an independent implementation confirm the export computes what prunerec
// computes:
//   {"format": "prunerec-export-check/1", "num_items": V, "max_len": T,
//    "histories": [[item index, ...], ...],     // oldest first, at most max_len, as fed
//    "history_ids": [["raw id", ...], ...],
//    "logits": [[V floats], ...]}               // prunerec's next-item scores (last position)
// All histories are scored in one left-padded batch, as recommend_batch does. Floats are
// written in the shortest form that reads back to the same float.
//
// The export is published as a whole folder through AtomicDirectory (base/atomic_file.h,
// Note [atomic folder]), so `dir` is never left half-written.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "api/safetensors.h"
#include "recsys/recommender.h"

namespace prunerec::hf {

enum class HfArchitecture { kQwen2, kLlama };

// The model's tensors under Hugging Face names (api/hf_names.h, Note [Qwen2 names]),
// gates folded, in f32. Qwen2 always has q/k/v biases (zeros for a model without them);
// Llama has none (ConfigError for a model that has them).
std::vector<NamedTensor> hf_tensors(const nn::Transformer& net, HfArchitecture arch);
std::vector<NamedTensor> qwen2_tensors(const nn::Transformer& net);  // hf_tensors(net, kQwen2)

// config.json (Note [uneven config]); `source` is recorded as prunerec.source. An imported
// model's token ids (bos, eos) come from `pretrained` (may be null); `item_tokens` says
// whether ids are items (a recommender with items.tsv) or a tokenizer's tokens.
std::string hf_config_json(const nn::Transformer& net, const std::string& source, HfArchitecture arch,
                           const pb::Pretrained* pretrained, bool item_tokens);
std::string qwen2_config_json(const nn::Transformer& net, const std::string& source);

// True when stock transformers Qwen2 computes the same function as the model.
bool stock_qwen2_compatible(const nn::Transformer& net);

// items.tsv content.
std::string items_tsv(const recsys::ItemCatalog& catalog);

// `count` histories of distinct random items, deterministic in `seed`: lengths spread over
// 1 .. max_len (the first is max_len long, the second 1 long), for check.json.
std::vector<std::vector<std::string>> random_histories(const recsys::ItemCatalog& catalog, int count, int max_len,
                                                       std::uint64_t seed);

// check.json for these histories (raw ids; each must be known and non-empty: ConfigError).
std::string check_json(const recsys::Recommender& rec, const std::vector<std::vector<std::string>>& histories);

struct ExportOptions {
  std::string source;                                     // recorded in config.json
  std::vector<std::vector<std::string>> check_histories;  // non-empty: also write check.json
};

struct ExportSummary {
  std::string dir;
  std::string architecture;  // "Qwen2ForCausalLM" or "LlamaForCausalLM"
  std::vector<std::string> tokenizer_files;
  std::int64_t tensors = 0;
  std::uint64_t safetensors_bytes = 0;
  bool uniform_layers = false;
  bool wrote_check = false;
  bool wrote_items = false;
};

// Writes the export folder. `dir` may exist only as an empty folder or an earlier export
// (holding nothing but the files above); anything else is a ConfigError, so a wrong --out
// never deletes a user's files.
ExportSummary export_qwen2(const recsys::Recommender& rec, const std::string& dir, const ExportOptions& options = {});

// The general form: any model; `catalog` (may be null) adds items.tsv; `pretrained` (may be
// null; an imported model's, pb::Manifest::pretrained) chooses the architecture (a model
// imported from Llama exports as Llama) and adds its tokenizer files and token ids, so
// export -> import gives the same model and import -> export the source's tensors
// (docs/export.md). check.json needs `rec`.
ExportSummary export_model(const nn::Transformer& net, const recsys::ItemCatalog* catalog,
                           const pb::Pretrained* pretrained, const std::string& dir, const ExportOptions& options,
                           const recsys::Recommender* rec = nullptr);

}  // namespace prunerec::hf
