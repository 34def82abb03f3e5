#include "recsys/data/synthetic.h"

#include <algorithm>
#include <cmath>
#include <string>
#include <unordered_set>

#include "base/error.h"
#include "tensor/rng.h"

namespace prunerec::recsys {
namespace {

// Draws an index from cumulative weights.
std::int32_t draw(const std::vector<double>& cumulative, Rng& rng) {
  const double u = rng.uniform() * cumulative.back();
  return static_cast<std::int32_t>(std::upper_bound(cumulative.begin(), cumulative.end(), u) - cumulative.begin());
}

}  // namespace

SequenceDataset make_synthetic(const SyntheticOptions& o) {
  PR_CHECK_T(ConfigError, o.users > 0 && o.items >= 10 && o.clusters > 0 && o.clusters <= o.items && o.mean_length >= 5,
             "synthetic data: need users > 0, items >= 10, 0 < clusters <= items, mean_length >= 5");
  Rng rng(o.seed, hash_stream(0x5e9d));
  SequenceDataset d;
  d.source = "synthetic";
  d.format = "synthetic";
  // Items: cluster c holds items c, c + C, c + 2C, ...; Zipf popularity within the cluster
  // by rank in a shuffled order.
  std::vector<std::vector<std::int32_t>> members(static_cast<std::size_t>(o.clusters));
  for (std::int32_t i = 0; i < o.items; ++i) {
    members[i % o.clusters].push_back(i);
    d.items.add(std::string("i").append(std::to_string(i)));  // not "i" + ...: see the users below
  }
  std::vector<std::vector<double>> cum(static_cast<std::size_t>(o.clusters));
  for (std::int32_t c = 0; c < o.clusters; ++c) {
    rng.shuffle(members[c]);
    double total = 0;
    for (std::size_t r = 0; r < members[c].size(); ++r) cum[c].push_back(total += 1.0 / std::pow(r + 1.0, o.zipf));
  }
  for (std::int32_t i = 0; i < o.items; ++i) d.items.set_title(i, "Cluster " + std::to_string(i % o.clusters) + " item " + std::to_string(i));
  // Successors: 1-3 items of the same cluster per item.
  std::vector<std::vector<std::int32_t>> successors(static_cast<std::size_t>(o.items));
  for (std::int32_t i = 0; i < o.items; ++i) {
    const auto& m = members[i % o.clusters];
    const int n = 1 + static_cast<int>(rng.below(3));
    for (int k = 0; k < n && m.size() > 1; ++k) {
      const std::int32_t s = m[rng.below(m.size())];
      if (s != i) successors[i].push_back(s);
    }
  }
  // Users.
  for (std::int32_t u = 0; u < o.users; ++u) {
    // Appended rather than "u" + to_string(u): GCC 12 warns on the latter (a false
    // -Wrestrict, GCC bug 105329), and CI builds with -Werror.
    d.users.push_back(std::string("u").append(std::to_string(u)));
    const int n_pref = 1 + static_cast<int>(rng.below(3));
    std::vector<std::int32_t> prefs;
    for (int k = 0; k < n_pref; ++k) prefs.push_back(static_cast<std::int32_t>(rng.below(o.clusters)));
    const int length = 5 + static_cast<int>(std::floor(-std::log(1.0 - rng.uniform()) * (o.mean_length - 5)));
    std::vector<std::int32_t> seq;
    std::unordered_set<std::int32_t> seen;
    std::int32_t cluster = prefs[0];
    for (int attempts = 0; static_cast<int>(seq.size()) < length && attempts < 20 * length; ++attempts) {
      std::int32_t next = -1;
      if (!seq.empty() && rng.uniform() < o.follow && !successors[seq.back()].empty()) {
        const auto& s = successors[seq.back()];
        next = s[rng.below(s.size())];
      } else {
        if (rng.uniform() < o.drift) cluster = prefs[rng.below(prefs.size())];
        next = members[cluster][draw(cum[cluster], rng)];
      }
      if (seen.insert(next).second) seq.push_back(next);
    }
    d.sequences.push_back(std::move(seq));
  }
  d.check_invariants();
  return d;
}

namespace {

constexpr std::uint64_t kCatalogueStream = 0xca7a;
constexpr std::uint64_t kUserStream = 0x05e7;

}  // namespace

// Cluster c holds items c, c + C, c + 2C, ... (as make_synthetic); its size is base_ + 1
// for c < items % C, else base_. members_ lists them in Zipf-rank order: cluster c starts
// at c * base_ + min(c, items % C).
SyntheticCatalogue::SyntheticCatalogue(const SyntheticOptions& o) : options_(o) {
  PR_CHECK_T(ConfigError, o.users > 0 && o.items >= 10 && o.clusters > 0 && o.clusters <= o.items && o.mean_length >= 5,
             "synthetic catalogue: need users > 0, items >= 10, 0 < clusters <= items, mean_length >= 5");
  base_ = o.items / o.clusters;
  const std::int32_t extra = o.items % o.clusters;
  members_.resize(static_cast<std::size_t>(o.items));
  for (std::int32_t c = 0; c < o.clusters; ++c) {
    const std::int64_t start = static_cast<std::int64_t>(c) * base_ + std::min(c, extra);
    const std::int32_t size = base_ + (c < extra ? 1 : 0);
    for (std::int32_t r = 0; r < size; ++r) members_[start + r] = c + r * o.clusters;
    Rng rng(o.seed, hash_stream(kCatalogueStream, static_cast<std::uint64_t>(c)));
    for (std::int32_t r = size; r > 1; --r) std::swap(members_[start + r - 1], members_[start + rng.below(r)]);
  }
  for (std::int32_t size : {base_, base_ + 1}) {
    std::vector<double> cum;
    double total = 0;
    for (std::int32_t r = 0; r < size; ++r) cum.push_back(total += 1.0 / std::pow(r + 1.0, o.zipf));
    cumulative_.push_back(std::move(cum));
  }
}

std::int64_t SyntheticCatalogue::bytes() const {
  std::int64_t b = static_cast<std::int64_t>(members_.size() * sizeof(std::int32_t));
  for (const auto& c : cumulative_) b += static_cast<std::int64_t>(c.size() * sizeof(double));
  return b;
}

std::int32_t SyntheticCatalogue::draw_from(std::int32_t c, double u) const {
  const std::int32_t extra = options_.items % options_.clusters;
  const std::vector<double>& cum = cumulative_[c < extra ? 1 : 0];
  const std::int64_t start = static_cast<std::int64_t>(c) * base_ + std::min(c, extra);
  const auto r = std::min<std::int64_t>(std::upper_bound(cum.begin(), cum.end(), u * cum.back()) - cum.begin(),
                                        static_cast<std::int64_t>(cum.size()) - 1);
  return members_[start + r];
}

// Successor `pick` of `item`: a hashed member of the item's cluster; 1-3 per item.
std::int32_t SyntheticCatalogue::successor(std::int32_t item, std::uint64_t pick) const {
  const std::int32_t c = item % options_.clusters, extra = options_.items % options_.clusters;
  const std::int32_t size = base_ + (c < extra ? 1 : 0);
  const std::int64_t start = static_cast<std::int64_t>(c) * base_ + std::min(c, extra);
  const std::uint64_t hsh = hash_stream(options_.seed, kCatalogueStream, static_cast<std::uint64_t>(item), pick);
  return members_[start + static_cast<std::int64_t>(hsh % static_cast<std::uint64_t>(size))];
}

std::vector<std::int32_t> SyntheticCatalogue::sequence(std::int32_t user) const {
  const SyntheticOptions& o = options_;
  PR_CHECK(user >= 0 && user < o.users, "synthetic catalogue: user ", user, " is out of range for ", o.users, " users");
  Rng rng(o.seed, hash_stream(kUserStream, static_cast<std::uint64_t>(user)));
  const int n_pref = 1 + static_cast<int>(rng.below(3));
  std::vector<std::int32_t> prefs;
  for (int k = 0; k < n_pref; ++k) prefs.push_back(static_cast<std::int32_t>(rng.below(o.clusters)));
  const int length = 5 + static_cast<int>(std::floor(-std::log(1.0 - rng.uniform()) * (o.mean_length - 5)));
  std::vector<std::int32_t> seq;
  std::unordered_set<std::int32_t> seen;
  std::int32_t cluster = prefs[0];
  for (int attempts = 0; static_cast<int>(seq.size()) < length && attempts < 20 * length; ++attempts) {
    std::int32_t next = -1;
    if (!seq.empty() && rng.uniform() < o.follow) {
      const std::uint64_t n_succ = 1 + hash_stream(o.seed, kCatalogueStream, static_cast<std::uint64_t>(seq.back())) % 3;
      next = successor(seq.back(), rng.below(n_succ));
    } else {
      if (rng.uniform() < o.drift) cluster = prefs[rng.below(prefs.size())];
      next = draw_from(cluster, rng.uniform());
    }
    if (seen.insert(next).second) seq.push_back(next);
  }
  return seq;
}

}  // namespace prunerec::recsys
