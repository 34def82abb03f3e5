// The Hugging Face export (api/hf_export.h): the safetensors file parses with an
// independent reader (header, order, offsets, dtype, shapes, values), the names are the
// complete Qwen2 set, config.json's per-layer lists match the model, zero-width sub-blocks
// and folded gates export correctly, and the folder is replaced atomically.
#include "api/hf_export.h"

#include <gtest/gtest.h>

#include <cstring>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "recsys/batching.h"
#include "tests/api/json_reader.h"
#include "tests/api/test_model.h"

namespace prunerec::testing {
namespace {

namespace fs = std::filesystem;

std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream os;
  os << in.rdbuf();
  return os.str();
}

struct ParsedSafetensors {
  JsonValue header;
  std::map<std::string, Shape> shapes;
  std::map<std::string, std::vector<float>> values;
  std::vector<std::string> key_order;  // as in the file
};

// Reads the file by the format's rules alone, checking every structural promise.
ParsedSafetensors parse_safetensors(const fs::path& path) {
  const std::string bytes = slurp(path);
  ParsedSafetensors out;
  EXPECT_GE(bytes.size(), 8u);
  std::uint64_t n = 0;
  for (int i = 0; i < 8; ++i) n |= static_cast<std::uint64_t>(static_cast<unsigned char>(bytes[i])) << (8 * i);
  EXPECT_LE(8 + n, bytes.size());
  EXPECT_EQ((8 + n) % 8, 0u) << "the data must start 8-byte aligned";
  const std::string header = bytes.substr(8, n);
  EXPECT_EQ(header.front(), '{');
  out.header = parse_json(header);  // trailing spaces are whitespace
  out.key_order = out.header.keys();
  EXPECT_TRUE(std::is_sorted(out.key_order.begin(), out.key_order.end())) << "keys must be sorted";
  const std::uint64_t data_size = bytes.size() - 8 - n;
  std::uint64_t expect_begin = 0;
  for (const auto& [name, entry_ptr] : out.header.members()) {
    const JsonValue& entry = *entry_ptr;
    if (name == "__metadata__") {
      EXPECT_EQ(entry.at("format").string, "pt");
      for (const auto& [k, v] : entry.members()) EXPECT_EQ(v->kind, JsonValue::Kind::kString) << k;
      continue;
    }
    EXPECT_EQ(entry.keys(), (std::vector<std::string>{"dtype", "shape", "data_offsets"})) << name;
    EXPECT_EQ(entry.at("dtype").string, "F32") << name;
    Shape shape;
    std::int64_t numel = 1;
    for (long long d : entry.at("shape").ints()) {
      shape.push_back(d);
      numel *= d;
    }
    const std::vector<long long> off = entry.at("data_offsets").ints();
    EXPECT_EQ(off.size(), 2u);
    const auto begin = static_cast<std::uint64_t>(off[0]), end = static_cast<std::uint64_t>(off[1]);
    EXPECT_EQ(begin, expect_begin) << name << ": offsets must be contiguous, in key order";
    EXPECT_EQ(end - begin, static_cast<std::uint64_t>(numel) * 4) << name;
    EXPECT_LE(end, data_size) << name;
    expect_begin = end;
    std::vector<float> v(static_cast<std::size_t>(numel));
    if (numel > 0) std::memcpy(v.data(), bytes.data() + 8 + n + begin, v.size() * 4);
    out.shapes[name] = shape;
    out.values[name] = std::move(v);
  }
  EXPECT_EQ(expect_begin, data_size) << "no gap or trailing bytes after the last tensor";
  return out;
}

// The Qwen2 names and shapes the model must export.
std::map<std::string, Shape> expected_shapes(const nn::Transformer& net) {
  const std::int64_t d = net.hidden_size(), V = net.vocab_size();
  std::map<std::string, Shape> m;
  m["model.embed_tokens.weight"] = {V, d};
  m["model.norm.weight"] = {d};
  if (!net.tied()) m["lm_head.weight"] = {V, d};
  for (int l = 0; l < net.num_layers(); ++l) {
    const auto& b = net.block(l);
    const std::int64_t dh = b.attn().head_dim();
    const std::int64_t q = b.attn().num_heads() * dh, kv = b.attn().num_kv_heads() * dh;
    const std::int64_t f = b.mlp().width();
    const std::string p = "model.layers." + std::to_string(l) + ".";
    m[p + "input_layernorm.weight"] = {d};
    m[p + "post_attention_layernorm.weight"] = {d};
    m[p + "self_attn.q_proj.weight"] = {q, d};
    m[p + "self_attn.q_proj.bias"] = {q};
    m[p + "self_attn.k_proj.weight"] = {kv, d};
    m[p + "self_attn.k_proj.bias"] = {kv};
    m[p + "self_attn.v_proj.weight"] = {kv, d};
    m[p + "self_attn.v_proj.bias"] = {kv};
    m[p + "self_attn.o_proj.weight"] = {d, q};
    m[p + "mlp.gate_proj.weight"] = {f, d};
    m[p + "mlp.up_proj.weight"] = {f, d};
    m[p + "mlp.down_proj.weight"] = {d, f};
  }
  return m;
}

std::vector<float> values_of(const Tensor& t) { return t.to(DType::f32).contiguous().to_vector<float>(); }

class ExportTest : public ::testing::Test {
 protected:
  TempDir dir{"prunerec_export"};
};

// Uneven, untied, with a custom kv map, a layer without attention and one without MLP.
TEST_F(ExportTest, UnevenModelWithZeroWidthSubBlocks) {
  const auto config = make_config(50, 16, 4, 6,
                                  {{4, 2, 24, {1, 0, 0, 1}}, {0, 0, 20, {}}, {2, 1, 0, {}}}, /*tied=*/false);
  const std::string model = save_test_model(dir.path() / "m.prc", config, 3);
  const recsys::Recommender rec = recsys::load_recommender(model);
  const fs::path out = dir.path() / "hf";
  const auto histories = hf::random_histories(rec.catalog, 5, 6, 1);
  const hf::ExportSummary s = hf::export_qwen2(rec, out.string(), {.source = model, .check_histories = histories});
  EXPECT_FALSE(s.uniform_layers);
  EXPECT_TRUE(s.wrote_check);

  // model.safetensors: structure, names, shapes, values.
  const ParsedSafetensors st = parse_safetensors(out / "model.safetensors");
  EXPECT_EQ(st.key_order.front(), "__metadata__");
  EXPECT_EQ(st.shapes, expected_shapes(*rec.net));
  EXPECT_EQ(s.tensors, static_cast<std::int64_t>(st.shapes.size()));
  EXPECT_EQ(st.values.at("model.embed_tokens.weight"), values_of(rec.net->embed().weight().value()));
  EXPECT_EQ(st.values.at("lm_head.weight"), values_of(rec.net->output_weight().value()));
  EXPECT_EQ(st.values.at("model.layers.0.self_attn.o_proj.weight"),
            values_of(rec.net->block(0).attn().o_proj().weight().value()));
  EXPECT_EQ(st.values.at("model.layers.2.self_attn.k_proj.bias"),
            values_of(rec.net->block(2).attn().k_proj().bias().value()));
  EXPECT_TRUE(st.values.at("model.layers.1.self_attn.q_proj.weight").empty());  // [0, 16]
  EXPECT_TRUE(st.values.at("model.layers.2.mlp.down_proj.weight").empty());     // [16, 0]

  // config.json: Qwen2 fields and per-layer lists equal to the model's config.
  const JsonValue cfg = parse_json(slurp(out / "config.json"));
  const pb::ModelConfig mc = rec.net->config();
  EXPECT_EQ(cfg.at("model_type").string, "qwen2");
  EXPECT_EQ(cfg.at("architectures").array.at(0).string, "Qwen2ForCausalLM");
  EXPECT_EQ(cfg.at("hidden_size").number, 16);
  EXPECT_EQ(cfg.at("num_hidden_layers").number, 3);
  EXPECT_EQ(cfg.at("head_dim").number, 4);
  EXPECT_EQ(cfg.at("vocab_size").number, 50);
  EXPECT_EQ(cfg.at("max_position_embeddings").number, 6);
  EXPECT_EQ(cfg.at("rope_theta").number, 500);
  EXPECT_EQ(cfg.at("rms_norm_eps").number, mc.norm_eps());
  EXPECT_FALSE(cfg.at("tie_word_embeddings").boolean);
  EXPECT_FALSE(cfg.at("uniform_layers").boolean);
  EXPECT_EQ(cfg.at("num_attention_heads").number, 4);  // the widest layer
  EXPECT_EQ(cfg.at("intermediate_size").number, 24);
  std::vector<long long> heads, kv_heads, widths;
  for (const auto& L : mc.layers()) {
    heads.push_back(L.num_heads());
    kv_heads.push_back(L.num_kv_heads());
    widths.push_back(L.mlp_width());
  }
  EXPECT_EQ(cfg.at("layer_num_attention_heads").ints(), heads);
  EXPECT_EQ(cfg.at("layer_num_key_value_heads").ints(), kv_heads);
  EXPECT_EQ(cfg.at("layer_intermediate_size").ints(), widths);
  ASSERT_EQ(cfg.at("layer_kv_map").array.size(), 3u);
  for (int l = 0; l < 3; ++l) {
    const auto& km = mc.layers(l).kv_map();
    EXPECT_EQ(cfg.at("layer_kv_map").array[static_cast<std::size_t>(l)].ints(), std::vector<long long>(km.begin(), km.end()));
  }
  EXPECT_EQ(cfg.at("prunerec").at("source").string, model);

  // items.tsv: header, one escaped line per item.
  std::istringstream items(slurp(out / "items.tsv"));
  std::vector<std::string> lines;
  for (std::string line; std::getline(items, line);) lines.push_back(line);
  ASSERT_EQ(lines.size(), 51u);
  EXPECT_EQ(lines[0], "index\titem_id\ttitle");
  EXPECT_EQ(lines[1], "0\titem0\tTitle 0");
  EXPECT_EQ(lines[4], "3\titem3\tOdd\\ttitle\\nwith \\\\ escapes");

  // check.json: prunerec's own next-item scores for the histories, one batch.
  const JsonValue check = parse_json(slurp(out / "check.json"));
  ASSERT_EQ(check.at("histories").array.size(), histories.size());
  std::vector<std::vector<std::int32_t>> fed;
  for (const auto& h : check.at("histories").array) {
    fed.emplace_back();
    for (long long i : h.ints()) fed.back().push_back(static_cast<std::int32_t>(i));
  }
  EXPECT_EQ(fed[0].size(), 6u);
  EXPECT_EQ(fed[1].size(), 1u);
  const recsys::Batch b = recsys::make_history_batch(fed, 6);
  const std::vector<float> want = values_of(recsys::next_item_scores(*rec.net, b.ids, b.pads));
  for (std::size_t i = 0; i < fed.size(); ++i) {
    const auto& row = check.at("logits").array.at(i).array;
    ASSERT_EQ(row.size(), 50u);
    for (std::size_t v = 0; v < row.size(); ++v) EXPECT_EQ(static_cast<float>(row[v].number), want[i * 50 + v]);
  }
  // Nothing but the export is left next to it.
  std::set<std::string> names;
  for (const auto& e : fs::directory_iterator(dir.path())) names.insert(e.path().filename().string());
  EXPECT_EQ(names, (std::set<std::string>{"hf", "m.prc"}));
}

TEST_F(ExportTest, UniformTiedModelIsStockQwen2Compatible) {
  const auto config = make_config(40, 16, 4, 5, {{4, 2, 32, {}}, {4, 2, 32, {}}});
  const recsys::Recommender rec = recsys::load_recommender(save_test_model(dir.path() / "m.prc", config, 4));
  const hf::ExportSummary s = hf::export_qwen2(rec, (dir.path() / "hf").string());
  EXPECT_TRUE(s.uniform_layers);
  EXPECT_FALSE(s.wrote_check);
  EXPECT_FALSE(fs::exists(dir.path() / "hf" / "check.json"));
  const JsonValue cfg = parse_json(slurp(dir.path() / "hf" / "config.json"));
  EXPECT_TRUE(cfg.at("uniform_layers").boolean);
  EXPECT_TRUE(cfg.at("tie_word_embeddings").boolean);
  EXPECT_EQ(cfg.at("num_attention_heads").number, 4);
  EXPECT_EQ(cfg.at("num_key_value_heads").number, 2);
  const ParsedSafetensors st = parse_safetensors(dir.path() / "hf" / "model.safetensors");
  EXPECT_EQ(st.shapes, expected_shapes(*rec.net));
  EXPECT_EQ(st.shapes.count("lm_head.weight"), 0u);
}

// Masked heads and channels (gates != 1) are folded into o_proj / down_proj columns, and a
// model without q/k/v biases gets zero biases (Qwen2 always has them).
TEST_F(ExportTest, GatesAreFoldedAndMissingBiasesAreZero) {
  auto config = make_config(30, 8, 4, 4, {{2, 1, 6, {}}}, /*tied=*/true, /*qkv_bias=*/false);
  nn::Transformer net(config, DType::f32, 9);
  net.block(0).attn().head_gate().set({1}, 0.5);
  net.block(0).mlp().channel_gate().set({2}, 0.0);
  const std::vector<hf::NamedTensor> tensors = hf::qwen2_tensors(net);
  std::map<std::string, Tensor> by_name(tensors.begin(), tensors.end());
  const Tensor o = net.block(0).attn().o_proj().weight().value();
  const Tensor o_folded = by_name.at("model.layers.0.self_attn.o_proj.weight");
  for (std::int64_t r = 0; r < 8; ++r)
    for (std::int64_t c = 0; c < 8; ++c) EXPECT_FLOAT_EQ(o_folded.at({r, c}), o.at({r, c}) * (c >= 4 ? 0.5 : 1.0));
  const Tensor down = net.block(0).mlp().down_proj().weight().value();
  const Tensor down_folded = by_name.at("model.layers.0.mlp.down_proj.weight");
  for (std::int64_t r = 0; r < 8; ++r)
    for (std::int64_t c = 0; c < 6; ++c) EXPECT_FLOAT_EQ(down_folded.at({r, c}), c == 2 ? 0.0 : down.at({r, c}));
  EXPECT_EQ(by_name.at("model.layers.0.self_attn.q_proj.bias").shape(), (Shape{8}));
  EXPECT_EQ(values_of(by_name.at("model.layers.0.self_attn.v_proj.bias")), std::vector<float>(4, 0.0f));
  // The model's own tensors are untouched by the folding.
  EXPECT_EQ(net.block(0).attn().head_gate().at({1}), 0.5);
  EXPECT_NE(o.at({0, 5}), o_folded.at({0, 5}));
}

TEST_F(ExportTest, ReplacesAnEarlierExportButNeverForeignFiles) {
  const auto config = make_config(20, 8, 4, 4, {{2, 1, 8, {}}});
  const recsys::Recommender rec = recsys::load_recommender(save_test_model(dir.path() / "m.prc", config, 5));
  const fs::path out = dir.path() / "hf";
  hf::export_qwen2(rec, out.string(), {.source = "m.prc", .check_histories = {{"item1", "item2"}}});
  EXPECT_TRUE(fs::exists(out / "check.json"));
  hf::export_qwen2(rec, out.string());  // replaces it: the stale check.json goes away
  EXPECT_FALSE(fs::exists(out / "check.json"));
  EXPECT_TRUE(fs::exists(out / "model.safetensors"));

  const fs::path foreign = dir.path() / "mine";
  fs::create_directory(foreign);
  { std::ofstream(foreign / "notes.txt") << "keep me"; }
  EXPECT_THROW(hf::export_qwen2(rec, foreign.string()), ConfigError);
  EXPECT_EQ(slurp(foreign / "notes.txt"), "keep me");

  // A failing export (unknown check item) leaves the old export and no staging folder.
  EXPECT_THROW(hf::export_qwen2(rec, out.string(), {.source = "m.prc", .check_histories = {{"no-such-item"}}}), ConfigError);
  EXPECT_TRUE(fs::exists(out / "model.safetensors"));
  std::set<std::string> names;
  for (const auto& e : fs::directory_iterator(dir.path())) names.insert(e.path().filename().string());
  EXPECT_EQ(names, (std::set<std::string>{"hf", "m.prc", "mine"}));
}

TEST(SafetensorsTest, PlanRejectsBadNamesAndPadsTheHeader) {
  EXPECT_THROW(hf::plan_safetensors({{"a", {1}}, {"a", {2}}}, {}), ConfigError);
  EXPECT_THROW(hf::plan_safetensors({{"", {1}}}, {}), ConfigError);
  EXPECT_THROW(hf::plan_safetensors({{"__metadata__", {1}}}, {}), ConfigError);
  const hf::SafetensorsLayout l = hf::plan_safetensors({{"b", {2, 3}}, {"a", {0, 4}}, {"c", {}}}, {{"format", "pt"}});
  EXPECT_EQ(l.header.size() % 8, 0u);
  EXPECT_EQ(l.tensors[0].first, "a");
  EXPECT_EQ(l.offsets, (std::vector<std::pair<std::uint64_t, std::uint64_t>>{{0, 0}, {0, 24}, {24, 28}}));  // a scalar is 1 element
  EXPECT_EQ(l.data_bytes, 28u);
  const JsonValue h = parse_json(l.header);
  EXPECT_EQ(h.keys(), (std::vector<std::string>{"__metadata__", "a", "b", "c"}));
}

}  // namespace
}  // namespace prunerec::testing
