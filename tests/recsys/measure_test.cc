// Medians and repeated timing (recsys/measure.h).
#include "recsys/measure.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <vector>

#include "base/error.h"

namespace prunerec::recsys {
namespace {

TEST(Median, MiddleValueOrMeanOfTheMiddlePair) {  // Note [median]
  EXPECT_EQ(median({3.0, 1.0, 2.0}), 2.0);
  EXPECT_EQ(median({4.0, 1.0, 3.0, 2.0}), 2.5);  // not the upper (3) nor the lower (2) middle value
  EXPECT_EQ(median({5.0}), 5.0);
}

TEST(Median, LeavesOutNonFiniteValuesAndIsNaNForNothing) {
  const double nan = std::nan(""), inf = std::numeric_limits<double>::infinity();
  EXPECT_EQ(median({1.0, nan, 3.0, inf}), 2.0);
  EXPECT_TRUE(std::isnan(median({})));
  EXPECT_TRUE(std::isnan(median({nan})));
}

TEST(TimeRepeated, CallsWarmupPlusAtLeastMinAndAtMostMaxTimes) {
  int calls = 0;
  // min_seconds far beyond the test: max_repetitions must end the loop.
  const auto ms = time_repeated([&] { ++calls; }, {.warmup = 2, .min_repetitions = 3, .min_seconds = 1e9,
                                                   .max_repetitions = 7});
  EXPECT_EQ(ms.size(), 7u);
  EXPECT_EQ(calls, 9);
  for (const double m : ms) EXPECT_GE(m, 0.0);
  // No time budget: exactly min_repetitions.
  calls = 0;
  EXPECT_EQ(time_repeated([&] { ++calls; }, {.warmup = 0, .min_repetitions = 4, .min_seconds = 0}).size(), 4u);
  EXPECT_EQ(calls, 4);
}

TEST(TimeRepeated, RefusesImpossibleCounts) {
  EXPECT_THROW(time_repeated([] {}, {.min_repetitions = 0}), ConfigError);
  EXPECT_THROW(time_repeated([] {}, {.min_repetitions = 5, .max_repetitions = 4}), ConfigError);
}

TEST(Rusage, PeakRssIsPositive) {
  EXPECT_GT(peak_rss_mb(), 0.0);
  EXPECT_GE(minor_page_faults(), 0);
  EXPECT_GE(own_cpu_seconds(), 0.0);
}

}  // namespace
}  // namespace prunerec::recsys
