// Small models with random weights, saved as recommenders, for the API and export tests.
//
//   TempDir dir("prunerec_api");
//   const std::string path = save_test_model(dir.path() / "m.prc", uneven_config(), 7);
#pragma once

#include <gtest/gtest.h>
#include <stdlib.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "nn/transformer.h"
#include "recsys/recommender.h"

namespace prunerec::testing {

// A fresh folder under the test temp dir, removed with everything in it.
class TempDir {
 public:
  explicit TempDir(const std::string& prefix) {
    std::string tmpl = (std::filesystem::path(::testing::TempDir()) / (prefix + "_XXXXXX")).string();
    if (::mkdtemp(tmpl.data()) == nullptr) throw std::runtime_error("mkdtemp: " + std::string(std::strerror(errno)));
    path_ = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

struct TestLayer {
  int heads, kv_heads, mlp;
  std::vector<int> kv_map;  // empty: contiguous groups
};

inline pb::ModelConfig make_config(int vocab, int hidden, int head_dim, int max_len, const std::vector<TestLayer>& layers,
                                   bool tied = true, bool qkv_bias = true) {
  pb::ModelConfig c;
  c.set_name("api-test");
  c.set_vocab_size(vocab);
  c.set_hidden(hidden);
  c.set_head_dim(head_dim);
  c.set_max_len(max_len);
  c.set_rope_theta(500.0);
  c.set_init_std(0.25);  // well-spread scores: few near-ties among the items
  c.set_tie_embeddings(tied);
  c.set_qkv_bias(qkv_bias);
  for (const auto& l : layers) {
    pb::LayerConfig* L = c.add_layers();
    L->set_num_heads(l.heads);
    L->set_num_kv_heads(l.kv_heads);
    L->set_mlp_width(l.mlp);
    for (int g : l.kv_map) L->add_kv_map(g);
  }
  return c;
}

// Items "item<k>" titled "Title <k>" (one title with a tab and a newline, to test escaping).
inline recsys::ItemCatalog make_catalog(int n) {
  recsys::ItemCatalog catalog;
  for (int i = 0; i < n; ++i) catalog.add("item" + std::to_string(i));
  for (int i = 0; i < n; ++i) catalog.set_title(i, i == 3 ? "Odd\ttitle\nwith \\ escapes" : "Title " + std::to_string(i));
  return catalog;
}

inline std::string save_test_model(const std::filesystem::path& path, const pb::ModelConfig& config, std::uint64_t seed) {
  nn::Transformer net(config, DType::f32, seed);
  recsys::save_recommender(path.string(), net, make_catalog(config.vocab_size()));
  return path.string();
}

}  // namespace prunerec::testing
