#include "api/hf_export.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <filesystem>
#include <set>

#include "api/hf_names.h"
#include "base/atomic_file.h"
#include "base/json.h"
#include "tensor/rng.h"
#include "recsys/batching.h"

namespace prunerec::hf {
namespace fs = std::filesystem;
namespace {

const char* const kExportFiles[] = {"model.safetensors", "config.json",           "items.tsv",      "check.json",
                                    "tokenizer.json",    "tokenizer_config.json", "tokenizer.model"};

// w [out, in] with column block c (width `group`) scaled by gate[c], as f32. Returns w
// itself (converted) when every gate is 1, so ungated weights export bit for bit.
Tensor fold_column_gates(const Tensor& w, const Tensor& gate, std::int64_t group) {
  const std::vector<double> g = gate.to(DType::f64).to_vector<double>();
  if (std::all_of(g.begin(), g.end(), [](double v) { return v == 1.0; })) return w.to(DType::f32).contiguous();
  PR_ASSERT(w.dim() == 2 && w.size(1) == static_cast<std::int64_t>(g.size()) * group);
  Tensor t = w.clone().to(DType::f64).contiguous();  // never writes into the model's tensor
  double* p = t.data<double>();
  const std::int64_t rows = t.size(0), cols = t.size(1);
  for (std::int64_t r = 0; r < rows; ++r)
    for (std::int64_t c = 0; c < cols; ++c) p[r * cols + c] *= g[static_cast<std::size_t>(c / group)];
  return t.to(DType::f32);
}

std::string float_text(float v) {
  if (!std::isfinite(v)) return "null";
  char buf[32];
  const auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v);
  PR_ASSERT(ec == std::errc());
  return std::string(buf, end);
}

std::string tsv_escape(const std::string& s) {
  std::string o;
  o.reserve(s.size());
  for (char c : s) {
    switch (c) {
      case '\\': o += "\\\\"; break;
      case '\t': o += "\\t"; break;
      case '\n': o += "\\n"; break;
      case '\r': o += "\\r"; break;
      default: o += c;
    }
  }
  return o;
}

// Checks that `dir` is absent, an empty folder or an earlier export.
void check_replaceable(const fs::path& dir) {
  std::error_code ec;
  const auto st = fs::symlink_status(dir, ec);
  if (ec || !fs::exists(st)) return;
  PR_CHECK_T(ConfigError, fs::is_directory(st), "export: ", dir.string(), " exists and is not a folder");
  for (const auto& entry : fs::directory_iterator(dir)) {
    const std::string name = entry.path().filename().string();
    const bool ours =
        std::any_of(std::begin(kExportFiles), std::end(kExportFiles), [&](const char* f) { return name == f; });
    PR_CHECK_T(ConfigError, ours && entry.is_regular_file(), "export: ", dir.string(), " holds '", name,
               "', which an export never writes; refusing to replace it (choose an empty or new --out)");
  }
}

}  // namespace

std::vector<NamedTensor> hf_tensors(const nn::Transformer& net, HfArchitecture arch) {
  const bool llama = arch == HfArchitecture::kLlama;
  PR_CHECK_T(ConfigError, !llama || !net.config().qkv_bias(),
             "export: a model with q/k/v biases cannot be written as Llama (it has none)");
  std::vector<NamedTensor> out;
  std::int64_t exported_params = 0;  // elements that are model parameters (not zero biases)
  for (const auto& [name, var] : net.named_parameters()) {
    const std::string hf = to_hf_name(name);
    PR_CHECK_T(InternalError, !hf.empty(), "export: parameter '", name, "' has no Hugging Face name");
    Tensor t = var.value().to(DType::f32).contiguous();
    // Gates fold into the projection that follows them (Note [Qwen2 names]).
    const std::string suffix_o = "attn.o_proj.weight", suffix_down = "mlp.down_proj.weight";
    if (name.size() > suffix_o.size() && name.compare(name.size() - suffix_o.size(), suffix_o.size(), suffix_o) == 0) {
      const nn::Attention& a = net.block(std::stoi(name.substr(7))).attn();
      t = fold_column_gates(var.value(), a.head_gate(), a.head_dim());
    } else if (name.size() > suffix_down.size() &&
               name.compare(name.size() - suffix_down.size(), suffix_down.size(), suffix_down) == 0) {
      t = fold_column_gates(var.value(), net.block(std::stoi(name.substr(7))).mlp().channel_gate(), 1);
    }
    exported_params += t.numel();
    out.emplace_back(hf, std::move(t));
  }
  if (!llama && !net.config().qkv_bias()) {
    // Stock Qwen2 always has q/k/v biases: a model without them exports zero biases.
    for (int l = 0; l < net.num_layers(); ++l) {
      const nn::Attention& a = net.block(l).attn();
      const std::pair<const char*, const nn::Linear*> qkv[] = {
          {"q_proj", &a.q_proj()}, {"k_proj", &a.k_proj()}, {"v_proj", &a.v_proj()}};
      for (const auto& [proj, lin] : qkv)
        out.emplace_back(to_hf_name("blocks." + std::to_string(l) + ".attn." + proj + ".bias"),
                         Tensor::zeros({lin->out_features()}));
    }
  }
  // Every parameter went somewhere: a parameter added to the model later must be mapped.
  PR_CHECK_T(InternalError, exported_params == net.num_parameters(), "export: mapped ", exported_params,
             " parameter elements, the model has ", net.num_parameters());
  return out;
}

std::vector<NamedTensor> qwen2_tensors(const nn::Transformer& net) { return hf_tensors(net, HfArchitecture::kQwen2); }

bool stock_qwen2_compatible(const nn::Transformer& net) {
  for (int l = 0; l < net.num_layers(); ++l) {
    const nn::Block& b = net.block(l), &first = net.block(0);
    const std::int64_t hq = b.attn().num_heads(), hkv = b.attn().num_kv_heads();
    if (hq == 0 || hkv == 0 || b.mlp().width() == 0 || hq % hkv != 0) return false;
    if (hq != first.attn().num_heads() || hkv != first.attn().num_kv_heads() || b.mlp().width() != first.mlp().width())
      return false;
    const std::vector<std::int32_t>& kv_map = b.attn().kv_map();
    for (std::int64_t h = 0; h < hq; ++h)
      if (kv_map[static_cast<std::size_t>(h)] != h / (hq / hkv)) return false;
  }
  return net.num_layers() > 0;
}

std::string hf_config_json(const nn::Transformer& net, const std::string& source, HfArchitecture arch,
                           const pb::Pretrained* pretrained, bool item_tokens) {
  const bool llama = arch == HfArchitecture::kLlama;
  const pb::ModelConfig c = net.config();
  std::int64_t heads = 0, kv_heads = 0, widths = 0;  // the widest layer's
  for (int l = 0; l < net.num_layers(); ++l) {
    const nn::Block& b = net.block(l);
    heads = std::max(heads, b.attn().num_heads());
    kv_heads = std::max(kv_heads, b.attn().num_kv_heads());
    widths = std::max(widths, b.mlp().width());
  }
  bool gated = false;
  for (const auto& [name, buffer] : net.named_buffers()) {
    const std::vector<double> g = buffer->to(DType::f64).to_vector<double>();
    gated = gated || std::any_of(g.begin(), g.end(), [](double v) { return v != 1.0; });
  }
  auto per_layer = [&](Json& j, const char* key, auto width_of) {
    j.key(key).begin_array();
    for (int l = 0; l < net.num_layers(); ++l) j.value(static_cast<std::int64_t>(width_of(net.block(l))));
    j.end_array();
  };

  // Qwen2's (or Llama's) own fields first, then the per-layer lists, then prunerec's.
  Json j;
  j.begin_object();
  j.key("architectures").begin_array().value(llama ? "LlamaForCausalLM" : "Qwen2ForCausalLM").end_array();
  j.key("model_type").value(llama ? "llama" : "qwen2");
  j.key("hidden_size").value(net.hidden_size());
  j.key("num_hidden_layers").value(net.num_layers());
  j.key("num_attention_heads").value(heads);
  j.key("num_key_value_heads").value(kv_heads);
  j.key("intermediate_size").value(widths);
  j.key("head_dim").value(static_cast<std::int64_t>(c.head_dim()));
  j.key("hidden_act").value("silu");
  j.key("rope_theta").value(c.rope_theta());
  j.key("rms_norm_eps").value(c.norm_eps());
  j.key("vocab_size").value(net.vocab_size());
  j.key("tie_word_embeddings").value(c.tie_embeddings());
  j.key("max_position_embeddings").value(static_cast<std::int64_t>(c.max_len()));
  j.key("initializer_range").value(c.init_std());
  j.key("attention_dropout").value(0.0);
  if (llama) {
    j.key("attention_bias").value(false);
    j.key("mlp_bias").value(false);
  } else {
    j.key("use_sliding_window").value(false);
  }
  if (pretrained && pretrained->bos_token_id() >= 0) j.key("bos_token_id").value(pretrained->bos_token_id());
  if (pretrained && pretrained->eos_token_id() >= 0) j.key("eos_token_id").value(pretrained->eos_token_id());
  j.key("use_cache").value(true);
  j.key("torch_dtype").value("float32");
  j.key("uniform_layers").value(stock_qwen2_compatible(net));
  per_layer(j, "layer_num_attention_heads", [](const nn::Block& b) { return b.attn().num_heads(); });
  per_layer(j, "layer_num_key_value_heads", [](const nn::Block& b) { return b.attn().num_kv_heads(); });
  per_layer(j, "layer_intermediate_size", [](const nn::Block& b) { return b.mlp().width(); });
  j.key("layer_kv_map").begin_array();
  for (int l = 0; l < net.num_layers(); ++l) {
    j.begin_array();
    for (std::int32_t g : net.block(l).attn().kv_map()) j.value(g);
    j.end_array();
  }
  j.end_array();
  j.key("prunerec").begin_object();
  j.key("format_version").value(1).key("name").value(c.name()).key("source").value(source);
  if (item_tokens) {
    j.key("mode").value("item-token").key("items_file").value("items.tsv");
    j.key("padding").value("left; padded positions are masked and embed to zero");
    j.key("positions").value("RoPE position of step t in row b is t - pad_b (counted from the first real item)");
  } else {
    j.key("mode").value("language-model");
  }
  j.key("qkv_bias").value(c.qkv_bias()).key("gates_folded").value(gated);
  j.key("non_embedding_parameters").value(net.non_embedding_parameters());
  if (pretrained) j.key("imported_from").value(pretrained->source());
  j.end_object();
  j.end_object();
  return j.str() + "\n";
}

std::string qwen2_config_json(const nn::Transformer& net, const std::string& source) {
  return hf_config_json(net, source, HfArchitecture::kQwen2, nullptr, true);
}

std::string items_tsv(const recsys::ItemCatalog& catalog) {
  std::string s = "index\titem_id\ttitle\n";
  for (std::int32_t i = 0; i < catalog.size(); ++i)
    s += std::to_string(i) + "\t" + tsv_escape(catalog.raw_ids[static_cast<std::size_t>(i)]) + "\t" +
         tsv_escape(catalog.title(i)) + "\n";
  return s;
}

std::vector<std::vector<std::string>> random_histories(const recsys::ItemCatalog& catalog, int count, int max_len,
                                                       std::uint64_t seed) {
  PR_CHECK_T(ConfigError, count >= 0 && max_len > 0, "random_histories: count ", count, ", max_len ", max_len);
  PR_CHECK_T(ConfigError, catalog.size() > 0, "random_histories: the catalogue is empty");
  Rng rng(seed, /*stream=*/0x6866);  // the engine's one generator (tensor/rng.h): the same draws everywhere
  const int longest = std::min<int>(max_len, catalog.size());
  std::vector<std::vector<std::string>> out;
  for (int i = 0; i < count; ++i) {
    const int len = i == 0 ? longest : i == 1 ? 1 : 1 + static_cast<int>(rng.below(static_cast<std::uint64_t>(longest)));
    std::set<std::int32_t> seen;
    std::vector<std::string> h;
    while (static_cast<int>(h.size()) < len) {
      const auto item = static_cast<std::int32_t>(rng.below(static_cast<std::uint64_t>(catalog.size())));
      if (seen.insert(item).second) h.push_back(catalog.raw_ids[static_cast<std::size_t>(item)]);
    }
    out.push_back(std::move(h));
  }
  return out;
}

std::string check_json(const recsys::Recommender& rec, const std::vector<std::vector<std::string>>& histories) {
  PR_CHECK_T(ConfigError, !histories.empty(), "export check: no histories");
  const int max_len = static_cast<int>(rec.net->config().max_len());
  std::vector<std::vector<std::int32_t>> fed;
  for (std::size_t i = 0; i < histories.size(); ++i) {
    std::vector<std::int32_t> items;
    for (const auto& raw : histories[i]) {
      const std::int32_t item = rec.catalog.find(raw);
      PR_CHECK_T(ConfigError, item >= 0, "export check: history ", i, ": item '", raw, "' is not in the catalogue");
      items.push_back(item);
    }
    PR_CHECK_T(ConfigError, !items.empty(), "export check: history ", i, " is empty");
    if (static_cast<int>(items.size()) > max_len) items.erase(items.begin(), items.end() - max_len);
    fed.push_back(std::move(items));
  }
  const recsys::Batch b = recsys::make_history_batch(fed, max_len);
  const Tensor scores = recsys::next_item_scores(*rec.net, b.ids, b.pads).to(DType::f32).contiguous();  // [N, V]
  const std::int64_t V = scores.size(1);

  Json j;
  j.begin_object().key("format").value("prunerec-export-check/1").key("num_items").value(V).key("max_len").value(max_len);
  j.key("histories").begin_array();
  for (const auto& h : fed) {
    j.begin_array();
    for (std::int32_t item : h) j.value(item);
    j.end_array();
  }
  j.end_array().key("history_ids").begin_array();
  for (const auto& h : fed) {
    j.begin_array();
    for (std::int32_t item : h) j.value(rec.catalog.raw_ids[static_cast<std::size_t>(item)]);
    j.end_array();
  }
  j.end_array().key("logits").begin_array();
  const float* p = scores.data<float>();
  for (std::size_t i = 0; i < fed.size(); ++i) {
    j.begin_array();
    const float* row = p + static_cast<std::int64_t>(i) * V;
    for (std::int64_t v = 0; v < V; ++v) j.raw(float_text(row[v]));  // shortest text that reads back to the float
    j.end_array();
  }
  j.end_array().end_object();
  return j.str() + "\n";
}

ExportSummary export_model(const nn::Transformer& net, const recsys::ItemCatalog* catalog,
                           const pb::Pretrained* pretrained, const std::string& dir_text, const ExportOptions& options,
                           const recsys::Recommender* rec) {
  PR_CHECK_T(ConfigError, !dir_text.empty(), "export: no output folder given");
  const fs::path dir = fs::path(dir_text).lexically_normal();
  PR_CHECK_T(ConfigError, dir.has_filename() && dir.filename() != "." && dir.filename() != "..", "export: '",
             dir_text, "' does not name a folder");
  check_replaceable(dir);
  std::error_code ec;
  if (dir.has_parent_path()) fs::create_directories(dir.parent_path(), ec);
  const HfArchitecture arch = pretrained && pretrained->architecture() == "LlamaForCausalLM" && !net.config().qkv_bias()
                                  ? HfArchitecture::kLlama
                                  : HfArchitecture::kQwen2;
  AtomicDirectory out(dir.string());

  ExportSummary summary;
  summary.dir = dir.string();
  summary.architecture = arch == HfArchitecture::kLlama ? "LlamaForCausalLM" : "Qwen2ForCausalLM";
  const std::vector<NamedTensor> tensors = hf_tensors(net, arch);
  summary.tensors = static_cast<std::int64_t>(tensors.size());
  std::map<std::string, std::string> metadata = {{"format", "pt"}, {"producer", "prunerec"}};
  if (catalog) metadata["items"] = std::to_string(catalog->size());
  summary.safetensors_bytes = write_safetensors(out.path("model.safetensors"), tensors, metadata);
  write_file_atomic(out.path("config.json"), hf_config_json(net, options.source, arch, pretrained, catalog != nullptr));
  if (catalog) {
    write_file_atomic(out.path("items.tsv"), items_tsv(*catalog));
    summary.wrote_items = true;
  }
  if (!options.check_histories.empty()) {
    PR_CHECK_T(ConfigError, rec, "export: check histories need an item-token model (one with a catalogue)");
    write_file_atomic(out.path("check.json"), check_json(*rec, options.check_histories));
    summary.wrote_check = true;
  }
  if (pretrained) {
    for (const pb::StoredFile& f : pretrained->tokenizer_files()) {
      PR_CHECK_T(IoError, std::count(std::begin(kExportFiles), std::end(kExportFiles), f.name()) == 1,
                 "export: the model stores a tokenizer file named '", f.name(), "', which an export never writes");
      write_file_atomic(out.path(f.name()), f.data());
      summary.tokenizer_files.push_back(f.name());
    }
  }
  summary.uniform_layers = stock_qwen2_compatible(net);
  out.commit();
  return summary;
}

ExportSummary export_qwen2(const recsys::Recommender& rec, const std::string& dir, const ExportOptions& options) {
  return export_model(*rec.net, &rec.catalog, rec.manifest.has_pretrained() ? &rec.manifest.pretrained() : nullptr,
                      dir, options, &rec);
}

}  // namespace prunerec::hf
