// Inputs of the subprocess tests: a small synthetic data set with a clear next-item
// structure, a tiny recipe and schedule, and a tiny teacher trained once per test process.
// (The real data sets may not be committed or copied into tests.)
#pragma once

#include <string>

#include "tests/apps/cli_runner.h"

namespace prunerec::apps_test {

// "user item item ..." lines (user-seq): `users` users over `items` items (raw ids 100..),
// each a run of consecutive items (mod items) of length 6..13 from a seeded start.
std::string synthetic_user_seq(int users = 80, int items = 40, unsigned seed = 1);

// The "small" preset's shape, shrunk: 2 layers, hidden 16, 2 heads sharing 1 KV head,
// MLP 32, max_len 12; batch 16, dropout 0.1 (so resuming must replay dropout masks).
std::string tiny_recipe(int epochs, int checkpoint_every_steps, double lr = 5e-3);

// Three stages (heads + hidden, MLP, depth) with one or two recovery epochs each and a
// checkpoint every 2 steps, calibration on 32 sequences.
std::string tiny_schedule(int recovery_epochs = 2);

// A teacher trained on synthetic_user_seq() with tiny_recipe(3, 0), and that data file:
// written once per process under ::testing::TempDir(); tests must not modify them.
struct Teacher {
  std::string data;   // the data file it was trained on
  std::string model;  // the best model
};
const Teacher& shared_teacher();

// The common flags of a quiet single-threaded run (results do not depend on the thread
// count, but one thread leaves the other core to the rest of the test suite).
inline constexpr const char* kThreads = "--threads=1";

}  // namespace prunerec::apps_test
