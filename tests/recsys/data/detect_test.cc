// Format detection, directories and option errors.
#include <gtest/gtest.h>

#include "recsys/data/dataset.h"
#include "tests/recsys/data/data_files.h"

namespace prunerec::recsys {
namespace {

using testing::DataFiles;
using testing::error_message;

TEST(DetectFormat, ByContent) {
  DataFiles files;
  EXPECT_EQ(detect_format(files.write("a.txt", "1 1\n1 2\n2 3\n")), "pairs");
  EXPECT_EQ(detect_format(files.write("b.txt", "1 4\n2 4\n3 4\n")), "user-seq");  // nothing repeats
  EXPECT_EQ(detect_format(files.write("c.txt", "1 1 2 3\n2 4 1\n3 5\n")), "user-seq");
  EXPECT_EQ(detect_format(files.write("d.json", "  \n{\"0\": [1]}")), "lcrec-json");
  EXPECT_EQ(detect_format(files.write("e.dat", "1::2::3::4\n")), "movielens-dat");
  EXPECT_EQ(detect_format(files.write("f.inter", "user_id:token\titem_id:token\n1\t2\n")), "recbole");
  EXPECT_EQ(detect_format(files.write("g.tsv", "user_id:token\titem_id_list:token_seq\titem_id:token\n")),
            "recbole");
  EXPECT_EQ(detect_format(files.write("h.csv", "1 2\n")), "csv");  // the extension decides
  EXPECT_EQ(detect_format(files.write("i.log", "u,i\n1,2\n")), "csv");
  EXPECT_EQ(detect_format(files.write("j.csv", "user_id,History_Item_ID,item_id\n")), "d3-csv");
}

TEST(DetectFormat, UserSeqVersusItemSeq) {
  DataFiles files;
  // First column distinct on every line (here the line numbers): user-seq.
  EXPECT_EQ(detect_format(files.write("us.txt", "1 5 6 7\n2 5 8\n3 9 5 6\n")), "user-seq");
  // A first column that looks like growing ids until one repeats (gSASRec's ml-1m): the
  // whole file is scanned, so the repeat on the last line decides.
  EXPECT_EQ(detect_format(files.write("is.txt", "1 2 3\n4 5 1\n6 7\n1 9 4\n")), "item-seq");
  // A line with a single item cannot be user-seq.
  EXPECT_EQ(detect_format(files.write("one.txt", "1 2 3\n4\n5 6\n")), "item-seq");
  // Two fields everywhere but the first column repeats: pairs, even when not consecutive.
  EXPECT_EQ(detect_format(files.write("pairs.txt", "1 2\n2 3\n1 4\n")), "pairs");

  SequenceDataset item_seq = read_dataset(files.path("is.txt"));
  EXPECT_EQ(item_seq.format, "item-seq");
  EXPECT_EQ(item_seq.users, (testing::Ids{"1", "2", "3", "4"}));
}

TEST(DetectFormat, EmptyAndMissing) {
  DataFiles files;
  std::string empty = files.write("empty.txt", "\n\n");
  EXPECT_NE(error_message<IoError>([&] { detect_format(empty); }).find(empty), std::string::npos);
  std::string missing = files.path("nope.txt");
  std::string message = error_message<IoError>([&] { read_dataset(missing); });
  EXPECT_NE(message.find(missing), std::string::npos) << message;
}

TEST(ReadDataset, DirectoryWithOneDataFile) {
  DataFiles files;
  files.write("s3rec/Beauty.txt", "1 1 2\n2 2 3\n");
  files.write("s3rec/Beauty_item2attributes.json", "{\"1\": [1]}");
  files.write("s3rec/SOURCE.md", "# notes\n");
  SequenceDataset data = read_dataset(files.path("s3rec"));
  EXPECT_EQ(data.format, "user-seq");
  EXPECT_EQ(data.num_interactions(), 4);
  EXPECT_EQ(data.files_read, (testing::Ids{files.path("s3rec/Beauty.txt")}));
  EXPECT_EQ(detect_format(files.path("s3rec")), "user-seq");
}

TEST(ReadDataset, DirectoryWithSeveralCandidatesListsThem) {
  DataFiles files;
  files.write("llmrank/Games-6k.test.inter", "user_id:token\titem_id:token\n1\t2\n");
  files.write("llmrank/Games-6k.valid.inter", "user_id:token\titem_id:token\n1\t2\n");
  files.write("llmrank/Games.item", "item_id:token\ttitle:token_seq\n2\tX\n");
  std::string message = error_message<ConfigError>([&] { read_dataset(files.path("llmrank")); });
  EXPECT_NE(message.find("Games-6k.test.inter"), std::string::npos) << message;
  EXPECT_NE(message.find("Games-6k.valid.inter"), std::string::npos) << message;
  EXPECT_EQ(message.find("Games.item"), std::string::npos) << message;

  files.write("none/notes.md", "x");
  message = error_message<ConfigError>([&] { read_dataset(files.path("none")); });
  EXPECT_NE(message.find("no data file"), std::string::npos) << message;
}

TEST(ReadDataset, UnknownFormatIsAConfigError) {
  DataFiles files;
  std::string path = files.write("a.txt", "1 2\n");
  ReadOptions opts;
  opts.format = "parquet";
  std::string message = error_message<ConfigError>([&] { read_dataset(path, opts); });
  EXPECT_NE(message.find("parquet"), std::string::npos) << message;
  EXPECT_NE(message.find("user-seq"), std::string::npos) << message;  // lists the known names
}

TEST(ReadDataset, ExplicitFormatOverridesDetection) {
  DataFiles files;
  // Detected as user-seq, but read as item-seq when asked.
  std::string path = files.write("a.txt", "1 5 6\n2 7\n");
  ReadOptions opts;
  opts.format = "item-seq";
  SequenceDataset data = read_dataset(path, opts);
  EXPECT_EQ(data.format, "item-seq");
  EXPECT_EQ(testing::raw_sequences(data), (testing::Seqs{{"1", "5", "6"}, {"2", "7"}}));
}

}  // namespace
}  // namespace prunerec::recsys
