// prunerec recommend
#include <cstdio>
#include <iostream>
#include <sstream>

#include "apps/cli.h"
#include "apps/commands.h"
#include "apps/title.h"
#include "base/json.h"
#include "recsys/recommender.h"

namespace prunerec::apps {

int cmd_recommend(const Args& args) {
  cli::Flags flags("recommend",
                   "Top-k next items for a history of raw item ids (oldest first); a title-mode model also takes "
                   "titles (--history-titles) and writes the next items' titles.",
                   "prunerec recommend --model runs/beauty/teacher.prc --history \"12 85 301\" -k 10");
  std::string model_path, history, history_titles;
  int beams = 20;
  int k = 10;
  bool json = false, keep_history = false;
  flags.add("model", &model_path, "model file", cli::Flags::kRequired);
  flags.add("history", &history, "raw item ids, oldest first, separated by spaces or commas");
  flags.add("history-titles", &history_titles,
            "title-mode models: titles, oldest first, separated by '|' (any text; need not be catalogue titles)");
  flags.add("beams", &beams, "title-mode models: beams of the constrained beam search (at least k)");
  flags.range("beams", 1);
  flags.add("k", &k, "how many items");
  flags.range("k", 1);
  flags.alias("-k", "k");
  flags.add_switch("keep-history", &keep_history, "allow items already in the history");
  flags.add_switch("json", &json, "print one JSON object");
  flags.parse(args);
  if (history.empty() == history_titles.empty())
    throw cli::UsageError("recommend: give exactly one of --history (item ids) and --history-titles");
  if (is_title_model(model_path)) {
    if (keep_history) throw cli::UsageError("recommend: --keep-history does not apply to a title-mode model (it never excludes)");
    if (k > beams) throw cli::UsageError("recommend: -k " + std::to_string(k) + " is more than --beams " + std::to_string(beams));
    return recommend_titles(model_path, history, history_titles, k, beams, json);
  }
  if (!history_titles.empty() || flags.given("beams"))
    throw cli::UsageError(std::string("recommend: --") + (flags.given("beams") ? "beams" : "history-titles") +
                          " applies to title-mode models only");
  std::vector<std::string> ids;
  {
    std::string h = history;
    for (char& c : h)
      if (c == ',') c = ' ';
    std::istringstream is(h);
    for (std::string id; is >> id;) ids.push_back(id);
  }
  if (ids.empty()) throw cli::UsageError("recommend: --history holds no item ids");
  const recsys::Recommender rec = recsys::load_recommender(model_path);
  std::vector<std::string> unknown;
  const auto top = recsys::recommend(rec, ids, k, !keep_history, &unknown);
  if (json) {
    Json j;
    j.begin_object().key("items").begin_array();
    for (const auto& r : top)
      j.begin_object().key("id").value(r.raw_id).key("title").value(r.title).key("score").value(static_cast<double>(r.score)).end_object();
    j.end_array().key("unknown_history_ids").begin_array();
    for (const auto& u : unknown) j.value(u);
    j.end_array().end_object();
    std::cout << j.str() << "\n";
    return 0;
  }
  if (!unknown.empty()) {
    std::cerr << "note: " << unknown.size() << " history id" << (unknown.size() > 1 ? "s are" : " is")
              << " not in the model's catalogue and " << (unknown.size() > 1 ? "were" : "was") << " skipped:";
    for (const auto& u : unknown) std::cerr << " " << u;
    std::cerr << "\n";
  }
  std::printf("%4s  %-16s %9s  %s\n", "rank", "item", "score", "title");
  int rank = 1;
  for (const auto& r : top) std::printf("%4d  %-16s %9.4f  %s\n", rank++, r.raw_id.c_str(), r.score, r.title.c_str());
  return 0;
}

}  // namespace prunerec::apps
