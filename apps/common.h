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
  std::string notes;      // what reading changed: skipped bad lines, the k-core filter ("" if nothing)
};

// Reads, filters and splits. `defaults` fills what the flags leave open (from a recipe or
// a model's stored settings).
LoadedData load_data(const DataFlags& flags, const pb::DataConfig& defaults);

// The data a model was trained on, aligned to its catalogue: --data when given, else the
// path recorded in the model (absolute since issue 18; older models may hold one relative
// to the folder they were trained in). A read that fails says where the path came from
// and suggests --data. Fills flags.path with the path used.
LoadedData load_model_data(DataFlags& flags, const recsys::ItemCatalog& catalog,
                           const google::protobuf::Map<std::string, std::string>& metadata, const std::string& model_path,
                           const std::string& command);

// Usage errors for output targets, before any work (Note [outputs checked first]):
// a file to be written must not be an existing folder and its parent must be a folder or
// creatable; a folder to be written must not be an existing file, nor lie under one.
void check_output_file(const std::string& command, const std::string& flag, const std::string& path);
void check_output_folder(const std::string& command, const std::string& flag, const std::string& path);

// Makes the data's dense item indices agree with a model's catalogue (by raw id), so a
// model can be evaluated on a fresh read of its data. Throws ConfigError naming an unknown
// item when the data holds items the model never saw.
void align_to_catalog(recsys::SequenceDataset& data, const recsys::ItemCatalog& catalog);

// The data settings stored with a model (metadata "data.*"), as a DataConfig.
pb::DataConfig data_config_from_metadata(const google::protobuf::Map<std::string, std::string>& metadata);
void data_config_to_metadata(const pb::DataConfig& config, const std::string& path,
                             std::map<std::string, std::string>& metadata);

// Note [presets and files]: --config and --schedule take a file or a built-in preset of
// the flag's kind (apps/presets/: recipes "teacher" and "small", the schedule "schedule").
// An existing file always wins over a preset of the same name (a file named "small" in the
// working folder is read, and a note says so); a preset of another kind is an error that
// names the kinds ("'schedule' is a schedule preset; --config takes a recipe: teacher,
// small"). Returns the text and sets *source to what was read ("preset teacher" or the path).
enum class PresetKind { kRecipe, kSchedule, kTemplate };
std::string preset_or_file(const std::string& name_or_path, PresetKind kind, const std::string& flag,
                           std::string* source = nullptr);
// The earlier spelling, kept for commands written against it: kind "schedule" reads a
// schedule, anything else ("config") a recipe.
std::string preset_or_file(const std::string& name_or_path, const std::string& kind);
// The preset kind's name ("recipe", "schedule", "template").
const char* preset_kind_name(PresetKind kind);

// Checks a recipe whose vocab_size is set (the model config and the training settings);
// ConfigError messages start with `source` (the recipe file or preset name).
void validate_recipe(const pb::Recipe& recipe, const std::string& source);

}  // namespace prunerec::apps
