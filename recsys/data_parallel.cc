#include "recsys/data_parallel.h"

#include <algorithm>
#include <chrono>
#include <cstring>

#include "base/crc32c.h"

namespace prunerec::recsys {

Shard shard_of(std::int64_t n, const Communicator& comm) {
  const std::int64_t N = comm.size(), r = comm.rank();
  return {r * n / N, (r + 1) * n / N};
}

std::int64_t positions_of(const TrainBatcher& batcher, const std::vector<std::int32_t>& windows) {
  std::int64_t positions = 0;
  for (std::int32_t w : windows) positions += batcher.window(w).length;
  return positions;
}

std::int64_t length_of(const TrainBatcher& batcher, const std::vector<std::int32_t>& windows) {
  std::int64_t length = 1;  // as TrainBatcher::make_batch pads
  for (std::int32_t w : windows) length = std::max<std::int64_t>(length, batcher.window(w).length);
  return length;
}

GradientReducer::GradientReducer(const nn::Module& model, Communicator& comm, bool lazy_rows, std::int64_t bucket_floats)
    : model_(model), comm_(comm), lazy_rows_(lazy_rows), bucket_floats_(bucket_floats) {}

void GradientReducer::reduce(double scale) {
  const auto params = model_.named_parameters();
  const std::size_t P = params.size();
  // Which parameters have a dense or a row-sparse gradient on how many ranks.
  std::vector<std::int64_t> kinds(2 * P, 0);
  for (std::size_t i = 0; i < P; ++i) {
    const ag::Var& v = params[i].second;
    if (lazy_rows_ && v.has_row_grad()) {  // pending row pieces imply no dense gradient (autograd/var.h)
      kinds[2 * i + 1] = 1;
    } else if (v.has_row_grad() || v.grad().defined()) {
      kinds[2 * i] = 1;
    }
  }
  comm_.allreduce_sum(kinds.data(), static_cast<std::int64_t>(kinds.size()));

  // Dense gradients: one flat buffer in name order, scaled on the way in.
  std::vector<std::size_t> dense;
  std::int64_t dense_elements = 0;
  for (std::size_t i = 0; i < P; ++i) {
    if (kinds[2 * i] == 0 && kinds[2 * i + 1] == 0) continue;
    if (kinds[2 * i + 1] > 0 && kinds[2 * i] == 0) continue;  // row-sparse everywhere
    dense.push_back(i);
    dense_elements += params[i].second.value().numel();
  }
  const float s = static_cast<float>(scale);
  if (!dense.empty()) {
    std::vector<float> flat(static_cast<std::size_t>(dense_elements), 0.0f);
    std::int64_t at = 0;
    for (std::size_t i : dense) {
      const ag::Var& v = params[i].second;
      PR_CHECK_T(ConfigError, v.value().dtype() == DType::f32, "data-parallel training: parameter '", params[i].first,
                 "' is ", dtype_name(v.value().dtype()), "; only f32 gradients are reduced");
      const std::int64_t n = v.value().numel();
      if (v.grad().defined()) {  // grad() makes pending row pieces dense
        const Tensor g = v.grad().contiguous();
        const float* gp = g.data<float>();
        for (std::int64_t k = 0; k < n; ++k) flat[at + k] = gp[k] * s;
      }
      at += n;
    }
    comm_.allreduce_sum(flat.data(), dense_elements);
    at = 0;
    for (std::size_t i : dense) {
      const ag::Var& v = params[i].second;
      Tensor g = Tensor::empty(v.value().shape(), DType::f32);
      std::memcpy(g.data<float>(), flat.data() + at, static_cast<std::size_t>(g.numel()) * sizeof(float));
      at += g.numel();
      ag::Var(v).set_grad(std::move(g));
    }
  }

  // Row-sparse gradients: the union of the ranks' rows, then the [U, d] block over it.
  for (std::size_t i = 0; i < P; ++i) {
    if (!(kinds[2 * i + 1] > 0 && kinds[2 * i] == 0)) continue;
    const ag::Var& v = params[i].second;
    const std::int64_t V = v.value().size(0), d = v.value().size(1);
    PR_CHECK_T(ConfigError, v.value().dtype() == DType::f32, "data-parallel training: parameter '", params[i].first,
               "' is ", dtype_name(v.value().dtype()), "; only f32 gradients are reduced");
    ag::RowGrad local;
    if (v.has_row_grad()) local = v.row_grad();
    std::vector<float> mask(static_cast<std::size_t>(V), 0.0f);
    const std::int64_t R = local.defined() ? local.rows.numel() : 0;
    const std::int32_t* rows = R ? local.rows.data<std::int32_t>() : nullptr;
    for (std::int64_t k = 0; k < R; ++k) mask[rows[k]] = 1.0f;
    comm_.allreduce_sum(mask.data(), V);
    std::vector<std::int32_t> slot(static_cast<std::size_t>(V), -1);
    std::vector<std::int32_t> union_rows;
    for (std::int64_t r = 0; r < V; ++r) {
      if (mask[r] == 0.0f) continue;
      slot[r] = static_cast<std::int32_t>(union_rows.size());
      union_rows.push_back(static_cast<std::int32_t>(r));
    }
    const std::int64_t U = static_cast<std::int64_t>(union_rows.size());
    Tensor values = Tensor::zeros({U, d}, DType::f32);
    float* vp = values.data<float>();
    if (R) {
      const Tensor lv = local.values.contiguous();
      const float* lp = lv.data<float>();
      for (std::int64_t k = 0; k < R; ++k)
        for (std::int64_t c = 0; c < d; ++c) vp[slot[rows[k]] * d + c] = lp[k * d + c] * s;
    }
    comm_.allreduce_sum(vp, U * d);
    ag::Var(v).set_row_grad({Tensor::from_vector(union_rows), values});
  }
}

void GradientReducer::begin(double scale) {
  PR_ASSERT(overlapped());
  scale_ = static_cast<float>(scale);
  wait_seconds_ = 0;
  next_launch_ = 0;
  hook_ = [this](const ag::VarImpl* leaf) { on_ready(leaf); };
  // Buckets from the parameters of this step (surgery may have swapped them since).
  params_ = model_.named_parameters();
  std::vector<Bucket> buckets;
  where_.assign(params_.size(), {0, 0});
  index_.clear();
  for (std::size_t k = params_.size(); k-- > 0;) {
    const ag::Var& v = params_[k].second;
    PR_CHECK_T(ConfigError, v.value().dtype() == DType::f32, "data-parallel training: parameter '", params_[k].first,
               "' is ", dtype_name(v.value().dtype()), "; only f32 gradients are reduced");
    const std::int64_t n = v.value().numel();
    if (buckets.empty() || (buckets.back().elements > 0 && buckets.back().elements + n > bucket_floats_))
      buckets.emplace_back();
    Bucket& b = buckets.back();
    where_[k] = {buckets.size() - 1, b.params.size()};
    b.params.push_back(k);
    b.elements += n;
    index_[v.impl()] = k;
  }
  // Keep the buffers of the last step when the sizes did not change.
  for (std::size_t i = 0; i < buckets.size(); ++i) {
    if (i < buckets_.size()) buckets[i].buffer = std::move(buckets_[i].buffer);
    buckets[i].buffer.resize(static_cast<std::size_t>(buckets[i].elements) + buckets[i].params.size());
  }
  buckets_ = std::move(buckets);
}

void GradientReducer::launch(Bucket& b) {
  float* out = b.buffer.data();
  float* counts = out + b.elements;
  for (std::size_t slot = 0; slot < b.params.size(); ++slot) {
    const ag::Var& v = params_[b.params[slot]].second;
    const std::int64_t n = v.value().numel();
    const bool has = v.has_row_grad() || v.grad().defined();  // grad() makes row pieces dense
    if (has) {
      const Tensor g = v.grad().contiguous();
      const float* gp = g.data<float>();
      for (std::int64_t k = 0; k < n; ++k) out[k] = gp[k] * scale_;
    } else {
      std::fill(out, out + n, 0.0f);
    }
    counts[slot] = has ? 1.0f : 0.0f;
    out += n;
  }
  b.request = comm_.start_allreduce_sum(b.buffer.data(), static_cast<std::int64_t>(b.buffer.size()));
}

void GradientReducer::on_ready(const ag::VarImpl* leaf) {
  const auto it = index_.find(leaf);
  if (it == index_.end()) return;  // a leaf that is not one of the model's parameters
  ++buckets_[where_[it->second].first].ready;
  while (next_launch_ < buckets_.size() &&
         buckets_[next_launch_].ready == static_cast<int>(buckets_[next_launch_].params.size()))
    launch(buckets_[next_launch_++]);
  for (std::size_t i = 0; i < next_launch_; ++i) comm_.test(buckets_[i].request);  // let MPI progress
}

void GradientReducer::finish() {
  const auto t0 = std::chrono::steady_clock::now();
  while (next_launch_ < buckets_.size()) launch(buckets_[next_launch_++]);
  for (Bucket& b : buckets_) {
    comm_.wait(b.request);
    const float* in = b.buffer.data();
    const float* counts = in + b.elements;
    for (std::size_t slot = 0; slot < b.params.size(); ++slot) {
      ag::Var v = params_[b.params[slot]].second;
      const std::int64_t n = v.value().numel();
      if (counts[slot] > 0) {
        Tensor g = Tensor::empty(v.value().shape(), DType::f32);
        std::memcpy(g.data<float>(), in, static_cast<std::size_t>(n) * sizeof(float));
        v.set_grad(std::move(g));
      } else {
        v.set_grad(Tensor());
      }
      in += n;
    }
    b.ready = 0;
    b.request = -1;
  }
  wait_seconds_ = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

std::uint64_t parameters_fingerprint(const nn::Module& model) {
  std::uint32_t crc = 0;
  for (const auto& [name, var] : model.named_parameters()) {
    crc = crc32c(name.data(), name.size(), crc);
    const Tensor v = var.value().contiguous();
    crc = crc32c(v.raw_data(), static_cast<std::size_t>(v.numel()) * dtype_size(v.dtype()), crc);
  }
  return crc;
}

}  // namespace prunerec::recsys
