// prunerec train
#include <iostream>

#include "apps/commands.h"
#include "apps/common.h"
#include "apps/pipeline.h"
#include "apps/title.h"
#include "base/json.h"
#include "nn/text_proto.h"
#include "recsys/eval/evaluator.h"
#include "recsys/recommender.h"
#include "recsys/trainer.h"
#include "tensor/parallel.h"

namespace prunerec::apps {

int cmd_train(const Args& args) {
  cli::Flags flags("train", "Train a recommender on a data set; keeps the best model by validation NDCG@10.",
                   "prunerec train --data ../shared/data/amazon-beauty/s3rec/Beauty.txt --config teacher --out runs/beauty/teacher.prc");
  DataFlags data;
  data.add_to(flags, cli::Flags::kRequired);
  std::string config = "teacher", out;
  std::uint64_t seed = 0;
  int epochs = 0, threads = 0, max_len = 0;
  bool no_resume = false, quiet = false, json = false;
  std::string mode = "item";
  TitleTrainFlags title;
  flags.add("mode", &mode, "item (every item is a token) or title (the model writes the next item's title; docs/title-mode.md)");
  flags.choices("mode", {"item", "title"});
  flags.add("template", &title.template_name, "title mode: the prompt template, a file with a {history} slot or a preset (paper, paper-games)");
  flags.add("vocab-size", &title.vocab_size, "title mode: pieces of the SentencePiece tokenizer trained on the titles (an upper bound)");
  flags.range("vocab-size", 8);
  flags.add("history", &title.history, "title mode: the last N items go into the prompt");
  flags.range("history", 1);
  flags.add("samples-per-user", &title.samples_per_user, "title mode: train on the last N targets of each user (default: every target, the paper's samples)");
  flags.range("samples-per-user", 0);
  flags.add("beams", &title.beams, "title mode: beams of the constrained beam search in validation and test");
  flags.range("beams", 1);
  flags.add("valid-limit", &title.valid_limit, "title mode: validation examples generated per epoch (0 = all)");
  flags.range("valid-limit", 0);
  flags.add("test-limit", &title.test_limit, "title mode: generate only the first N test examples after training (default: all; `eval --limit` evaluates more later)");
  flags.range("test-limit", 0);
  flags.add("init", &title.init, "title mode: start from this model file (an imported Hugging Face model with its tokenizer) instead of the recipe's model");
  flags.add("config", &config, "recipe: a text-format file or a recipe preset (teacher, small)");
  flags.add("out", &out, "model file to write (the best model); its resume state goes beside it", cli::Flags::kRequired);
  flags.add("seed", &seed, "random seed (default: the recipe's)");
  flags.add("epochs", &epochs, "train this many epochs (default: the recipe's); raise it to extend a run (Note [extending a run])");
  flags.range("epochs", 1);
  flags.add("max-len", &max_len, "longest history the model reads (default: the recipe's)");
  flags.range("max-len", 1);
  flags.add("threads", &threads, "worker threads (default: all cores)");
  flags.range("threads", 1);
  flags.add_switch("no-resume", &no_resume, "start over even if a saved state exists");
  flags.add_switch("quiet", &quiet, "print nothing but the result (no progress, no data summary)");
  flags.add_switch("json", &json, "print the result as one JSON object");
  flags.parse(args);
  check_output_file("train", "--out", out);
  if (threads > 0) set_num_threads(threads);

  pb::Recipe recipe;
  std::string recipe_source;
  nn::parse_text_proto(preset_or_file(config, PresetKind::kRecipe, "--config", &recipe_source), recipe_source, &recipe);
  if (flags.given("seed")) recipe.mutable_train()->set_seed(seed);
  if (epochs > 0) recipe.mutable_train()->set_epochs(epochs);
  if (max_len > 0) recipe.mutable_model()->set_max_len(max_len);
  for (const char* f : {"template", "vocab-size", "history", "samples-per-user", "beams", "valid-limit", "init"})
    if (mode != "title" && flags.given(f)) throw cli::UsageError(std::string("train: --") + f + " applies to --mode title only");
  if (mode == "title") {
    title.resume = !no_resume;
    title.max_len_given = max_len > 0;
    if (!title.init.empty() && flags.given("vocab-size"))
      throw cli::UsageError("train: --vocab-size does not apply with --init (the initial model brings its tokenizer)");
    return train_title_mode(recipe, recipe_source, data, out, title, quiet, json);
  }

  LoadedData d = load_data(data, recipe.data());
  *recipe.mutable_data() = d.config;
  recipe.mutable_model()->set_vocab_size(d.data.items.size());
  validate_recipe(recipe, recipe_source);
  if (!quiet) std::cerr << "data: " << d.summary << "\n";

  const recsys::TrainResult r =
      train_from_recipe(recipe, d, data.path, out, {.resume = !no_resume, .quiet = quiet, .phase = "train"});

  // The best model on the test split.
  recsys::Recommender best = recsys::load_recommender(out);
  recsys::EvalOptions eo;
  eo.protocol.split = "test";
  eo.max_len = static_cast<int>(best.net->config().max_len());
  const recsys::EvalResult test = recsys::evaluate_model(*best.net, d.data, d.split, eo);
  print_train_summary({.model = out, .mode = "", .seed = recipe.train().seed(), .epochs_run = r.epochs_run,
                       .best_epoch = r.best_epoch, .steps = r.steps, .seconds = r.seconds,
                       .rate_key = "positions_per_s", .rate_unit = "positions/s", .rate = r.positions_per_second,
                       .valid = r.best_valid.metrics},
                      test, json);
  return 0;
}

}  // namespace prunerec::apps
