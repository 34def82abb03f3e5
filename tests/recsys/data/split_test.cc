// leave_one_out and temporal_split on hand-checked examples.
#include <gtest/gtest.h>

#include "recsys/data/split.h"
#include "tests/recsys/data/data_files.h"

namespace prunerec::recsys {
namespace {

using Seq = std::vector<std::int32_t>;

bool same(const EvalExample& e, std::int32_t user, std::int32_t prefix_len, std::int32_t target) {
  return e.user == user && e.prefix_len == prefix_len && e.target == target;
}

SequenceDataset make_dataset(const std::vector<Seq>& sequences,
                             const std::vector<std::vector<std::int64_t>>& times = {}) {
  SequenceDataset data;
  data.source = "hand-made";
  for (int i = 0; i < 10; ++i) data.items.add(std::to_string(i));
  for (std::size_t u = 0; u < sequences.size(); ++u) {
    std::string name = "u";  // not "u" + ...: GCC 12 warns falsely (-Wrestrict)
    data.users.push_back(name += std::to_string(u));
  }
  data.sequences = sequences;
  data.times = times;
  data.check_invariants();
  return data;
}

TEST(LeaveOneOut, LastTwoItemsAreTestAndValid) {
  SequenceDataset data = make_dataset({{1, 2, 3, 4}, {5, 6}, {7, 8, 9}, {0}});
  DataSplit split = leave_one_out(data);
  EXPECT_EQ(split.kind, "leave-one-out");
  EXPECT_EQ(split.num_items, 10);
  EXPECT_EQ(split.train, (std::vector<Seq>{{1, 2}, {5, 6}, {7}, {0}}));  // short users whole
  EXPECT_EQ(split.train_users, (std::vector<std::int32_t>{0, 1, 2, 3}));
  ASSERT_EQ(split.valid.size(), 2u);
  ASSERT_EQ(split.test.size(), 2u);
  EXPECT_TRUE(same(split.valid[0], 0, 2, 3));
  EXPECT_TRUE(same(split.test[0], 0, 3, 4));
  EXPECT_TRUE(same(split.valid[1], 2, 1, 8));
  EXPECT_TRUE(same(split.test[1], 2, 2, 9));
}

TEST(TemporalSplit, GlobalCutByEventOrder) {
  // 10 events; times below. Sorted: (1,u0,0) (2,u1,0) (3,u0,1) (4,u1,1) (5,u0,2) (5,u1,2)
  // (6,u2,0) (7,u0,3) (8,u2,1) (9,u1,3). First 8 train, 9th valid, 10th test.
  SequenceDataset data = make_dataset({{1, 2, 3, 4}, {5, 6, 7, 8}, {9, 0}},
                                      {{1, 3, 5, 7}, {2, 4, 5, 9}, {6, 8}});
  DataSplit split = temporal_split(data);
  EXPECT_EQ(split.kind, "temporal");
  EXPECT_EQ(split.train, (std::vector<Seq>{{1, 2, 3, 4}, {5, 6, 7}, {9}}));
  EXPECT_EQ(split.train_users, (std::vector<std::int32_t>{0, 1, 2}));
  ASSERT_EQ(split.valid.size(), 1u);
  ASSERT_EQ(split.test.size(), 1u);
  EXPECT_TRUE(same(split.valid[0], 2, 1, 0));
  EXPECT_TRUE(same(split.test[0], 1, 3, 8));

  // 20% / 30%: train 5, valid 2 (5,u1,2) (6,u2,0: no history, skipped), test 3.
  DataSplit wide = temporal_split(data, 0.2, 0.3);
  EXPECT_EQ(wide.train, (std::vector<Seq>{{1, 2, 3}, {5, 6}}));
  ASSERT_EQ(wide.valid.size(), 1u);
  EXPECT_TRUE(same(wide.valid[0], 1, 2, 7));
  EXPECT_EQ(wide.skipped_without_history, 1);
  ASSERT_EQ(wide.test.size(), 3u);
  EXPECT_TRUE(same(wide.test[0], 0, 3, 4));  // history includes nothing from valid here
  EXPECT_TRUE(same(wide.test[1], 2, 1, 0));
  EXPECT_TRUE(same(wide.test[2], 1, 3, 8));  // history includes u1's valid event
}

TEST(TemporalSplit, TimeTiesStayInSequenceOrder) {
  // All events at one time: order is (user, position), so each user's train part is a prefix.
  SequenceDataset data = make_dataset({{1, 2, 3}, {4, 5}}, {{7, 7, 7}, {7, 7}});
  DataSplit split = temporal_split(data, 0.2, 0.2);  // cuts at 3 and 4 of 5
  EXPECT_EQ(split.train, (std::vector<Seq>{{1, 2, 3}}));
  EXPECT_EQ(split.skipped_without_history, 1);  // (u1, 0) falls in valid with no history
  ASSERT_EQ(split.test.size(), 1u);
  EXPECT_TRUE(same(split.test[0], 1, 1, 5));
}

TEST(TemporalSplit, PredefinedCutoffsOverrideRatios) {
  SequenceDataset data = make_dataset({{1, 2, 3}, {4, 5, 6}}, {{-1, 0, 3}, {1, 2, 4}});
  data.predefined_cutoffs = std::make_pair(std::int64_t{2}, std::int64_t{4});
  DataSplit split = temporal_split(data, 0.5, 0.5);  // ratios ignored, even invalid ones
  EXPECT_EQ(split.train, (std::vector<Seq>{{1, 2}, {4}}));
  ASSERT_EQ(split.valid.size(), 2u);
  EXPECT_TRUE(same(split.valid[0], 1, 1, 5));  // time 2
  EXPECT_TRUE(same(split.valid[1], 0, 2, 3));  // time 3
  ASSERT_EQ(split.test.size(), 1u);
  EXPECT_TRUE(same(split.test[0], 1, 2, 6));
}

TEST(TemporalSplit, RefusesDataWithoutTimesAndBadRatios) {
  SequenceDataset data = make_dataset({{1, 2, 3}});
  data.format = "user-seq";
  std::string message = testing::error_message<ConfigError>([&] { temporal_split(data); });
  EXPECT_NE(message.find("hand-made"), std::string::npos) << message;
  EXPECT_NE(message.find("--split-kind leave-one-out"), std::string::npos) << message;  // the flag as spelled

  SequenceDataset timed = make_dataset({{1, 2, 3}}, {{1, 2, 3}});
  EXPECT_THROW(temporal_split(timed, 0.6, 0.4), ConfigError);
  EXPECT_THROW(temporal_split(timed, -0.1, 0.1), ConfigError);
  EXPECT_NO_THROW(temporal_split(timed, 0.0, 0.0));
}

}  // namespace
}  // namespace prunerec::recsys
