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
#include <vector>

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

// Note [streaming synthetic catalogue]: the same structure (Zipf popularity within
// clusters, users who prefer one to three clusters and drift between them, successors)
// for catalogues of millions of items, in a few bytes per item: the cluster members are
// one flat array (4 bytes per item), the Zipf weights one cumulative table per distinct
// cluster size, the successors of an item a hash of (seed, item), and every user's
// sequence a pure function of (seed, user) through the counter-based RNG, generated on
// demand and never stored. 1,000,000 items take about 4 MB plus 8 bytes per item of the
// largest cluster.
class SyntheticCatalogue {
 public:
  explicit SyntheticCatalogue(const SyntheticOptions& options);
  std::int32_t items() const { return options_.items; }
  std::int32_t users() const { return options_.users; }
  // User u's sequence (oldest first, no repeats, length >= 5 unless the user's clusters
  // run out of items).
  std::vector<std::int32_t> sequence(std::int32_t user) const;
  std::int64_t bytes() const;  // memory held

 private:
  std::int32_t draw_from(std::int32_t cluster, double u) const;
  std::int32_t successor(std::int32_t item, std::uint64_t pick) const;
  SyntheticOptions options_;
  std::vector<std::int32_t> members_;             // cluster c's items, Zipf rank order, at offset c * base
  std::vector<std::vector<double>> cumulative_;   // per cluster size (base, base + 1)
  std::int32_t base_ = 0;                         // items / clusters; the first items % clusters clusters hold one more
};

}  // namespace prunerec::recsys
