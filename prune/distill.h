// Recovery after pruning: knowledge distillation from a teacher.
//
//   loss = alpha * CE(student, next item) + (1 - alpha) * T^2 * KL(softmax(teacher/T) || softmax(student/T))
//
// over the whole catalogue at every position, through the fused output-layer loss (the
// student's and the teacher's logits are computed in row chunks, never whole). The
// teacher runs without a tape and without dropout.
//
// Note [teacher cache]: the teacher is fixed during a recovery, so its final hidden states
// for a training window never change. Distillation computes them once for every window
// (in window order, in fixed batches, so the values do not depend on the epoch's batch
// composition or on where a resumed run started) and then only runs the teacher's output
// projection per step, inside the fused loss. That removes the teacher's transformer
// layers from every step (a quarter to a third of a recovery step's work).
//
// Under mpirun (Note [data-parallel training] in recsys/data_parallel.h) the fixed batches
// of 64 windows are dealt to the ranks in turn: each rank runs the teacher on its own
// part, writes it into a zeroed table, and the table is summed over ranks, so every rank
// ends with the table one process computes, bit for bit (each batch is the same batch,
// computed by one rank; the other ranks add exact zeros), at a 1/N share of the teacher's
// work. The same holds for both modes: hidden states, and top-k entries (items as int32,
// their log-probabilities and the rest's log-mass). Without the cache each rank runs the
// teacher on its own shard of every step.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "nn/transformer.h"
#include "recsys/trainer.h"

namespace prunerec::prune {

// What the cache keeps per training position: the teacher's final hidden state (top_k 0;
// 4d bytes in f32), or its top_k items at `temperature` with their log-probabilities and
// the log of the rest's mass (Note [top-k distillation] in autograd/ops/loss.cc; 8 top_k
// + 4 bytes, and no teacher output layer per step).
struct CacheMode {
  int top_k = 0;
  double temperature = 1.0;
  bool operator==(const CacheMode&) const = default;
};

// The teacher's view of every training window, computed once (Note [teacher cache]).
class TeacherCache {
 public:
  explicit TeacherCache(const nn::Transformer& teacher) : teacher_(teacher) {}
  // Computes every window's entries; a later call with the same windows (from any batcher
  // over the same training data) and the same mode keeps them.
  void fill(const recsys::TrainBatcher& batcher, const CacheMode& mode = {});
  bool ready() const { return states_.defined() || items_.defined(); }
  const CacheMode& mode() const { return mode_; }
  // States mode: [B*T, d] states for a training batch (zeros at padding).
  Tensor states_for(const recsys::Batch& batch) const;
  // Top-k mode: items i32 [B*T, k], log-probabilities [B*T, k] and the rest's log-mass
  // [B*T] for a training batch (padding rows hold items 0..k-1 and zeros: they are ignored).
  struct TopK {
    Tensor items, logp, rest;
  };
  TopK top_k_for(const recsys::Batch& batch) const;
  std::int64_t bytes() const;

 private:
  void fill_states(const recsys::TrainBatcher& batcher);
  void fill_top_k(const recsys::TrainBatcher& batcher);

  const nn::Transformer& teacher_;
  CacheMode mode_;
  std::vector<recsys::Window> windows_;  // the windows the entries belong to
  Tensor states_;                      // [total window positions, d]
  Tensor items_, logp_, rest_;         // [positions, k] i32, [positions, k] f32, [positions] f32
  std::vector<std::int64_t> offsets_;  // first row of each window
};

// A loss for recsys::train_model. `teacher` (and `cache`, when given) must outlive the
// training run and score the same catalogue as the student. With a cache the loss reads
// the teacher from it (filled by the trainer's on_start hook, see distillation_on_start);
// top_k > 0 distils from the teacher's top_k items and needs the cache.
recsys::LossFn distillation_loss(const nn::Transformer& teacher, double alpha, double temperature,
                                 const TeacherCache* cache = nullptr, int top_k = 0);
std::function<void(const recsys::TrainBatcher&)> distillation_on_start(TeacherCache* cache, const CacheMode& mode = {});

// The k largest of scores[0..n) as item indices, best first, ties to the lower item: the
// first k of a full stable sort by descending score, found with a k-item heap in
// O(n log k) (the top-k cache runs it at every training position over the catalogue).
std::vector<std::int32_t> top_k_items(const float* scores, std::int64_t n, std::int64_t k);

}  // namespace prunerec::prune
