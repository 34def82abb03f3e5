// pairs, user-seq and item-seq readers on files written here.
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

ReadOptions with_format(const std::string& format) {
  ReadOptions opts;
  opts.format = format;
  return opts;
}

TEST(ReadPairs, GroupsByUserInLineOrder) {
  DataFiles files;
  // User 2's lines are not contiguous; line order is time order within a user.
  std::string path = files.write("Video.txt", "1 10\n1 11\n2 11\n1 12\n2 13\n\n3 10\n3 14\n");
  ReadReport report;
  SequenceDataset data = read_dataset(path, {}, &report);
  EXPECT_EQ(data.format, "pairs");
  EXPECT_EQ(data.users, (Ids{"1", "2", "3"}));
  EXPECT_EQ(raw_sequences(data), (Seqs{{"10", "11", "12"}, {"11", "13"}, {"10", "14"}}));
  EXPECT_EQ(data.items.raw_ids, (Ids{"10", "11", "12", "13", "14"}));  // first appearance
  EXPECT_FALSE(data.has_time());
  EXPECT_EQ(data.num_interactions(), 7);
  EXPECT_EQ(report.lines, 7);
  EXPECT_EQ(report.bad_lines, 0);
  EXPECT_EQ(data.source, path);
}

TEST(ReadPairs, DropsOnlyConsecutiveRepeatsWithoutTimestamps) {
  DataFiles files;
  // "1 10" twice in a row is one event written twice; 10 again after 11 is a repeat.
  std::string path = files.write("p.txt", "1 10\n1 10\n1 11\n1 10\n2 5\n2 5\n");
  ReadReport report;
  SequenceDataset data = read_dataset(path, with_format("pairs"), &report);
  EXPECT_EQ(raw_sequences(data), (Seqs{{"10", "11", "10"}, {"5"}}));
  EXPECT_EQ(report.duplicates_dropped, 2);

  ReadOptions keep = with_format("pairs");
  keep.duplicates = DuplicatePolicy::kKeepAll;
  SequenceDataset kept = read_dataset(path, keep, &report);
  EXPECT_EQ(raw_sequences(kept), (Seqs{{"10", "10", "11", "10"}, {"5", "5"}}));
  EXPECT_EQ(report.duplicates_dropped, 0);
}

TEST(ReadUserSeq, OneUserPerLine) {
  DataFiles files;
  std::string path = files.write("Beauty.txt", "1 1 2 3\r\n2 4 1\r\n5 6\r\n");  // CRLF
  SequenceDataset data = read_dataset(path);
  EXPECT_EQ(data.format, "user-seq");
  EXPECT_EQ(data.users, (Ids{"1", "2", "5"}));
  EXPECT_EQ(raw_sequences(data), (Seqs{{"1", "2", "3"}, {"4", "1"}, {"6"}}));  // single item kept
  EXPECT_EQ(data.items.size(), 5);
}

TEST(ReadItemSeq, UserIsTheLineNumber) {
  DataFiles files;
  // Line 3 is blank: user 3 has nothing and is dropped, user 4 keeps its number.
  std::string path = files.write("input.txt", "1 2 3\n4 2\n\n2 5 5\n");
  SequenceDataset data = read_dataset(path, with_format("item-seq"));
  EXPECT_EQ(data.users, (Ids{"1", "2", "4"}));
  EXPECT_EQ(raw_sequences(data), (Seqs{{"1", "2", "3"}, {"4", "2"}, {"2", "5", "5"}}));
}

TEST(ReadPairs, MalformedLineNamesFileAndLine) {
  DataFiles files;
  std::string path = files.write("bad_pairs.txt", "1 10\n1 11\n1 12 5\n");
  std::string message = expect_io_error_at(path, 3, with_format("pairs"));
  EXPECT_NE(message.find("expected \"user item\", got 3 fields"), std::string::npos) << message;

  ReadOptions skip = with_format("pairs");
  skip.skip_bad_lines = true;
  ReadReport report;
  SequenceDataset data = read_dataset(path, skip, &report);
  EXPECT_EQ(report.bad_lines, 1);
  ASSERT_EQ(report.first_errors.size(), 1u);
  EXPECT_NE(report.first_errors[0].find(path + ":3:"), std::string::npos);
  EXPECT_EQ(raw_sequences(data), (Seqs{{"10", "11"}}));
}

TEST(ReadPairs, NonIntegerIdIsMalformed) {
  DataFiles files;
  std::string path = files.write("p.txt", "1 10\n1 abc\n");
  std::string message = expect_io_error_at(path, 2, with_format("pairs"));
  EXPECT_NE(message.find("\"abc\""), std::string::npos) << message;
}

TEST(ReadUserSeq, MalformedLines) {
  DataFiles files;
  std::string lone = files.write("lone.txt", "1 1 2\n2\n");
  std::string message = expect_io_error_at(lone, 2, with_format("user-seq"));
  EXPECT_NE(message.find("got 1 field"), std::string::npos) << message;

  std::string repeated = files.write("rep.txt", "1 1 2\n2 3\n1 4\n");
  message = expect_io_error_at(repeated, 3, with_format("user-seq"));
  EXPECT_NE(message.find("already has line 1"), std::string::npos) << message;
}

TEST(ReadItemSeq, BinaryBytesAreMalformed) {
  DataFiles files;
  std::string path = files.write("bin.txt", std::string("1 2 3\n4 \x01\x02 5\n", 12));
  std::string message = expect_io_error_at(path, 2, with_format("item-seq"));
  EXPECT_NE(message.find("control byte 0x01"), std::string::npos) << message;
}

TEST(ReadLines, EmptyFilesAndFilesWithoutUsersAreErrors) {
  DataFiles files;
  std::string empty = files.write("empty.txt", "");
  std::string message = testing::error_message<IoError>([&] { read_dataset(empty); });
  EXPECT_NE(message.find(empty), std::string::npos) << message;
  EXPECT_NE(message.find("empty"), std::string::npos) << message;

  std::string blank = files.write("blank.txt", "\n  \n");
  message = testing::error_message<IoError>([&] { read_dataset(blank, with_format("item-seq")); });
  EXPECT_NE(message.find("no usable users"), std::string::npos) << message;

  // Every line bad and skipped: no users left is still an error.
  std::string all_bad = files.write("all_bad.txt", "1 2 3\n4 5 6\n");
  ReadOptions skip = with_format("pairs");
  skip.skip_bad_lines = true;
  message = testing::error_message<IoError>([&] { read_dataset(all_bad, skip); });
  EXPECT_NE(message.find("no usable users"), std::string::npos) << message;
}

TEST(ReadLines, FirstErrorsKeepsTenMessages) {
  DataFiles files;
  std::string text;
  for (int i = 0; i < 25; ++i) text += "1 2 3\n";
  text += "7 8\n";
  std::string path = files.write("many_bad.txt", text);
  ReadOptions skip = with_format("pairs");
  skip.skip_bad_lines = true;
  ReadReport report;
  SequenceDataset data = read_dataset(path, skip, &report);
  EXPECT_EQ(report.bad_lines, 25);
  EXPECT_EQ(report.first_errors.size(), 10u);
  EXPECT_EQ(report.lines, 26);
  EXPECT_EQ(raw_sequences(data), (Seqs{{"8"}}));
}

}  // namespace
}  // namespace prunerec::recsys
