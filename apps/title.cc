#include "apps/title.h"

#include <filesystem>
#include <fstream>
#include <cstdio>
#include <iostream>
#include <set>
#include <sstream>

#include "apps/commands.h"
#include "apps/common.h"
#include "base/comm.h"
#include "base/crc32c.h"
#include "base/error.h"
#include "base/format.h"
#include "base/json.h"
#include "nn/checkpoint_file.h"
#include "nn/text_proto.h"
#include "prune/report.h"
#include "prune/title_schedule.h"
#include "recsys/progress.h"
#include "recsys/recommender.h"
#include "recsys/run_state.h"
#include "recsys/title/title_train.h"
#include "tensor/parallel.h"

namespace prunerec::apps {

std::string read_prompt_template(const std::string& name_or_path, std::string* source) {
  return preset_or_file(name_or_path, PresetKind::kTemplate, "--template", source);
}

std::string train_title_tokenizer(const recsys::ItemCatalog& items, const std::string& template_text,
                                  std::int32_t vocab_size) {
  // Each distinct title once, as the target writes it, and the template's text: the
  // pieces then cover what prompts and targets hold (quotes, the template's words).
  std::set<std::string> seen;
  std::vector<std::string> sentences;
  for (std::int32_t i = 0; i < items.size(); ++i) {
    const std::string& t = items.title(i);
    if (!t.empty() && seen.insert(t).second) sentences.push_back(recsys::target_text(t));
  }
  PR_CHECK_T(ConfigError, !sentences.empty(), "title mode: no item has a title to train the tokenizer on");
  sentences.push_back(template_text);
  text::SentencePieceTrainOptions o;
  o.vocab_size = vocab_size;
  o.hard_vocab_limit = false;  // a small catalogue may support fewer pieces
  return text::train_sentencepiece(sentences, o);
}

recsys::TitleCodec title_codec(const text::Tokenizer& tokenizer, std::int32_t eos) {
  return {.encode = [&tokenizer](std::string_view s) { return tokenizer.encode(s); }, .eos = eos};
}

bool is_title_model(const std::string& path) {
  char head[8] = {};
  std::ifstream in(path, std::ios::binary);
  in.read(head, sizeof head);
  if (std::string_view(head, sizeof head) != "PRUNEREC") return false;
  return nn::read_checkpoint_manifest(path).has_title_mode();
}

TitleModel load_title_model(const std::string& path) {
  nn::LoadedModel loaded = nn::load_model(path, {.with_optimizer = false});
  TitleModel m;
  m.net = std::move(loaded.model);
  m.manifest = std::move(loaded.manifest);
  PR_CHECK_T(IoError, m.manifest.has_title_mode(), path, ": not a title-mode model (no TitleMode record)");
  const pb::TitleMode& tm = m.manifest.title_mode();
  PR_CHECK_T(IoError, m.manifest.has_catalog() && m.manifest.catalog().raw_ids_size() > 0, path,
             ": title-mode model without an item catalogue");
  m.catalog = recsys::catalog_from_proto(m.manifest.catalog());
  if (tm.has_tokenizer()) {
    m.tokenizer = text::tokenizer_from_bytes(path + " (" + tm.tokenizer().name() + ")", tm.tokenizer().data());
  } else {
    for (const char* name : {"tokenizer.json", "tokenizer.model"})
      for (const auto& f : m.manifest.pretrained().tokenizer_files())
        if (!m.tokenizer && f.name() == name) m.tokenizer = text::tokenizer_from_bytes(path + " (" + name + ")", f.data());
  }
  PR_CHECK_T(IoError, m.tokenizer != nullptr, path, ": title-mode model carries no tokenizer");
  PR_CHECK_T(IoError, m.tokenizer->vocab_size() <= m.net->vocab_size(), path, ": the tokenizer has ",
             m.tokenizer->vocab_size(), " tokens, the model's vocabulary ", m.net->vocab_size());
  recsys::TitleDataOptions options{.history = tm.history(), .max_context = m.net->config().max_len()};
  m.task = std::make_unique<recsys::TitleTask>(recsys::PromptTemplate(tm.prompt_template(), path + " (template)"),
                                               title_codec(*m.tokenizer, tm.eos_token_id()), m.catalog, options);
  return m;
}

}  // namespace prunerec::apps

namespace prunerec::apps {
namespace {

// A title-mode resume continues the run in `state_path` only when it wrote the same titles:
// the same template, history and tokenizer (the trainer then checks the data and recipe,
// Note [run fingerprints] in recsys/run_state.h). Checked here, before the trainer, so the
// refusal names the setting rather than a fingerprint.
void check_title_run_state(const std::string& state_path, const pb::TitleMode& run) {
  const pb::Manifest saved = nn::read_checkpoint_manifest(state_path);
  const char* start_over = recsys::kStartOverHint;
  PR_CHECK_T(ConfigError, saved.has_title_mode(), state_path,
             ": not the state of a title-mode run (an item-token run's?)", start_over);
  const pb::TitleMode& was = saved.title_mode();
  PR_CHECK_T(ConfigError, was.prompt_template() == run.prompt_template(), state_path,
             ": the saved run used another prompt template (", was.template_source(), ") than this one (",
             run.template_source(), ")", start_over);
  PR_CHECK_T(ConfigError, was.history() == run.history(), state_path, ": the saved run put ", was.history(),
             " items in a prompt, this one ", run.history(), " (--history)", start_over);
  PR_CHECK_T(ConfigError, was.tokenizer().data() == run.tokenizer().data(), state_path,
             ": the saved run's tokenizer is not the one trained now from the catalogue's titles and the template",
             " (other data, another --vocab-size, or another tokenizer trainer)", start_over);
}

std::int32_t eos_of(const text::Tokenizer& tok) {
  for (const auto& s : tok.special_tokens())
    if (s.content == "</s>" || s.content == "<|endoftext|>" || s.content == "<|im_end|>") return s.id;
  throw ConfigError("title mode: the tokenizer has no end-of-sequence token (</s>)");
}

}  // namespace

void refuse_data_parallel(const std::string& what) {
  if (world().size() > 1)
    throw cli::UsageError(what + " runs on one process; title mode is not data-parallel yet (docs/scale-out.md): run it "
                          "without mpirun, or with -np 1");
}

int train_title_mode(pb::Recipe recipe, const std::string& recipe_source, const DataFlags& data_flags,
                     const std::string& out, const TitleTrainFlags& flags, bool quiet, bool json) {
  refuse_data_parallel("train --mode title");
  LoadedData d = load_data(data_flags, recipe.data());
  *recipe.mutable_data() = d.config;
  if (!quiet) std::cerr << "data: " << d.summary << "\n";
  std::string template_source;
  const std::string template_text = read_prompt_template(flags.template_name, &template_source);
  const recsys::PromptTemplate tmpl(template_text, template_source);

  // The tokenizer: trained on the catalogue, or the initial model's own.
  std::string spm;
  std::unique_ptr<text::Tokenizer> tok;
  std::unique_ptr<nn::Transformer> net;
  pb::Pretrained pretrained;
  std::int32_t eos = -1;
  if (flags.init.empty()) {
    spm = train_title_tokenizer(d.data.items, template_text, flags.vocab_size);
    tok = text::tokenizer_from_bytes("tokenizer.model (trained)", spm);
    eos = eos_of(*tok);
    recipe.mutable_model()->set_vocab_size(tok->vocab_size());
    if (!flags.max_len_given && recipe.model().max_len() < 256) recipe.mutable_model()->set_max_len(256);
    validate_recipe(recipe, recipe_source);
    net = std::make_unique<nn::Transformer>(recipe.model(), DType::f32, recipe.train().seed());
  } else {
    nn::LoadedModel init = nn::load_model(flags.init, {.with_optimizer = false});
    PR_CHECK_T(ConfigError, !init.manifest.has_title_mode() || init.manifest.title_mode().has_tokenizer() == false,
               flags.init, ": --init takes an imported model (continuing a title-mode model is not supported yet)");
    pretrained = init.manifest.pretrained();
    for (const char* name : {"tokenizer.json", "tokenizer.model"})
      for (const auto& f : pretrained.tokenizer_files())
        if (!tok && f.name() == name) tok = text::tokenizer_from_bytes(flags.init + " (" + name + ")", f.data());
    PR_CHECK_T(ConfigError, tok != nullptr, flags.init,
               ": --init needs a model that carries its tokenizer (one imported from a folder with tokenizer.json or "
               "tokenizer.model)");
    net = std::move(init.model);
    PR_CHECK_T(ConfigError, tok->vocab_size() <= net->vocab_size(), flags.init, ": its tokenizer has ",
               tok->vocab_size(), " tokens, more than the model's vocabulary of ", net->vocab_size());
    eos = pretrained.eos_token_id() >= 0 && pretrained.eos_token_id() < net->vocab_size() ? pretrained.eos_token_id()
                                                                                           : eos_of(*tok);
    // The model's own shape; the recipe gives the training settings only.
    const std::int32_t requested = recipe.model().max_len();
    *recipe.mutable_model() = net->config();
    if (flags.max_len_given) {
      PR_CHECK_T(ConfigError, requested <= net->config().max_len(), "--max-len ", requested, " is longer than ",
                 flags.init, "'s context of ", net->config().max_len());
      recipe.mutable_model()->set_max_len(requested);  // prompts are cut to it; the model keeps its own
    }
    validate_recipe(recipe, recipe_source);
  }

  const recsys::TitleDataOptions options{.history = flags.history,
                                         .max_context = recipe.model().max_len(),
                                         .samples_per_user = flags.samples_per_user};
  const recsys::TitleTask task(tmpl, title_codec(*tok, eos), d.data.items, options);
  const std::vector<recsys::TitleSequence> train =
      recsys::training_sequences(d.data, d.split, task.tmpl, task.codec, task.table, task.options);
  std::int64_t target_tokens = 0, cut = 0;
  std::size_t longest = 0;
  for (const auto& s : train) {
    target_tokens += static_cast<std::int64_t>(s.ids.size()) - s.prompt_len;
    longest = std::max(longest, s.ids.size());
    cut += static_cast<std::int64_t>(s.ids.size()) == recipe.model().max_len();
  }
  if (!quiet)
    std::cerr << "title mode: " << (flags.init.empty() ? "trained" : "the initial model's") << " tokenizer, "
              << tok->vocab_size() << " pieces"
              << (flags.init.empty() ? " (asked " + std::to_string(flags.vocab_size) + ")" : std::string()) << ", "
              << task.trie.num_titles() << " distinct titles of " << d.data.items.size() << " items, "
              << train.size() << " training sequences (" << target_tokens << " target tokens, longest " << longest
              << " of context " << recipe.model().max_len() << (cut > 0 ? ", " + std::to_string(cut) + " at the context and possibly cut from the left" : "")
              << ")\n";

  pb::TitleMode title_mode;
  title_mode.set_prompt_template(template_text);
  title_mode.set_template_source(template_source);
  title_mode.set_history(flags.history);
  title_mode.set_eos_token_id(eos);
  if (!spm.empty()) {
    title_mode.mutable_tokenizer()->set_name("tokenizer.model");
    title_mode.mutable_tokenizer()->set_data(spm);
    title_mode.set_tokenizer_vocab_requested(flags.vocab_size);
  }
  const pb::ItemCatalog catalog = recsys::catalog_to_proto(d.data.items);
  std::map<std::string, std::string> metadata;
  metadata["mode"] = "title";
  metadata["recipe"] = nn::to_short_text_proto(recipe);
  metadata["seed"] = std::to_string(recipe.train().seed());
  metadata["threads"] = std::to_string(num_threads());
  data_config_to_metadata(d.config, data_flags.path, metadata);

  if (!flags.init.empty()) metadata["title.init"] = flags.init;
  metadata["title.samples_per_user"] = std::to_string(flags.samples_per_user);
  recsys::BeamOptions beams;
  beams.beams = flags.beams;
  recsys::TitleTrainSpec spec;
  spec.train = &train;
  spec.config = recipe.train();
  spec.log = quiet ? nullptr : &std::cerr;
  spec.validate = [&](const nn::Transformer& m) {
    return recsys::evaluate_titles(m, d.data, d.split, task,
                                   {.split = "valid", .beams = beams, .limit = flags.valid_limit, .stoppable = false});
  };
  const nn::SaveOptions record{.catalog = &catalog, .metadata = metadata,
                                .pretrained = flags.init.empty() ? nullptr : &pretrained, .title_mode = &title_mode};
  spec.save_best = [&](const nn::Transformer& m) { nn::save_model(out, m, record); };
  // The run state beside the model, as item-token training keeps it (recsys/run_state.h).
  spec.state_path = out + ".state";
  spec.resume = flags.resume;
  spec.state_record = record;
  const std::string catalog_bytes = catalog.SerializeAsString();  // titles the validation generates
  spec.data_fingerprint = crc32c(catalog_bytes.data(), catalog_bytes.size(), recsys::split_fingerprint(d.split));
  if (flags.resume && std::filesystem::exists(spec.state_path)) check_title_run_state(spec.state_path, title_mode);
  const recsys::TitleTrainResult r = recsys::train_title_model(*net, spec);

  const TitleModel best = load_title_model(out);
  recsys::TitleEvalOptions eo;
  eo.split = "test";
  eo.beams = beams;
  eo.limit = flags.test_limit;
  const auto test_users = static_cast<std::int64_t>(d.split.test.size());
  Progress progress(std::cerr, "eval test", eo.limit > 0 ? std::min(eo.limit, test_users) : test_users,
                    quiet ? Progress::Mode::kQuiet : Progress::Mode::kAuto);
  const recsys::EvalResult test = recsys::evaluate_titles(*best.net, d.data, d.split, *best.task, eo, &progress);
  progress.clear();
  print_train_summary({.model = out, .mode = "title", .seed = recipe.train().seed(), .epochs_run = r.epochs_run,
                       .best_epoch = r.best_epoch, .steps = r.steps, .seconds = r.seconds,
                       .rate_key = "target_tokens_per_s", .rate_unit = "target tokens/s", .rate = r.tokens_per_second,
                       .valid = r.best_valid.metrics},
                      test, json);
  return 0;
}

int prune_title_mode(const std::string& teacher, DataFlags data_flags, const pb::Schedule& schedule,
                     const std::string& out, const TitlePruneFlags& flags, const std::string& command) {
  refuse_data_parallel("prune on a title-mode teacher");
  const TitleModel m = load_title_model(teacher);
  LoadedData d = load_model_data(data_flags, m.catalog, m.manifest.metadata(), teacher, "prune");
  if (!flags.quiet) std::cerr << "data: " << d.summary << "\n";
  // The teacher's training sequences: its template, history and context (the task) and
  // the samples per user it was trained with.
  recsys::TitleDataOptions options = m.task->options;
  if (const auto it = m.manifest.metadata().find("title.samples_per_user"); it != m.manifest.metadata().end())
    options.samples_per_user = std::stoi(it->second);
  const std::vector<recsys::TitleSequence> train =
      recsys::training_sequences(d.data, d.split, m.task->tmpl, m.task->codec, m.task->table, options);
  prune::TitlePruneRun run;
  run.data = &d.data;
  run.split = &d.split;
  run.task = m.task.get();
  run.train = &train;
  run.teacher_path = teacher;
  run.out_dir = out;
  run.schedule = schedule;
  run.beams.beams = flags.beams;
  run.valid_limit = flags.valid_limit;
  run.test_limit = flags.test_limit;
  run.redo = flags.redo;
  run.latency = flags.latency;
  run.progress = flags.quiet ? Progress::Mode::kSilent : Progress::Mode::kAuto;
  run.data_description = data_flags.path + " (" + d.summary + ")";
  run.command = command;
  data_config_to_metadata(d.config, data_flags.path, run.metadata);
  const pb::Report report = prune::run_title_schedule(run);
  std::cout << (flags.json ? prune::report_json(report) : prune::ledger_text(report));
  return 0;
}

int recommend_titles(const std::string& model_path, const std::string& history_ids, const std::string& history_titles,
                     int k, int beams, bool json) {
  const TitleModel m = load_title_model(model_path);
  std::vector<std::string> titles;
  if (!history_titles.empty()) {
    std::size_t start = 0;
    while (start <= history_titles.size()) {
      const std::size_t bar = std::min(history_titles.find('|', start), history_titles.size());
      std::string t = history_titles.substr(start, bar - start);
      const auto first = t.find_first_not_of(' '), last = t.find_last_not_of(' ');
      t = first == std::string::npos ? "" : t.substr(first, last - first + 1);
      if (t.empty()) throw cli::UsageError("recommend: --history-titles holds an empty title");
      titles.push_back(t);
      start = bar + 1;
    }
  } else {
    std::string h = history_ids;
    for (char& c : h)
      if (c == ',') c = ' ';
    std::istringstream is(h);
    for (std::string id; is >> id;) {
      const std::int32_t item = m.catalog.find(id);
      if (item < 0) throw ConfigError("recommend: history item " + id + " is not in " + model_path + "'s catalogue");
      if (m.catalog.title(item).empty()) throw ConfigError("recommend: history item " + id + " has no title");
      titles.push_back(m.catalog.title(item));
    }
    if (titles.empty()) throw cli::UsageError("recommend: --history holds no item ids");
  }
  recsys::BeamOptions bo;
  bo.beams = beams;
  const auto generated = recsys::generate_titles(*m.net, m.task->trie, {m.task->prompt_from_titles(titles)}, bo);
  const auto& out = generated.front();
  const std::size_t n = std::min(out.size(), static_cast<std::size_t>(k));
  if (json) {
    Json j;
    j.begin_object().key("items").begin_array();
    for (std::size_t r = 0; r < n; ++r) {
      const auto items = m.task->trie.items(out[r].node);
      j.begin_object().key("title").value(m.catalog.title(items.front())).key("ids").begin_array();
      for (std::int32_t i : items) j.value(m.catalog.raw_ids[static_cast<std::size_t>(i)]);
      j.end_array().key("score").value(out[r].score).key("log_prob").value(out[r].log_prob).end_object();
    }
    j.end_array().end_object();
    std::cout << j.str() << "\n";
    return 0;
  }
  std::printf("%4s  %-16s %9s  %s\n", "rank", "item", "score", "title");
  for (std::size_t r = 0; r < n; ++r) {
    const auto items = m.task->trie.items(out[r].node);
    std::string ids;
    for (std::int32_t i : items) ids += (ids.empty() ? "" : ",") + m.catalog.raw_ids[static_cast<std::size_t>(i)];
    std::printf("%4zu  %-16s %9.4f  %s\n", r + 1, ids.c_str(), out[r].score, m.catalog.title(items.front()).c_str());
  }
  return 0;
}

}  // namespace prunerec::apps
