// k-core filter by peeling (see filter.h).
#include "recsys/data/filter.h"

#include <algorithm>
#include <deque>

#include "base/error.h"

namespace prunerec::recsys {

using ::prunerec::detail::str_cat;

std::string FilterReport::summary() const {
  return str_cat(k, "-core: users ", users_before, " -> ", users_after, ", items ", items_before,
                 " -> ", items_after, ", interactions ", interactions_before, " -> ",
                 interactions_after);
}

FilterReport kcore_filter(SequenceDataset& data, int k) {
  if (k < 0) throw ConfigError(str_cat("kcore_filter: k must be >= 0, got ", k));
  const std::size_t num_users = data.sequences.size();
  const std::size_t num_items = data.items.raw_ids.size();
  FilterReport report;
  report.k = k;
  report.users_before = static_cast<std::int64_t>(num_users);
  report.items_before = static_cast<std::int64_t>(num_items);
  report.interactions_before = data.num_interactions();

  // Interaction counts, and for each item the users of its interactions (one entry each).
  std::vector<std::int64_t> user_count(num_users), item_count(num_items, 0);
  for (std::size_t u = 0; u < num_users; ++u) {
    user_count[u] = static_cast<std::int64_t>(data.sequences[u].size());
    for (std::int32_t item : data.sequences[u]) ++item_count[static_cast<std::size_t>(item)];
  }
  std::vector<std::size_t> item_start(num_items + 1, 0);
  for (std::size_t i = 0; i < num_items; ++i)
    item_start[i + 1] = item_start[i] + static_cast<std::size_t>(item_count[i]);
  std::vector<std::int32_t> item_users(item_start.back());
  {
    std::vector<std::size_t> fill(item_start.begin(), item_start.end() - 1);
    for (std::size_t u = 0; u < num_users; ++u)
      for (std::int32_t item : data.sequences[u])
        item_users[fill[static_cast<std::size_t>(item)]++] = static_cast<std::int32_t>(u);
  }

  // Peel: a removed user lowers its items' counts, a removed item its users' counts.
  std::vector<char> user_alive(num_users, 1), item_alive(num_items, 1);
  std::deque<std::pair<bool, std::size_t>> removed;  // (is_user, index)
  for (std::size_t u = 0; u < num_users; ++u)
    if (user_count[u] < k) {
      user_alive[u] = 0;
      removed.emplace_back(true, u);
    }
  for (std::size_t i = 0; i < num_items; ++i)
    if (item_count[i] < k) {
      item_alive[i] = 0;
      removed.emplace_back(false, i);
    }
  while (!removed.empty()) {
    auto [is_user, index] = removed.front();
    removed.pop_front();
    if (is_user) {
      for (std::int32_t item : data.sequences[index]) {
        auto i = static_cast<std::size_t>(item);
        if (item_alive[i] && --item_count[i] < k) {
          item_alive[i] = 0;
          removed.emplace_back(false, i);
        }
      }
    } else {
      for (std::size_t e = item_start[index]; e < item_start[index + 1]; ++e) {
        auto u = static_cast<std::size_t>(item_users[e]);
        if (user_alive[u] && --user_count[u] < k) {
          user_alive[u] = 0;
          removed.emplace_back(true, u);
        }
      }
    }
  }
  if (std::find(user_alive.begin(), user_alive.end(), 1) == user_alive.end())
    throw ConfigError(str_cat("kcore_filter: the ", k, "-core of ", data.source,
                              " is empty (no user keeps ", k, " interactions)"));

  // Re-index densely, keeping order.
  std::vector<std::int32_t> new_item(num_items, -1);
  ItemCatalog items;
  const bool titled = data.items.has_titles();
  for (std::size_t i = 0; i < num_items; ++i) {
    if (!item_alive[i]) continue;
    new_item[i] = items.add(data.items.raw_ids[i]);
    if (titled) items.set_title(new_item[i], data.items.titles[i]);
  }
  std::size_t kept = 0;
  for (std::size_t u = 0; u < num_users; ++u) {
    if (!user_alive[u]) continue;
    std::vector<std::int32_t> seq;
    std::vector<std::int64_t> times;
    for (std::size_t e = 0; e < data.sequences[u].size(); ++e) {
      std::int32_t item = new_item[static_cast<std::size_t>(data.sequences[u][e])];
      if (item < 0) continue;
      seq.push_back(item);
      if (data.has_time()) times.push_back(data.times[u][e]);
    }
    if (kept != u) data.users[kept] = std::move(data.users[u]);  // no self-move
    data.sequences[kept] = std::move(seq);
    if (data.has_time()) data.times[kept] = std::move(times);
    ++kept;
  }
  data.users.resize(kept);
  data.sequences.resize(kept);
  if (data.has_time()) data.times.resize(kept);
  data.items = std::move(items);
  data.check_invariants();

  report.users_after = static_cast<std::int64_t>(kept);
  report.items_after = data.items.size();
  report.interactions_after = data.num_interactions();
  return report;
}

}  // namespace prunerec::recsys
