// prunerec export: a model as safetensors + config.json (Qwen2 names) + items.tsv, for
// PyTorch and Hugging Face users. The work is in api/hf_export.h; docs/export.md shows how
// to load and check the result (tools/check_export.py).
#include <fstream>
#include <iostream>
#include <sstream>

#include "api/hf_export.h"
#include "apps/cli.h"
#include "apps/commands.h"
#include "apps/common.h"
#include "base/json.h"
#include "nn/checkpoint.h"

namespace prunerec::apps {
namespace {

// One history per line: raw item ids, oldest first, separated by spaces or commas; blank
// lines and lines starting with '#' are skipped.
std::vector<std::vector<std::string>> read_histories(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw IoError(path + ": cannot open the histories file");
  std::vector<std::vector<std::string>> out;
  std::string line;
  while (std::getline(in, line)) {
    for (char& c : line)
      if (c == ',') c = ' ';
    std::istringstream is(line);
    std::vector<std::string> ids;
    for (std::string id; is >> id;) ids.push_back(id);
    if (ids.empty() || ids[0][0] == '#') continue;
    out.push_back(std::move(ids));
  }
  if (out.empty()) throw ConfigError(path + ": holds no history");
  return out;
}

}  // namespace

int cmd_export(const Args& args) {
  cli::Flags flags("export",
                   "Write a model as DIR/model.safetensors (Qwen2 tensor names), DIR/config.json (Qwen2 fields plus "
                   "per-layer widths for pruned models) and DIR/items.tsv (logit column -> item id, title). "
                   "DIR is replaced atomically; it must be new, empty or an earlier export. "
                   "With --check-histories or --check-random, DIR/check.json also holds prunerec's logits for "
                   "some histories, which tools/check_export.py compares with a plain PyTorch model.",
                   "prunerec export --model runs/ml1m/teacher.prc --format safetensors --out runs/ml1m/hf\n"
                   "  prunerec export --model runs/qwen2.prc --out runs/qwen2-hf   (an imported model: its "
                   "architecture, tokenizer files and token ids come back out)");
  std::string model_path, format = "safetensors", out, check_file;
  int check_random = 0;
  std::uint64_t seed = 1;
  bool json = false;
  flags.add("model", &model_path, "model file (from train or prune)", cli::Flags::kRequired);
  flags.add("format", &format, "output format; only safetensors");
  flags.choices("format", {"safetensors"});
  flags.add("out", &out, "output folder", cli::Flags::kRequired);
  flags.add("check-histories", &check_file,
            "file with one history per line (raw item ids, oldest first): write check.json with their logits");
  flags.add("check-random", &check_random, "write check.json for this many random histories (default: none)");
  flags.range("check-random", 0);
  flags.add("seed", &seed, "seed of the random histories");
  flags.add_switch("json", &json, "print one JSON object");
  flags.parse(args);
  check_output_folder("export", "--out", out);
  if (check_random > 0 && !check_file.empty())
    throw cli::UsageError("export: give --check-histories or --check-random, not both");

  hf::ExportOptions options;
  options.source = model_path;
  hf::ExportSummary s;
  if (nn::read_checkpoint_manifest(model_path).has_catalog()) {
    const recsys::Recommender rec = recsys::load_recommender(model_path);
    if (!check_file.empty()) options.check_histories = read_histories(check_file);
    if (check_random > 0)
      options.check_histories =
          hf::random_histories(rec.catalog, check_random, static_cast<int>(rec.net->config().max_len()), seed);
    s = hf::export_qwen2(rec, out, options);
  } else {
    // A language model (imported, or trained on tokens): no items.tsv or check.json.
    if (!check_file.empty() || check_random > 0)
      throw cli::UsageError("export: --check-histories / --check-random need an item-token model with a catalogue");
    const nn::LoadedModel m = nn::load_model(model_path, {.mmap = true, .with_optimizer = false});
    s = hf::export_model(*m.model, nullptr, m.manifest.has_pretrained() ? &m.manifest.pretrained() : nullptr, out,
                         options);
  }

  if (json) {
    Json j;
    j.begin_object()
        .key("dir").value(s.dir)
        .key("architecture").value(s.architecture)
        .key("tensors").value(s.tensors)
        .key("safetensors_bytes").value(static_cast<std::int64_t>(s.safetensors_bytes))
        .key("uniform_layers").value(s.uniform_layers)
        .key("check").value(s.wrote_check)
        .end_object();
    std::cout << j.str() << "\n";
    return 0;
  }
  std::cout << "wrote " << s.dir << "/: model.safetensors (" << s.architecture << ", " << s.tensors << " tensors, "
            << s.safetensors_bytes << " bytes), config.json" << (s.wrote_items ? ", items.tsv" : "");
  for (const auto& f : s.tokenizer_files) std::cout << ", " << f;
  std::cout << (s.wrote_check ? ", check.json" : "") << "\n";
  if (!s.uniform_layers)
    std::cout << "note: the layers are uneven (or use a custom KV-head map); stock transformers Qwen2 cannot load "
                 "this model as is. Use tools/check_export.py (load_export, build_model); see docs/export.md.\n";
  return 0;
}

}  // namespace prunerec::apps
