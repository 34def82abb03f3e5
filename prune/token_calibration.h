// Calibration on token sequences, for pretrained language models (an imported Qwen2 or
// Llama model, whose logits are over its tokenizer's vocabulary).
//
//   const auto seqs = prune::read_token_sequences("calib.tokens", model.vocab_size());
//   const prune::Calibration calib = prune::token_calibration(seqs, 512, config);
//   prune::head_scores(model, calib, "kl", 1.0, seed);   // any estimator of importance.h
//
// Note [token calibration]
// ~~~~~~~~~~~~~~~~~~~~~~~~
// A token sequence is calibrated on exactly as a training sequence of item tokens is
// (make_calibration): config.sequences sequences are drawn with config.seed, each gives
// its last window of at most max_len inputs with the next token as target at every
// position, and the windows are batched by length. The estimators of prune/importance.h
// then run unchanged: their "next-item distribution" is the model's next-token
// distribution over the vocabulary (docs/pruning.md). The file format: one sequence per
// line, token ids as decimal integers separated by spaces or tabs; empty lines and lines
// starting with '#' are skipped; a sequence needs at least 2 tokens (one target). Text is
// turned into such a file with `prunerec tokenize --json` (docs/import.md).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "prune/importance.h"

namespace prunerec::prune {

// IoError naming the file and line for a token outside [0, vocab_size), a word that is not
// a non-negative integer, a line with fewer than 2 tokens, or a file without a sequence.
std::vector<std::vector<std::int32_t>> read_token_sequences(const std::string& path, std::int64_t vocab_size);

// Note [token calibration]: make_calibration on the token sequences.
Calibration token_calibration(const std::vector<std::vector<std::int32_t>>& sequences, int max_len,
                              const pb::CalibrationConfig& config);

}  // namespace prunerec::prune
