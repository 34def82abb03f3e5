#include "api/hf_import.h"

#include <google/protobuf/struct.pb.h>
#include <google/protobuf/util/json_util.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <map>
#include <set>

#include "api/hf_names.h"
#include "api/safetensors.h"
#include "base/atomic_file.h"
#include "base/crc32c.h"
#include "nn/checkpoint.h"

namespace prunerec::hf {
namespace fs = std::filesystem;
namespace gpb = google::protobuf;
namespace {

constexpr std::size_t kMaxConfigBytes = 16 << 20;
constexpr std::size_t kMaxTokenizerBytes = std::size_t{256} << 20;
const char* const kTokenizerFiles[] = {"tokenizer.json", "tokenizer_config.json", "tokenizer.model"};

template <class... Args>
[[noreturn]] void fail(const std::string& path, Args&&... args) {
  throw IoError(detail::str_cat(path, ": ", std::forward<Args>(args)...));
}

gpb::Struct parse_json_object(std::string_view json, const std::string& path) {
  std::size_t first = json.find_first_not_of(" \t\r\n");
  if (first == std::string_view::npos || json[first] != '{') fail(path, "not a JSON object");
  gpb::Struct root;
  const auto status = gpb::util::JsonStringToMessage(gpb::StringPiece(json.data(), json.size()), &root);
  if (!status.ok()) fail(path, "not valid JSON: ", status.ToString());
  return root;
}

// Typed access to config fields, each error naming the field.
class Fields {
 public:
  Fields(const gpb::Struct& s, std::string path) : s_(s), path_(std::move(path)) {}
  const gpb::Value* get(const std::string& k) const {
    auto it = s_.fields().find(k);
    if (it == s_.fields().end() || it->second.kind_case() == gpb::Value::kNullValue) return nullptr;
    return &it->second;
  }
  bool has(const std::string& k) const { return get(k) != nullptr; }
  std::int64_t integer(const std::string& k, std::int64_t lo, std::int64_t hi) const {
    const gpb::Value* v = get(k);
    if (!v) fail(path_, "field '", k, "' is missing");
    return integer_value(*v, k, lo, hi);
  }
  std::int64_t integer_or(const std::string& k, std::int64_t fallback, std::int64_t lo, std::int64_t hi) const {
    return has(k) ? integer(k, lo, hi) : fallback;
  }
  std::int64_t integer_value(const gpb::Value& v, const std::string& k, std::int64_t lo, std::int64_t hi) const {
    if (v.kind_case() != gpb::Value::kNumberValue) fail(path_, "field '", k, "' must be a number");
    const double d = v.number_value();
    if (!(std::floor(d) == d && d >= static_cast<double>(lo) && d <= static_cast<double>(hi)))
      fail(path_, "field '", k, "' must be an integer in [", lo, ", ", hi, "], got ", d);
    return static_cast<std::int64_t>(d);
  }
  double number_or(const std::string& k, double fallback) const {
    const gpb::Value* v = get(k);
    if (!v) return fallback;
    if (v->kind_case() != gpb::Value::kNumberValue || !std::isfinite(v->number_value()))
      fail(path_, "field '", k, "' must be a finite number");
    return v->number_value();
  }
  bool boolean_or(const std::string& k, bool fallback) const {
    const gpb::Value* v = get(k);
    if (!v) return fallback;
    if (v->kind_case() != gpb::Value::kBoolValue) fail(path_, "field '", k, "' must be true or false");
    return v->bool_value();
  }
  std::string string_or(const std::string& k, const std::string& fallback) const {
    const gpb::Value* v = get(k);
    if (!v) return fallback;
    if (v->kind_case() != gpb::Value::kStringValue) fail(path_, "field '", k, "' must be a string");
    return v->string_value();
  }
  std::vector<std::int64_t> int_list(const std::string& k, std::int64_t lo, std::int64_t hi) const {
    const gpb::Value* v = get(k);
    if (!v || v->kind_case() != gpb::Value::kListValue) fail(path_, "field '", k, "' must be a list");
    std::vector<std::int64_t> out;
    for (const auto& e : v->list_value().values()) out.push_back(integer_value(e, k, lo, hi));
    return out;
  }
  // A field the engine cannot honour unless it has this value (or is absent).
  void refuse_unless(const std::string& k, bool ok, const std::string& why) const {
    if (!ok) fail(path_, "field '", k, "' = ", json_text(k), ": ", why);
  }
  std::string json_text(const std::string& k) const {
    auto it = s_.fields().find(k);
    if (it == s_.fields().end()) return "absent";
    std::string out;
    (void)gpb::util::MessageToJsonString(it->second, &out);
    return out;
  }

 private:
  const gpb::Struct& s_;
  std::string path_;
};

std::uint32_t file_crc32c(const std::string& path, std::uint64_t* size) {
  UniqueFd fd = open_for_reading(path);
  std::vector<unsigned char> buf(std::size_t{4} << 20);
  std::uint32_t crc = 0;
  std::uint64_t at = 0;
  for (;;) {
    const ssize_t n = ::pread(fd.get(), buf.data(), buf.size(), static_cast<off_t>(at));
    if (n < 0) {
      if (errno == EINTR) continue;
      fail(path, "read: ", std::strerror(errno));
    }
    if (n == 0) break;
    crc = crc32c(buf.data(), static_cast<std::size_t>(n), crc);
    at += static_cast<std::uint64_t>(n);
  }
  *size = at;
  return crc;
}

// Where a source tensor is.
struct Source {
  const SafetensorsFile* file;
  const SafetensorsEntry* entry;
};

// A Hugging Face folder whose config, index, safetensors headers and tensor list were
// checked against each other (every problem reported before any tensor data is read).
struct CheckedFolder {
  pb::ModelConfig config;                         // normalised
  pb::Pretrained pretrained;                      // provenance, tokenizer files
  std::vector<SafetensorsFile> files;             // mapped
  std::map<std::string, Source> by_engine_name;   // every parameter of `config`
  std::int64_t source_tensors = 0;
};

CheckedFolder check_folder(const std::string& dir_text);

}  // namespace

HfConfig parse_hf_config(std::string_view json, const std::string& path) {
  const gpb::Struct root = parse_json_object(json, path);
  const Fields f(root, path);
  HfConfig out;

  // Architecture and model_type.
  std::string arch;
  if (const gpb::Value* a = f.get("architectures")) {
    if (a->kind_case() != gpb::Value::kListValue || a->list_value().values_size() != 1 ||
        a->list_value().values(0).kind_case() != gpb::Value::kStringValue)
      fail(path, "field 'architectures' = ", f.json_text("architectures"), ": expected one architecture name");
    arch = a->list_value().values(0).string_value();
  }
  const std::string model_type = f.string_or("model_type", "");
  if (arch.empty()) arch = model_type == "qwen2" ? "Qwen2ForCausalLM" : model_type == "llama" ? "LlamaForCausalLM" : "";
  if (arch != "Qwen2ForCausalLM" && arch != "LlamaForCausalLM")
    fail(path, "architecture '", arch.empty() ? model_type : arch,
         "' is not one the engine runs exactly (Qwen2ForCausalLM, LlamaForCausalLM)");
  const bool qwen2 = arch == "Qwen2ForCausalLM";
  f.refuse_unless("model_type", model_type.empty() || model_type == (qwen2 ? "qwen2" : "llama"),
                  "disagrees with the architecture " + arch);
  out.architecture = arch;

  // What the engine cannot compute exactly.
  f.refuse_unless("rope_scaling", !f.has("rope_scaling"), "RoPE scaling is not implemented; the engine would "
                                                           "compute a different model");
  f.refuse_unless("hidden_act", f.string_or("hidden_act", "silu") == "silu", "the engine's MLP is SwiGLU with SiLU");
  f.refuse_unless("use_sliding_window", !f.boolean_or("use_sliding_window", false),
                  "sliding-window attention is not implemented");
  f.refuse_unless("attention_bias", !f.boolean_or("attention_bias", false),
                  "biases on q/k/v/o projections (Llama attention_bias) are not implemented");
  f.refuse_unless("mlp_bias", !f.boolean_or("mlp_bias", false), "MLP biases are not implemented");
  f.refuse_unless("quantization_config", !f.has("quantization_config"), "quantised checkpoints are not read");
  f.refuse_unless("tie_word_embeddings", !f.has("tie_word_embeddings") || f.get("tie_word_embeddings")->kind_case() ==
                                                                               gpb::Value::kBoolValue,
                  "must be true or false");

  constexpr std::int64_t kBig = 1 << 28;
  const std::int64_t hidden = f.integer("hidden_size", 1, 1 << 20);
  const std::int64_t layers = f.integer("num_hidden_layers", 1, 4096);
  const std::int64_t heads = f.integer("num_attention_heads", 1, 4096);
  const std::int64_t kv_heads = f.integer_or("num_key_value_heads", heads, 1, 4096);
  const std::int64_t mlp = f.integer("intermediate_size", 1, 1 << 22);
  if (!f.has("head_dim") && hidden % heads != 0)
    fail(path, "field 'head_dim' is missing and hidden_size ", hidden, " is not a multiple of num_attention_heads ", heads);
  const std::int64_t head_dim = f.integer_or("head_dim", hidden / heads, 2, 1 << 20);
  if (head_dim % 2 != 0) fail(path, "field 'head_dim' = ", head_dim, ": RoPE needs an even head_dim");

  pb::ModelConfig& c = out.model;
  c.set_vocab_size(static_cast<std::int32_t>(f.integer("vocab_size", 1, kBig)));
  c.set_hidden(static_cast<std::int32_t>(hidden));
  c.set_head_dim(static_cast<std::int32_t>(head_dim));
  c.set_rope_theta(f.number_or("rope_theta", 10000.0));
  c.set_norm_eps(f.number_or("rms_norm_eps", 1e-6));
  c.set_tie_embeddings(f.boolean_or("tie_word_embeddings", false));
  c.set_max_len(static_cast<std::int32_t>(f.integer_or("max_position_embeddings", 32768, 1, 1 << 20)));
  c.set_init_std(f.number_or("initializer_range", 0.02));
  c.set_qkv_bias(qwen2);
  if (c.rope_theta() <= 0) fail(path, "field 'rope_theta' must be positive, got ", c.rope_theta());
  if (c.norm_eps() <= 0) fail(path, "field 'rms_norm_eps' must be positive, got ", c.norm_eps());

  // A prunerec export: per-layer widths and KV maps (Note [uneven config] in hf_export.h),
  // and whether the q/k/v biases it wrote are real.
  const gpb::Value* pr = f.get("prunerec");
  if (pr && pr->kind_case() == gpb::Value::kStructValue) {
    const Fields p(pr->struct_value(), path + " (prunerec)");
    c.set_name(p.string_or("name", ""));
    if (qwen2 && !p.boolean_or("qkv_bias", true)) {
      c.set_qkv_bias(false);
      out.zero_biases_in_file = true;
    }
  }
  if (f.has("layer_num_attention_heads")) {
    const auto hq = f.int_list("layer_num_attention_heads", 0, 4096);
    const auto hkv = f.int_list("layer_num_key_value_heads", 0, 4096);
    const auto w = f.int_list("layer_intermediate_size", 0, 1 << 22);
    const gpb::Value* maps = f.get("layer_kv_map");
    if (hq.size() != static_cast<std::size_t>(layers) || hkv.size() != hq.size() || w.size() != hq.size() || !maps ||
        maps->kind_case() != gpb::Value::kListValue || maps->list_value().values_size() != layers)
      fail(path, "the per-layer lists (layer_num_attention_heads, layer_num_key_value_heads, layer_intermediate_size, "
                 "layer_kv_map) must each have num_hidden_layers = ", layers, " entries");
    for (int l = 0; l < layers; ++l) {
      pb::LayerConfig* L = c.add_layers();
      L->set_num_heads(static_cast<std::int32_t>(hq[l]));
      L->set_num_kv_heads(static_cast<std::int32_t>(hkv[l]));
      L->set_mlp_width(static_cast<std::int32_t>(w[l]));
      const gpb::Value& m = maps->list_value().values(l);
      if (m.kind_case() != gpb::Value::kListValue) fail(path, "field 'layer_kv_map' entry ", l, " must be a list");
      for (const auto& g : m.list_value().values()) L->add_kv_map(static_cast<std::int32_t>(f.integer_value(g, "layer_kv_map", 0, 4095)));
    }
  } else {
    if (heads % kv_heads != 0)
      fail(path, "num_attention_heads ", heads, " is not a multiple of num_key_value_heads ", kv_heads);
    c.set_num_layers(static_cast<std::int32_t>(layers));
    c.mutable_layer_defaults()->set_num_heads(static_cast<std::int32_t>(heads));
    c.mutable_layer_defaults()->set_num_kv_heads(static_cast<std::int32_t>(kv_heads));
    c.mutable_layer_defaults()->set_mlp_width(static_cast<std::int32_t>(mlp));
  }
  try {
    c = nn::normalize_config(c);
  } catch (const ConfigError& e) {
    fail(path, e.what());
  }
  auto token_id = [&](const char* k) -> std::int32_t {
    const gpb::Value* v = f.get(k);
    if (!v || v->kind_case() != gpb::Value::kNumberValue) return -1;  // absent, null or a list: none recorded
    return static_cast<std::int32_t>(f.integer_value(*v, k, 0, kBig));
  };
  out.bos_token_id = token_id("bos_token_id");
  out.eos_token_id = token_id("eos_token_id");
  return out;
}

namespace {

CheckedFolder check_folder(const std::string& dir_text) {
  const fs::path dir = fs::absolute(fs::path(dir_text)).lexically_normal();
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) fail(dir_text, "not a folder (give the Hugging Face model folder)");
  CheckedFolder out;
  pb::Pretrained& pre = out.pretrained;
  pre.set_format("huggingface");
  pre.set_source(dir.string());
  auto record = [&](const fs::path& p) {
    std::uint64_t size = 0;
    const std::uint32_t crc = file_crc32c(p.string(), &size);
    pb::SourceFile* sf = pre.add_files();
    sf->set_name(p.filename().string());
    sf->set_bytes(size);
    sf->set_crc32c(crc);
  };

  const fs::path config_path = dir / "config.json";
  const std::string config_text = read_file(config_path.string(), kMaxConfigBytes);
  const HfConfig cfg = parse_hf_config(config_text, config_path.string());
  record(config_path);
  pre.set_architecture(cfg.architecture);
  pre.set_config_json(config_text);
  pre.set_bos_token_id(cfg.bos_token_id);
  pre.set_eos_token_id(cfg.eos_token_id);

  // The weight files: one model.safetensors or the shards of an index.
  std::vector<std::string> shard_names;
  std::map<std::string, std::string> weight_map;  // tensor -> shard (sharded only)
  const fs::path index_path = dir / "model.safetensors.index.json";
  if (fs::exists(dir / "model.safetensors", ec)) {
    shard_names.push_back("model.safetensors");
  } else if (fs::exists(index_path, ec)) {
    const std::string text = read_file(index_path.string(), kMaxConfigBytes);
    const gpb::Struct root = parse_json_object(text, index_path.string());
    auto it = root.fields().find("weight_map");
    if (it == root.fields().end() || it->second.kind_case() != gpb::Value::kStructValue)
      fail(index_path.string(), "field 'weight_map' must be an object");
    std::set<std::string> shards;
    for (const auto& [tensor, file] : it->second.struct_value().fields()) {
      if (file.kind_case() != gpb::Value::kStringValue) fail(index_path.string(), "weight_map['", tensor, "'] must be a string");
      const std::string& f = file.string_value();
      if (f.empty() || f.find('/') != std::string::npos || f == "." || f == "..")
        fail(index_path.string(), "weight_map['", tensor, "'] = '", f, "' is not a file name in the folder");
      weight_map[tensor] = f;
      shards.insert(f);
    }
    shard_names.assign(shards.begin(), shards.end());
    record(index_path);
  } else {
    fail(dir.string(), "holds neither model.safetensors nor model.safetensors.index.json");
  }
  std::vector<SafetensorsFile>& files = out.files;
  files.reserve(shard_names.size());  // the Sources below point into it
  for (const std::string& name : shard_names) files.emplace_back((dir / name).string());

  // Where each source tensor is; every one must be known to the engine, and for sharded
  // models, in the shard the index names.
  std::map<std::string, Source>& by_engine_name = out.by_engine_name;
  std::vector<std::string> problems;
  std::set<std::string> dtypes;
  std::int64_t tensors_read = 0;
  std::vector<Source> zero_biases;
  for (const SafetensorsFile& file : files) {
    const std::string shard = fs::path(file.path()).filename().string();
    for (const SafetensorsEntry& e : file.entries()) {
      if (!weight_map.empty()) {
        auto it = weight_map.find(e.name);
        if (it == weight_map.end() || it->second != shard) {
          problems.push_back(detail::str_cat(shard, ": tensor '", e.name, "' is not listed for this file in the index"));
          continue;
        }
      }
      if (e.name.find("rotary_emb.inv_freq") != std::string::npos) continue;  // recomputed (Note [exact configs])
      const std::string engine = from_hf_name(e.name);
      const bool bias = engine.size() > 5 && engine.compare(engine.size() - 5, 5, ".bias") == 0;
      if (engine.empty() || (bias && cfg.model.qkv_bias() == false && !cfg.zero_biases_in_file)) {
        problems.push_back(detail::str_cat(shard, ": unexpected tensor '", e.name, "' ", st_dtype_name(e.dtype),
                                           shape_str(e.shape), " (no such tensor in a ", cfg.architecture, ")"));
        continue;
      }
      dtypes.insert(st_dtype_name(e.dtype));
      ++tensors_read;
      if (bias && cfg.zero_biases_in_file) {
        zero_biases.push_back({&file, &e});
        continue;
      }
      if (!by_engine_name.emplace(engine, Source{&file, &e}).second)
        problems.push_back(detail::str_cat("tensor '", e.name, "' appears in more than one file"));
    }
  }
  for (const auto& [tensor, shard] : weight_map) {
    bool found = false;
    for (const auto& f : files) found = found || (fs::path(f.path()).filename() == shard && f.find(tensor));
    if (!found) problems.push_back(detail::str_cat("the index lists '", tensor, "' in ", shard, ", which does not hold it"));
  }

  // Compare with the model the config describes before allocating it.
  std::set<std::string> expected;
  for (const nn::TensorSpec& spec : nn::tensor_specs(cfg.model)) {
    if (spec.buffer) continue;
    expected.insert(spec.name);
    auto it = by_engine_name.find(spec.name);
    if (it == by_engine_name.end()) {
      problems.push_back(detail::str_cat("missing tensor '", to_hf_name(spec.name), "' (expected ", shape_str(spec.shape), ")"));
    } else if (it->second.entry->shape != spec.shape) {
      problems.push_back(detail::str_cat("tensor '", it->second.entry->name, "' is ", shape_str(it->second.entry->shape),
                                         ", config.json needs ", shape_str(spec.shape)));
    }
  }
  for (const auto& [name, src] : by_engine_name)
    if (!expected.count(name)) {
      // A tied model's file may still hold lm_head.weight; it must then equal the embedding.
      const Source* emb = by_engine_name.count("embed.weight") ? &by_engine_name.at("embed.weight") : nullptr;
      if (name == "lm_head.weight" && emb && src.entry->dtype == emb->entry->dtype && src.entry->shape == emb->entry->shape &&
          src.file->bytes(*src.entry) == emb->file->bytes(*emb->entry))
        continue;
      problems.push_back(detail::str_cat("unexpected tensor '", src.entry->name, "' ", shape_str(src.entry->shape),
                                         name == "lm_head.weight" ? " (tie_word_embeddings is true and it differs from "
                                                                    "model.embed_tokens.weight)"
                                                                  : ""));
    }
  if (!problems.empty()) {
    std::string msg = detail::str_cat(dir.string(), ": the checkpoint does not match config.json (", problems.size(),
                                      " problem", problems.size() > 1 ? "s" : "", "):");
    constexpr std::size_t kShown = 20;
    for (std::size_t i = 0; i < problems.size() && i < kShown; ++i) msg += "\n  " + problems[i];
    if (problems.size() > kShown) msg += detail::str_cat("\n  ... and ", problems.size() - kShown, " more");
    throw IoError(msg);
  }
  for (const Source& b : zero_biases) {
    const Tensor t = b.file->read_f32(*b.entry);
    const float* p = t.data<float>();
    for (std::int64_t i = 0; i < t.numel(); ++i)
      if (p[i] != 0.0f)
        fail(b.file->path(), "tensor '", b.entry->name, "' is not zero, but config.json says the model has no q/k/v "
                             "biases (prunerec.qkv_bias false)");
  }

  for (const std::string& name : shard_names) record(dir / name);
  pre.set_source_dtype(dtypes.size() == 1 ? *dtypes.begin() : dtypes.empty() ? "F32" : "mixed");

  for (const char* name : kTokenizerFiles) {
    const fs::path p = dir / name;
    if (!fs::exists(p, ec)) continue;
    pb::StoredFile* sf = pre.add_tokenizer_files();
    sf->set_name(name);
    sf->set_data(read_file(p.string(), kMaxTokenizerBytes));
    record(p);
  }
  out.config = cfg.model;
  out.source_tensors = tensors_read;
  return out;
}

// Converts elements [first, first + count) of the source tensor into dst and checks they
// are finite (the error names the element).
void convert_checked(const Source& src, std::uint64_t first, std::uint64_t count, float* dst) {
  src.file->convert_f32(*src.entry, first, count, dst);
  // An exponent of all ones is NaN or Inf; tested on the bits without an early exit, so
  // the loop vectorises, and searched again only when something was found.
  std::uint32_t any = 0;
  for (std::uint64_t i = 0; i < count; ++i) {
    std::uint32_t bits;
    std::memcpy(&bits, dst + i, 4);
    any |= static_cast<std::uint32_t>((bits & 0x7f800000u) == 0x7f800000u);
  }
  if (any == 0) return;
  for (std::uint64_t i = 0; i < count; ++i)
    if (!std::isfinite(dst[i]))
      fail(src.file->path(), "tensor '", src.entry->name, "' holds NaN or Inf (element ", first + i, ")");
}

}  // namespace

ImportedModel read_hf_model(const std::string& dir) {
  CheckedFolder folder = check_folder(dir);
  ImportedModel out;
  out.net = nn::Transformer::uninitialized(folder.config, DType::f32);
  for (auto& [name, var] : out.net->named_parameters()) {
    const Source& src = folder.by_engine_name.at(name);
    Tensor t = var.value();
    PR_ASSERT(t.is_contiguous() && t.dtype() == DType::f32 && t.shape() == src.entry->shape);
    convert_checked(src, 0, static_cast<std::uint64_t>(t.numel()), t.data<float>());
    src.file->drop_pages(*src.entry);
  }
  out.pretrained = std::move(folder.pretrained);
  out.source_tensors = folder.source_tensors;
  return out;
}

ImportSummary import_hf(const std::string& dir, const std::string& out_path) {
  const CheckedFolder folder = check_folder(dir);
  ImportSummary s;
  s.architecture = folder.pretrained.architecture();
  for (const nn::TensorSpec& spec : nn::tensor_specs(folder.config))
    if (!spec.buffer) s.parameters += shape_numel(spec.shape);
  s.source_dtype = folder.pretrained.source_dtype();
  for (const auto& f : folder.pretrained.tokenizer_files()) s.tokenizer_files.push_back(f.name());
  s.tensors = folder.source_tensors;
  nn::SaveOptions options;
  options.pretrained = &folder.pretrained;
  options.metadata["source"] = folder.pretrained.source();
  // Note [streaming import]: each piece is converted straight into the checkpoint writer's
  // staging block; the f32 model never exists in memory.
  nn::save_model_streamed(out_path, folder.config, options,
                          [&](const nn::TensorSpec& spec, std::uint64_t begin, std::size_t n, unsigned char* out) {
                            auto* dst = reinterpret_cast<float*>(out);
                            if (spec.buffer) {  // head and channel gates: all open
                              std::fill(dst, dst + n / sizeof(float), 1.0f);
                              return;
                            }
                            const Source& src = folder.by_engine_name.at(spec.name);
                            convert_checked(src, begin / sizeof(float), n / sizeof(float), dst);
                            const std::uint64_t f32_bytes = (src.entry->end - src.entry->begin) /
                                                            st_dtype_size(src.entry->dtype) * sizeof(float);
                            if (begin + n == f32_bytes) src.file->drop_pages(*src.entry);
                          });
  return s;
}

}  // namespace prunerec::hf
