// Pieces shared by the subcommands: reading a data set as the flags describe it, and the
// data-related facts stored with a model so eval/recommend reuse the same split.
#pragma once

#include <iosfwd>
#include <string>

#include "apps/cli.h"
#include "proto/train.pb.h"
#include "recsys/data/dataset.h"
#include "recsys/data/split.h"

namespace prunerec::apps {

// Flags that say how to read a data set (the same spelling in every subcommand).
struct DataFlags {
  std::string path, format = "auto", titles, item_map, split_kind;
  int kcore = -1;  // -1: from the recipe or model
  bool skip_bad_lines = false;
  void add_to(cli::Flags& flags, bool required);
};

struct LoadedData {
  recsys::SequenceDataset data;
  recsys::DataSplit split;
  pb::DataConfig config;  // what was used (format, split kind, kcore)
  std::string summary;    // one line: users, items, interactions, split sizes
};

// Reads, filters and splits. `defaults` fills what the flags leave open (from a recipe or
// a model's stored settings).
LoadedData load_data(const DataFlags& flags, const pb::DataConfig& defaults);

// Makes the data's dense item indices agree with a model's catalogue (by raw id), so a
// model can be evaluated on a fresh read of its data. Throws ConfigError naming an unknown
// item when the data holds items the model never saw.
void align_to_catalog(recsys::SequenceDataset& data, const recsys::ItemCatalog& catalog);

// The data settings stored with a model (metadata "data.*"), as a DataConfig.
pb::DataConfig data_config_from_metadata(const google::protobuf::Map<std::string, std::string>& metadata);
void data_config_to_metadata(const pb::DataConfig& config, const std::string& path,
                             std::map<std::string, std::string>& metadata);

// A built-in preset ("teacher", "small", ...) or a file, parsed as text format.
std::string preset_or_file(const std::string& name_or_path, const std::string& kind);

// Checks a recipe whose vocab_size is set (the model config and the training settings);
// ConfigError messages start with `source` (the recipe file or preset name).
void validate_recipe(const pb::Recipe& recipe, const std::string& source);

}  // namespace prunerec::apps
