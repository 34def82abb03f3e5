// Fuzz target for the checkpoint loader: nn::read_checkpoint (read and mapped),
// read_checkpoint_manifest, nn::load_model and recsys::load_recommender, then one
// recommendation from the loaded model and a resume-style optimizer restore.
//
// The first input byte picks how the rest becomes a file (in a memfd, opened by path as
// /proc/self/fd/N, so nothing touches the disk):
//   even: the rest is the file, byte for byte (checksums, truncation, garbage);
//   odd:  the rest is [u32 manifest length, little-endian][serialized pb::Manifest][data]
//         and the target assembles a well-formed container around it (Note [checkpoint
//         layout] in nn/checkpoint_file.h): header and manifest checksums right, every
//         tensor record's crc32c recomputed from the data when its range lies inside
//         the data. Random bytes almost never pass a crc32c, so this mode is what lets the
//         fuzzer reach the record validation, the model config and load_model's checks.
// Checked beyond "no crash": read and mapped reads agree (both fail, or both give the same
// tensors, bit for bit), and a full read that succeeds implies a manifest read that does.
#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/io/zero_copy_stream_impl_lite.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

#include "nn/checkpoint.h"
#include "nn/checkpoint_file.h"
#include "nn/optim.h"
#include "recsys/recommender.h"
#include "base/crc32c.h"
#include "tests/fuzz/fuzz_common.h"

namespace prunerec::fuzz {
namespace {

constexpr std::uint64_t kAlign = 64;

void put_u32(std::string& s, std::uint32_t v) { s.append(reinterpret_cast<const char*>(&v), 4); }
void put_u64(std::string& s, std::uint64_t v) { s.append(reinterpret_cast<const char*>(&v), 8); }

// A well-formed container around a manifest and a data section (mode "odd").
std::string assemble(std::string_view rest) {
  std::uint32_t manifest_len = 0;
  if (rest.size() >= 4) std::memcpy(&manifest_len, rest.data(), 4);
  rest.remove_prefix(std::min<std::size_t>(4, rest.size()));
  manifest_len = static_cast<std::uint32_t>(std::min<std::size_t>(manifest_len, rest.size()));
  std::string manifest_bytes(rest.substr(0, manifest_len));
  const std::string_view data = rest.substr(manifest_len);

  pb::Manifest manifest;
  if (manifest.ParseFromString(manifest_bytes)) {
    for (auto& rec : *manifest.mutable_tensors()) {
      if (rec.offset() <= data.size() && rec.nbytes() <= data.size() - rec.offset())
        rec.set_crc32c(rec.nbytes() > 0 ? crc32c(data.data() + rec.offset(), rec.nbytes()) : 0u);
    }
    manifest_bytes.clear();
    google::protobuf::io::StringOutputStream stream(&manifest_bytes);
    google::protobuf::io::CodedOutputStream coded(&stream);
    coded.SetSerializationDeterministic(true);
    manifest.SerializeToCodedStream(&coded);
  }
  std::string file = "PRUNEREC";
  put_u32(file, 1);  // format version
  put_u32(file, 0);  // flags
  put_u64(file, manifest_bytes.size());
  put_u32(file, crc32c(manifest_bytes.data(), manifest_bytes.size()));
  put_u32(file, crc32c(file.data(), 28));
  file += manifest_bytes;
  file.resize((file.size() + kAlign - 1) / kAlign * kAlign, '\0');
  file += data;
  put_u64(file, data.size());
  file += "PRNR-END";
  return file;
}

// The file in a memfd, named by a path the loaders can open.
class MemFile {
 public:
  MemFile() : fd_(::memfd_create("prunerec-fuzz-checkpoint", MFD_CLOEXEC)) {
    if (fd_ < 0) finding("memfd", "memfd_create failed");
    path_ = "/proc/self/fd/" + std::to_string(fd_);
  }
  void set(std::string_view bytes) const {
    if (::ftruncate(fd_, 0) != 0 || ::pwrite(fd_, bytes.data(), bytes.size(), 0) != static_cast<ssize_t>(bytes.size()))
      finding("memfd", "write failed");
  }
  const std::string& path() const { return path_; }

 private:
  int fd_;
  std::string path_;
};

bool same_tensors(const nn::LoadedCheckpoint& a, const nn::LoadedCheckpoint& b) {
  if (a.tensors.size() != b.tensors.size()) return false;
  for (std::size_t i = 0; i < a.tensors.size(); ++i) {
    const Tensor& x = a.tensors[i].tensor;
    const Tensor& y = b.tensors[i].tensor;
    if (a.tensors[i].name != b.tensors[i].name || x.shape() != y.shape() || x.dtype() != y.dtype()) return false;
    if (x.nbytes() > 0 && std::memcmp(x.raw_data(), y.raw_data(), x.nbytes()) != 0) return false;
  }
  return true;
}

}  // namespace
}  // namespace prunerec::fuzz

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  prunerec::fuzz::silence_protobuf_logging();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace prunerec;
  static const fuzz::MemFile file;
  if (size == 0) return 0;
  const std::string_view rest = fuzz::as_text(data + 1, size - 1);
  file.set((data[0] & 1) ? fuzz::assemble(rest) : std::string(rest));
  const std::string& path = file.path();

  nn::LoadedCheckpoint read, mapped;
  const bool read_ok = fuzz::expect_errors("read_checkpoint", [&] { read = nn::read_checkpoint(path); });
  const bool mapped_ok = fuzz::expect_errors("read_checkpoint(mmap)", [&] { mapped = nn::read_checkpoint(path, {.mmap = true}); });
  fuzz::require(read_ok == mapped_ok, "read_checkpoint", "read and mapped read disagree on success");
  if (read_ok) fuzz::require(fuzz::same_tensors(read, mapped), "read_checkpoint", "read and mapped read give different tensors");
  const bool manifest_ok = fuzz::expect_errors("read_checkpoint_manifest", [&] { (void)nn::read_checkpoint_manifest(path); });
  if (read_ok) fuzz::require(manifest_ok, "read_checkpoint_manifest", "the full read succeeded, the manifest read failed");
  read = {};
  mapped = {};
  if (!read_ok) return 0;
  // Finding F3 (docs/reliability.md, fixed): a tiny file claiming a model of many GB must
  // be refused before the model is allocated; the run's memory limit checks it.

  // What resuming a run does with the file: the model, then its optimizer state.
  fuzz::expect_errors("load_model + restore_optimizer", [&] {
    nn::LoadedModel m = nn::load_model(path);
    nn::AdamW opt(*m.model, nn::adamw_options(pb::OptimizerConfig()));
    nn::restore_optimizer(opt, m);
  });
  // What eval/recommend do: the model with its catalogue, then one answer.
  fuzz::expect_errors("load_recommender + recommend", [&] {
    const recsys::Recommender rec = recsys::load_recommender(path, /*mmap=*/true);
    // Finding F2 (docs/reliability.md, fixed): finite weights large enough to overflow
    // give NaN activations, which must reach exp_fast without undefined behaviour.
    std::vector<std::string> history(rec.catalog.raw_ids.begin(),
                                     rec.catalog.raw_ids.begin() + std::min<std::int32_t>(3, rec.catalog.size()));
    history.push_back("not-an-item");
    std::vector<std::string> unknown;
    const auto top = recsys::recommend(rec, history, 5, true, &unknown);
    if (rec.catalog.find("not-an-item") < 0)
      fuzz::require(unknown.size() == 1, "recommend", "the unknown id was not reported");
    for (const auto& r : top)
      fuzz::require(r.item >= 0 && r.item < rec.catalog.size(), "recommend", "an answer outside the catalogue");
  });
  return 0;
}
