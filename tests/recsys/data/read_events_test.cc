// movielens-dat, recbole and csv readers on files written here.
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

using Times = std::vector<std::vector<std::int64_t>>;

TEST(ReadMovielensDat, SortsByTimeThenLineAndDropsExactDuplicates) {
  DataFiles files;
  std::string path = files.write("ratings.dat",
                                 "1::30::5::300\n"
                                 "1::10::3::100\n"
                                 "2::10::4::50\n"
                                 "1::20::4::200\n"
                                 "1::25::4::200\n"   // tie with the line above: line order
                                 "1::20::1::200\n"   // same user, item, time: duplicate
                                 "1::10::2::400\n");  // repeat at another time: kept
  ReadReport report;
  SequenceDataset data = read_dataset(path, {}, &report);
  EXPECT_EQ(data.format, "movielens-dat");
  EXPECT_EQ(data.users, (Ids{"1", "2"}));
  EXPECT_EQ(raw_sequences(data), (Seqs{{"10", "20", "25", "30", "10"}, {"10"}}));
  EXPECT_EQ(data.times, (Times{{100, 200, 200, 300, 400}, {50}}));
  EXPECT_FALSE(data.time_is_ordinal);
  EXPECT_EQ(report.duplicates_dropped, 1);
  EXPECT_EQ(data.items.raw_ids, (Ids{"30", "10", "20", "25"}));  // first appearance in the file
}

TEST(ReadMovielensDat, TiesKeepLineOrderEvenWhenFarApart) {
  DataFiles files;
  std::string path = files.write("r.dat", "7::3::1::10\n7::1::1::5\n7::2::1::10\n7::4::1::10\n");
  SequenceDataset data = read_dataset(path);
  EXPECT_EQ(raw_sequences(data), (Seqs{{"1", "3", "2", "4"}}));
}

TEST(ReadMovielensDat, NonNumericTimestampIsMalformed) {
  DataFiles files;
  std::string path = files.write("bad.dat", "1::10::3::100\n1::11::3::yesterday\n");
  std::string message = expect_io_error_at(path, 2);
  EXPECT_NE(message.find("timestamp"), std::string::npos) << message;
  std::string short_line = files.write("short.dat", "1::10::3::100\n\n1::11::3\n");
  message = expect_io_error_at(short_line, 3);
  EXPECT_NE(message.find("got 3 fields"), std::string::npos) << message;
}

TEST(ReadRecbole, EventColumnsInAnyOrderWithTitlesBeside) {
  DataFiles files;
  std::string path = files.write("ml.inter",
                                 "timestamp:float\titem_id:token\tuser_id:token\trating:float\textra:token\n"
                                 "881250949\t242\t196\t3\tx\n"
                                 "881250900.5\t302\t196\t5\ty\n"
                                 "100\t242\t22\t1\tz\n");
  files.write("ml.item", "item_id:token\tmovie_title:token_seq\trelease_year:token\n"
                         "242\tKolya\t1996\n302\tL.A. Confidential\t1997\n999\tUnused\t2000\n");
  SequenceDataset data = read_dataset(path);
  EXPECT_EQ(data.format, "recbole");
  EXPECT_EQ(data.users, (Ids{"196", "22"}));
  EXPECT_EQ(raw_sequences(data), (Seqs{{"302", "242"}, {"242"}}));
  EXPECT_EQ(data.times, (Times{{881250900, 881250949}, {100}}));
  ASSERT_TRUE(data.items.has_titles());
  EXPECT_EQ(data.items.title(data.items.find("242")), "Kolya");
  EXPECT_EQ(data.items.title(data.items.find("302")), "L.A. Confidential");
  EXPECT_EQ(data.files_read, (Ids{path, files.path("ml.item")}));
}

TEST(ReadRecbole, SequenceFormTakesTitlesFromTheStemBeforeTheDash) {
  DataFiles files;
  std::string path = files.write("Games-6k.test.inter",
                                 "user_id:token\titem_id_list:token_seq\titem_id:token\n"
                                 "0\t0 1 2\t3\n"
                                 "1\t\t4\n"          // empty history: a one-item user
                                 "2\t4 0\t1\n");
  files.write("Games.item", "item_id:token\ttitle:token_seq\n0\tFire Emblem\n1\tGBA Case\n");
  SequenceDataset data = read_dataset(path);
  EXPECT_EQ(raw_sequences(data), (Seqs{{"0", "1", "2", "3"}, {"4"}, {"4", "0", "1"}}));
  EXPECT_FALSE(data.has_time());
  EXPECT_EQ(data.items.title(data.items.find("0")), "Fire Emblem");
  EXPECT_EQ(data.items.title(data.items.find("3")), "");
  EXPECT_EQ(data.items.num_titled(), 2);
}

TEST(ReadRecbole, RepeatedSequenceRowsMustContinueTheUser) {
  DataFiles files;
  // Augmented rows (growing history) and a sliding window both continue user 0.
  std::string path = files.write("aug.inter",
                                 "user_id:token\titem_id_list:token_seq\titem_id:token\n"
                                 "0\t5\t6\n"
                                 "0\t5 6\t7\n"
                                 "0\t6 7\t8\n"
                                 "0\t5 9\t1\n");  // line 5 does not continue: malformed
  std::string message = expect_io_error_at(path, 5);
  EXPECT_NE(message.find("does not continue"), std::string::npos) << message;
  ReadOptions skip;
  skip.skip_bad_lines = true;
  ReadReport report;
  SequenceDataset data = read_dataset(path, skip, &report);
  EXPECT_EQ(raw_sequences(data), (Seqs{{"5", "6", "7", "8"}}));
  EXPECT_EQ(report.bad_lines, 1);
}

TEST(ReadRecbole, WrongFieldCountAndBadHeaderAreMalformed) {
  DataFiles files;
  std::string path = files.write("bad.inter",
                                 "user_id:token\titem_id:token\ttimestamp:float\n"
                                 "1\t2\t3\n"
                                 "1\t2\n");
  std::string message = expect_io_error_at(path, 3);
  EXPECT_NE(message.find("expected 3 tab-separated fields"), std::string::npos) << message;

  std::string no_item = files.write("noitem.inter", "user_id:token\trating:float\n1\t2\n");
  message = expect_io_error_at(no_item, 1);
  EXPECT_NE(message.find("item_id"), std::string::npos) << message;

  ReadOptions recbole;
  recbole.format = "recbole";
  std::string untyped = files.write("untyped.inter", "user_id\titem_id\n1\t2\n");
  expect_io_error_at(untyped, 1, recbole);
}

TEST(ReadCsv, NamedHeaderAnyOrderWithQuotes) {
  DataFiles files;
  std::string path = files.write("log.csv",
                                 "rating,Item_ID,timestamp,user_id\n"
                                 "5,\"B00,X\",20,A1\n"
                                 "4,B01,10,A1\n"
                                 "3,\"say \"\"hi\"\"\",5,A2\n"
                                 "3,B01,10,A1\n");  // exact duplicate of line 3
  ReadReport report;
  SequenceDataset data = read_dataset(path, {}, &report);
  EXPECT_EQ(data.format, "csv");
  EXPECT_EQ(data.users, (Ids{"A1", "A2"}));
  EXPECT_EQ(raw_sequences(data), (Seqs{{"B01", "B00,X"}, {"say \"hi\""}}));
  EXPECT_EQ(data.times, (Times{{10, 20}, {5}}));
  EXPECT_EQ(report.duplicates_dropped, 1);
  EXPECT_EQ(report.lines, 4);
}

TEST(ReadCsv, HeaderDetectedByNumbersAndHeaderlessLayouts) {
  DataFiles files;
  // Unknown names, but "when" is text above a number: a header.
  std::string with_header = files.write("a.csv", "who,what,when\nu1,i1,7\nu1,i2,3\n");
  SequenceDataset a = read_dataset(with_header);
  EXPECT_EQ(raw_sequences(a), (Seqs{{"i2", "i1"}}));

  // ASIN-like ids that are never numeric: no header.
  std::string headerless = files.write("b.csv", "A1,B00X,1500000000\nA1,B00Y,1400000000\n");
  SequenceDataset b = read_dataset(headerless);
  EXPECT_EQ(raw_sequences(b), (Seqs{{"B00Y", "B00X"}}));

  // Two columns, no time: file order.
  std::string pairs = files.write("c.csv", "1,5\n1,4\n2,5\n");
  SequenceDataset c = read_dataset(pairs);
  EXPECT_EQ(raw_sequences(c), (Seqs{{"5", "4"}, {"5"}}));
  EXPECT_FALSE(c.has_time());

  // Four columns without header: user,item,rating,timestamp.
  std::string four = files.write("d.csv", "1,5,4.5,200\n1,6,3,100\n");
  SequenceDataset d = read_dataset(four);
  EXPECT_EQ(raw_sequences(d), (Seqs{{"6", "5"}}));
  EXPECT_EQ(d.times, (Times{{100, 200}}));
}

TEST(ReadCsv, MalformedRows) {
  DataFiles files;
  std::string unterminated = files.write("u.csv", "user,item\n1,2\n1,\"3\n1,4\n");
  std::string message = expect_io_error_at(unterminated, 3);
  EXPECT_NE(message.find("unterminated"), std::string::npos) << message;

  std::string bad_time = files.write("t.csv", "user,item,timestamp\n1,2,3\n1,2,soon\n");
  message = expect_io_error_at(bad_time, 3);
  EXPECT_NE(message.find("timestamp"), std::string::npos) << message;

  std::string bad_count = files.write("n.csv", "user,item,timestamp\n1,2,3\n\n1,2\n");
  message = expect_io_error_at(bad_count, 4);
  EXPECT_NE(message.find("expected 3 comma-separated fields, got 2"), std::string::npos) << message;

  std::string after_quote = files.write("q.csv", "user,item\n1,\"2\"x\n1,3\n");
  expect_io_error_at(after_quote, 2);
  ReadOptions skip;
  skip.skip_bad_lines = true;
  ReadReport report;
  SequenceDataset data = read_dataset(after_quote, skip, &report);
  EXPECT_EQ(raw_sequences(data), (Seqs{{"3"}}));
  EXPECT_EQ(report.bad_lines, 1);
}

TEST(ReadCsv, QuotedNewlinesKeepLineNumbers) {
  DataFiles files;
  std::string path = files.write("nl.csv", "user,item,timestamp\n1,\"a\nb\",1\n1,c,x\n");
  expect_io_error_at(path, 4);  // the record after the two-line one starts on line 4
}

}  // namespace
}  // namespace prunerec::recsys
