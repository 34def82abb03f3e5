// Recovery of a pruned title-mode model: distillation from the teacher on the vocabulary
// logits at the positions that predict target tokens.
//
//   batch: prompt ++ target sequences (recsys::make_title_batch), targets -1 on the prompt
//   rows = nn::target_rows(targets)                 the positions that predict a target token
//   h_s  = student.hidden(ids)[rows]                [N, d_s]   (with dropout, on the tape)
//   h_t  = teacher.hidden(ids)[rows]                [N, d_t]   (no tape, no dropout)
//   loss = alpha * CE(h_s E_s^T, next token) + (1 - alpha) * T^2 * KL(softmax(h_t E_t^T / T) || softmax(h_s E_s^T / T))
//
// through ag::linear_distill_loss (the vocabulary logits are computed in row chunks, never
// whole), E the tied embedding (or the head) of each model. It is the item-token
// distillation (prune/distill.h) with the vocabulary in place of the catalogue and the
// target rows in place of every position; the loss on the target rows only is
// Transformer::loss's (Note [loss on the target rows]), so alpha = 1 is exactly the
// training loss of title mode.
//
// Note [title teacher per batch]: the teacher's hidden states are computed for every batch
// (one forward pass without a tape), not cached as item-token mode does (Note [teacher
// cache]): title batches are regrouped every epoch (Note [length-grouped batches]) and a
// sequence's states would need their own table of prompt lengths; the teacher's forward is
// a third of a student step, and what a cache would save is that third. No top-k mode.
#pragma once

#include "nn/transformer.h"
#include "recsys/title/title_train.h"

namespace prunerec::prune {

// A loss for recsys::train_title_model. `teacher` must outlive the training run and have
// the student's vocabulary. ConfigError for alpha outside [0, 1] or a temperature <= 0.
recsys::TitleLossFn title_distillation_loss(const nn::Transformer& teacher, double alpha, double temperature);

// The mean of that loss (no dropout, no tape) over `sequences` in batches of batch_size,
// weighted by target tokens: what a recovery lowers.
double mean_title_distillation_loss(const nn::Transformer& student, const nn::Transformer& teacher,
                                    const std::vector<recsys::TitleSequence>& sequences, double alpha,
                                    double temperature, std::int64_t batch_size = 32);

}  // namespace prunerec::prune
