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
// computed by one rank), at a 1/N share of the teacher's work. Without the cache each rank
// runs the teacher on its own shard of every step.
#pragma once

#include <memory>

#include "nn/transformer.h"
#include "recsys/trainer.h"

namespace prunerec::prune {

// Final hidden states of a fixed model for every training window, [positions, d].
class TeacherCache {
 public:
  explicit TeacherCache(const nn::Transformer& teacher) : teacher_(teacher) {}
  // Computes the states of every window; a later call with the same windows (from any
  // batcher over the same training data) keeps them.
  void fill(const recsys::TrainBatcher& batcher);
  bool ready() const { return states_.defined(); }
  // [B*T, d] states for a training batch (zeros at padding).
  Tensor states_for(const recsys::Batch& batch) const;
  std::int64_t bytes() const { return states_.defined() ? static_cast<std::int64_t>(states_.nbytes()) : 0; }

 private:
  const nn::Transformer& teacher_;
  std::vector<recsys::Window> windows_;  // the windows the states belong to
  Tensor states_;                      // [total window positions, d]
  std::vector<std::int64_t> offsets_;  // first row of each window
};

// A loss for recsys::train_model. `teacher` (and `cache`, when given) must outlive the
// training run and score the same catalogue as the student. With a cache the loss reads
// the teacher's states from it (filled by the trainer's on_start hook, see
// distillation_on_start).
recsys::LossFn distillation_loss(const nn::Transformer& teacher, double alpha, double temperature,
                                 const TeacherCache* cache = nullptr);
std::function<void(const recsys::TrainBatcher&)> distillation_on_start(TeacherCache* cache);

}  // namespace prunerec::prune
