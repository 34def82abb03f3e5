// leave_one_out and temporal_split (see split.h).
#include "recsys/data/split.h"

#include <algorithm>
#include <cmath>

#include "base/error.h"

namespace prunerec::recsys {

using ::prunerec::detail::str_cat;

DataSplit leave_one_out(const SequenceDataset& data) {
  DataSplit split;
  split.kind = "leave-one-out";
  split.num_items = data.items.size();
  for (std::size_t u = 0; u < data.sequences.size(); ++u) {
    const auto& seq = data.sequences[u];
    if (seq.empty()) continue;
    const auto user = static_cast<std::int32_t>(u);
    const auto n = static_cast<std::int32_t>(seq.size());
    if (n < 3) {
      split.train.push_back(seq);
      split.train_users.push_back(user);
      continue;
    }
    split.train.emplace_back(seq.begin(), seq.end() - 2);
    split.train_users.push_back(user);
    split.valid.push_back({user, n - 2, seq[static_cast<std::size_t>(n - 2)]});
    split.test.push_back({user, n - 1, seq[static_cast<std::size_t>(n - 1)]});
  }
  return split;
}

DataSplit temporal_split(const SequenceDataset& data, double valid_ratio, double test_ratio) {
  if (!data.has_time())
    throw ConfigError(str_cat("temporal_split: ", data.source, " (format ", data.format,
                              ") has no timestamps or event order: use the leave-one-out split (--split-kind leave-one-out)"));
  if (!data.predefined_cutoffs &&
      !(std::isfinite(valid_ratio) && std::isfinite(test_ratio) && valid_ratio >= 0 &&
        test_ratio >= 0 && valid_ratio + test_ratio < 1))
    throw ConfigError(str_cat("temporal_split: valid_ratio ", valid_ratio, " and test_ratio ",
                              test_ratio, " must be >= 0 with a sum below 1"));
  for (std::size_t u = 0; u < data.times.size(); ++u)
    if (!std::is_sorted(data.times[u].begin(), data.times[u].end()))
      throw ConfigError(str_cat("temporal_split: ", data.source, ": times of user ",
                                data.users[u], " are not in order"));

  struct Event {
    std::int64_t time;
    std::int32_t user;
    std::int32_t position;
  };
  std::vector<Event> events;
  events.reserve(static_cast<std::size_t>(data.num_interactions()));
  for (std::size_t u = 0; u < data.sequences.size(); ++u)
    for (std::size_t p = 0; p < data.sequences[u].size(); ++p)
      events.push_back({data.times[u][p], static_cast<std::int32_t>(u), static_cast<std::int32_t>(p)});
  std::sort(events.begin(), events.end(), [](const Event& a, const Event& b) {
    if (a.time != b.time) return a.time < b.time;
    if (a.user != b.user) return a.user < b.user;
    return a.position < b.position;
  });

  // Part of each event: 0 train, 1 valid, 2 test. A tiny epsilon keeps floor(10 * 0.8) at 8
  // despite the rounding in 1 - 0.1 - 0.1.
  const std::size_t n = events.size();
  const double total = static_cast<double>(n);
  auto cut = [&](double fraction) -> std::size_t {  // clamped: ratios are unchecked with cutoffs
    double x = std::floor(total * fraction + 1e-9);
    return !(x > 0) ? 0 : x >= total ? n : static_cast<std::size_t>(x);
  };
  const std::size_t valid_begin = cut(1 - valid_ratio - test_ratio);
  const std::size_t test_begin = cut(1 - test_ratio);
  auto part_of = [&](std::size_t rank) -> int {
    if (data.predefined_cutoffs) {
      const auto [valid_time, test_time] = *data.predefined_cutoffs;
      const std::int64_t t = events[rank].time;
      return t < valid_time ? 0 : t < test_time ? 1 : 2;
    }
    return rank < valid_begin ? 0 : rank < test_begin ? 1 : 2;
  };

  DataSplit split;
  split.kind = "temporal";
  split.num_items = data.items.size();
  std::vector<std::int32_t> train_len(data.sequences.size(), 0);
  for (std::size_t r = 0; r < n; ++r) {
    const Event& e = events[r];
    int part = part_of(r);
    if (part == 0) {
      // Events of a user are in sequence order, so train is a prefix.
      PR_ASSERT(train_len[static_cast<std::size_t>(e.user)] == e.position);
      ++train_len[static_cast<std::size_t>(e.user)];
      continue;
    }
    if (e.position == 0) {
      ++split.skipped_without_history;
      continue;
    }
    EvalExample example{e.user, e.position,
                        data.sequences[static_cast<std::size_t>(e.user)][static_cast<std::size_t>(e.position)]};
    (part == 1 ? split.valid : split.test).push_back(example);
  }
  for (std::size_t u = 0; u < data.sequences.size(); ++u) {
    if (train_len[u] == 0) continue;
    const auto& seq = data.sequences[u];
    split.train.emplace_back(seq.begin(), seq.begin() + train_len[u]);
    split.train_users.push_back(static_cast<std::int32_t>(u));
  }
  return split;
}

}  // namespace prunerec::recsys
