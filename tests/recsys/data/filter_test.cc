// k-core filter on hand-made data.
#include <gtest/gtest.h>

#include "recsys/data/filter.h"
#include "tests/recsys/data/data_files.h"

namespace prunerec::recsys {
namespace {

using testing::Ids;
using testing::raw_sequences;
using testing::Seqs;

// Users with their items (raw ids); times are 10 * position, titles "T<raw id>".
SequenceDataset make_dataset(const std::vector<std::pair<std::string, Ids>>& users) {
  SequenceDataset data;
  data.source = "hand-made";
  for (const auto& [user, items] : users) {
    data.users.push_back(user);
    data.sequences.emplace_back();
    data.times.emplace_back();
    for (const std::string& raw : items) {
      std::int32_t item = data.items.add(raw);
      data.items.set_title(item, "T" + raw);
      data.sequences.back().push_back(item);
      data.times.back().push_back(10 * static_cast<std::int64_t>(data.times.back().size()));
    }
  }
  return data;
}

TEST(KcoreFilter, IteratesUntilStable) {
  // k = 2. Every item starts with 2 interactions; only u3 is short. Removing u3 drops d to
  // 1, removing d leaves u2 with 1, removing u2 drops c to 1, removing c leaves u0 with 2.
  SequenceDataset data = make_dataset({{"u0", {"a", "b", "c"}},
                                       {"u1", {"a", "b"}},
                                       {"u2", {"c", "d"}},
                                       {"u3", {"d"}}});
  FilterReport report = kcore_filter(data, 2);
  EXPECT_EQ(data.users, (Ids{"u0", "u1"}));
  EXPECT_EQ(raw_sequences(data), (Seqs{{"a", "b"}, {"a", "b"}}));
  EXPECT_EQ(data.items.raw_ids, (Ids{"a", "b"}));
  EXPECT_EQ(data.items.titles, (Ids{"Ta", "Tb"}));
  EXPECT_EQ(data.items.find("b"), 1);
  EXPECT_EQ(data.items.find("c"), -1);
  EXPECT_EQ(data.times, (std::vector<std::vector<std::int64_t>>{{0, 10}, {0, 10}}));
  EXPECT_EQ(report.users_before, 4);
  EXPECT_EQ(report.items_before, 4);
  EXPECT_EQ(report.interactions_before, 8);
  EXPECT_EQ(report.users_after, 2);
  EXPECT_EQ(report.items_after, 2);
  EXPECT_EQ(report.interactions_after, 4);
  EXPECT_NE(report.summary().find("users 4 -> 2"), std::string::npos) << report.summary();
}

TEST(KcoreFilter, KeepsOrderAndReindexesAroundRemovedItems) {
  // k = 2: item x (only in u0) goes; u0 keeps its other items and their times.
  SequenceDataset data = make_dataset({{"u0", {"p", "x", "q", "p"}},
                                       {"u1", {"q", "p"}},
                                       {"u2", {"z"}}});
  kcore_filter(data, 2);
  EXPECT_EQ(data.users, (Ids{"u0", "u1"}));
  EXPECT_EQ(raw_sequences(data), (Seqs{{"p", "q", "p"}, {"q", "p"}}));
  EXPECT_EQ(data.times, (std::vector<std::vector<std::int64_t>>{{0, 20, 30}, {0, 10}}));
  EXPECT_EQ(data.items.raw_ids, (Ids{"p", "q"}));
  data.check_invariants();
}

TEST(KcoreFilter, RepeatsCountEachTime) {
  SequenceDataset data = make_dataset({{"u0", {"a", "a"}}, {"u1", {"b"}}});
  FilterReport report = kcore_filter(data, 2);
  EXPECT_EQ(raw_sequences(data), (Seqs{{"a", "a"}}));
  EXPECT_EQ(report.items_after, 1);
}

TEST(KcoreFilter, SmallKChangesNothingAndBadKIsRefused) {
  SequenceDataset data = make_dataset({{"u0", {"a"}}, {"u1", {"b", "a"}}});
  for (int k : {0, 1}) {
    FilterReport report = kcore_filter(data, k);
    EXPECT_EQ(report.users_after, 2);
    EXPECT_EQ(report.interactions_after, 3);
  }
  EXPECT_THROW(kcore_filter(data, -1), ConfigError);
  std::string message = testing::error_message<ConfigError>([&] { kcore_filter(data, 3); });
  EXPECT_NE(message.find("hand-made"), std::string::npos) << message;
  EXPECT_EQ(data.num_users(), 2);  // left unchanged
  EXPECT_EQ(data.items.size(), 2);
}

}  // namespace
}  // namespace prunerec::recsys
