// d3-csv reader: one CSV, the train/valid/test folder layout, titles and info tables.
#include <gtest/gtest.h>

#include "recsys/data/dataset.h"
#include "recsys/data/split.h"
#include "tests/recsys/data/data_files.h"

namespace prunerec::recsys {
namespace {

using testing::DataFiles;
using testing::expect_io_error_at;
using testing::Ids;
using testing::raw_sequences;
using testing::Seqs;

using Times = std::vector<std::vector<std::int64_t>>;

const char* kHeader = "user_id,history_item_title,item_title,history_item_id,item_id,history_item_sid,item_sid\n";

// Titles with commas and both kinds of quotes, as Python's repr writes them.
std::string valid_rows() {
  return std::string(kHeader) +
         "A1,\"['Pen, Blue', \"\"Elmer's Glue\"\"]\",\"Ink 8.5\"\" x 11\"\"\",\"[10, 11]\",12,\"['<a>', '<b>']\",<c>\n"
         "A2,['Tape'],Paper,[20],21,['<d>'],<e>\n"
         "A1,\"['Pen, Blue', \"\"Elmer's Glue\"\", 'Ink']\",Stapler,\"[10, 11, 12]\",13,[],<f>\n";
}

std::string test_rows() {
  return std::string(kHeader) +
         "A2,\"['Tape', 'Paper']\",Pen \\ Holder,\"[20, 21]\",22,[],<g>\n"
         "A1,\"['Glue', 'Ink', 'Stapler']\",Clip,\"[11, 12, 13]\",14,[],<h>\n";
}

TEST(ReadD3, OneCsvRebuildsSequencesWithOrdinalTimes) {
  DataFiles files;
  std::string path = files.write("valid/Office.csv", valid_rows());
  SequenceDataset data = read_dataset(path);
  EXPECT_EQ(data.format, "d3-csv");
  EXPECT_EQ(data.users, (Ids{"A1", "A2"}));
  EXPECT_EQ(raw_sequences(data), (Seqs{{"10", "11", "12", "13"}, {"20", "21"}}));
  // Rows 0, 1, 2; items known only from a first history come before every row.
  EXPECT_EQ(data.times, (Times{{-2, -1, 0, 2}, {-1, 1}}));
  EXPECT_TRUE(data.time_is_ordinal);
  EXPECT_FALSE(data.predefined_cutoffs.has_value());
  EXPECT_EQ(data.items.title(data.items.find("10")), "Pen, Blue");
  EXPECT_EQ(data.items.title(data.items.find("11")), "Elmer's Glue");
  EXPECT_EQ(data.items.title(data.items.find("12")), "Ink 8.5\" x 11\"");  // first title wins
  EXPECT_EQ(data.items.title(data.items.find("13")), "Stapler");
}

TEST(ReadD3, SplitFoldersSetCutoffsAndInfoAddsTitles) {
  DataFiles files;
  files.write("d3/valid/Office_Products_5.csv", valid_rows());
  files.write("d3/test/Office_Products_5.csv", test_rows());
  files.write("d3/info/Office_Products_5.txt", "<a_1>\tNamed Pen\t10\n<a_2>\tClip Title\t14\n");
  // The folder alone, the category name, and a unique prefix of it all read the same.
  for (const std::string& path : {files.path("d3"), files.path("d3/Office_Products_5.csv"),
                                  files.path("d3/Office")}) {
    SequenceDataset data = read_dataset(path);
    EXPECT_EQ(data.format, "d3-csv");
    EXPECT_EQ(raw_sequences(data), (Seqs{{"10", "11", "12", "13", "14"}, {"20", "21", "22"}}));
    EXPECT_EQ(data.times, (Times{{-2, -1, 0, 2, 4}, {-1, 1, 3}}));
    ASSERT_TRUE(data.predefined_cutoffs.has_value());
    EXPECT_EQ(*data.predefined_cutoffs, std::make_pair(std::int64_t{0}, std::int64_t{3}));
    EXPECT_EQ(data.items.title(data.items.find("10")), "Pen, Blue");   // the CSV's title stays
    EXPECT_EQ(data.items.title(data.items.find("14")), "Clip");
    EXPECT_EQ(data.items.title(data.items.find("22")), "Pen \\ Holder");
    EXPECT_EQ(data.files_read.size(), 3u);

    DataSplit split = temporal_split(data);
    ASSERT_EQ(split.valid.size(), 3u);
    ASSERT_EQ(split.test.size(), 2u);
    EXPECT_EQ(split.test[0].user, 1);  // A2's row comes first in the test file
    EXPECT_EQ(split.test[0].prefix_len, 2);
    EXPECT_EQ(split.test[1].prefix_len, 4);
  }
}

TEST(ReadD3, InfoTableFillsMissingTitles) {
  DataFiles files;
  files.write("d3/test/Cat.csv", "user_id,history_item_id,item_id\nU,[1],2\n");
  files.write("d3/info/Cat.txt", "First Title\t1\nSecond Title\t2\n");
  SequenceDataset data = read_dataset(files.path("d3"));
  EXPECT_EQ(data.items.titles, (Ids{"First Title", "Second Title"}));
  // Only a test split: valid starts where test does.
  EXPECT_EQ(*data.predefined_cutoffs, std::make_pair(std::int64_t{0}, std::int64_t{0}));
}

TEST(ReadD3, SeveralCategoriesNeedAName) {
  DataFiles files;
  files.write("d3/valid/Office.csv", valid_rows());
  files.write("d3/valid/Industrial.csv", valid_rows());
  std::string message = testing::error_message<ConfigError>([&] { read_dataset(files.path("d3")); });
  EXPECT_NE(message.find("Office.csv"), std::string::npos) << message;
  EXPECT_NE(message.find("Industrial.csv"), std::string::npos) << message;
  EXPECT_EQ(read_dataset(files.path("d3/Industrial")).num_users(), 2);
}

TEST(ReadD3, HistoryThatDoesNotContinueIsABadLine) {
  DataFiles files;
  std::string path = files.write("x.csv", std::string(kHeader) +
                                              "A1,\"['a', 'b']\",c,\"[1, 2]\",3,[],<s>\n"
                                              "A1,\"['a', 'x']\",d,\"[1, 9]\",4,[],<s>\n"
                                              "A1,\"['b', 'c']\",e,\"[2, 3]\",5,[],<s>\n");
  std::string message = expect_io_error_at(path, 3);
  EXPECT_NE(message.find("not the end of that user's earlier items"), std::string::npos) << message;
  ReadOptions skip;
  skip.skip_bad_lines = true;
  ReadReport report;
  SequenceDataset data = read_dataset(path, skip, &report);
  EXPECT_EQ(raw_sequences(data), (Seqs{{"1", "2", "3", "5"}}));
  EXPECT_EQ(report.bad_lines, 1);
}

TEST(ReadD3, MalformedRows) {
  DataFiles files;
  struct Case {
    std::string row;
    const char* expected;
  };
  const Case cases[] = {
      {"A1,\"['a', 'b]\",c,\"[1, 2]\",3,[],<s>\n", "unterminated string"},
      {"A1,\"['a']\",c,\"[1, x]\",3,[],<s>\n", "history_item_id"},
      {"A1,\"['a']\",c,[1],three,[],<s>\n", "integer item_id"},
      {"A1,\"['a', 'b']\",c,[1],3,[],<s>\n", "2 titles for 1 ids"},
      {"A1,['a'],c,[1],3\n", "expected 7 fields"},
      {"A1,\"['a'],c,[1],3,[],<s>\n", "unterminated quoted field"},
  };
  for (const Case& c : cases) {
    std::string path = files.write("bad.csv", std::string(kHeader) + "A0,['z'],y,[7],8,[],<s>\n" + c.row);
    std::string message = expect_io_error_at(path, 3, [] {
      ReadOptions opts;
      opts.format = "d3-csv";
      return opts;
    }());
    EXPECT_NE(message.find(c.expected), std::string::npos) << c.row << " -> " << message;
  }
  std::string no_header = files.write("nohead.csv", "user_id,item_id\nA,1\n");
  ReadOptions d3;
  d3.format = "d3-csv";
  expect_io_error_at(no_header, 1, d3);
}

}  // namespace
}  // namespace prunerec::recsys
