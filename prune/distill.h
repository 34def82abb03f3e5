// Recovery after pruning: knowledge distillation from a teacher.
//
//   loss = alpha * CE(student, next item) + (1 - alpha) * T^2 * KL(softmax(teacher/T) || softmax(student/T))
//
// over the whole catalogue at every position, through the fused output-layer loss (the
// student's and the teacher's logits are computed in row chunks, never whole). The
// teacher runs without a tape and without dropout.
#pragma once

#include "nn/transformer.h"
#include "recsys/trainer.h"

namespace prunerec::prune {

// A loss for recsys::train_model. `teacher` must outlive the training run and score the
// same catalogue as the student.
recsys::LossFn distillation_loss(const nn::Transformer& teacher, double alpha, double temperature);

}  // namespace prunerec::prune
