// The Hugging Face import (api/hf_import.h, api/safetensors.h reader, api/hf_names.h):
// imported fixture models compute what an independent PyTorch forward of Qwen2 / Llama
// computes (tools/make_hf_fixtures.py), BF16 sources import to the rounded F32 originals,
// export and import invert each other, and every kind of bad input is refused by name with
// nothing written.
#include "api/hf_import.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <fstream>
#include <functional>
#include <set>
#include <sstream>

#include "api/hf_export.h"
#include "api/hf_names.h"
#include "api/safetensors.h"
#include "autograd/var.h"
#include "base/crc32c.h"
#include "nn/checkpoint.h"
#include "tests/api/json_reader.h"
#include "tests/api/test_model.h"

namespace prunerec::testing {
namespace {

namespace fs = std::filesystem;

const fs::path kFixtures = fs::path(PRUNEREC_SOURCE_DIR) / "tests" / "fixtures" / "hf";

std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream os;
  os << in.rdbuf();
  return os.str();
}

void spit(const fs::path& p, const std::string& s) {
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out << s;
}

// Logits [T, V] of one unpadded sequence at every position.
std::vector<std::vector<float>> all_logits(const nn::Transformer& net, const std::vector<std::int32_t>& ids) {
  ag::NoGradGuard no_grad;
  const auto T = static_cast<std::int64_t>(ids.size());
  const Tensor l = net.logits(net.hidden(Tensor::from_vector(ids, {1, T}), Tensor::zeros({1}, DType::i32)))
                       .value()
                       .reshape({T, net.vocab_size()})
                       .contiguous();
  std::vector<std::vector<float>> out(static_cast<std::size_t>(T));
  for (std::int64_t t = 0; t < T; ++t)
    out[t].assign(l.data<float>() + t * net.vocab_size(), l.data<float>() + (t + 1) * net.vocab_size());
  return out;
}

// f32 -> bf16 -> f32, round to nearest even (what torch's .to(torch.bfloat16) does).
float round_bf16(float v) {
  std::uint32_t u;
  std::memcpy(&u, &v, 4);
  u += 0x7fffu + ((u >> 16) & 1u);
  u &= 0xffff0000u;
  float r;
  std::memcpy(&r, &u, 4);
  return r;
}

bool same_bits(const Tensor& a, const Tensor& b) {
  if (a.shape() != b.shape() || a.dtype() != b.dtype()) return false;
  const Tensor x = a.contiguous(), y = b.contiguous();
  return x.numel() == 0 || std::memcmp(x.data<float>(), y.data<float>(), x.nbytes()) == 0;
}

class ImportTest : public ::testing::Test {
 protected:
  TempDir dir_{"prunerec_import"};
  int copies_ = 0;
  fs::path tmp(const std::string& name) const { return dir_.path() / name; }
  // A copy of a fixture folder to damage.
  fs::path copy_fixture(const std::string& name) {
    const fs::path to = tmp(name + "-copy" + std::to_string(copies_++));
    fs::copy(kFixtures / name, to, fs::copy_options::recursive);
    return to;
  }
  // Expects import of `folder` to fail with an IoError whose message holds every part, and
  // to leave no output file.
  void expect_refused(const fs::path& folder, const std::vector<std::string>& parts) {
    const fs::path out = tmp("refused.prc");
    try {
      hf::import_hf(folder.string(), out.string());
      ADD_FAILURE() << "import of " << folder << " succeeded";
    } catch (const IoError& e) {
      for (const auto& p : parts) EXPECT_NE(std::string(e.what()).find(p), std::string::npos) << e.what() << "\nlacks: " << p;
    }
    EXPECT_FALSE(fs::exists(out));
    for (const auto& entry : fs::directory_iterator(dir_.path()))
      EXPECT_EQ(entry.path().filename().string().find("refused.prc"), std::string::npos) << entry.path();
  }
};

// The imported model's logits, at every position of several sequences, agree with the
// PyTorch reference. Tolerance: 1e-5 of the largest |logit| of the sequence. The reference
// runs in float64 on the same float32 weights; the engine in float32 differs by rounding
// (measured about 3e-7 of the scale), and RoPE's tables differ in the last bit (the engine
// rounds cos/sin from double, transformers computes them in float32).
TEST_F(ImportTest, ForwardMatchesThePyTorchReference) {
  for (const std::string name : {"qwen2", "llama"}) {
    SCOPED_TRACE(name);
    const hf::ImportedModel m = hf::read_hf_model((kFixtures / name).string());
    EXPECT_EQ(m.pretrained.architecture(), name == "qwen2" ? "Qwen2ForCausalLM" : "LlamaForCausalLM");
    EXPECT_EQ(m.net->tied(), name == "qwen2");
    EXPECT_EQ(m.net->config().qkv_bias(), name == "qwen2");
    const JsonValue expected = parse_json(slurp(kFixtures / name / "expected.json"));
    const auto& seqs = expected.at("sequences").array;
    ASSERT_GE(seqs.size(), 3u);
    for (std::size_t s = 0; s < seqs.size(); ++s) {
      std::vector<std::int32_t> ids;
      for (long long v : seqs[s].ints()) ids.push_back(static_cast<std::int32_t>(v));
      const auto got = all_logits(*m.net, ids);
      const auto& ref = expected.at("logits").array[s].array;
      ASSERT_EQ(got.size(), ref.size());
      double scale = 0, err = 0;
      for (std::size_t t = 0; t < ref.size(); ++t) {
        ASSERT_EQ(got[t].size(), ref[t].array.size());
        for (std::size_t v = 0; v < got[t].size(); ++v) {
          scale = std::max(scale, std::abs(ref[t].array[v].number));
          err = std::max(err, std::abs(got[t][v] - ref[t].array[v].number));
        }
      }
      EXPECT_GT(scale, 1.0);  // the reference is not degenerate
      EXPECT_LE(err, 1e-5 * scale) << "sequence " << s;
      // The last-position path computes the same row.
      ag::NoGradGuard no_grad;
      const auto T = static_cast<std::int64_t>(ids.size());
      const Tensor last = m.net->logits(ag::Var(m.net->last_hidden(Tensor::from_vector(ids, {1, T}),
                                                                   Tensor::zeros({1}, DType::i32)))).value();
      for (std::int64_t v = 0; v < m.net->vocab_size(); ++v)
        EXPECT_NEAR(last.data<float>()[v], ref.back().array[static_cast<std::size_t>(v)].number, 1e-5 * scale);
    }
  }
}

TEST_F(ImportTest, Bf16SourcesImportAsTheRoundedF32Originals) {
  for (const std::string name : {"qwen2", "llama"}) {
    SCOPED_TRACE(name);
    const hf::ImportedModel f32 = hf::read_hf_model((kFixtures / name).string());
    const hf::ImportedModel bf16 = hf::read_hf_model((kFixtures / (name + "-bf16")).string());
    EXPECT_EQ(bf16.pretrained.source_dtype(), "BF16");
    const auto a = f32.net->named_parameters(), b = bf16.net->named_parameters();
    ASSERT_EQ(a.size(), b.size());
    std::int64_t changed = 0;
    for (std::size_t i = 0; i < a.size(); ++i) {
      ASSERT_EQ(a[i].first, b[i].first);
      const Tensor x = a[i].second.value(), y = b[i].second.value();
      for (std::int64_t k = 0; k < x.numel(); ++k) {
        ASSERT_EQ(round_bf16(x.data<float>()[k]), y.data<float>()[k]) << a[i].first << "[" << k << "]";
        changed += round_bf16(x.data<float>()[k]) != x.data<float>()[k];
      }
    }
    EXPECT_GT(changed, 0);  // the rounding did something: the F32 fixture is not already BF16
  }
}

// import -> export writes the source's tensors under the source's names (bit for bit from
// an F32 source); export -> import gives back the same model bit for bit.
TEST_F(ImportTest, ImportThenExportReproducesTheSourceTensors) {
  for (const std::string name : {"qwen2", "llama"}) {
    SCOPED_TRACE(name);
    const fs::path model = tmp(name + ".prc"), out = tmp(name + "-export");
    hf::import_hf((kFixtures / name).string(), model.string());
    const nn::LoadedModel m = nn::load_model(model.string());
    ASSERT_TRUE(m.manifest.has_pretrained());
    EXPECT_FALSE(m.manifest.pretrained().files().empty());
    const hf::ExportSummary s = hf::export_model(*m.model, nullptr, &m.manifest.pretrained(), out.string(), {});
    EXPECT_EQ(s.architecture, m.manifest.pretrained().architecture());
    EXPECT_FALSE(fs::exists(out / "items.tsv"));
    const hf::SafetensorsFile exported((out / "model.safetensors").string());
    std::vector<hf::SafetensorsFile> sources;
    for (const auto& e : fs::directory_iterator(kFixtures / name))
      if (e.path().extension() == ".safetensors") sources.emplace_back(e.path().string());
    std::size_t source_tensors = 0;
    for (const auto& src : sources) {
      for (const auto& e : src.entries()) {
        ++source_tensors;
        const hf::SafetensorsEntry* x = exported.find(e.name);
        ASSERT_NE(x, nullptr) << e.name;
        EXPECT_EQ(x->shape, e.shape);
        EXPECT_EQ(exported.bytes(*x), src.bytes(e)) << e.name;  // both F32
      }
    }
    EXPECT_EQ(exported.entries().size(), source_tensors);
    const JsonValue cfg = parse_json(slurp(out / "config.json"));
    EXPECT_EQ(cfg.at("architectures").array[0].string, m.manifest.pretrained().architecture());
    EXPECT_EQ(cfg.at("eos_token_id").number, name == "qwen2" ? 91 : 2);
  }
}

TEST_F(ImportTest, ExportThenImportGivesTheSameModelBitForBit) {
  // An uneven model with a custom KV map, a zero-width MLP, an untied head, no q/k/v biases
  // (exported as zero biases for stock Qwen2), and a tied one with biases.
  const std::vector<pb::ModelConfig> configs = {
      make_config(17, 16, 4, 12, {{4, 2, 24, {1, 0, 1, 0}}, {2, 1, 0, {}}, {3, 3, 8, {}}}, false, false),
      make_config(11, 8, 2, 6, {{2, 1, 12, {}}, {2, 1, 12, {}}}, true, true)};
  for (std::size_t i = 0; i < configs.size(); ++i) {
    SCOPED_TRACE(i);
    const nn::Transformer net(configs[i], DType::f32, 5 + i);
    const fs::path out = tmp("export" + std::to_string(i));
    hf::export_model(net, nullptr, nullptr, out.string(), {});
    const hf::ImportedModel back = hf::read_hf_model(out.string());
    EXPECT_EQ(back.net->config().SerializeAsString(), net.config().SerializeAsString())
        << back.net->config().DebugString() << "\nvs\n" << net.config().DebugString();
    const auto a = net.named_parameters(), b = back.net->named_parameters();
    ASSERT_EQ(a.size(), b.size());
    for (std::size_t k = 0; k < a.size(); ++k) {
      EXPECT_EQ(a[k].first, b[k].first);
      EXPECT_TRUE(same_bits(a[k].second.value(), b[k].second.value())) << a[k].first;
    }
  }
}

// import_hf streams the converted tensors into the checkpoint (Note [streaming import]);
// the file must be the one save_model writes of the model read_hf_model builds.
TEST_F(ImportTest, StreamedImportWritesWhatSaveModelWritesOfTheReadModel) {
  for (const std::string name : {"qwen2", "llama", "qwen2-bf16", "llama-bf16"}) {
    const fs::path streamed = tmp(name + "-streamed.prc"), saved = tmp(name + "-saved.prc");
    hf::import_hf((kFixtures / name).string(), streamed.string());
    const hf::ImportedModel m = hf::read_hf_model((kFixtures / name).string());
    nn::SaveOptions options;
    options.pretrained = &m.pretrained;
    options.metadata["source"] = m.pretrained.source();
    nn::save_model(saved.string(), *m.net, options);
    EXPECT_TRUE(slurp(streamed) == slurp(saved)) << name << ": the streamed import differs from save_model's file";
  }
}

TEST_F(ImportTest, TheCheckpointCarriesTokenizerAndProvenance) {
  const fs::path src = copy_fixture("qwen2");
  spit(src / "tokenizer.json", R"({"version": "1.0", "model": {"type": "BPE"}})");
  const fs::path model = tmp("tok.prc");
  const hf::ImportSummary s = hf::import_hf(src.string(), model.string());
  EXPECT_EQ(s.tokenizer_files, std::vector<std::string>{"tokenizer.json"});
  const pb::Manifest m = nn::read_checkpoint_manifest(model.string());
  ASSERT_EQ(m.pretrained().tokenizer_files_size(), 1);
  EXPECT_EQ(m.pretrained().tokenizer_files(0).data(), slurp(src / "tokenizer.json"));
  EXPECT_EQ(m.pretrained().source(), fs::absolute(src).lexically_normal().string());
  EXPECT_EQ(m.pretrained().bos_token_id(), 90);
  EXPECT_EQ(m.pretrained().eos_token_id(), 91);
  std::set<std::string> names;
  for (const auto& f : m.pretrained().files()) {
    names.insert(f.name());
    EXPECT_EQ(f.bytes(), fs::file_size(src / f.name()));
    const std::string bytes = slurp(src / f.name());
    EXPECT_EQ(f.crc32c(), crc32c(bytes.data(), bytes.size())) << f.name();
  }
  EXPECT_EQ(names, (std::set<std::string>{"config.json", "model.safetensors", "tokenizer.json"}));
}

// ---- refusals ---------------------------------------------------------------------------

TEST_F(ImportTest, ConfigsTheEngineCannotRunExactlyAreRefusedByField) {
  const std::string base = slurp(kFixtures / "qwen2" / "config.json");
  struct Case {
    std::string from, to;
    std::vector<std::string> parts;
  };
  const std::vector<Case> cases = {
      {"\"rope_scaling\": null", "\"rope_scaling\": {\"type\": \"linear\", \"factor\": 2.0}", {"'rope_scaling'", "linear"}},
      {"\"use_sliding_window\": false", "\"use_sliding_window\": true", {"'use_sliding_window'", "true"}},
      {"\"hidden_act\": \"silu\"", "\"hidden_act\": \"gelu\"", {"'hidden_act'", "gelu"}},
      {"\"Qwen2ForCausalLM\"", "\"MistralForCausalLM\"", {"MistralForCausalLM"}},
      {"\"model_type\": \"qwen2\"", "\"model_type\": \"llama\"", {"'model_type'", "llama"}},
      {"\"num_key_value_heads\": 2", "\"num_key_value_heads\": 3", {"num_key_value_heads 3"}},
      {"\"hidden_size\": 32", "\"hidden_size\": 32.5", {"'hidden_size'", "32.5"}},
      {"\"vocab_size\": 96", "\"vocab_size\": \"96\"", {"'vocab_size'"}},
      {"{", "{\"quantization_config\": {\"bits\": 4}, ", {"'quantization_config'"}},
      {"\"rms_norm_eps\": 1e-06", "\"rms_norm_eps\": 1e-06,,", {"config.json", "not valid JSON"}},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.to);
    const fs::path folder = copy_fixture("qwen2");
    const std::size_t at = base.find(c.from);
    ASSERT_NE(at, std::string::npos) << c.from;
    std::string text = base;
    text.replace(at, c.from.size(), c.to);
    spit(folder / "config.json", text);
    expect_refused(folder, c.parts);
    fs::remove_all(folder);
  }
  // Llama-only fields.
  const std::string llama = slurp(kFixtures / "llama" / "config.json");
  for (const std::string field : {"attention_bias", "mlp_bias"}) {
    const fs::path folder = copy_fixture("llama");
    std::string text = llama;
    const std::string from = "\"" + field + "\": false";
    text.replace(text.find(from), from.size(), "\"" + field + "\": true");
    spit(folder / "config.json", text);
    expect_refused(folder, {"'" + field + "'"});
    fs::remove_all(folder);
  }
}

// Writes a safetensors file from a header text and data bytes, as given (no checks).
void raw_safetensors(const fs::path& p, const std::string& header, const std::string& data) {
  std::string s(8, '\0');
  for (int i = 0; i < 8; ++i) s[i] = static_cast<char>((header.size() >> (8 * i)) & 0xff);
  spit(p, s + header + data);
}

TEST_F(ImportTest, TensorMismatchesAreListedByName) {
  const hf::SafetensorsFile src((kFixtures / "qwen2" / "model.safetensors").string());
  auto rewrite = [&](const fs::path& folder, auto edit) {
    std::vector<hf::NamedTensor> tensors;
    for (const auto& e : src.entries()) tensors.emplace_back(e.name, src.read_f32(e));
    edit(tensors);
    hf::write_safetensors((folder / "model.safetensors").string(), tensors);
  };
  {
    const fs::path f = copy_fixture("qwen2");
    rewrite(f, [](auto& t) {
      t.erase(std::find_if(t.begin(), t.end(), [](const auto& x) { return x.first == "model.layers.1.mlp.up_proj.weight"; }));
    });
    expect_refused(f, {"missing tensor 'model.layers.1.mlp.up_proj.weight'", "[48,32]"});
  }
  {
    const fs::path f = copy_fixture("qwen2");
    rewrite(f, [](auto& t) { t.emplace_back("model.layers.0.self_attn.rotary_extra", Tensor::zeros({2})); });
    expect_refused(f, {"unexpected tensor 'model.layers.0.self_attn.rotary_extra'"});
  }
  {
    const fs::path f = copy_fixture("qwen2");
    rewrite(f, [](auto& t) {
      for (auto& x : t)
        if (x.first == "model.norm.weight") x.second = Tensor::ones({31});
    });
    expect_refused(f, {"tensor 'model.norm.weight' is [31]", "needs [32]"});
  }
  {
    // An untied lm_head in a tied model is an extra tensor, not silently dropped.
    const fs::path f = copy_fixture("qwen2");
    rewrite(f, [](auto& t) { t.emplace_back("lm_head.weight", Tensor::ones({96, 32})); });
    expect_refused(f, {"unexpected tensor 'lm_head.weight'", "tie_word_embeddings"});
  }
  {
    // A sharded model whose index names a tensor a shard does not hold.
    const fs::path f = copy_fixture("llama");
    std::string index = slurp(f / "model.safetensors.index.json");
    const std::string from = "\"model.norm.weight\": \"model-00002-of-00002.safetensors\"";
    ASSERT_NE(index.find(from), std::string::npos);
    index.replace(index.find(from), from.size(), "\"model.norm.weight\": \"model-00001-of-00002.safetensors\"");
    spit(f / "model.safetensors.index.json", index);
    expect_refused(f, {"model.norm.weight", "not listed for this file in the index"});
  }
}

TEST_F(ImportTest, DamagedSafetensorsFilesAreRefused) {
  const std::string good = slurp(kFixtures / "qwen2" / "model.safetensors");
  struct Case {
    std::string name;
    std::function<void(const fs::path&)> damage;
    std::vector<std::string> parts;
  };
  const std::vector<Case> cases = {
      {"truncated", [&](const fs::path& p) { spit(p, good.substr(0, good.size() - 100)); },
       {"model.safetensors", "beyond the"}},
      {"tiny", [&](const fs::path& p) { spit(p, good.substr(0, 5)); }, {"truncated"}},
      {"header length beyond the file", [&](const fs::path& p) { spit(p, std::string("\xff\xff\x00\x00\x00\x00\x00\x00", 8) + "{}"); },
       {"truncated"}},
      {"extended", [&](const fs::path& p) { spit(p, good + "junk"); }, {"extra bytes at the end"}},
      {"not json", [&](const fs::path& p) { raw_safetensors(p, "{\"a\": [1,}", ""); }, {"not valid JSON"}},
      {"wrong dtype", [&](const fs::path& p) { raw_safetensors(p, R"({"x":{"dtype":"I32","shape":[1],"data_offsets":[0,4]}})", "abcd"); },
       {"tensor 'x'", "I32"}},
      {"size lie", [&](const fs::path& p) { raw_safetensors(p, R"({"x":{"dtype":"F32","shape":[2],"data_offsets":[0,4]}})", "abcd"); },
       {"tensor 'x'", "hold 4 bytes", "needs 8"}},
      {"offsets lie", [&](const fs::path& p) {
         raw_safetensors(p, R"({"x":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"y":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})", "abcdefgh");
       }, {"overlap"}},
      {"gap", [&](const fs::path& p) { raw_safetensors(p, R"({"x":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})", "abcdefgh"); },
       {"tensor 'x'", "gap"}},
      {"negative dim", [&](const fs::path& p) { raw_safetensors(p, R"({"x":{"dtype":"F32","shape":[-1],"data_offsets":[0,0]}})", ""); },
       {"tensor 'x' shape", "non-negative integer"}},
      {"unknown field", [&](const fs::path& p) { raw_safetensors(p, R"({"x":{"dtype":"F32","shape":[],"data_offsets":[0,4],"q":1}})", "abcd"); },
       {"unknown field 'q'"}},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    const fs::path folder = copy_fixture("qwen2");
    c.damage(folder / "model.safetensors");
    expect_refused(folder, c.parts);
    fs::remove_all(folder);
  }
  // NaN weights: refused naming the tensor.
  const fs::path folder = copy_fixture("qwen2");
  const hf::SafetensorsFile src((kFixtures / "qwen2" / "model.safetensors").string());
  std::vector<hf::NamedTensor> tensors;
  for (const auto& e : src.entries()) tensors.emplace_back(e.name, src.read_f32(e));
  tensors[3].second.data<float>()[1] = std::nanf("");
  hf::write_safetensors((folder / "model.safetensors").string(), tensors);
  expect_refused(folder, {"'" + tensors[3].first + "'", "NaN"});
}

TEST(SafetensorsReaderTest, HalfPrecisionConversionsAreExact) {
  EXPECT_EQ(hf::bf16_to_f32(0x3f80), 1.0f);
  EXPECT_EQ(hf::bf16_to_f32(0xc040), -3.0f);
  EXPECT_EQ(hf::f16_to_f32(0x3c00), 1.0f);
  EXPECT_EQ(hf::f16_to_f32(0xc000), -2.0f);
  EXPECT_EQ(hf::f16_to_f32(0x7bff), 65504.0f);
  EXPECT_EQ(hf::f16_to_f32(0x0001), std::ldexp(1.0f, -24));  // smallest subnormal
  EXPECT_EQ(hf::f16_to_f32(0x83ff), -std::ldexp(1023.0f, -24));
  EXPECT_TRUE(std::isinf(hf::f16_to_f32(0x7c00)));
  EXPECT_TRUE(std::isnan(hf::f16_to_f32(0x7e00)));
  EXPECT_TRUE(std::signbit(hf::f16_to_f32(0x8000)));
}

// The vectorised loops against the scalar conversions, on every 16-bit pattern (NaNs
// compared by bits: payload and sign are kept).
TEST(SafetensorsReaderTest, BulkHalfPrecisionConversionsMatchTheScalarOnesOnEveryPattern) {
  std::vector<unsigned char> src(2 * 65536 + 1);
  for (std::uint32_t b = 0; b < 65536; ++b) {  // at an odd address: the loops must not assume alignment
    src[1 + 2 * b] = static_cast<unsigned char>(b & 0xff);
    src[2 + 2 * b] = static_cast<unsigned char>(b >> 8);
  }
  std::vector<float> bulk(65536);
  auto bits = [](float f) {
    std::uint32_t u;
    std::memcpy(&u, &f, 4);
    return u;
  };
  hf::bf16_to_f32(src.data() + 1, bulk.size(), bulk.data());
  for (std::uint32_t b = 0; b < 65536; ++b)
    ASSERT_EQ(bits(bulk[b]), bits(hf::bf16_to_f32(static_cast<std::uint16_t>(b)))) << "bf16 0x" << std::hex << b;
  hf::f16_to_f32(src.data() + 1, bulk.size(), bulk.data());
  for (std::uint32_t b = 0; b < 65536; ++b)
    ASSERT_EQ(bits(bulk[b]), bits(hf::f16_to_f32(static_cast<std::uint16_t>(b)))) << "f16 0x" << std::hex << b;
}

TEST(SafetensorsReaderTest, ReadsWhatTheWriterWrites) {
  TempDir dir("prunerec_st");
  const Tensor a = Tensor::from_vector(std::vector<float>{1.5f, -2.0f, 3.25f, 0.0f, 7.0f, 8.0f}, {2, 3});
  const Tensor empty = Tensor::zeros({0, 4});
  const std::string path = (dir.path() / "x.safetensors").string();
  hf::write_safetensors(path, {{"b", a}, {"a", empty}}, {{"format", "pt"}});
  const hf::SafetensorsFile f(path);
  ASSERT_EQ(f.entries().size(), 2u);
  EXPECT_EQ(f.metadata().at("format"), "pt");
  const hf::SafetensorsEntry* b = f.find("b");
  ASSERT_NE(b, nullptr);
  EXPECT_EQ(b->shape, (Shape{2, 3}));
  EXPECT_TRUE(same_bits(f.read_f32(*b), a));
  EXPECT_EQ(f.find("a")->shape, (Shape{0, 4}));
  EXPECT_EQ(f.find("c"), nullptr);
}

TEST(HfNamesTest, TheMapInvertsItselfAndRejectsLookalikes) {
  const nn::Transformer net(make_config(9, 8, 2, 4, {{2, 1, 4, {}}, {2, 2, 4, {}}}, false, true), DType::f32, 1);
  std::set<std::string> hf_names;
  for (const auto& [name, var] : net.named_parameters()) {
    const std::string hf = hf::to_hf_name(name);
    ASSERT_FALSE(hf.empty()) << name;
    EXPECT_EQ(hf::from_hf_name(hf), name);
    hf_names.insert(hf);
  }
  EXPECT_EQ(hf_names.size(), net.named_parameters().size());
  EXPECT_EQ(hf::to_hf_name("blocks.0.attn.head_gate"), "");
  EXPECT_EQ(hf::from_hf_name("model.layers.01.mlp.up_proj.weight"), "");
  EXPECT_EQ(hf::from_hf_name("model.layers.x.mlp.up_proj.weight"), "");
  EXPECT_EQ(hf::from_hf_name("model.layers.1.mlp.up_proj.weight.extra"), "");
  EXPECT_EQ(hf::from_hf_name("model.layers.1.self_attn.o_proj.bias"), "");
}

}  // namespace
}  // namespace prunerec::testing
