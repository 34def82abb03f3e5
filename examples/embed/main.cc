// Loads a prunerec model and prints the top-k next items for a history, one per line:
//   <rank> TAB <item id> TAB <score> TAB <title>
//
//   embed_example MODEL K ITEM_ID [ITEM_ID ...]     (history oldest first)
#include <prunerec/prunerec.h>

#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <string>
#include <vector>

int main(int argc, char** argv) {
  if (argc < 4) {
    std::cerr << "usage: " << argv[0] << " MODEL K ITEM_ID [ITEM_ID ...]\n";
    return 2;
  }
  const int k = std::atoi(argv[2]);
  const std::vector<std::string> history(argv + 3, argv + argc);
  try {
    const auto rec = prunerec::api::Recommender::load(argv[1]);
    std::cerr << "prunerec " << prunerec::api::version() << ": " << rec.model_summary() << "\n";
    std::vector<std::string> unknown;
    const auto top = rec.recommend(history, k, /*exclude_history=*/true, &unknown);
    for (const auto& id : unknown) std::cerr << "skipped unknown item " << id << "\n";
    int rank = 1;
    for (const auto& r : top) std::printf("%d\t%s\t%.6f\t%s\n", rank++, r.item_id.c_str(), r.score, r.title.c_str());
  } catch (const prunerec::api::Error& e) {
    std::cerr << "error: " << e.what() << "\n";
    return e.kind() == prunerec::api::Error::Kind::kInvalidArgument ? 2 : 1;
  }
  return 0;
}
