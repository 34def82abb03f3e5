// Loads a prunerec model and prints the top-k next items for a history, one per line:
//   <rank> TAB <item id> TAB <score> TAB <title>
//
//   embed_example [--from-memory] MODEL K ITEM_ID [ITEM_ID ...]     (history oldest first)
//
// --from-memory reads the file into a buffer first and loads the model from there
// (Recommender::load_from_memory), as a program that embeds or downloads its model would.
#include <prunerec/prunerec.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>
#include <iterator>
#include <string>
#include <vector>

int main(int argc, char** argv) {
  const bool from_memory = argc > 1 && std::strcmp(argv[1], "--from-memory") == 0;
  if (from_memory) {
    --argc;
    ++argv;
  }
  if (argc < 4) {
    std::cerr << "usage: embed_example [--from-memory] MODEL K ITEM_ID [ITEM_ID ...]\n";
    return 2;
  }
  const int k = std::atoi(argv[2]);
  const std::vector<std::string> history(argv + 3, argv + argc);
  try {
    prunerec::api::Recommender rec = [&] {
      if (!from_memory) return prunerec::api::Recommender::load(argv[1]);
      std::ifstream in(argv[1], std::ios::binary);
      if (!in) throw prunerec::api::Error(prunerec::api::Error::Kind::kIo, std::string(argv[1]) + ": cannot open");
      const std::vector<char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
      return prunerec::api::Recommender::load_from_memory(bytes.data(), bytes.size(), argv[1]);
    }();
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
