// Fuzz target for the data readers (recsys/data/dataset.h), built once per format:
// PRUNEREC_FUZZ_FORMAT is the ReadOptions::format under test ("auto" tries detection).
//
// Input (Note [input sections] in fuzz_common.h): the data file, then optional side files
// after lines "%%":
//   pairs, user-seq, item-seq, movielens-dat, csv, auto:
//                 data.<ext>  %%  titles TSV (--titles)  %%  item map (--item-map)
//   recbole:      data.inter  %%  data.item (found beside it)
//   lcrec-json:   data.inter.json  %%  data.item2id  %%  data.user2id (found beside it)
//   d3-csv:       root/train/data.csv  %%  root/valid/data.csv  %%  root/test/data.csv
//                 %%  root/info/data.txt   (read as the folder `root`)
// Each input is read twice: strictly, and with skip_bad_lines and DuplicatePolicy::kKeepAll.
// A dataset that reads goes on as the command line takes it: stats, k-core, both splits,
// a batch of training windows. Checked beyond "no crash": a strict read that succeeds
// implies a lenient read that succeeds with at least as many interactions, and every
// dataset passes check_invariants().
#include <algorithm>
#include <cstdint>
#include <string>
#include <string_view>

#include "recsys/batching.h"
#include "recsys/data/dataset.h"
#include "recsys/data/filter.h"
#include "recsys/data/split.h"
#include "recsys/data/stats.h"
#include "tests/fuzz/fuzz_common.h"

#ifndef PRUNEREC_FUZZ_FORMAT
#error "define PRUNEREC_FUZZ_FORMAT (a ReadOptions::format name)"
#endif

namespace prunerec::fuzz {
namespace {

constexpr std::string_view kFormat = PRUNEREC_FUZZ_FORMAT;

// The data file's name for a format: detection and side-file lookup go by name.
std::string data_file_name() {
  if (kFormat == "movielens-dat") return "data.dat";
  if (kFormat == "csv") return "data.csv";
  if (kFormat == "recbole") return "data.inter";
  if (kFormat == "lcrec-json") return "data.inter.json";
  return "data.txt";
}

// Writes the input's files; returns the path to give read_dataset.
std::string write_files(const ScratchDir& dir, std::string_view input, recsys::ReadOptions& opts) {
  if (kFormat == "d3-csv") {
    const auto parts = sections(input, 4);
    const char* names[] = {"root/train/data.csv", "root/valid/data.csv", "root/test/data.csv", "root/info/data.txt"};
    for (std::size_t i = 0; i < parts.size(); ++i) dir.write(names[i], parts[i]);
    return dir.path("root");
  }
  if (kFormat == "recbole") {
    const auto parts = sections(input, 2);
    const std::string path = dir.write(data_file_name(), parts[0]);
    if (parts.size() > 1) dir.write("data.item", parts[1]);
    return path;
  }
  if (kFormat == "lcrec-json") {
    const auto parts = sections(input, 3);
    const std::string path = dir.write(data_file_name(), parts[0]);
    if (parts.size() > 1) dir.write("data.item2id", parts[1]);
    if (parts.size() > 2) dir.write("data.user2id", parts[2]);
    return path;
  }
  const auto parts = sections(input, 3);
  const std::string path = dir.write(data_file_name(), parts[0]);
  if (parts.size() > 1) opts.titles_path = dir.write("titles.tsv", parts[1]);
  if (parts.size() > 2) opts.item_map_path = dir.write("item_map.tsv", parts[2]);
  return path;
}

// What the command line does with a dataset after reading it.
void use_dataset(const recsys::SequenceDataset& read) {
  expect_errors("compute_stats", [&] {
    const recsys::DatasetStats stats = recsys::compute_stats(read);
    (void)recsys::format_stats(stats);
    (void)recsys::stats_json(stats);
  });
  recsys::SequenceDataset data = read;
  bool filtered = expect_errors("kcore_filter", [&] { recsys::kcore_filter(data, 2); });
  if (filtered) expect_errors("check_invariants after kcore", [&] { data.check_invariants(); });
  const recsys::SequenceDataset& source = filtered ? data : read;
  for (const bool temporal : {false, true}) {
    expect_errors(temporal ? "temporal_split" : "leave_one_out", [&] {
      const recsys::DataSplit split =
          temporal ? recsys::temporal_split(source, 0.2, 0.2) : recsys::leave_one_out(source);
      require(split.num_items == source.items.size(), "split", "num_items differs from the catalogue");
      for (const auto& seq : split.train)
        for (std::int32_t item : seq) require(item >= 0 && item < split.num_items, "split", "train item out of range");
      if (split.train.empty()) return;
      const recsys::TrainBatcher batcher(split.train, 6, 3, /*all_windows=*/true);
      const auto plan = batcher.epoch_plan(1, 0);
      if (!plan.empty()) (void)batcher.make_batch(plan.front());
      if (!split.valid.empty()) {
        std::vector<std::int64_t> rows = {0};
        (void)recsys::make_eval_batch(source, split.valid, rows, 6);
      }
    });
  }
}

}  // namespace
}  // namespace prunerec::fuzz

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  prunerec::fuzz::silence_protobuf_logging();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace prunerec;
  static const fuzz::ScratchDir dir;
  const std::string_view input = fuzz::as_text(data, size);

  std::int64_t strict_interactions = -1;
  for (const bool lenient : {false, true}) {
    dir.clear();
    recsys::ReadOptions opts;
    opts.format = std::string(fuzz::kFormat);
    opts.skip_bad_lines = lenient;
    opts.duplicates = lenient ? recsys::DuplicatePolicy::kKeepAll : recsys::DuplicatePolicy::kDropExact;
    const std::string path = fuzz::write_files(dir, input, opts);
    recsys::ReadReport report;
    recsys::SequenceDataset read;
    const bool ok = fuzz::expect_errors("read_dataset", [&] { read = recsys::read_dataset(path, opts, &report); });
    if (!ok) {
      fuzz::require(!(lenient && strict_interactions >= 0), "read_dataset",
                    "a file that reads strictly fails with skip_bad_lines");
      continue;
    }
    fuzz::expect_errors("check_invariants", [&] { read.check_invariants(); });
    fuzz::require(read.num_users() > 0 && read.items.size() > 0, "read_dataset", "an empty dataset was returned");
    if (!lenient) {
      strict_interactions = read.num_interactions();
      fuzz::require(report.bad_lines == 0, "read_dataset", "a strict read counted bad lines");
    } else if (strict_interactions >= 0) {
      fuzz::require(read.num_interactions() >= strict_interactions, "read_dataset",
                    "keeping duplicates and skipping bad lines lost interactions of a clean file");
    }
    fuzz::use_dataset(read);
  }
  return 0;
}
