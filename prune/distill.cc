#include "prune/distill.h"

#include <algorithm>
#include <cstring>

#include "base/comm.h"

namespace prunerec::prune {

void TeacherCache::fill(const recsys::TrainBatcher& batcher) {
  const std::int64_t n = batcher.num_windows(), d = teacher_.hidden_size();
  auto same = [&] {
    if (!ready() || static_cast<std::int64_t>(windows_.size()) != n) return false;
    for (std::int64_t w = 0; w < n; ++w) {
      const recsys::Window& a = windows_[w];
      const recsys::Window& b = batcher.window(static_cast<std::int32_t>(w));
      if (a.sequence != b.sequence || a.start != b.start || a.length != b.length) return false;
    }
    return true;
  };
  if (same()) return;
  windows_.clear();
  for (std::int64_t w = 0; w < n; ++w) windows_.push_back(batcher.window(static_cast<std::int32_t>(w)));
  offsets_.assign(static_cast<std::size_t>(n) + 1, 0);
  for (std::int64_t w = 0; w < n; ++w) offsets_[w + 1] = offsets_[w] + batcher.window(static_cast<std::int32_t>(w)).length;
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
                                 const TeacherCache* cache) {
  PR_CHECK_T(ConfigError, alpha >= 0 && alpha <= 1 && temperature > 0, "distillation: alpha ", alpha,
             " must be in [0, 1] and temperature ", temperature, " positive");
  return [&teacher, alpha, temperature, cache](const nn::Transformer& student, const recsys::Batch& b,
                                               const nn::ForwardOptions& fo) {
    PR_CHECK(student.vocab_size() == teacher.vocab_size(), "distillation: student scores ", student.vocab_size(),
             " items, teacher ", teacher.vocab_size());
    const std::int64_t N = b.ids.numel();
    Tensor teacher_h;
    if (cache && cache->ready() && !b.windows.empty()) {
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

std::function<void(const recsys::TrainBatcher&)> distillation_on_start(TeacherCache* cache) {
  return [cache](const recsys::TrainBatcher& batcher) { cache->fill(batcher); };
}

}  // namespace prunerec::prune
