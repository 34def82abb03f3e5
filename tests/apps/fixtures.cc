#include "tests/apps/fixtures.h"

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

namespace prunerec::apps_test {

namespace fs = std::filesystem;

std::string synthetic_user_seq(int users, int items, unsigned seed) {
  std::uint64_t state = seed * 6364136223846793005ull + 1442695040888963407ull;
  auto next = [&](int n) {
    state = state * 6364136223846793005ull + 1442695040888963407ull;
    return static_cast<int>((state >> 33) % static_cast<std::uint64_t>(n));
  };
  std::ostringstream os;
  for (int u = 1; u <= users; ++u) {
    const int start = next(items), length = 6 + next(8);
    os << u;
    for (int k = 0; k < length; ++k) os << ' ' << 100 + (start + k) % items;
    os << '\n';
  }
  return os.str();
}

std::string tiny_recipe(int epochs, int checkpoint_every_steps, double lr) {
  std::ostringstream os;
  os << "model { name: \"tiny\" hidden: 16 head_dim: 8 max_len: 12 num_layers: 2\n"
        "        layer_defaults { num_heads: 2 num_kv_heads: 1 mlp_width: 32 } }\n"
     << "train { epochs: " << epochs << " batch_size: 16 dropout: 0.1 optimizer { lr: " << lr
     << " } eval_every: 1 patience: 50 checkpoint_every_steps: " << checkpoint_every_steps << " seed: 7 }\n"
     << "data { split: LEAVE_ONE_OUT }\n";
  return os.str();
}

std::string tiny_schedule(int recovery_epochs) {
  std::ostringstream os;
  os << "seed: 3\n"
        "calibration { sequences: 32 seed: 7 batch_size: 16 }\n"
        "recovery_defaults { alpha: 0.5 temperature: 1.0\n"
        "  train { epochs: "
     << recovery_epochs
     << " batch_size: 16 dropout: 0.1 optimizer { lr: 3e-3 } eval_every: 1 patience: 5 checkpoint_every_steps: 2 } }\n"
        "stages { name: \"s1\" kind: WIDTH_ATTENTION keep_heads_fraction: 0.5 keep_hidden_fraction: 0.5 }\n"
        "stages { name: \"s2\" kind: WIDTH_MLP keep_mlp_fraction: 0.5 }\n"
        "stages { name: \"s3\" kind: DEPTH keep_layers_fraction: 0.5 }\n";
  return os.str();
}

const Teacher& shared_teacher() {
  static const Teacher teacher = [] {
    const fs::path dir = fs::path(::testing::TempDir()) / ("prunerec_apps_teacher_" + std::to_string(::getpid()));
    fs::remove_all(dir);
    fs::create_directories(dir);
    Teacher t;
    t.data = (dir / "seq.txt").string();
    t.model = (dir / "teacher.prc").string();
    std::ofstream(t.data) << synthetic_user_seq();
    const std::string recipe = (dir / "recipe.pbtxt").string();
    std::ofstream(recipe) << tiny_recipe(3, 0);
    const RunResult r =
        run_prunerec({"train", "--data", t.data, "--config", recipe, "--out", t.model, kThreads, "--quiet"});
    if (r.exit_code != 0) ADD_FAILURE() << "training the shared teacher failed:\n" << r.err;
    std::atexit([] {
      std::error_code ec;
      fs::remove_all(fs::path(::testing::TempDir()) / ("prunerec_apps_teacher_" + std::to_string(::getpid())), ec);
    });
    return t;
  }();
  return teacher;
}

}  // namespace prunerec::apps_test
