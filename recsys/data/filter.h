// k-core filtering: keep the largest sub-data-set in which every user and every item has at
// least k interactions.
//
//   recsys::FilterReport r = recsys::kcore_filter(data, 5);
//   // r.users_before -> r.users_after, ...; data is re-indexed densely in place.
//
// Removing a user can push an item below k and the reverse, so the filter peels until
// nothing changes (a queue over users and items: linear in the number of interactions,
// and the result does not depend on the peeling order). Repeat interactions count each
// time. Users and items keep their relative order; titles, times and predefined cutoffs
// stay consistent.
#pragma once

#include <cstdint>
#include <string>

#include "recsys/data/dataset.h"

namespace prunerec::recsys {

struct FilterReport {
  int k = 0;
  std::int64_t users_before = 0, items_before = 0, interactions_before = 0;
  std::int64_t users_after = 0, items_after = 0, interactions_after = 0;

  std::string summary() const;  // "5-core: users 100 -> 80, items 50 -> 41, ..."
};

// k <= 1 changes nothing. ConfigError when k is negative or when nothing would survive
// (data is then left unchanged).
FilterReport kcore_filter(SequenceDataset& data, int k);

}  // namespace prunerec::recsys
