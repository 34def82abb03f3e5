// A seeded synthetic sequential data set with the structure real ones have, so the main
// job and the tests run without downloading anything:
//   popularity skew  items of a cluster are drawn with Zipf weights (a few hits, a long tail);
//   item clusters    each user prefers a couple of clusters and drifts between them;
//   order effects    most items have "successors" (the next part of a series, an
//                    accessory) that users tend to consume next.
// A model that learns these patterns beats the popularity baseline clearly, and a model
// that learns only popularity does not, so the data exercises what matters.
//
//   SequenceDataset d = make_synthetic({.users = 5000, .items = 1000, .seed = 1});
#pragma once

#include <cstdint>

#include "recsys/data/dataset.h"

namespace prunerec::recsys {

struct SyntheticOptions {
  std::int32_t users = 5000;
  std::int32_t items = 1000;
  std::int32_t clusters = 20;
  double mean_length = 12;      // interactions per user (at least 5)
  double follow = 0.5;          // probability of taking a successor of the last item
  double drift = 0.15;          // probability of switching to another preferred cluster
  double zipf = 1.1;            // popularity exponent within a cluster
  std::uint64_t seed = 1;
};

// Items are named "i<k>" with titles "Cluster <c> item <k>"; users "u<k>". No timestamps
// (order only), no repeats within a user.
SequenceDataset make_synthetic(const SyntheticOptions& options);

}  // namespace prunerec::recsys
