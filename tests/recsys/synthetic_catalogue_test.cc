// The streaming synthetic catalogue (Note [streaming synthetic catalogue]): reproducible,
// compact at a million items, and with the built-in generator's structure.
#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <vector>

#include "recsys/data/synthetic.h"

namespace prunerec::recsys {
namespace {

TEST(SyntheticCatalogue, MillionItemsAreCompactAndReproducible) {
  const SyntheticCatalogue cat({.users = 1000000, .items = 1000000, .clusters = 1000, .seed = 3});
  // 4 bytes per item of members plus two cumulative tables of ~1,000 doubles.
  EXPECT_LT(cat.bytes(), 4 * 1000000 + 64 * 1024);
  const auto a = cat.sequence(123456), b = cat.sequence(123456);
  EXPECT_EQ(a, b);
  EXPECT_GE(a.size(), 5u);
  EXPECT_NE(cat.sequence(123457), a);
  for (std::int32_t i : a) EXPECT_TRUE(i >= 0 && i < 1000000);
}

TEST(SyntheticCatalogue, HasPopularitySkewClustersAndOrder) {
  const std::int32_t items = 20000, clusters = 50;
  const SyntheticCatalogue cat({.users = 4000, .items = items, .clusters = clusters, .seed = 5});
  std::vector<std::int64_t> count(items, 0);
  std::int64_t total = 0, same_cluster = 0, pairs = 0;
  std::map<std::pair<std::int32_t, std::int32_t>, int> transitions;
  for (std::int32_t u = 0; u < cat.users(); ++u) {
    const auto s = cat.sequence(u);
    for (std::size_t t = 0; t < s.size(); ++t) {
      ++count[s[t]];
      ++total;
      if (t > 0) {
        ++pairs;
        same_cluster += s[t] % clusters == s[t - 1] % clusters;
        ++transitions[{s[t - 1], s[t]}];
      }
    }
  }
  // Popularity skew: the top 1% of items hold far more than 1% of interactions.
  std::sort(count.begin(), count.end(), std::greater<>());
  std::int64_t top = 0;
  for (std::int32_t i = 0; i < items / 100; ++i) top += count[i];
  EXPECT_GT(static_cast<double>(top) / total, 0.15);
  // Clusters: consecutive items share a cluster far more often than 1 / 50.
  EXPECT_GT(static_cast<double>(same_cluster) / pairs, 0.5);
  // Order: some transitions repeat across users (successors), unlike independent draws.
  int repeated = 0;
  for (const auto& [pair, n] : transitions) repeated += n >= 3;
  EXPECT_GT(repeated, 100);
}

}  // namespace
}  // namespace prunerec::recsys
