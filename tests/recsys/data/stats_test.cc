// compute_stats, format_stats and stats_json on a hand-computed example.
#include <gtest/gtest.h>

#include "recsys/data/stats.h"
#include "tests/recsys/data/data_files.h"

namespace prunerec::recsys {
namespace {

SequenceDataset example() {
  SequenceDataset data;
  data.source = "hand \"made\"";
  data.format = "pairs";
  for (int i = 0; i < 5; ++i) data.items.add(std::to_string(i));
  data.items.set_title(0, "Zero");
  data.items.set_title(3, "Three");
  data.users = {"a", "b", "c", "d"};
  data.sequences = {{0, 1, 2, 0}, {1}, {2, 3}, {0, 1, 2, 3, 4}};
  data.times = {{5, 6, 7, 8}, {1}, {2, 3}, {10, 11, 12, 13, 14}};
  return data;
}

TEST(DatasetStats, HandComputed) {
  DatasetStats s = compute_stats(example());
  EXPECT_EQ(s.users, 4);
  EXPECT_EQ(s.items, 5);
  EXPECT_EQ(s.interactions, 12);
  EXPECT_EQ(s.min_length, 1);
  EXPECT_EQ(s.max_length, 5);
  EXPECT_DOUBLE_EQ(s.mean_length, 3.0);
  // Sorted lengths 1 2 4 5; p = q/100 * 3, interpolated.
  EXPECT_DOUBLE_EQ(s.p10, 1.3);
  EXPECT_DOUBLE_EQ(s.p25, 1.75);
  EXPECT_DOUBLE_EQ(s.p50, 3.0);
  EXPECT_DOUBLE_EQ(s.p75, 4.25);
  EXPECT_DOUBLE_EQ(s.p90, 4.7);
  EXPECT_DOUBLE_EQ(s.p99, 4.97);
  EXPECT_DOUBLE_EQ(s.density, 12.0 / 20.0);
  EXPECT_EQ(s.min_item_count, 1);  // item 4
  EXPECT_EQ(s.max_item_count, 3);  // items 0, 1, 2
  EXPECT_DOUBLE_EQ(s.mean_item_count, 2.4);
  EXPECT_EQ(s.users_below_3, 2);
  EXPECT_EQ(s.repeat_interactions, 1);  // user a's second 0
  EXPECT_EQ(s.titled_items, 2);
  EXPECT_TRUE(s.has_time);
  EXPECT_FALSE(s.time_is_ordinal);
  EXPECT_EQ(s.min_time, 1);
  EXPECT_EQ(s.max_time, 14);
  EXPECT_FALSE(s.predefined_split);
}

TEST(DatasetStats, JsonIsOneObjectWithEscapedStrings) {
  std::string json = stats_json(compute_stats(example()));
  EXPECT_EQ(json.front(), '{');
  EXPECT_EQ(json.back(), '}');
  EXPECT_EQ(json.find('\n'), std::string::npos);
  for (const char* part : {"\"source\": \"hand \\\"made\\\"\"", "\"users\": 4", "\"items\": 5",
                           "\"interactions\": 12", "\"density\": 0.6", "\"p10_length\": 1.3",
                           "\"p99_length\": 4.97", "\"users_below_3\": 2", "\"has_time\": true",
                           "\"min_time\": 1", "\"max_time\": 14"})
    EXPECT_NE(json.find(part), std::string::npos) << part << " not in " << json;
}

TEST(DatasetStats, TableGroupsThousands) {
  DatasetStats s;
  s.source = "x.txt";
  s.format = "pairs";
  s.users = 1234567;
  s.interactions = 1000;
  std::string table = format_stats(s);
  EXPECT_NE(table.find("users             1,234,567\n"), std::string::npos) << table;
  EXPECT_NE(table.find("interactions      1,000\n"), std::string::npos) << table;
  EXPECT_NE(table.find("x.txt (pairs)"), std::string::npos) << table;
  EXPECT_NE(table.find("none (order only)"), std::string::npos) << table;
}

}  // namespace
}  // namespace prunerec::recsys
