// prunerec import: a Hugging Face Qwen2 / Llama checkpoint folder as an engine model file.
// The work is in api/hf_import.h; docs/import.md is the user's page.
#include <iostream>

#include "api/hf_import.h"
#include "apps/cli.h"
#include "apps/commands.h"
#include "base/format.h"
#include "base/json.h"

namespace prunerec::apps {

int cmd_import(const Args& args) {
  cli::Flags flags("import",
                   "Read a Hugging Face decoder checkpoint (config.json + model.safetensors or a sharded "
                   "model.safetensors.index.json; Qwen2ForCausalLM or LlamaForCausalLM; F32, BF16 or F16 weights) "
                   "into an f32 model file that carries the tokenizer files and the source's checksums. "
                   "Configs the engine cannot compute exactly (rope_scaling, sliding windows, another activation "
                   "or architecture) are refused. Nothing is written unless the whole import succeeds.",
                   "prunerec import --hf models/Qwen2-0.5B --out runs/qwen2-0.5b.prc");
  std::string dir, out;
  bool json = false;
  flags.add("hf", &dir, "Hugging Face model folder", cli::Flags::kRequired);
  flags.add("out", &out, "model file to write", cli::Flags::kRequired);
  flags.add_switch("json", &json, "print one JSON object");
  flags.parse(args);

  const hf::ImportSummary s = hf::import_hf(dir, out);
  if (json) {
    Json j;
    j.begin_object().key("model").value(out).key("architecture").value(s.architecture);
    j.key("tensors").value(s.tensors).key("parameters").value(s.parameters).key("source_dtype").value(s.source_dtype);
    j.key("tokenizer_files").begin_array();
    for (const auto& f : s.tokenizer_files) j.value(f);
    j.end_array().end_object();
    std::cout << j.str() << "\n";
    return 0;
  }
  std::cout << "wrote " << out << ": " << s.architecture << ", " << format_count(s.parameters) << " parameters from "
            << s.tensors << " " << s.source_dtype << " tensors (now f32)";
  if (s.tokenizer_files.empty()) {
    std::cout << "; no tokenizer files found\n";
  } else {
    std::cout << "; tokenizer:";
    for (const auto& f : s.tokenizer_files) std::cout << " " << f;
    std::cout << "\n";
  }
  return 0;
}

}  // namespace prunerec::apps
