// lcrec-json reader and its id files, on files written here.
#include <gtest/gtest.h>

#include "recsys/data/dataset.h"
#include "tests/recsys/data/data_files.h"

namespace prunerec::recsys {
namespace {

using testing::DataFiles;
using testing::expect_io_error_at;
using testing::Ids;
using testing::raw_sequences;
using testing::Seqs;

TEST(ReadLcrecJson, ObjectOfItemLists) {
  DataFiles files;
  std::string path = files.write("Games.inter.json",
                                 "{\"0\": [0, 1, 2], \"1\": [2, 3],\n \"u\\u00e9\": [\"x\", 0], \"3\": []}");
  ReadReport report;
  SequenceDataset data = read_dataset(path, {}, &report);
  EXPECT_EQ(data.format, "lcrec-json");
  EXPECT_EQ(data.users, (Ids{"0", "1", "u\xC3\xA9"}));  // the empty user "3" is dropped
  EXPECT_EQ(raw_sequences(data), (Seqs{{"0", "1", "2"}, {"2", "3"}, {"x", "0"}}));
  EXPECT_EQ(report.lines, 4);
}

TEST(ReadLcrecJson, IdFilesBesideRenameItemsAndUsers) {
  DataFiles files;
  std::string path = files.write("Games.inter.json", "{\"0\": [0, 1], \"1\": [1, 2]}");
  files.write("Games.item2id", "B00A\t0\nB00B\t1\nB00C\t2\n");
  files.write("Games.user2id", "AX\t0\nAY\t1\n");
  SequenceDataset data = read_dataset(path);
  EXPECT_EQ(data.users, (Ids{"AX", "AY"}));
  EXPECT_EQ(raw_sequences(data), (Seqs{{"B00A", "B00B"}, {"B00B", "B00C"}}));
  EXPECT_EQ(data.items.find("B00C"), 2);
  EXPECT_EQ(data.items.find("2"), -1);
  EXPECT_EQ(data.files_read, (Ids{path, files.path("Games.item2id"), files.path("Games.user2id")}));
}

TEST(ReadLcrecJson, IdFileMissingAnItemIsAnError) {
  DataFiles files;
  std::string path = files.write("Games.inter.json", "{\"0\": [0, 7]}");
  std::string item2id = files.write("Games.item2id", "B00A\t0\n");
  std::string message = testing::error_message<IoError>([&] { read_dataset(path); });
  EXPECT_NE(message.find(item2id), std::string::npos) << message;
  EXPECT_NE(message.find("\"7\""), std::string::npos) << message;
}

TEST(ReadLcrecJson, ItemMapAppliesToTheIndexAsWritten) {
  DataFiles files;
  std::string path = files.write("lcrec/Games.inter.json", "{\"0\": [0, 1], \"1\": [1]}");
  files.write("lcrec/Games.item2id", "B00A\t0\nB00B\t1\n");
  // LC-Rec index -> LLMRank id, and LLMRank titles.
  std::string map = files.write("lcrec_to_llmrank_item.tsv",
                                "lcrec_item_id\tllmrank_item_id\tconfidence\n0\t41\tunique\n1\t40\tunique\n");
  std::string titles = files.write("llmrank/Games.item",
                                   "item_id:token\ttitle:token_seq\n40\tZelda\n41\tMario\n");
  ReadOptions opts;
  opts.titles_path = titles;
  opts.item_map_path = map;
  SequenceDataset data = read_dataset(path, opts);
  EXPECT_EQ(data.items.title(data.items.find("B00A")), "Mario");
  EXPECT_EQ(data.items.title(data.items.find("B00B")), "Zelda");
}

TEST(ReadLcrecJson, MalformedJsonNamesFileAndLine) {
  DataFiles files;
  struct Case {
    const char* text;
    int line;
    const char* expected;
  };
  const Case cases[] = {
      {"{\"0\": [0, 1],\n \"1\": [2,]}", 2, "expected an item id"},  // trailing comma
      {"{\"0\": [0, 1]\n\n \"1\": [2]}", 3, "expected ',' or '}'"},
      {"{\"0\": [0, 1], \"1\": [2]", 1, "expected ',' or '}'"},       // truncated
      {"{\"0\": [0, 1]} x", 1, "unexpected text"},
      {"{\"0\": [0, {\"a\": 1}]}", 1, "expected an item id"},          // nesting refused
      {"{\"0\n\": [1]}", 1, "raw control character"},
      {"{\"\\q\": [1]}", 1, "bad escape"},
      {"{\"0\": [01]}", 1, "expected ',' or ']'"},                     // leading zero
      {"[1, 2]", 1, "expected '{'"},
      {"{\"0\": 5}", 1, "expected '['"},
  };
  for (const Case& c : cases) {
    std::string path = files.write("bad.json", c.text);
    ReadOptions opts;
    opts.format = "lcrec-json";
    opts.skip_bad_lines = true;  // grammar errors stop the read regardless
    std::string message = expect_io_error_at(path, c.line, opts);
    EXPECT_NE(message.find(c.expected), std::string::npos) << c.text << " -> " << message;
  }
}

TEST(ReadLcrecJson, SemanticProblemsAreSkippableEntries) {
  DataFiles files;
  std::string path = files.write("s.json", "{\"0\": [1, 2],\n\"0\": [3],\n\"1\": [1.5],\n\"2\": [4]}");
  expect_io_error_at(path, 2);
  ReadOptions skip;
  skip.skip_bad_lines = true;
  ReadReport report;
  SequenceDataset data = read_dataset(path, skip, &report);
  EXPECT_EQ(raw_sequences(data), (Seqs{{"1", "2"}, {"4"}}));
  EXPECT_EQ(report.bad_lines, 2);
}

TEST(ReadLcrecJson, DeepNestingDoesNotRecurse) {
  DataFiles files;
  std::string path = files.write("deep.json", "{\"0\": [" + std::string(100000, '[') + "]}");
  ReadOptions opts;
  opts.format = "lcrec-json";
  expect_io_error_at(path, 1, opts);
}

}  // namespace
}  // namespace prunerec::recsys
