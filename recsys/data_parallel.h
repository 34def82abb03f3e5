// Data-parallel training over the ranks of a Communicator (base/comm.h): every rank reads
// the data, takes its shard of each global batch, and the gradients are summed so every
// rank takes the same optimizer step.
//
//   shard   = shard_of(global_batch.size(), comm)            rows [begin, end) of the batch
//   loss    = loss_fn(model, make_batch(shard))             mean over the shard's targets
//   loss.backward();                                         local gradient of that mean
//   reducer.reduce(shard_positions / global_positions);      sum over ranks = global mean's
//   opt.step(...)                                            the same step on every rank
//
// Note [data-parallel training]
// ~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
// The global batch and the seed define the run, not the number of ranks N: the epoch plan
// (Note [length buckets] in recsys/batching.h) is computed by every rank, and rank r takes
// the contiguous rows [r B / N, (r+1) B / N) of each batch of B windows. Every loss is a
// mean over the batch's target positions, so a rank's gradient is scaled by its share of
// the global batch's positions (counted from the window lengths, no communication) before
// the sum: N ranks with a batch of B give the gradient of 1 rank with B up to float
// rounding (the shard's own mean, then the weighted sum over ranks, adds in another order).
// The reported loss is the global mean, sum over ranks of loss x positions over the global
// positions. A rank whose shard is empty (a batch smaller than N) contributes zeros.
//
// Which parameters have a gradient is agreed first (one small sum of flags), so a parameter
// no rank touched gets none, as on one process. Row-sparse gradients (Note [lazy AdamW
// rows] in nn/optim.h) are reduced as row sets, not densified: the union of the ranks'
// rows is found by summing a V-long 0/1 mask, each rank scatters its rows into a [U, d]
// block over that union, and the block is summed. Every rank then holds the rows one
// process would hold (the union of the shards' rows is the global batch's rows), so lazy
// AdamW updates the same rows with the same skipped-step catch-up; cost V x 4 + U x d x 4
// bytes instead of V x d x 4. A parameter dense on some rank is made dense on all.
//
// Dropout masks follow the global batch: the trainer passes the shard's first row and the
// global batch's padded length (ForwardOptions::global_row, global_length), and each
// element takes the mask of its place in the global batch (Note [global dropout masks] in
// nn/transformer.h), so a shard drops its rows as one process does; tests/dist checks 2
// ranks against 1 with dropout 0.3.
//
// What the data-parallel run does not reproduce bit for bit across different N (same N
// reproduces itself exactly, Note [deterministic reduction] in base/comm.h):
//   * float rounding of the sums above (tests/dist/dist_test.cc measures it), and of the
//     shard's forward pass, which pads its rows to the shard's longest window, not the
//     global batch's;
//   * the IN_BATCH negative sampler, whose negatives are the batch's targets; it is refused
//     with N > 1 (the other samplers draw from (seed, step) alone, the same on every rank).
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <unordered_map>
#include <vector>

#include "base/comm.h"
#include "nn/module.h"
#include "recsys/batching.h"

namespace prunerec::recsys {

struct Shard {
  std::int64_t begin = 0, end = 0;  // rows [begin, end) of the global batch
  std::int64_t size() const { return end - begin; }
};

// This rank's contiguous part of n rows.
Shard shard_of(std::int64_t n, const Communicator& comm);

// Target positions of the batch make_batch(windows) would build (the sum of the windows'
// lengths), without building it.
std::int64_t positions_of(const TrainBatcher& batcher, const std::vector<std::int32_t>& windows);
// Its padded length T (the longest window, at least 1), for Note [global dropout masks].
std::int64_t length_of(const TrainBatcher& batcher, const std::vector<std::int32_t>& windows);

// Sums a model's gradients over the ranks (Note [data-parallel training]).
//
// Note [gradient buckets]: as PyTorch DDP does, the dense gradients are summed in buckets
// while the backward pass still runs. The parameters, in reverse registration order
// (roughly the order their gradients become final: output side first), are cut into
// buckets of at most 2^20 floats. The autograd engine reports each parameter whose
// gradient is final (Note [leaf-ready hook] in autograd/var.h); when every parameter of
// the next bucket is, the bucket is packed (scaled, plus one "had a gradient" count per
// parameter) and its non-blocking allreduce started. Buckets start in index order on
// every rank (MPI needs the same order of collectives everywhere; a bucket ready early
// waits for the ones before it), and every hook call lets MPI progress the ones in
// flight. After the backward pass, finish() starts what is left (parameters the graph
// did not reach, or every bucket on a rank with an empty shard), waits, and unpacks: a
// parameter no rank gave a gradient gets none, as on one process. Each bucket sums in the
// fixed order of its allreduce, so the same N gives the same bits. Used when every
// gradient is dense; with lazy AdamW rows (row-sparse tables) reduce() runs after the
// backward pass instead.
class GradientReducer {
 public:
  // lazy_rows: whether the optimizer reads row-sparse gradients (nn::AdamWOptions).
  // bucket_floats: the largest bucket of the overlapped form (Note [gradient buckets]).
  GradientReducer(const nn::Module& model, Communicator& comm, bool lazy_rows,
                  std::int64_t bucket_floats = std::int64_t{1} << 20);
  // Multiplies the local gradients by `scale` (this rank's share of the global batch's
  // positions) and replaces them by their sum over ranks. Every rank must call it.
  void reduce(double scale);

  // The overlapped form (Note [gradient buckets]); only when overlapped():
  //   reducer.begin(scale);  loss.backward(Tensor(), reducer.hook());  reducer.finish();
  bool overlapped() const { return !lazy_rows_; }
  void begin(double scale);
  const std::function<void(const ag::VarImpl*)>* hook() const { return &hook_; }
  void finish();
  // Seconds the last finish() spent waiting for the sums (communication not hidden).
  double wait_seconds() const { return wait_seconds_; }
  // Buckets of this step, and how many have started their sum so far.
  std::size_t buckets() const { return buckets_.size(); }
  std::size_t buckets_started() const { return next_launch_; }

 private:
  struct Bucket {
    std::vector<std::size_t> params;  // indices into params_
    std::int64_t elements = 0;
    std::vector<float> buffer;        // gradients, then one count per parameter
    int ready = 0;
    std::int64_t request = -1;
  };
  void on_ready(const ag::VarImpl* leaf);
  void launch(Bucket& bucket);

  const nn::Module& model_;
  Communicator& comm_;
  bool lazy_rows_;
  std::int64_t bucket_floats_;
  std::vector<std::pair<std::string, ag::Var>> params_;
  std::vector<Bucket> buckets_;
  std::vector<std::pair<std::size_t, std::size_t>> where_;  // per parameter: bucket, slot
  std::unordered_map<const ag::VarImpl*, std::size_t> index_;
  std::size_t next_launch_ = 0;
  float scale_ = 1;
  double wait_seconds_ = 0;
  std::function<void(const ag::VarImpl*)> hook_;
};

// CRC32C of every parameter's bytes in name order: ranks that hold the same weights give
// the same value (Communicator::check_same).
std::uint64_t parameters_fingerprint(const nn::Module& model);

}  // namespace prunerec::recsys
