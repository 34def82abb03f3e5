// Importing a pretrained Hugging Face decoder (Qwen2 / Qwen2.5, Llama family) as an
// engine model. `prunerec import --hf DIR --out MODEL` is a thin CLI over import_hf;
// docs/import.md is the user's page.
//
//   hf::ImportSummary s = hf::import_hf("models/Qwen2-0.5B", "runs/qwen2.prc");
//   nn::LoadedModel m = nn::load_model("runs/qwen2.prc");   // an ordinary engine model
//   m.manifest.pretrained().tokenizer_files(0).name()         // "tokenizer.json"
//
// What is read from DIR:
//   config.json                     (parse_hf_config; Note [exact configs])
//   model.safetensors, or model.safetensors.index.json and the shards its weight_map names
//   tokenizer.json, tokenizer_config.json, tokenizer.model   (each optional; stored byte
//                                   for byte in the checkpoint, pb::Pretrained)
//
// Note [streaming import]
// ~~~~~~~~~~~~~~~~~~~~~~~
// Every safetensors file is memory-mapped and validated (Note [safetensors validation]);
// the tensor list is compared with what the config's model has (missing, extra, wrong
// shape: all listed by name in one IoError) before the f32 model is allocated; then each
// tensor is converted (F32/F16/BF16/F64 -> f32) straight into the model's parameter and
// its source pages are dropped. Peak memory is the f32 model plus about one source tensor,
// not the model twice. Nothing is written until every tensor is read and finite; the
// checkpoint is published through base/atomic_file.h.
//
// Note [exact configs]
// ~~~~~~~~~~~~~~~~~~~~
// The engine computes exactly: pre-norm blocks, RMSNorm (eps = rms_norm_eps), RoPE in the
// rotate-half convention with theta = rope_theta and no scaling, grouped-query attention
// with contiguous groups (or a prunerec export's layer_kv_map), scale 1/sqrt(head_dim),
// SwiGLU with SiLU, q/k/v biases for Qwen2 and none for Llama, tied or untied lm_head.
// A config asking for anything else is refused with the field and its value:
// rope_scaling not null, use_sliding_window true, hidden_act other than silu,
// attention_bias or mlp_bias true (Llama), quantization_config, an architecture other
// than Qwen2ForCausalLM / LlamaForCausalLM, or a model_type that disagrees with it.
// Fields that do not change the computation (dropout rates, token ids, torch_dtype,
// use_cache, pretraining_tp, max_window_layers without sliding) are accepted.
// A checkpoint's rotary_emb.inv_freq buffers (older Llama files) are recomputed, not read.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "nn/transformer.h"
#include "proto/checkpoint.pb.h"

namespace prunerec::hf {

struct HfConfig {
  std::string architecture;  // "Qwen2ForCausalLM" or "LlamaForCausalLM"
  pb::ModelConfig model;     // normalised
  std::int32_t bos_token_id = -1, eos_token_id = -1;
  // Biases the file holds but the model does not use (a prunerec export of a model
  // without q/k/v biases writes zero biases for stock Qwen2): each must be all zero.
  bool zero_biases_in_file = false;
};

// Parses config.json (Note [exact configs]). `path` names the file in errors (IoError).
HfConfig parse_hf_config(std::string_view json, const std::string& path);

struct ImportedModel {
  std::unique_ptr<nn::Transformer> net;
  pb::Pretrained pretrained;  // source, checksums, config.json, tokenizer files
  std::int64_t source_tensors = 0;
};

// Reads DIR into an f32 engine model (Note [streaming import]). IoError naming the file,
// tensor or field on any problem.
ImportedModel read_hf_model(const std::string& dir);

struct ImportSummary {
  std::string architecture;
  std::int64_t tensors = 0;            // source tensors read
  std::int64_t parameters = 0;         // the engine model's parameter count
  std::string source_dtype;            // as in pb::Pretrained
  std::vector<std::string> tokenizer_files;
};

// read_hf_model, then save_model to `out` (atomically; nothing is written on failure).
ImportSummary import_hf(const std::string& dir, const std::string& out);

}  // namespace prunerec::hf
