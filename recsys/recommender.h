// A trained recommender: the network plus the item catalogue (raw ids and titles), kept
// together in one checkpoint so answers come back in the user's own ids.
//
//   Recommender r = load_recommender("run/model.prc");
//   auto top = recommend(r, {"B000123", "B000456"}, 10);   // raw ids in, raw ids out
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "nn/checkpoint.h"
#include "nn/transformer.h"
#include "recsys/data/dataset.h"

namespace prunerec::recsys {

struct Recommender {
  std::unique_ptr<nn::Transformer> net;
  ItemCatalog catalog;
  pb::Manifest manifest;  // training state and metadata stored with the model
};

pb::ItemCatalog catalog_to_proto(const ItemCatalog& catalog);
ItemCatalog catalog_from_proto(const pb::ItemCatalog& proto);

// Loads a model file; IoError if it is not a recommender (no catalogue, or a catalogue
// whose size differs from the model's vocabulary).
Recommender load_recommender(const std::string& path, bool mmap = false);
// The same from a model file's bytes in memory (copied; the buffer may be freed after).
// `name` stands for the path in error messages.
Recommender load_recommender_from_memory(const void* data, std::size_t size, const std::string& name);
void save_recommender(const std::string& path, const nn::Transformer& net, const ItemCatalog& catalog,
                      nn::SaveOptions options = {});

// Scores of every item as the next one after each row of ids [B,T] (left-padded), from the
// last position: [B, V]. Records no graph.
Tensor next_item_scores(const nn::Transformer& net, const Tensor& ids, const Tensor& pads);

struct Recommendation {
  std::int32_t item = 0;   // dense index
  float score = 0;
  std::string raw_id, title;
};

// Top-k next items for a history of raw item ids (oldest first). Unknown ids are skipped
// and reported through `unknown`; an empty usable history is an error (ConfigError).
// History items are excluded from the answer unless exclude_history is false.
std::vector<Recommendation> recommend(const Recommender& rec, const std::vector<std::string>& history, int k,
                                      bool exclude_history = true, std::vector<std::string>* unknown = nullptr);

}  // namespace prunerec::recsys
