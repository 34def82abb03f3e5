// Title mode at the command line (docs/title-mode.md): what joins the tokenizers (text/,
// which the libraries below apps do not link) to title mode's library (recsys/title/):
// training the catalogue's SentencePiece model, the prompt template from a preset or a
// file, and title-mode model files (a checkpoint with a TitleMode record).
#pragma once

#include <memory>
#include <string>

#include "apps/common.h"
#include "nn/checkpoint.h"
#include "proto/prune.pb.h"
#include "proto/train.pb.h"
#include "recsys/data/dataset.h"
#include "recsys/title/title_eval.h"
#include "text/tokenizer.h"

namespace prunerec::apps {

// The template text from a file or a built-in template preset ("paper", "paper-games");
// *source says which. ConfigError when neither (naming the presets).
std::string read_prompt_template(const std::string& name_or_path, std::string* source);

// A SentencePiece model trained on the catalogue's titles (as the targets write them) and
// the template's text, with vocab_size as an upper bound (small catalogues support fewer
// pieces). Returns the model's bytes.
std::string train_title_tokenizer(const recsys::ItemCatalog& items, const std::string& template_text,
                                  std::int32_t vocab_size);

// The codec title mode's library uses, over a tokenizer (which must outlive it).
recsys::TitleCodec title_codec(const text::Tokenizer& tokenizer, std::int32_t eos);

// True when the model file carries a TitleMode record.
bool is_title_model(const std::string& path);

// A title-mode model file, ready to generate.
struct TitleModel {
  std::unique_ptr<nn::Transformer> net;
  recsys::ItemCatalog catalog;
  pb::Manifest manifest;
  std::unique_ptr<text::Tokenizer> tokenizer;
  std::unique_ptr<recsys::TitleTask> task;
};
// IoError when the file is not a title-mode model or its tokenizer is missing.
TitleModel load_title_model(const std::string& path);

}  // namespace prunerec::apps

namespace prunerec::apps {

// Title mode runs on one process: under mpirun with more than one rank a UsageError naming
// `what` (the command), before any work.
void refuse_data_parallel(const std::string& what);

// `prunerec train --mode title`: the flags only title mode has.
struct TitleTrainFlags {
  std::string template_name = "paper";
  int vocab_size = 4000;
  int history = 10;
  int samples_per_user = 0;        // the last N targets of each user (0 = all)
  int beams = 20;
  std::int64_t valid_limit = 500;  // validation examples per epoch (0 = all)
  std::int64_t test_limit = 0;     // test examples evaluated after training (0 = all)
  bool max_len_given = false;      // --max-len was given (else the context is at least 256)
  // A model file to start from (an imported Hugging Face model): its weights, its
  // tokenizer and its context replace the recipe's model and the trained tokenizer.
  std::string init;
  // Continue the run saved in `<out>.state` when there is one (recsys/run_state.h); its
  // template, tokenizer and history must be this run's.
  bool resume = true;
};

// Trains a title-mode model from scratch (or from flags.init) on `data` (already parsed recipe), writes the
// best by validation NDCG@10 to `out`, evaluates it on the test split and prints the
// result as cmd_train does. Returns the exit code.
int train_title_mode(pb::Recipe recipe, const std::string& recipe_source, const DataFlags& data,
                     const std::string& out, const TitleTrainFlags& flags, bool quiet, bool json);

// `prunerec prune` on a title-mode teacher (prune::run_title_schedule): the flags that
// apply to it, and title mode's own.
struct TitlePruneFlags {
  int beams = 20;                  // evaluation and generation latency
  std::int64_t valid_limit = 500;  // validation examples per evaluation (0 = all)
  std::int64_t test_limit = 0;     // test examples per evaluation (0 = all)
  bool redo = false;
  bool latency = true;
  bool quiet = false;
  bool json = false;
};
// Runs the schedule on `teacher`'s data (its recorded data options, or `data`), writes OUT
// as the item-token schedule does and prints the ledger (or report.json). Returns the exit
// code.
int prune_title_mode(const std::string& teacher, DataFlags data, const pb::Schedule& schedule,
                     const std::string& out, const TitlePruneFlags& flags, const std::string& command);

// `prunerec recommend` on a title-mode model: the history as raw item ids (spaces or
// commas) or as titles ('|'), k generated titles with their items and scores.
int recommend_titles(const std::string& model_path, const std::string& history_ids, const std::string& history_titles,
                     int k, int beams, bool json);

}  // namespace prunerec::apps
