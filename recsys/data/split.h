// Train / validation / test splits for next-item prediction.
//
//   recsys::DataSplit s = recsys::leave_one_out(data);
//   for (const recsys::EvalExample& e : s.test) {
//     // history = data.sequences[e.user][0 : e.prefix_len], next item = e.target
//   }
//
// leave_one_out: per user, test target = the last item, valid target = the second to last,
//   train = all but the last two. Users with fewer than 3 items go to train whole and get
//   no evaluation example.
// temporal_split: one global cut over time, as D3/BIGRec do. See Note [Temporal split].
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "recsys/data/dataset.h"

namespace prunerec::recsys {

struct EvalExample {
  std::int32_t user = 0;        // index into SequenceDataset::users / sequences
  std::int32_t prefix_len = 0;  // history = sequences[user][0:prefix_len]
  std::int32_t target = 0;      // the next item, = sequences[user][prefix_len]
};

struct DataSplit {
  std::string kind;  // "leave-one-out" or "temporal"
  std::int32_t num_items = 0;
  std::vector<std::vector<std::int32_t>> train;  // one training sequence per user that has any
  std::vector<std::int32_t> train_users;         // user index of each train sequence
  std::vector<EvalExample> valid, test;
  // temporal: valid/test events that were a user's first event (no history to condition
  // on); they are left out of valid/test and counted here.
  std::int64_t skipped_without_history = 0;
};

DataSplit leave_one_out(const SequenceDataset& data);

// Note [Temporal split]
// ---------------------
// All events are ordered by (time, user index, position in the user's sequence), which
// keeps each user's events in sequence order. Without predefined cutoffs the first
// floor(n * (1 - valid_ratio - test_ratio)) events are train, up to
// floor(n * (1 - test_ratio)) valid, the rest test (D3's process.py cuts the same way).
// With data.predefined_cutoffs = (v, t) the ratios are ignored: time < v is train,
// v <= time < t valid, time >= t test. Every valid or test event becomes one EvalExample
// whose history is all of that user's earlier events (including earlier valid ones);
// train holds each user's events before the valid cut. Examples are in that global order.
// ConfigError when the data has no times or the ratios are not in [0, 1) with sum < 1.
DataSplit temporal_split(const SequenceDataset& data, double valid_ratio = 0.1,
                         double test_ratio = 0.1);

}  // namespace prunerec::recsys
