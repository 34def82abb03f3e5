#include "apps/common.h"

#include <filesystem>
#include <sstream>

#include "apps/presets.h"
#include "nn/text_proto.h"
#include "nn/optim.h"
#include "nn/transformer.h"
#include "recsys/data/filter.h"
#include "base/atomic_file.h"

namespace prunerec::apps {

void DataFlags::add_to(cli::Flags& flags, bool required) {
  flags.add("data", &path, "data file or folder", required);
  flags.add("format", &format, "auto, pairs, user-seq, item-seq, movielens-dat, recbole, lcrec-json, csv, d3-csv");
  flags.add("titles", &titles, "item titles: TSV (raw id, title) or RecBole .item");
  flags.add("item-map", &item_map, "TSV mapping the data's item ids to the ids of --titles");
  flags.add("split-kind", &split_kind, "leave-one-out or temporal (default: recipe's or model's)");
  flags.add("kcore", &kcore, "iterative k-core filter (default: recipe's or model's, else off)");
  flags.add_switch("skip-bad-lines", &skip_bad_lines, "count and skip malformed lines instead of stopping");
}

LoadedData load_data(const DataFlags& flags, const pb::DataConfig& defaults) {
  LoadedData out;
  out.config = defaults;
  if (flags.format != "auto" || !out.config.has_format()) out.config.set_format(flags.format);
  if (flags.kcore >= 0) out.config.set_kcore(flags.kcore);
  if (!flags.split_kind.empty()) {
    if (flags.split_kind == "leave-one-out" || flags.split_kind == "loo")
      out.config.set_split(pb::DataConfig::LEAVE_ONE_OUT);
    else if (flags.split_kind == "temporal")
      out.config.set_split(pb::DataConfig::TEMPORAL);
    else
      throw cli::UsageError("--split-kind must be leave-one-out or temporal, got '" + flags.split_kind + "'");
  }
  recsys::ReadOptions ro;
  ro.format = out.config.format();
  ro.skip_bad_lines = flags.skip_bad_lines;
  ro.titles_path = flags.titles;
  ro.item_map_path = flags.item_map;
  recsys::ReadReport report;
  out.data = recsys::read_dataset(flags.path, ro, &report);
  std::ostringstream summary;
  if (report.bad_lines > 0) summary << "skipped " << report.bad_lines << " bad lines; ";
  if (out.config.kcore() > 1) summary << recsys::kcore_filter(out.data, out.config.kcore()).summary() << "; ";
  out.split = out.config.split() == pb::DataConfig::TEMPORAL
                  ? recsys::temporal_split(out.data, out.config.valid_ratio(), out.config.test_ratio())
                  : recsys::leave_one_out(out.data);
  summary << out.data.num_users() << " users, " << out.data.items.size() << " items, " << out.data.num_interactions()
          << " interactions (" << out.data.format << "); " << out.split.kind << " split: " << out.split.train.size()
          << " train sequences, " << out.split.valid.size() << " valid, " << out.split.test.size() << " test";
  out.summary = summary.str();
  return out;
}

void align_to_catalog(recsys::SequenceDataset& data, const recsys::ItemCatalog& catalog) {
  std::vector<std::int32_t> to_model(static_cast<std::size_t>(data.items.size()), -1);
  std::int64_t unknown = 0;
  std::string first_unknown;
  for (std::int32_t i = 0; i < data.items.size(); ++i) {
    to_model[i] = catalog.find(data.items.raw_ids[i]);
    if (to_model[i] < 0 && unknown++ == 0) first_unknown = data.items.raw_ids[i];
  }
  PR_CHECK_T(ConfigError, unknown == 0, data.source, ": ", unknown, " item", unknown > 1 ? "s" : "",
             " of the data are unknown to the model (first: '", first_unknown,
             "'); evaluate a model on the data it was trained on");
  for (auto& seq : data.sequences)
    for (auto& item : seq) item = to_model[item];
  recsys::ItemCatalog merged = catalog;
  if (!data.items.titles.empty() && merged.titles.empty())
    for (std::int32_t i = 0; i < data.items.size(); ++i) merged.set_title(to_model[i], data.items.title(i));
  data.items = std::move(merged);
}

pb::DataConfig data_config_from_metadata(const google::protobuf::Map<std::string, std::string>& md) {
  pb::DataConfig c;
  if (auto it = md.find("data.config"); it != md.end()) nn::parse_text_proto(it->second, "model metadata data.config", &c);
  return c;
}

void data_config_to_metadata(const pb::DataConfig& config, const std::string& path,
                             std::map<std::string, std::string>& md) {
  md["data.config"] = nn::to_short_text_proto(config);
  md["data.path"] = path;
}

std::string preset_or_file(const std::string& name_or_path, const std::string& kind) {
  for (const auto& p : presets())
    if (p.name == name_or_path) return p.text;
  if (!std::filesystem::exists(name_or_path)) {
    std::string names;
    for (const auto& p : presets()) names += (names.empty() ? "" : ", ") + p.name;
    throw ConfigError(detail::str_cat(kind, " '", name_or_path, "' is neither a file nor a built-in preset (", names, ")"));
  }
  return read_file(name_or_path, nn::kMaxConfigBytes);
}

void validate_recipe(const pb::Recipe& recipe, const std::string& source) {
  try {
    nn::normalize_config(recipe.model());
    const pb::TrainConfig& t = recipe.train();
    PR_CHECK_T(ConfigError, t.epochs() > 0, "train.epochs must be positive, got ", t.epochs());
    PR_CHECK_T(ConfigError, t.batch_size() > 0 && t.batch_tokens() >= 0, "train.batch_size must be positive");
    PR_CHECK_T(ConfigError, t.dropout() >= 0 && t.dropout() < 1, "train.dropout must be in [0, 1), got ", t.dropout());
    nn::adamw_options(t.optimizer());  // learning-rate schedule and AdamW fields
    PR_CHECK_T(ConfigError, t.eval_every() > 0 && t.patience() > 0, "train.eval_every and train.patience must be positive");
  } catch (const ConfigError& e) {
    throw ConfigError(source + ": " + e.what());
  }
}

}  // namespace prunerec::apps
