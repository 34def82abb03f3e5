// The one map between engine tensor names and Hugging Face Qwen2 / Llama names, used by
// the export (api/hf_export.h) and the import (api/hf_import.h) alike. Both architectures
// use the same names; Llama simply has no q/k/v biases and an untied lm_head.
//
//   to_hf_name("blocks.3.attn.q_proj.bias")          == "model.layers.3.self_attn.q_proj.bias"
//   from_hf_name("model.layers.3.mlp.up_proj.weight") == "blocks.3.mlp.up_proj.weight"
//   to_hf_name("blocks.3.attn.head_gate")            == ""   (a buffer with no HF tensor)
//
// The table is Note [Qwen2 names] in api/hf_export.h.
#pragma once

#include <string>
#include <string_view>

namespace prunerec::hf {

// The Hugging Face name of an engine parameter, or "" for a name with none (the gate
// buffers, which the export folds into the following projection).
std::string to_hf_name(std::string_view engine_name);

// The engine name of a Hugging Face tensor, or "" for a name the engine has no tensor for.
std::string from_hf_name(std::string_view hf_name);

}  // namespace prunerec::hf
