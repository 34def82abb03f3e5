// Test helpers for the data readers: small files written into a fresh temporary folder
// (the real data sets may not be committed), and views of a dataset by raw id.
#pragma once

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>
#include <vector>

#include "recsys/data/dataset.h"
#include "base/error.h"
#include "tests/common/expect_error.h"

namespace prunerec::recsys::testing {

// A folder of its own under ::testing::TempDir(), removed at the end of the test.
class DataFiles {
 public:
  DataFiles() {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    std::string name = std::string("prunerec_data_") + info->test_suite_name() + "_" + info->name();
    for (char& c : name)
      if (c == '/') c = '_';
    root_ = std::filesystem::path(::testing::TempDir()) / name;
    std::filesystem::remove_all(root_);
    std::filesystem::create_directories(root_);
  }
  ~DataFiles() {
    std::error_code ec;
    std::filesystem::remove_all(root_, ec);
  }
  DataFiles(const DataFiles&) = delete;
  DataFiles& operator=(const DataFiles&) = delete;

  // Writes content (bytes as given) to root/name, creating folders; returns the path.
  std::string write(const std::string& name, std::string_view content) const {
    std::filesystem::path p = root_ / name;
    std::filesystem::create_directories(p.parent_path());
    std::ofstream out(p, std::ios::binary);
    out.write(content.data(), static_cast<std::streamsize>(content.size()));
    return p.string();
  }
  std::string path(const std::string& name) const { return (root_ / name).string(); }
  std::string root() const { return root_.string(); }

 private:
  std::filesystem::path root_;
};

// Each user's sequence as raw item ids.
inline std::vector<std::vector<std::string>> raw_sequences(const SequenceDataset& data) {
  std::vector<std::vector<std::string>> out;
  for (const auto& seq : data.sequences) {
    out.emplace_back();
    for (std::int32_t item : seq) out.back().push_back(data.items.raw_ids[static_cast<std::size_t>(item)]);
  }
  return out;
}

using Seqs = std::vector<std::vector<std::string>>;
using Ids = std::vector<std::string>;

using prunerec::testing::error_message;

// read_dataset must throw IoError naming path and line: "path:line: ...".
inline std::string expect_io_error_at(const std::string& path, int line, const ReadOptions& opts = {}) {
  std::string message = error_message<IoError>([&] { read_dataset(path, opts); });
  EXPECT_NE(message.find(path + ":" + std::to_string(line) + ":"), std::string::npos)
      << "message does not name " << path << ":" << line << ": " << message;
  return message;
}

}  // namespace prunerec::recsys::testing
