#include "apps/common.h"

#include <filesystem>
#include <iostream>
#include <sstream>

#include "apps/presets.h"
#include "nn/text_proto.h"
#include "nn/optim.h"
#include "nn/transformer.h"
#include "recsys/data/filter.h"
#include "base/atomic_file.h"

namespace prunerec::apps {

void DataFlags::add_to(cli::Flags& flags, bool required) {
  flags.add("data", &path, "data file or folder (formats: docs/data-formats.md)", required);
  std::vector<std::string> formats = {"auto"};
  for (const auto& f : recsys::format_names()) formats.push_back(f);
  flags.add("format", &format, "the data's format; auto detects it");
  flags.choices("format", formats);
  flags.add("titles", &titles, "item titles: TSV (raw id, title) or RecBole .item");
  flags.add("item-map", &item_map, "TSV mapping the data's item ids to the ids of --titles");
  flags.add("split-kind", &split_kind, "leave-one-out or temporal (default: the recipe's or model's)");
  flags.choices("split-kind", {"leave-one-out", "temporal"});
  flags.add("kcore", &kcore, "iterative k-core filter, 0 or 1 = off (default: the recipe's or model's, else off)");
  flags.range("kcore", 0);
  flags.add_switch("skip-bad-lines", &skip_bad_lines, "count and skip malformed lines instead of stopping");
}

LoadedData load_data(const DataFlags& flags, const pb::DataConfig& defaults) {
  LoadedData out;
  out.config = defaults;
  if (flags.format != "auto" || !out.config.has_format()) out.config.set_format(flags.format);
  if (flags.kcore >= 0) out.config.set_kcore(flags.kcore);
  if (!flags.split_kind.empty()) {
    // The parser allowed only these two (DataFlags::add_to).
    out.config.set_split(flags.split_kind == "temporal" ? pb::DataConfig::TEMPORAL : pb::DataConfig::LEAVE_ONE_OUT);
  }
  recsys::ReadOptions ro;
  ro.format = out.config.format();
  ro.skip_bad_lines = flags.skip_bad_lines;
  ro.titles_path = flags.titles;
  ro.item_map_path = flags.item_map;
  recsys::ReadReport report;
  out.data = recsys::read_dataset(flags.path, ro, &report);
  for (const std::string& w : report.warnings) std::cerr << "warning: " << w << "\n";  // even with --quiet
  std::ostringstream notes;
  if (report.bad_lines > 0) notes << "skipped " << report.bad_lines << " bad lines; ";
  if (out.config.kcore() > 1) notes << recsys::kcore_filter(out.data, out.config.kcore()).summary() << "; ";
  out.notes = notes.str();
  if (!out.notes.empty()) out.notes.resize(out.notes.size() - 2);
  std::ostringstream summary;
  summary << notes.str();
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
  // Resolved, so the model can be used from any folder (a relative path would be read
  // against wherever the next command runs).
  std::error_code ec;
  const std::filesystem::path absolute = std::filesystem::absolute(path, ec);
  md["data.path"] = ec ? path : absolute.lexically_normal().string();
}

const char* preset_kind_name(PresetKind kind) {
  switch (kind) {
    case PresetKind::kRecipe: return "recipe";
    case PresetKind::kSchedule: return "schedule";
    case PresetKind::kTemplate: return "template";
  }
  return "";
}

std::string preset_or_file(const std::string& name_or_path, PresetKind kind, const std::string& flag,
                           std::string* source) {
  const Preset* preset = nullptr;
  for (const auto& p : presets())
    if (p.name == name_or_path && p.kind == preset_kind_name(kind)) preset = &p;
  std::error_code ec;
  if (std::filesystem::is_regular_file(name_or_path, ec)) {  // Note [presets and files]: a file wins
    if (preset)
      std::cerr << flag << ": reading the file " << name_or_path << " (a file wins over the built-in preset of the same name; "
                << "write ./" << name_or_path << " to silence this)\n";
    if (source) *source = name_or_path;
    return read_file(name_or_path, nn::kMaxConfigBytes);
  }
  if (preset) {
    if (source) *source = "preset " + name_or_path;
    return preset->text;
  }
  std::string own, other;
  const char* other_kind = "";
  for (const auto& p : presets()) {
    if (p.kind == preset_kind_name(kind)) own += (own.empty() ? "" : ", ") + p.name;
    if (p.name == name_or_path) other_kind = p.kind.c_str();
  }
  if (*other_kind)
    throw ConfigError(detail::str_cat(flag, ": '", name_or_path, "' is a built-in ", other_kind, " preset, but ", flag,
                                      " takes a ", preset_kind_name(kind), ": a file or one of the ", preset_kind_name(kind),
                                      " presets (", own, ")"));
  if (std::filesystem::exists(name_or_path, ec))
    throw ConfigError(detail::str_cat(flag, ": '", name_or_path, "' is not a regular file"));
  throw ConfigError(detail::str_cat(flag, ": '", name_or_path, "' is neither a file nor a built-in ", preset_kind_name(kind),
                                    " preset (", own, ")"));
}

std::string preset_or_file(const std::string& name_or_path, const std::string& kind) {
  return kind == "schedule" ? preset_or_file(name_or_path, PresetKind::kSchedule, "--schedule")
                            : preset_or_file(name_or_path, PresetKind::kRecipe, "--" + kind);
}

LoadedData load_model_data(DataFlags& flags, const recsys::ItemCatalog& catalog,
                           const google::protobuf::Map<std::string, std::string>& metadata, const std::string& model_path,
                           const std::string& command) {
  const bool recorded = flags.path.empty();
  if (recorded) {
    const auto it = metadata.find("data.path");
    if (it == metadata.end())
      throw cli::UsageError(command + ": --data is required (" + model_path + " does not record the data it was trained on)");
    flags.path = it->second;
  }
  LoadedData d;
  // Where a recorded path came from, for errors about reading it.
  auto origin = [&] {
    std::string text = "the data path '" + flags.path + "' is the one recorded in " + model_path + " when it was trained";
    if (std::filesystem::path(flags.path).is_relative())
      text += " (a relative path, read from the current folder " + std::filesystem::current_path().string() + ")";
    return text + "; give --data PATH to read the data from where it is now";
  };
  try {
    d = load_data(flags, data_config_from_metadata(metadata));
  } catch (const IoError& e) {
    if (!recorded) throw;
    throw IoError(std::string(e.what()) + " (" + origin() + ")");
  } catch (const ConfigError& e) {
    if (!recorded) throw;
    throw ConfigError(std::string(e.what()) + " (" + origin() + ")");
  }
  align_to_catalog(d.data, catalog);
  return d;
}

void check_output_file(const std::string& command, const std::string& flag, const std::string& path) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (path.empty()) throw cli::UsageError(command + ": " + flag + " is empty");
  if (fs::is_directory(path, ec))
    throw cli::UsageError(command + ": " + flag + " " + path + " is a folder; give the path of the file to write (e.g. " +
                          (fs::path(path) / "model.prc").string() + ")");
  for (fs::path up = fs::absolute(path, ec).parent_path(); !up.empty(); up = up.parent_path()) {
    if (fs::exists(up, ec)) {
      if (!fs::is_directory(up, ec))
        throw cli::UsageError(command + ": " + flag + " " + path + " cannot be written: " + up.string() + " is a file, not a folder");
      break;
    }
    if (up == up.parent_path()) break;
  }
}

void check_output_folder(const std::string& command, const std::string& flag, const std::string& path) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (path.empty()) throw cli::UsageError(command + ": " + flag + " is empty");
  if (fs::exists(path, ec) && !fs::is_directory(path, ec))
    throw cli::UsageError(command + ": " + flag + " " + path + " is a file; give a folder (it is created if missing)");
  for (fs::path up = fs::absolute(path, ec).parent_path(); !up.empty(); up = up.parent_path()) {
    if (fs::exists(up, ec)) {
      if (!fs::is_directory(up, ec))
        throw cli::UsageError(command + ": " + flag + " " + path + " cannot be created: " + up.string() + " is a file, not a folder");
      break;
    }
    if (up == up.parent_path()) break;
  }
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
