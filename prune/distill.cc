#include "prune/distill.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <numeric>

#include "autograd/ops.h"
#include "base/comm.h"
#include "tensor/parallel.h"

namespace prunerec::prune {

void TeacherCache::fill(const recsys::TrainBatcher& batcher, const CacheMode& mode) {
  PR_CHECK_T(ConfigError, mode.top_k >= 0 && mode.top_k <= teacher_.vocab_size() && mode.temperature > 0,
             "teacher cache: top_k ", mode.top_k, " must be in [0, ", teacher_.vocab_size(),
             "] and the temperature positive");
  const std::int64_t n = batcher.num_windows();
  auto same = [&] {
    if (!ready() || !(mode == mode_) || static_cast<std::int64_t>(windows_.size()) != n) return false;
    for (std::int64_t w = 0; w < n; ++w) {
      const recsys::Window& a = windows_[w];
      const recsys::Window& b = batcher.window(static_cast<std::int32_t>(w));
      if (a.sequence != b.sequence || a.start != b.start || a.length != b.length) return false;
    }
    return true;
  };
  if (same()) return;
  mode_ = mode;
  states_ = items_ = logp_ = rest_ = Tensor();
  windows_.clear();
  for (std::int64_t w = 0; w < n; ++w) windows_.push_back(batcher.window(static_cast<std::int32_t>(w)));
  offsets_.assign(static_cast<std::size_t>(n) + 1, 0);
  for (std::int64_t w = 0; w < n; ++w) offsets_[w + 1] = offsets_[w] + batcher.window(static_cast<std::int32_t>(w)).length;
  if (mode.top_k > 0)
    fill_top_k(batcher);
  else
    fill_states(batcher);
}

std::int64_t TeacherCache::bytes() const {
  std::int64_t b = 0;
  for (const Tensor* t : {&states_, &items_, &logp_, &rest_})
    if (t->defined()) b += static_cast<std::int64_t>(t->nbytes());
  return b;
}

void TeacherCache::fill_states(const recsys::TrainBatcher& batcher) {
  const std::int64_t n = batcher.num_windows(), d = teacher_.hidden_size();
  Communicator& comm = world();
  states_ = comm.size() > 1 ? Tensor::zeros({offsets_.back(), d}, teacher_.dtype())
                            : Tensor::empty({offsets_.back(), d}, teacher_.dtype());
  constexpr std::int64_t kBatch = 64;  // fixed: the cached values must not depend on anything else
  ag::NoGradGuard no_grad;
  for (std::int64_t w0 = 0; w0 < n; w0 += kBatch) {
    if ((w0 / kBatch) % comm.size() != comm.rank()) continue;  // another rank's batch (Note [teacher cache])
    std::vector<std::int32_t> ids;
    for (std::int64_t w = w0; w < std::min(n, w0 + kBatch); ++w) ids.push_back(static_cast<std::int32_t>(w));
    const recsys::Batch b = batcher.make_batch(ids);
    const Tensor h = teacher_.hidden(b.ids, b.pads).value();  // [B, T, d]
    const std::int64_t T = b.ids.size(1);
    const std::size_t row_bytes = static_cast<std::size_t>(d) * dtype_size(h.dtype());
    for (std::size_t r = 0; r < ids.size(); ++r) {
      const std::int64_t len = batcher.window(ids[r]).length;
      std::memcpy(static_cast<char*>(states_.raw_data()) + offsets_[ids[r]] * static_cast<std::int64_t>(row_bytes),
                  static_cast<const char*>(h.raw_data()) + (static_cast<std::int64_t>(r) * T + T - len) * static_cast<std::int64_t>(row_bytes),
                  static_cast<std::size_t>(len) * row_bytes);
    }
  }
  if (comm.size() > 1) {
    PR_CHECK_T(ConfigError, states_.dtype() == DType::f32, "teacher cache: a data-parallel run needs an f32 teacher, got ",
               dtype_name(states_.dtype()));
    comm.allreduce_sum(states_.data<float>(), states_.numel());
  }
}

std::vector<std::int32_t> top_k_items(const float* scores, std::int64_t n, std::int64_t k) {
  PR_ASSERT(k >= 0 && k <= n);
  // `before(a, c)`: a comes first in the full order (larger score, ties to the lower item).
  auto before = [scores](std::int32_t a, std::int32_t c) { return scores[a] > scores[c] || (scores[a] == scores[c] && a < c); };
  // A heap of the k best so far under `before`, whose front is the worst of them; an item
  // replaces it only if it comes first. Items arrive in ascending order, so a later item
  // that ties the front never does: ties stay with the lower item.
  std::vector<std::int32_t> best;
  best.reserve(static_cast<std::size_t>(k));
  if (k == 0) return best;
  for (std::int32_t j = 0; j < n; ++j) {
    if (static_cast<std::int64_t>(best.size()) < k) {
      best.push_back(j);
      std::push_heap(best.begin(), best.end(), before);
    } else if (before(j, best.front())) {
      std::pop_heap(best.begin(), best.end(), before);
      best.back() = j;
      std::push_heap(best.begin(), best.end(), before);
    }
  }
  std::sort_heap(best.begin(), best.end(), before);  // best first
  return best;
}

namespace {

// One position's top-k entry from its logits x [V] (Note [top-k distillation] in
// autograd/ops/loss.cc): the top k items (top_k_items), their log-probabilities at
// temperature 1 / inv_t and the log of the rest's mass. The sums run over the items in
// item order, in double, so they depend on nothing but x.
void top_k_entry(const float* x, std::int64_t V, std::int64_t k, double inv_t, std::int32_t* items, float* logp,
                 float* rest) {
  const std::vector<std::int32_t> top = top_k_items(x, V, k);
  const float kth = x[top[k - 1]];
  const std::int32_t kth_item = top[k - 1];
  const double m = x[top[0]] * inv_t;
  double z = 0, z_rest = 0;
  for (std::int32_t j = 0; j < V; ++j) {
    const double e = std::exp(x[j] * inv_t - m);
    z += e;
    const bool in_top = x[j] > kth || (x[j] == kth && j <= kth_item);
    if (!in_top) z_rest += e;
  }
  const double log_z = std::log(z);
  for (std::int64_t i = 0; i < k; ++i) {
    items[i] = top[i];
    logp[i] = static_cast<float>(x[top[i]] * inv_t - m - log_z);
  }
  *rest = z_rest > 0 ? static_cast<float>(std::log(z_rest) - log_z) : -std::numeric_limits<float>::infinity();
}

}  // namespace

// Each position's top-k entry from the teacher's logits, computed window by window in the
// fixed batches of fill_states, so the values do not depend on the batcher. Under mpirun
// the batches are dealt to the ranks and the zero-filled tables summed, as for the states
// (Note [teacher cache]): every rank ends with the table one process computes, bit for
// bit (each entry is written by one rank; the others add exact zeros, int32 items included).
void TeacherCache::fill_top_k(const recsys::TrainBatcher& batcher) {
  const std::int64_t n = batcher.num_windows(), V = teacher_.vocab_size(), k = mode_.top_k;
  const std::int64_t P = offsets_.back();
  Communicator& comm = world();
  const bool split = comm.size() > 1;
  items_ = split ? Tensor::zeros({P, k}, DType::i32) : Tensor::empty({P, k}, DType::i32);
  logp_ = split ? Tensor::zeros({P, k}, DType::f32) : Tensor::empty({P, k}, DType::f32);
  rest_ = split ? Tensor::zeros({P}, DType::f32) : Tensor::empty({P}, DType::f32);
  const double inv_t = 1.0 / mode_.temperature;
  constexpr std::int64_t kBatch = 64;  // fixed: the cached values must not depend on anything else
  ag::NoGradGuard no_grad;
  for (std::int64_t w0 = 0; w0 < n; w0 += kBatch) {
    if ((w0 / kBatch) % comm.size() != comm.rank()) continue;  // another rank's batch
    std::vector<std::int32_t> ids;
    for (std::int64_t w = w0; w < std::min(n, w0 + kBatch); ++w) ids.push_back(static_cast<std::int32_t>(w));
    const recsys::Batch b = batcher.make_batch(ids);
    const std::int64_t T = b.ids.size(1), d = teacher_.hidden_size();
    const Tensor h = teacher_.hidden(b.ids, b.pads).value().reshape({static_cast<std::int64_t>(ids.size()) * T, d});
    const Tensor logits = ag::linear(ag::Var(h), teacher_.output_weight()).value().to(DType::f32).contiguous();
    parallel_for(0, static_cast<std::int64_t>(ids.size()), 1, [&](std::int64_t lo, std::int64_t hi) {
      for (std::int64_t r = lo; r < hi; ++r) {
        const std::int64_t len = batcher.window(ids[r]).length;
        for (std::int64_t t = T - len; t < T; ++t) {
          const std::int64_t row = offsets_[ids[r]] + t - (T - len);
          top_k_entry(logits.data<float>() + (r * T + t) * V, V, k, inv_t, items_.data<std::int32_t>() + row * k,
                      logp_.data<float>() + row * k, rest_.data<float>() + row);
        }
      }
    });
  }
  if (split) {
    comm.allreduce_sum(items_.data<std::int32_t>(), items_.numel());
    comm.allreduce_sum(logp_.data<float>(), logp_.numel());
    comm.allreduce_sum(rest_.data<float>(), rest_.numel());
  }
}

TeacherCache::TopK TeacherCache::top_k_for(const recsys::Batch& batch) const {
  PR_CHECK(items_.defined() && !batch.windows.empty(),
           "teacher cache: no top-k entries, or the batch does not name its windows");
  const std::int64_t B = batch.ids.size(0), T = batch.ids.size(1), k = mode_.top_k;
  TopK out{Tensor::empty({B * T, k}, DType::i32), Tensor::zeros({B * T, k}, DType::f32),
           Tensor::zeros({B * T}, DType::f32)};
  for (std::int64_t row = 0; row < B * T; ++row)  // padding: distinct items, ignored by the loss
    std::iota(out.items.data<std::int32_t>() + row * k, out.items.data<std::int32_t>() + (row + 1) * k, 0);
  for (std::int64_t r = 0; r < B; ++r) {
    const std::int32_t w = batch.windows[r];
    const std::int64_t len = offsets_[w + 1] - offsets_[w], first = r * T + T - len;
    PR_ASSERT(len <= T);
    std::memcpy(out.items.data<std::int32_t>() + first * k, items_.data<std::int32_t>() + offsets_[w] * k,
                static_cast<std::size_t>(len * k) * sizeof(std::int32_t));
    std::memcpy(out.logp.data<float>() + first * k, logp_.data<float>() + offsets_[w] * k,
                static_cast<std::size_t>(len * k) * sizeof(float));
    std::memcpy(out.rest.data<float>() + first, rest_.data<float>() + offsets_[w], static_cast<std::size_t>(len) * sizeof(float));
  }
  return out;
}

Tensor TeacherCache::states_for(const recsys::Batch& batch) const {
  PR_CHECK(ready() && !batch.windows.empty(), "teacher cache: not filled, or the batch does not name its windows");
  const std::int64_t B = batch.ids.size(0), T = batch.ids.size(1), d = teacher_.hidden_size();
  Tensor out = Tensor::zeros({B * T, d}, states_.dtype());
  const std::size_t row_bytes = static_cast<std::size_t>(d) * dtype_size(out.dtype());
  for (std::int64_t r = 0; r < B; ++r) {
    const std::int32_t w = batch.windows[r];
    const std::int64_t len = offsets_[w + 1] - offsets_[w];
    PR_ASSERT(len <= T);
    std::memcpy(static_cast<char*>(out.raw_data()) + (r * T + T - len) * static_cast<std::int64_t>(row_bytes),
                static_cast<const char*>(states_.raw_data()) + offsets_[w] * static_cast<std::int64_t>(row_bytes),
                static_cast<std::size_t>(len) * row_bytes);
  }
  return out;
}

recsys::LossFn distillation_loss(const nn::Transformer& teacher, double alpha, double temperature,
                                 const TeacherCache* cache, int top_k) {
  PR_CHECK_T(ConfigError, alpha >= 0 && alpha <= 1 && temperature > 0, "distillation: alpha ", alpha,
             " must be in [0, 1] and temperature ", temperature, " positive");
  PR_CHECK_T(ConfigError, top_k == 0 || cache, "distillation: top-k distillation needs the teacher cache");
  return [&teacher, alpha, temperature, cache, top_k](const nn::Transformer& student, const recsys::Batch& b,
                                                      const nn::ForwardOptions& fo) {
    PR_CHECK(student.vocab_size() == teacher.vocab_size(), "distillation: student scores ", student.vocab_size(),
             " items, teacher ", teacher.vocab_size());
    const std::int64_t N = b.ids.numel();
    if (top_k > 0) {
      PR_CHECK(cache->ready() && cache->mode() == (CacheMode{top_k, temperature}),
               "distillation: the teacher cache holds another mode (top_k ", cache->mode().top_k, ")");
      const TeacherCache::TopK t = cache->top_k_for(b);
      const ag::Var h = student.hidden(b.ids, b.pads, fo);
      return ag::linear_topk_distill_loss(ag::reshape(h, {N, student.hidden_size()}), student.output_weight(), t.items,
                                          t.logp, t.rest, b.targets.reshape({N}), alpha, temperature);
    }
    Tensor teacher_h;
    if (cache && cache->ready() && cache->mode().top_k == 0 && !b.windows.empty()) {
      teacher_h = cache->states_for(b);
    } else {
      ag::NoGradGuard no_grad;
      teacher_h = teacher.hidden(b.ids, b.pads).value().reshape({N, teacher.hidden_size()});
    }
    const ag::Var h = student.hidden(b.ids, b.pads, fo);
    return ag::linear_distill_loss(ag::reshape(h, {N, student.hidden_size()}), student.output_weight(), teacher_h,
                                   teacher.output_weight().value(), b.targets.reshape({N}), alpha, temperature);
  };
}

std::function<void(const recsys::TrainBatcher&)> distillation_on_start(TeacherCache* cache, const CacheMode& mode) {
  return [cache, mode](const recsys::TrainBatcher& batcher) { cache->fill(batcher, mode); };
}

}  // namespace prunerec::prune
