#include "recsys/recommender.h"

#include <algorithm>

#include "recsys/batching.h"
#include "recsys/eval/metrics.h"
#include "recsys/ranking.h"

namespace prunerec::recsys {

pb::ItemCatalog catalog_to_proto(const ItemCatalog& catalog) {
  pb::ItemCatalog p;
  for (const auto& id : catalog.raw_ids) p.add_raw_ids(id);
  for (const auto& t : catalog.titles) p.add_titles(t);
  return p;
}

ItemCatalog catalog_from_proto(const pb::ItemCatalog& p) {
  ItemCatalog c;
  c.raw_ids.assign(p.raw_ids().begin(), p.raw_ids().end());
  c.titles.assign(p.titles().begin(), p.titles().end());
  c.reindex();
  return c;
}

namespace {
// The recommender of a loaded model; `path` names it in errors.
Recommender recommender_from_model(const std::string& path, nn::LoadedModel loaded) {
  Recommender r;
  r.net = std::move(loaded.model);
  r.manifest = std::move(loaded.manifest);
  PR_CHECK_T(IoError, !r.manifest.has_title_mode(), path,
             ": a title-mode model (it writes titles; `prunerec eval` and `recommend` read it, docs/title-mode.md)");
  PR_CHECK_T(IoError, r.manifest.has_catalog() && r.manifest.catalog().raw_ids_size() > 0, path,
             ": model file has no item catalogue (was it written by `prunerec train`?)");
  try {
    r.catalog = catalog_from_proto(r.manifest.catalog());
  } catch (const Error& e) {
    throw IoError(prunerec::detail::str_cat(path, ": item catalogue: ", e.what()));
  }
  PR_CHECK_T(IoError, r.catalog.size() == r.net->vocab_size(), path, ": catalogue has ", r.catalog.size(),
             " items but the model scores ", r.net->vocab_size());
  PR_CHECK_T(IoError, r.catalog.titles.empty() || r.catalog.titles.size() == r.catalog.raw_ids.size(), path,
             ": catalogue has ", r.catalog.titles.size(), " titles for ", r.catalog.raw_ids.size(), " items");
  return r;
}
}  // namespace

Recommender load_recommender(const std::string& path, bool mmap) {
  return recommender_from_model(path, nn::load_model(path, {.mmap = mmap, .with_optimizer = false}));
}

Recommender load_recommender_from_memory(const void* data, std::size_t size, const std::string& name) {
  return recommender_from_model(name, nn::load_model_from_memory(data, size, name, {.with_optimizer = false}));
}

void save_recommender(const std::string& path, const nn::Transformer& net, const ItemCatalog& catalog,
                      nn::SaveOptions options) {
  PR_CHECK(catalog.size() == net.vocab_size(), "save_recommender: catalogue has ", catalog.size(),
           " items, model vocabulary is ", net.vocab_size());
  const pb::ItemCatalog proto = catalog_to_proto(catalog);
  options.catalog = &proto;
  nn::save_model(path, net, options);
}

Tensor next_item_scores(const nn::Transformer& net, const Tensor& ids, const Tensor& pads) {
  ag::NoGradGuard no_grad;
  // [B, d]: left padding puts every row's newest item last.
  return ag::linear(ag::Var(net.last_hidden(ids, pads)), net.output_weight()).value();
}

std::vector<Recommendation> recommend(const Recommender& rec, const std::vector<std::string>& history, int k,
                                      bool exclude_history, std::vector<std::string>* unknown) {
  PR_CHECK_T(ConfigError, k > 0, "recommend: k must be positive, got ", k);
  std::vector<std::int32_t> items;
  for (const auto& raw : history) {
    const std::int32_t i = rec.catalog.find(raw);
    if (i < 0) {
      if (unknown) unknown->push_back(raw);
      continue;
    }
    items.push_back(i);
  }
  PR_CHECK_T(ConfigError, !items.empty(), "recommend: none of the ", history.size(),
             " history ids is a known item of this model");
  const std::vector<std::vector<ScoredItem>> top = top_items_batch(*rec.net, {items}, k, exclude_history);
  std::vector<Recommendation> out;
  for (const auto& [item, score] : top.front())
    out.push_back({item, score, rec.catalog.raw_ids[item], rec.catalog.title(item)});
  return out;
}

}  // namespace prunerec::recsys
