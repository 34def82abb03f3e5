// prunerec inspect
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <set>

#include "apps/cli.h"
#include "apps/commands.h"
#include "base/json.h"
#include "nn/checkpoint.h"
#include "text/tokenizer.h"

namespace prunerec::apps {
namespace {

// What a title-mode model adds (docs/title-mode.md): its tokenizer, prompt and history.
struct TitleSummary {
  std::string tokenizer;  // "tokenizer.model (trained on the catalogue)" or an imported model's file
  std::int32_t pieces = 0;
  std::int32_t history = 0;
  std::string template_source;
  std::int64_t distinct_titles = 0;
};

TitleSummary title_summary(const pb::Manifest& manifest, const std::string& model_path) {
  const pb::TitleMode& tm = manifest.title_mode();
  TitleSummary s;
  s.history = tm.history();
  s.template_source = tm.template_source();
  std::unique_ptr<text::Tokenizer> tok;
  if (tm.has_tokenizer()) {
    s.tokenizer = tm.tokenizer().name() + " (trained on the catalogue)";
    tok = text::tokenizer_from_bytes(model_path + " (" + tm.tokenizer().name() + ")", tm.tokenizer().data());
  } else {
    for (const auto& f : manifest.pretrained().tokenizer_files())
      if (!tok && (f.name() == "tokenizer.json" || f.name() == "tokenizer.model")) {
        s.tokenizer = f.name() + " (the imported model's)";
        tok = text::tokenizer_from_bytes(model_path + " (" + f.name() + ")", f.data());
      }
  }
  if (tok) s.pieces = tok->vocab_size();
  std::set<std::string> titles(manifest.catalog().titles().begin(), manifest.catalog().titles().end());
  s.distinct_titles = static_cast<std::int64_t>(titles.size());
  return s;
}

}  // namespace

int cmd_inspect(const Args& args) {
  cli::Flags flags("inspect", "A model's configuration per layer and its parameter counts.",
                   "prunerec inspect --model runs/beauty/final.prc --json");
  std::string model_path;
  bool json = false;
  flags.add("model", &model_path, "model file", cli::Flags::kRequired);
  flags.add_switch("json", &json, "print one JSON object");
  flags.parse(args);
  const nn::LoadedModel m = nn::load_model(model_path, {.mmap = true, .with_optimizer = false});
  const nn::Transformer& net = *m.model;
  const pb::ModelConfig c = net.config();
  const std::int64_t total = net.num_parameters(), emb = net.embedding_parameters(), non_emb = net.non_embedding_parameters();
  auto layer_params = [&](int l) {
    std::int64_t n = 0;
    for (const auto& [name, v] : net.named_parameters())
      if (name.rfind("blocks." + std::to_string(l) + ".", 0) == 0) n += v.numel();
    return n;
  };
  if (json) {
    Json j;
    j.begin_object()
        .key("model").value(model_path)
        .key("name").value(c.name())
        .key("vocab_size").value(static_cast<std::int64_t>(c.vocab_size()))
        .key("hidden").value(static_cast<std::int64_t>(c.hidden()))
        .key("head_dim").value(static_cast<std::int64_t>(c.head_dim()))
        .key("max_len").value(static_cast<std::int64_t>(c.max_len()))
        .key("tied").value(c.tie_embeddings())
        .key("total_params").value(total)
        .key("embedding_params").value(emb)
        .key("non_embedding_params").value(non_emb)
        .key("layers").begin_array();
    for (int l = 0; l < c.layers_size(); ++l) {
      const auto& L = c.layers(l);
      j.begin_object().key("num_heads").value(static_cast<std::int64_t>(L.num_heads()))
          .key("num_kv_heads").value(static_cast<std::int64_t>(L.num_kv_heads()))
          .key("mlp_width").value(static_cast<std::int64_t>(L.mlp_width()))
          .key("kv_map").begin_array();
      for (int g : L.kv_map()) j.value(static_cast<std::int64_t>(g));
      j.end_array().key("params").value(layer_params(l)).end_object();
    }
    j.end_array();
    if (m.manifest.has_title_mode()) {
      const TitleSummary t = title_summary(m.manifest, model_path);
      j.key("title_mode").begin_object()
          .key("tokenizer").value(t.tokenizer)
          .key("pieces").value(static_cast<std::int64_t>(t.pieces))
          .key("history").value(static_cast<std::int64_t>(t.history))
          .key("template").value(t.template_source)
          .key("items").value(static_cast<std::int64_t>(m.manifest.catalog().raw_ids_size()))
          .key("distinct_titles").value(t.distinct_titles)
          .end_object();
    }
    j.key("metadata").begin_object();
    for (const auto& [k, v] : m.manifest.metadata()) j.key(k).value(v);
    j.end_object().end_object();
    std::cout << j.str() << "\n";
    return 0;
  }
  std::printf("%s: %s, %lld bytes\n", model_path.c_str(), c.name().empty() ? "model" : c.name().c_str(),
              static_cast<long long>(std::filesystem::file_size(model_path)));
  std::printf("vocabulary %d, hidden %d, head_dim %d, max_len %d, %s head\n", c.vocab_size(), c.hidden(), c.head_dim(),
              c.max_len(), c.tie_embeddings() ? "tied" : "separate");
  std::printf("%5s %6s %9s %10s %12s\n", "layer", "heads", "kv heads", "mlp width", "parameters");
  for (int l = 0; l < c.layers_size(); ++l)
    std::printf("%5d %6d %9d %10d %12lld\n", l, c.layers(l).num_heads(), c.layers(l).num_kv_heads(), c.layers(l).mlp_width(),
                static_cast<long long>(layer_params(l)));
  std::printf("parameters: %lld total, %lld embedding, %lld non-embedding\n", static_cast<long long>(total),
              static_cast<long long>(emb), static_cast<long long>(non_emb));
  if (m.manifest.has_catalog())
    std::printf("catalogue: %d items%s\n", m.manifest.catalog().raw_ids_size(),
                m.manifest.catalog().titles_size() ? ", with titles" : "");
  if (m.manifest.has_title_mode()) {
    const TitleSummary t = title_summary(m.manifest, model_path);
    std::printf("title mode: %s, %d pieces; prompts list the last %d items (template: %s); %lld distinct titles\n",
                t.tokenizer.c_str(), t.pieces, t.history, t.template_source.c_str(),
                static_cast<long long>(t.distinct_titles));
  }
  if (m.manifest.state().has_best_epoch())
    std::printf("trained: best epoch %d of %d, validation NDCG@10 %.4f\n", m.manifest.state().best_epoch(),
                m.manifest.state().epoch(), m.manifest.state().best_metric());
  return 0;
}

}  // namespace prunerec::apps
