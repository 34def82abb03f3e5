#include "recsys/eval/paired.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <map>
#include <sstream>

#include "base/atomic_file.h"
#include "base/comm.h"
#include "base/error.h"
#include "base/json.h"
#include "tensor/rng.h"

namespace prunerec::recsys {
namespace {

constexpr const char* kHeader = "# prunerec per-user v1";
const std::vector<std::string> kColumns = {"NDCG@10", "HR@10", "NDCG@20", "HR@20", "MRR@10"};

// Cut-off K of "NAME@K" for NAME in {HR, NDCG, MRR}; 0 when it is not such a name.
int metric_k(const std::string& metric, std::string* name) {
  const auto at = metric.find('@');
  if (at == std::string::npos) return 0;
  *name = metric.substr(0, at);
  if (*name != "HR" && *name != "NDCG" && *name != "MRR") return 0;
  int k = 0;
  const char* b = metric.data() + at + 1;
  const char* e = metric.data() + metric.size();
  const auto [p, ec] = std::from_chars(b, e, k);
  return ec == std::errc() && p == e && b != e && k > 0 ? k : 0;
}

std::vector<std::string> split_tabs(const std::string& line) {
  std::vector<std::string> out;
  std::size_t start = 0;
  while (true) {
    const auto tab = line.find('\t', start);
    out.push_back(line.substr(start, tab == std::string::npos ? std::string::npos : tab - start));
    if (tab == std::string::npos) break;
    start = tab + 1;
  }
  return out;
}

// Type-7 quantile (linear interpolation between order statistics) of sorted values.
double quantile(const std::vector<double>& sorted, double q) {
  const double h = (static_cast<double>(sorted.size()) - 1.0) * q;
  const auto lo = static_cast<std::size_t>(std::floor(h));
  const std::size_t hi = std::min(lo + 1, sorted.size() - 1);
  return sorted[lo] + (h - static_cast<double>(lo)) * (sorted[hi] - sorted[lo]);
}

}  // namespace

double metric_from_rank(const std::string& metric, std::int64_t rank) {
  std::string name;
  const int k = metric_k(metric, &name);
  PR_CHECK_T(ConfigError, k > 0, "metric must be HR@K, NDCG@K or MRR@K with K > 0, got '", metric, "'");
  if (name == "HR") return hit_rate_at(rank, k);
  if (name == "NDCG") return ndcg_at(rank, k);
  return mrr_at(rank, k);
}

std::string per_user_text(const EvalResult& result, const SequenceDataset& data) {
  PR_CHECK_T(ConfigError, result.ranks.size() == result.users.size() && !result.ranks.empty(),
             "per-user ranks: the evaluation holds ", result.ranks.size(), " ranks and ", result.users.size(),
             " users");
  std::string out = std::string(kHeader) + "; " + describe(result.protocol) + "\nuser\trank";
  for (const auto& c : kColumns) out += "\t" + c;
  out += "\n";
  char buf[32];
  for (std::size_t i = 0; i < result.ranks.size(); ++i) {
    const std::int32_t u = result.users[i];
    PR_CHECK_T(ConfigError, u >= 0 && u < data.num_users(), "per-user ranks: user index ", u, " out of range");
    const std::string& id = data.users[static_cast<std::size_t>(u)];
    PR_CHECK_T(ConfigError, id.find_first_of("\t\n") == std::string::npos, "per-user ranks: user id '", id,
               "' contains a tab or newline");
    out += id + "\t" + std::to_string(result.ranks[i]);
    for (const auto& c : kColumns) {
      std::snprintf(buf, sizeof buf, "\t%.6g", metric_from_rank(c, result.ranks[i]));
      out += buf;
    }
    out += "\n";
  }
  return out;
}

void write_per_user(const std::string& path, const EvalResult& result, const SequenceDataset& data) {
  if (!world().is_root()) return;  // Note [rank 0 speaks] in apps/main.cc
  write_file_atomic(path, per_user_text(result, data));
}

PerUser read_per_user(const std::string& path) {
  const std::string text = read_file(path, std::size_t{1} << 30);
  PerUser p;
  p.path = path;
  std::istringstream in(text);
  std::string line;
  int n = 0;
  int rank_col = -1;
  while (std::getline(in, line)) {
    ++n;
    if (n == 1) {
      PR_CHECK_T(IoError, line.rfind(kHeader, 0) == 0, path, ":1: expected a header starting with '", kHeader,
                 "' (a file written by prunerec eval --per-user)");
      const auto semi = line.find("; ");
      p.protocol = semi == std::string::npos ? "" : line.substr(semi + 2);
      continue;
    }
    const std::vector<std::string> f = split_tabs(line);
    if (n == 2) {
      PR_CHECK_T(IoError, f.size() >= 2 && f[0] == "user", path, ":2: expected the column line 'user<TAB>rank...'");
      for (std::size_t c = 0; c < f.size(); ++c)
        if (f[c] == "rank") rank_col = static_cast<int>(c);
      PR_CHECK_T(IoError, rank_col > 0, path, ":2: no 'rank' column");
      continue;
    }
    if (line.empty()) continue;
    PR_CHECK_T(IoError, static_cast<int>(f.size()) > rank_col && !f[0].empty(), path, ":", n,
               ": expected a user id and a rank");
    std::int64_t r = -1;
    const std::string& s = f[static_cast<std::size_t>(rank_col)];
    const auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), r);
    PR_CHECK_T(IoError, ec == std::errc() && ptr == s.data() + s.size() && r >= 0, path, ":", n,
               ": rank must be a non-negative integer, got '", s, "'");
    p.users.push_back(f[0]);
    p.ranks.push_back(r);
  }
  PR_CHECK_T(IoError, n >= 2, path, ": missing the header or the column line");
  PR_CHECK_T(IoError, !p.users.empty(), path, ": no users");
  return p;
}

PairedResult paired_bootstrap(const std::vector<double>& a, const std::vector<double>& b, int resamples,
                              std::uint64_t seed) {
  PR_CHECK_T(ConfigError, a.size() == b.size() && !a.empty(), "paired bootstrap: ", a.size(), " and ", b.size(),
             " values (need the same positive count)");
  PR_CHECK_T(ConfigError, resamples >= 1, "paired bootstrap: resamples must be positive, got ", resamples);
  const std::size_t n = a.size();
  std::vector<double> d(n);
  double sa = 0, sb = 0, sd = 0;
  for (std::size_t i = 0; i < n; ++i) {
    d[i] = b[i] - a[i];
    sa += a[i];
    sb += b[i];
    sd += d[i];
  }
  PairedResult r;
  r.n = static_cast<std::int64_t>(n);
  r.mean_a = sa / static_cast<double>(n);
  r.mean_b = sb / static_cast<double>(n);
  r.diff = sd / static_cast<double>(n);
  r.resamples = resamples;
  r.seed = seed;
  Rng rng(seed, hash_stream(0x9a12ed));
  std::vector<double> means(static_cast<std::size_t>(resamples));
  std::int64_t le0 = 0, ge0 = 0;
  for (int s = 0; s < resamples; ++s) {
    double sum = 0;
    for (std::size_t i = 0; i < n; ++i) sum += d[rng.below(n)];
    const double m = sum / static_cast<double>(n);
    means[static_cast<std::size_t>(s)] = m;
    le0 += m <= 0;
    ge0 += m >= 0;
  }
  std::sort(means.begin(), means.end());
  r.lo = quantile(means, 0.025);
  r.hi = quantile(means, 0.975);
  // +1 in numerator and denominator: a p-value from R resamples is never below 2 / (R + 1).
  r.p_value = std::min(1.0, 2.0 * static_cast<double>(std::min(le0, ge0) + 1) / static_cast<double>(resamples + 1));
  return r;
}

PairedResult compare_per_user(const PerUser& a, const PerUser& b, const std::string& metric, int resamples,
                              std::uint64_t seed) {
  metric_from_rank(metric, 0);  // validates the name
  const std::size_t n = std::min(a.users.size(), b.users.size());
  for (std::size_t i = 0; i < n; ++i)
    PR_CHECK_T(ConfigError, a.users[i] == b.users[i], "compare: the files evaluate different users: line ", i + 3,
               " is user '", a.users[i], "' in ", a.path, " but '", b.users[i], "' in ", b.path);
  PR_CHECK_T(ConfigError, a.users.size() == b.users.size(), "compare: ", a.path, " has ", a.users.size(), " lines, ",
             b.path, " has ", b.users.size(), "; the first unmatched is line ", n + 3, " (user '",
             (a.users.size() > n ? a.users[n] : b.users[n]), "' in ",
             (a.users.size() > n ? a.path : b.path), ")");
  // Per-user means (a user with several examples counts once), in first-seen order.
  std::vector<std::string> order;
  std::vector<double> va, vb, count;
  std::map<std::string, std::size_t> index;
  for (std::size_t i = 0; i < n; ++i) {
    auto [it, fresh] = index.emplace(a.users[i], order.size());
    if (fresh) {
      order.push_back(a.users[i]);
      va.push_back(0);
      vb.push_back(0);
      count.push_back(0);
    }
    va[it->second] += metric_from_rank(metric, a.ranks[i]);
    vb[it->second] += metric_from_rank(metric, b.ranks[i]);
    count[it->second] += 1;
  }
  for (std::size_t u = 0; u < order.size(); ++u) {
    va[u] /= count[u];
    vb[u] /= count[u];
  }
  PairedResult r = paired_bootstrap(va, vb, resamples, seed);
  r.metric = metric;
  return r;
}

std::string to_json(const PairedResult& r) {
  Json j;
  j.begin_object();
  j.key("metric").value(r.metric);
  j.key("n").value(r.n);
  j.key("mean_a").value(r.mean_a);
  j.key("mean_b").value(r.mean_b);
  j.key("diff").value(r.diff);
  j.key("ci95").begin_array().value(r.lo).value(r.hi).end_array();
  j.key("p_value").value(r.p_value);
  j.key("resamples").value(r.resamples);
  j.key("seed").value(static_cast<std::int64_t>(r.seed));
  j.end_object();
  return j.str();
}

std::string describe_difference(const PairedResult& r) {
  char buf[160];
  if (r.lo <= 0 && r.hi >= 0) {
    std::snprintf(buf, sizeof buf, "no difference (diff %+.4f, 95%% CI [%+.4f, %+.4f], n %lld)", r.diff, r.lo, r.hi,
                  static_cast<long long>(r.n));
  } else {
    std::snprintf(buf, sizeof buf, "b %s by %.4f (95%% CI [%+.4f, %+.4f], p %.3g, n %lld)",
                  r.diff > 0 ? "higher" : "lower", std::fabs(r.diff), r.lo, r.hi, r.p_value,
                  static_cast<long long>(r.n));
  }
  return buf;
}

}  // namespace prunerec::recsys
