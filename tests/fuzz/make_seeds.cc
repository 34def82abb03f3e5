// Writes the binary seeds of fuzz_checkpoint (tests/fuzz/corpus/checkpoint/): checkpoints
// of two tiny recommenders written by the real writer, each in both input modes of the
// target (raw file; manifest + data to assemble), and damaged variants of the first.
//
//   build-asan/tests/fuzz/fuzz_make_seeds tests/fuzz/corpus/checkpoint
//
// Deterministic: the same build writes the same bytes (write_checkpoint is deterministic).
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <string>

#include "nn/checkpoint.h"
#include "nn/optim.h"
#include "recsys/batching.h"
#include "recsys/recommender.h"
#include "base/atomic_file.h"
#include "base/crc32c.h"

namespace {

using namespace prunerec;

std::string read_all(const std::string& path) { return read_file(path, std::size_t{1} << 24); }

void write_seed(const std::filesystem::path& dir, const std::string& name, char mode, const std::string& bytes) {
  std::ofstream out(dir / name, std::ios::binary | std::ios::trunc);
  out.put(mode);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

// Mode 1 of the target: [u32 manifest length][manifest][data section].
std::string split_form(const std::string& file) {
  std::uint64_t manifest_size = 0;
  std::memcpy(&manifest_size, file.data() + 16, 8);
  const std::uint64_t data_start = (32 + manifest_size + 63) / 64 * 64;
  const auto len = static_cast<std::uint32_t>(manifest_size);
  std::string out(reinterpret_cast<const char*>(&len), 4);
  out += file.substr(32, manifest_size);
  out += file.substr(data_start, file.size() - 16 - data_start);
  return out;
}

// A model with optimizer moments and training state, as a resumable state file holds.
std::string write_model(const std::filesystem::path& tmp, const pb::ModelConfig& config, bool with_titles) {
  nn::Transformer net(config, DType::f32, 11);
  nn::AdamW opt(net, nn::AdamWOptions{});
  // 8 x 4 = 32 positions (the fused loss needs at least 32 rows: see docs/reliability.md, F1).
  const recsys::Batch b = recsys::make_history_batch({{0, 1, 2, 3}, {3, 4, 5}, {1, 2}, {5, 4, 3, 2}, {0, 5}, {2, 3, 4}, {1}, {4, 0}},
                                                     static_cast<int>(config.max_len()));
  std::vector<std::int32_t> targets(static_cast<std::size_t>(b.ids.numel()), 1);
  net.loss(b.ids, b.pads, Tensor::from_vector(targets, b.ids.shape())).backward();
  opt.clip_and_step(1e-3, 1.0);
  recsys::ItemCatalog catalog;
  for (int i = 0; i < config.vocab_size(); ++i) catalog.add("item" + std::to_string(i));
  if (with_titles)
    for (int i = 0; i < config.vocab_size(); ++i) catalog.set_title(i, "Title " + std::to_string(i));
  pb::TrainingState state;
  state.set_step(1);
  state.set_epoch(0);
  state.set_epoch_batch(1);
  state.set_seed(7);
  state.set_total_steps(10);
  const std::string path = (tmp / "prunerec-fuzz-seed.prc").string();
  recsys::save_recommender(path, net, catalog, {.optimizer = &opt, .state = &state, .metadata = {{"seed", "7"}}});
  return read_all(path);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::cerr << "usage: fuzz_make_seeds DIR\n";
    return 2;
  }
  try {
    const std::filesystem::path dir = argv[1];
    std::filesystem::create_directories(dir);
    const std::filesystem::path tmp = std::filesystem::temp_directory_path();

    pb::ModelConfig small;
    small.set_vocab_size(6);
    small.set_hidden(8);
    small.set_head_dim(4);
    small.set_max_len(4);
    auto* layer = small.add_layers();
    layer->set_num_heads(2);
    layer->set_num_kv_heads(1);
    layer->set_mlp_width(4);
    const std::string good = write_model(tmp, small, true);

    pb::ModelConfig uneven = small;
    uneven.set_tie_embeddings(false);
    auto* no_attention = uneven.add_layers();
    no_attention->set_num_heads(0);
    no_attention->set_num_kv_heads(0);
    no_attention->set_mlp_width(2);
    const std::string good_uneven = write_model(tmp, uneven, false);

    write_seed(dir, "valid_small", 0, good);
    write_seed(dir, "valid_uneven", 0, good_uneven);
    write_seed(dir, "assemble_small", 1, split_form(good));
    write_seed(dir, "assemble_uneven", 1, split_form(good_uneven));
    // Damaged copies of the first: what a crash, a bad disk or a wrong file looks like.
    write_seed(dir, "truncated_header", 0, good.substr(0, 20));
    write_seed(dir, "truncated_middle", 0, good.substr(0, good.size() / 2));
    write_seed(dir, "truncated_trailer", 0, good.substr(0, good.size() - 5));
    for (const std::size_t at : {std::size_t{12}, std::size_t{40}, good.size() - 100, good.size() - 10}) {
      std::string flipped = good;
      flipped[at] = static_cast<char>(flipped[at] ^ 0x10);
      write_seed(dir, "bitflip_" + std::to_string(at), 0, flipped);
    }
    std::string oversized = good;  // the header claims a manifest far beyond the file
    const std::uint64_t huge = std::uint64_t{200} << 20;
    std::memcpy(oversized.data() + 16, &huge, 8);
    const std::uint32_t header_crc = crc32c(oversized.data(), 28);  // a consistent header
    std::memcpy(oversized.data() + 28, &header_crc, 4);
    write_seed(dir, "oversized_manifest", 0, oversized);
    write_seed(dir, "not_a_checkpoint", 0, "user item\n1 2\n");
    std::filesystem::remove(tmp / "prunerec-fuzz-seed.prc");
  } catch (const std::exception& e) {
    std::cerr << "fuzz_make_seeds: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
