// Summary statistics of a data set, as a table for people and as one JSON object.
//
//   recsys::DatasetStats s = recsys::compute_stats(data);
//   std::cout << recsys::format_stats(s);   // "users  22,363\n..."
//   std::string json = recsys::stats_json(s);  // {"source": "...", "users": 22363, ...}
//
// Percentiles of the sequence length interpolate linearly between the sorted lengths
// (numpy's default): p = q/100 * (n - 1), value = len[floor p] + frac(p) * (next - it).
#pragma once

#include <cstdint>
#include <string>

#include "recsys/data/dataset.h"
#include "recsys/data/split.h"

namespace prunerec::recsys {

struct DatasetStats {
  std::string source, format;
  std::int64_t users = 0, items = 0, interactions = 0;
  // Sequence length per user.
  std::int64_t min_length = 0, max_length = 0;
  double mean_length = 0;
  double p10 = 0, p25 = 0, p50 = 0, p75 = 0, p90 = 0, p99 = 0;
  double density = 0;  // interactions / (users * items)
  // Interactions per item (over the whole catalog).
  std::int64_t min_item_count = 0, max_item_count = 0;
  double mean_item_count = 0;
  std::int64_t users_below_3 = 0;        // users leave-one-out cannot evaluate
  std::int64_t repeat_interactions = 0;  // items already earlier in the same user's sequence
  std::int64_t titled_items = 0;         // items with a non-empty title
  bool has_time = false;
  bool time_is_ordinal = false;
  std::int64_t min_time = 0, max_time = 0;  // when has_time
  bool predefined_split = false;            // the source is pre-split (D3 folders)
  // The split the commands would use (add_split_stats); "" when not computed.
  std::string split_kind;
  std::int64_t train_sequences = 0, valid_examples = 0, test_examples = 0;
};

DatasetStats compute_stats(const SequenceDataset& data);
// Fills the split fields from a split of the same data.
void add_split_stats(DatasetStats& stats, const DataSplit& split);
std::string format_stats(const DatasetStats& stats);  // human table, one fact a line
std::string stats_json(const DatasetStats& stats);    // one JSON object, one line

}  // namespace prunerec::recsys
