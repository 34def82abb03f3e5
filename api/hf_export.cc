#include "api/hf_export.h"

#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <random>
#include <set>

#include "recsys/batching.h"
#include "base/atomic_file.h"
#include "base/json.h"

namespace prunerec::hf {
namespace fs = std::filesystem;
namespace {

const char* const kExportFiles[] = {"model.safetensors", "config.json", "items.tsv", "check.json"};

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

template <class T>
std::string int_list(const std::vector<T>& values) {
  std::string s = "[";
  for (std::size_t i = 0; i < values.size(); ++i) s.append(i ? ", " : "").append(std::to_string(values[i]));
  return s + "]";
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

std::string number_text(double v) {
  Json j;
  j.value(v);
  return j.str();
}

// Removes a staging folder unless released (the export failed before publishing).
class StagingGuard {
 public:
  explicit StagingGuard(fs::path p) : path_(std::move(p)) {}
  ~StagingGuard() {
    if (path_.empty()) return;
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  void release() { path_.clear(); }

 private:
  fs::path path_;
};

void fsync_dir(const fs::path& dir) {
  const int fd = ::open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return;  // best effort: the files themselves were fsynced by AtomicFile
  (void)::fsync(fd);
  ::close(fd);
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

// Moves the finished staging folder to `dir`: a plain rename when `dir` is absent, else an
// atomic exchange (renameat2 RENAME_EXCHANGE) and removal of the old export; where the file
// system cannot exchange, the old export is renamed aside first (a crash between the two
// renames leaves it under <dir>.old.<pid>, never a half-written `dir`).
void publish(const fs::path& staging, const fs::path& dir) {
  std::error_code ec;
  if (!fs::exists(fs::symlink_status(dir, ec))) {
    if (::rename(staging.c_str(), dir.c_str()) != 0)
      throw IoError(detail::str_cat(dir.string(), ": rename from ", staging.string(), ": ", std::strerror(errno)));
    return;
  }
  if (::renameat2(AT_FDCWD, staging.c_str(), AT_FDCWD, dir.c_str(), RENAME_EXCHANGE) == 0) {
    fs::remove_all(staging, ec);  // now holds the old export
    return;
  }
  if (errno != EINVAL && errno != ENOSYS && errno != ENOTSUP)
    throw IoError(detail::str_cat(dir.string(), ": exchange with ", staging.string(), ": ", std::strerror(errno)));
  const fs::path old = dir.string() + ".old." + std::to_string(::getpid());
  if (::rename(dir.c_str(), old.c_str()) != 0)
    throw IoError(detail::str_cat(dir.string(), ": rename to ", old.string(), ": ", std::strerror(errno)));
  if (::rename(staging.c_str(), dir.c_str()) != 0) {
    const int err = errno;
    (void)::rename(old.c_str(), dir.c_str());
    throw IoError(detail::str_cat(dir.string(), ": rename from ", staging.string(), ": ", std::strerror(err)));
  }
  fs::remove_all(old, ec);
}

}  // namespace

std::vector<NamedTensor> qwen2_tensors(const nn::Transformer& net) {
  std::vector<NamedTensor> out;
  std::int64_t exported_params = 0;  // elements that are model parameters (not zero biases)
  auto add = [&](std::string name, const Tensor& t, bool is_parameter = true) {
    if (is_parameter) exported_params += t.numel();
    out.emplace_back(std::move(name), t.to(DType::f32).contiguous());
  };
  add("model.embed_tokens.weight", net.embed().weight().value());
  for (int l = 0; l < net.num_layers(); ++l) {
    const nn::Block& b = net.block(l);
    const nn::Attention& a = b.attn();
    const std::string p = "model.layers." + std::to_string(l) + ".";
    add(p + "input_layernorm.weight", b.attn_norm().weight().value());
    const std::pair<const char*, const nn::Linear*> qkv[] = {
        {"q_proj", &a.q_proj()}, {"k_proj", &a.k_proj()}, {"v_proj", &a.v_proj()}};
    for (const auto& [name, lin] : qkv) {
      add(p + "self_attn." + name + ".weight", lin->weight().value());
      if (lin->has_bias()) {
        add(p + "self_attn." + name + ".bias", lin->bias().value());
      } else {
        add(p + "self_attn." + name + ".bias", Tensor::zeros({lin->out_features()}), false);  // Qwen2 always has them
      }
    }
    const Tensor o = fold_column_gates(a.o_proj().weight().value(), a.head_gate(), a.head_dim());
    exported_params += o.numel();
    out.emplace_back(p + "self_attn.o_proj.weight", o);
    add(p + "post_attention_layernorm.weight", b.mlp_norm().weight().value());
    add(p + "mlp.gate_proj.weight", b.mlp().gate_proj().weight().value());
    add(p + "mlp.up_proj.weight", b.mlp().up_proj().weight().value());
    const Tensor down = fold_column_gates(b.mlp().down_proj().weight().value(), b.mlp().channel_gate(), 1);
    exported_params += down.numel();
    out.emplace_back(p + "mlp.down_proj.weight", down);
  }
  add("model.norm.weight", net.final_norm().weight().value());
  if (!net.tied()) add("lm_head.weight", net.output_weight().value());
  // Every parameter went somewhere: a parameter added to the model later must be mapped here.
  PR_CHECK_T(InternalError, exported_params == net.num_parameters(), "export: mapped ", exported_params,
             " parameter elements, the model has ", net.num_parameters());
  return out;
}

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

std::string qwen2_config_json(const nn::Transformer& net, const std::string& source) {
  const pb::ModelConfig c = net.config();
  std::vector<std::int64_t> heads, kv_heads, widths;
  std::vector<std::string> kv_maps;
  for (int l = 0; l < net.num_layers(); ++l) {
    const nn::Block& b = net.block(l);
    heads.push_back(b.attn().num_heads());
    kv_heads.push_back(b.attn().num_kv_heads());
    widths.push_back(b.mlp().width());
    kv_maps.push_back(int_list(b.attn().kv_map()));
  }
  auto max_of = [](const std::vector<std::int64_t>& v) {
    return v.empty() ? std::int64_t{0} : *std::max_element(v.begin(), v.end());
  };
  std::string kv_map_json = "[";
  for (std::size_t l = 0; l < kv_maps.size(); ++l) kv_map_json.append(l ? ", " : "").append(kv_maps[l]);
  kv_map_json += "]";
  bool gated = false;
  for (const auto& [name, buffer] : net.named_buffers()) {
    const std::vector<double> g = buffer->to(DType::f64).to_vector<double>();
    gated = gated || std::any_of(g.begin(), g.end(), [](double v) { return v != 1.0; });
  }

  Json prunerec_info;
  prunerec_info.begin_object()
      .key("format_version").value(1)
      .key("name").value(c.name())
      .key("source").value(source)
      .key("mode").value("item-token")
      .key("items_file").value("items.tsv")
      .key("padding").value("left; padded positions are masked and embed to zero")
      .key("positions").value("RoPE position of step t in row b is t - pad_b (counted from the first real item)")
      .key("qkv_bias").value(c.qkv_bias())
      .key("gates_folded").value(gated)
      .key("non_embedding_parameters").value(net.non_embedding_parameters())
      .end_object();

  // One field per line, Qwen2's own fields first.
  const std::vector<std::pair<std::string, std::string>> fields = {
      {"architectures", "[\"Qwen2ForCausalLM\"]"},
      {"model_type", "\"qwen2\""},
      {"hidden_size", std::to_string(net.hidden_size())},
      {"num_hidden_layers", std::to_string(net.num_layers())},
      {"num_attention_heads", std::to_string(max_of(heads))},
      {"num_key_value_heads", std::to_string(max_of(kv_heads))},
      {"intermediate_size", std::to_string(max_of(widths))},
      {"head_dim", std::to_string(c.head_dim())},
      {"hidden_act", "\"silu\""},
      {"rope_theta", number_text(c.rope_theta())},
      {"rms_norm_eps", number_text(c.norm_eps())},
      {"vocab_size", std::to_string(net.vocab_size())},
      {"tie_word_embeddings", c.tie_embeddings() ? "true" : "false"},
      {"max_position_embeddings", std::to_string(c.max_len())},
      {"initializer_range", number_text(c.init_std())},
      {"attention_dropout", "0.0"},
      {"use_sliding_window", "false"},
      {"use_cache", "true"},
      {"torch_dtype", "\"float32\""},
      {"uniform_layers", stock_qwen2_compatible(net) ? "true" : "false"},
      {"layer_num_attention_heads", int_list(heads)},
      {"layer_num_key_value_heads", int_list(kv_heads)},
      {"layer_intermediate_size", int_list(widths)},
      {"layer_kv_map", kv_map_json},
      {"prunerec", prunerec_info.str()},
  };
  std::string s = "{\n";
  for (std::size_t i = 0; i < fields.size(); ++i)
    s += "  " + Json::quote(fields[i].first) + ": " + fields[i].second + (i + 1 < fields.size() ? ",\n" : "\n");
  return s + "}\n";
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
  std::mt19937_64 rng(seed);
  const int longest = std::min<int>(max_len, catalog.size());
  std::vector<std::vector<std::string>> out;
  for (int i = 0; i < count; ++i) {
    const int len = i == 0 ? longest : i == 1 ? 1 : std::uniform_int_distribution<int>(1, longest)(rng);
    std::set<std::int32_t> seen;
    std::vector<std::string> h;
    while (static_cast<int>(h.size()) < len) {
      const auto item = std::uniform_int_distribution<std::int32_t>(0, catalog.size() - 1)(rng);
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

  std::string s = "{\"format\": \"prunerec-export-check/1\", \"num_items\": " + std::to_string(V) +
                  ", \"max_len\": " + std::to_string(max_len) + ",\n \"histories\": [";
  for (std::size_t i = 0; i < fed.size(); ++i) s.append(i ? ", " : "").append(int_list(fed[i]));
  s += "],\n \"history_ids\": [";
  for (std::size_t i = 0; i < fed.size(); ++i) {
    s += i ? ", [" : "[";
    for (std::size_t j = 0; j < fed[i].size(); ++j)
      s.append(j ? ", " : "").append(Json::quote(rec.catalog.raw_ids[static_cast<std::size_t>(fed[i][j])]));
    s += "]";
  }
  s += "],\n \"logits\": [";
  const float* p = scores.data<float>();
  for (std::size_t i = 0; i < fed.size(); ++i) {
    s += i ? ",\n  [" : "\n  [";
    const float* row = p + static_cast<std::int64_t>(i) * V;
    for (std::int64_t v = 0; v < V; ++v) s.append(v ? ", " : "").append(float_text(row[v]));
    s += "]";
  }
  return s + "]}\n";
}

ExportSummary export_qwen2(const recsys::Recommender& rec, const std::string& dir_text, const ExportOptions& options) {
  PR_CHECK_T(ConfigError, !dir_text.empty(), "export: no output folder given");
  const fs::path dir = fs::path(dir_text).lexically_normal();
  PR_CHECK_T(ConfigError, dir.has_filename() && dir.filename() != "." && dir.filename() != "..", "export: '",
             dir_text, "' does not name a folder");
  check_replaceable(dir);
  std::error_code ec;
  if (dir.has_parent_path()) fs::create_directories(dir.parent_path(), ec);
  const fs::path staging = dir.string() + ".tmp." + std::to_string(::getpid());
  fs::remove_all(staging, ec);
  if (!fs::create_directory(staging, ec) || ec)
    throw IoError(detail::str_cat(staging.string(), ": cannot create the staging folder: ", ec.message()));
  StagingGuard guard(staging);

  ExportSummary summary;
  summary.dir = dir.string();
  const std::vector<NamedTensor> tensors = qwen2_tensors(*rec.net);
  summary.tensors = static_cast<std::int64_t>(tensors.size());
  summary.safetensors_bytes =
      write_safetensors((staging / "model.safetensors").string(), tensors,
                        {{"format", "pt"}, {"producer", "prunerec"}, {"items", std::to_string(rec.catalog.size())}});
  write_file_atomic((staging / "config.json").string(), qwen2_config_json(*rec.net, options.source));
  write_file_atomic((staging / "items.tsv").string(), items_tsv(rec.catalog));
  if (!options.check_histories.empty()) {
    write_file_atomic((staging / "check.json").string(), check_json(rec, options.check_histories));
    summary.wrote_check = true;
  }
  summary.uniform_layers = stock_qwen2_compatible(*rec.net);
  fsync_dir(staging);
  publish(staging, dir);
  guard.release();
  fsync_dir(dir.parent_path());
  return summary;
}

}  // namespace prunerec::hf
