// nn/checkpoint_file: the single-file checkpoint container (Note [checkpoint layout]).
//
// Everything here is exact: tensors must come back bit for bit, and every damaged file
// must give an IoError naming the file, never a crash or a silently wrong tensor.
#include "nn/checkpoint_file.h"

#include <google/protobuf/unknown_field_set.h>
#include <google/protobuf/util/message_differencer.h>
#include <signal.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <concepts>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "tensor/allocator.h"
#include "base/error.h"
#include "base/crc32c.h"
#include "tests/common/expect_error.h"
#include "tests/common/file_size_limit.h"
#include "tensor/rng.h"

namespace prunerec::nn {
namespace {

namespace fs = std::filesystem;
using google::protobuf::util::MessageDifferencer;
using prunerec::testing::error_message;
using prunerec::testing::FileSizeLimit;

// ---- helpers --------------------------------------------------------------------------

template <class T>
Tensor from_bits(const std::vector<T>& values, const Shape& shape) {
  return Tensor::from_vector<T>(values, shape);
}

float float_from_bits(std::uint32_t bits) {
  float f;
  std::memcpy(&f, &bits, sizeof f);
  return f;
}

// Tensors of all four dtypes, with awkward values and layouts.
std::vector<NamedTensor> sample_tensors() {
  Rng rng(7);
  std::vector<float> f32(15);
  for (auto& v : f32) v = static_cast<float>(-3.0 + 6.0 * rng.uniform());
  f32[0] = -0.0f;
  f32[1] = std::numeric_limits<float>::infinity();
  f32[2] = float_from_bits(0x7fc01234u);  // NaN with a payload: must survive bit for bit
  f32[3] = std::numeric_limits<float>::denorm_min();
  std::vector<std::int32_t> i32 = {0, -1, 1, std::numeric_limits<std::int32_t>::min(),
                                   std::numeric_limits<std::int32_t>::max(), 42, -42};
  std::vector<std::int64_t> i64(24);
  for (std::size_t i = 0; i < i64.size(); ++i) i64[i] = static_cast<std::int64_t>(rng.next_u64());
  i64[0] = std::numeric_limits<std::int64_t>::min();
  i64[1] = std::numeric_limits<std::int64_t>::max();
  std::vector<double> f64(16);
  for (auto& v : f64) v = rng.normal();
  f64[5] = -std::numeric_limits<double>::infinity();
  std::vector<float> wide(24);
  for (std::size_t i = 0; i < wide.size(); ++i) wide[i] = static_cast<float>(i) * 0.5f - 3.25f;
  std::vector<double> tall(15);
  for (std::size_t i = 0; i < tall.size(); ++i) tall[i] = 1.0 / static_cast<double>(i + 1);

  std::vector<NamedTensor> out;
  out.push_back({"blocks.0.attn.q_proj.weight", from_bits(f32, {3, 5})});
  out.push_back({"ids", from_bits(i32, {7})});
  out.push_back({"optim.step_counts", from_bits(i64, {2, 3, 4})});
  out.push_back({"f64.square", from_bits(f64, {4, 4})});
  out.push_back({"scalar", Tensor::scalar(2.5, DType::f32)});
  out.push_back({"empty", Tensor::zeros({0, 3}, DType::f32)});
  out.push_back({"transposed", from_bits(wide, {4, 6}).transpose(0, 1)});    // [6,4], strided
  out.push_back({"narrowed", from_bits(tall, {5, 3}).narrow(0, 1, 3)});      // offset view
  out.push_back({"every_other_row", from_bits(tall, {5, 3}).slice(0, 0, 5, 2)});  // [3,3], step 2
  out.push_back({"scalar.i64", Tensor::scalar(-7, DType::i64)});
  return out;
}

pb::Manifest sample_manifest() {
  pb::Manifest m;
  pb::ModelConfig* c = m.mutable_config();
  c->set_name("student");
  c->set_vocab_size(1234);
  c->set_hidden(64);
  c->set_rope_theta(500000.0);
  c->set_tie_embeddings(false);
  for (int heads : {4, 2}) {  // uneven layers
    pb::LayerConfig* layer = c->add_layers();
    layer->set_num_heads(heads);
    layer->set_num_kv_heads(heads / 2);
    layer->set_mlp_width(96 + heads);
  }
  pb::TrainingState* s = m.mutable_state();
  s->set_step(1200);
  s->set_epoch(3);
  s->set_seed(0xdeadbeefcafeULL);
  s->set_best_metric(0.3125);
  s->set_phase("distill stage 2");
  for (double v : {0.1, 0.2, 0.3125}) s->add_history(v);
  for (double v : {5.5, 4.25}) s->add_loss_curve(v);
  m.mutable_catalog()->add_raw_ids("item-a");
  m.mutable_catalog()->add_raw_ids("item-b");
  m.set_created_by("prunerec 0.1.0");
  (*m.mutable_metadata())["recipe"] = "lr: 1e-3\nbatch: 256\n";
  (*m.mutable_metadata())["data"] = "/data/ml-1m";
  (*m.mutable_metadata())["empty"] = "";
  return m;
}

// A small checkpoint for the exhaustive damage tests.
std::vector<NamedTensor> small_tensors() {
  std::vector<NamedTensor> out;
  out.push_back({"w", from_bits(std::vector<float>{1.5f, -2.0f, 3.25f, 0.0f, -0.0f, 7.0f}, {2, 3})});
  out.push_back({"idx", from_bits(std::vector<std::int64_t>{9, -9}, {2})});
  out.push_back({"s", Tensor::scalar(0.125, DType::f64)});
  out.push_back({"none", Tensor::zeros({0}, DType::i32)});
  out.push_back({"b", from_bits(std::vector<std::int32_t>{1, 2, 3}, {3})});
  return out;
}

pb::Manifest small_manifest() {
  pb::Manifest m;
  m.mutable_config()->set_hidden(8);
  (*m.mutable_metadata())["k"] = "v";
  m.mutable_state()->set_step(5);
  return m;
}

std::string slurp(const std::string& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

void spit(const std::string& p, const std::string& content) {
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out.write(content.data(), static_cast<std::streamsize>(content.size()));
}

std::uint64_t align64(std::uint64_t x) { return (x + 63) / 64 * 64; }

void put_u32(std::string& s, std::size_t at, std::uint32_t v) { std::memcpy(s.data() + at, &v, 4); }
void put_u64(std::string& s, std::size_t at, std::uint64_t v) { std::memcpy(s.data() + at, &v, 8); }
std::uint32_t get_u32(const std::string& s, std::size_t at) {
  std::uint32_t v;
  std::memcpy(&v, s.data() + at, 4);
  return v;
}
std::uint64_t get_u64(const std::string& s, std::size_t at) {
  std::uint64_t v;
  std::memcpy(&v, s.data() + at, 8);
  return v;
}

// Recomputes the header checksum after a test patched a header field, so the field's own
// check is what fires.
void reseal_header(std::string& file) { put_u32(file, 28, crc32c(file.data(), 28)); }

// An independent encoder of Note [checkpoint layout], to craft files the writer never
// produces (hostile manifests with valid checksums).
struct RawCheckpoint {
  std::uint32_t version = 1;
  std::uint32_t flags = 0;
  std::string manifest;  // serialized
  std::string data;      // the data section

  std::string encode() const {
    std::string out(32, '\0');
    std::memcpy(out.data(), "PRUNEREC", 8);
    put_u32(out, 8, version);
    put_u32(out, 12, flags);
    put_u64(out, 16, manifest.size());
    put_u32(out, 24, crc32c(manifest.data(), manifest.size()));
    reseal_header(out);
    out += manifest;
    out.resize(align64(out.size()), '\0');
    out += data;
    std::string trailer(16, '\0');
    put_u64(trailer, 0, data.size());
    std::memcpy(trailer.data() + 8, "PRNR-END", 8);
    return out + trailer;
  }
};

pb::TensorRecord* add_record(pb::Manifest& m, const std::string& name, pb::DType dtype,
                             std::vector<std::int64_t> shape, std::uint64_t offset, std::uint64_t nbytes,
                             std::uint32_t crc = 0) {
  pb::TensorRecord* r = m.add_tensors();
  r->set_name(name);
  r->set_dtype(dtype);
  for (std::int64_t d : shape) r->add_shape(d);
  r->set_offset(offset);
  r->set_nbytes(nbytes);
  r->set_crc32c(crc);
  return r;
}

// A valid manifest + data section with one f32 [2,2] tensor "a", to build hostile variants on.
RawCheckpoint one_tensor_file(pb::Manifest* manifest_out = nullptr) {
  RawCheckpoint raw;
  raw.data.resize(16);
  const float values[4] = {1, 2, 3, 4};
  std::memcpy(raw.data.data(), values, 16);
  pb::Manifest m;
  m.set_format_version(1);
  add_record(m, "a", pb::F32, {2, 2}, 0, 16, crc32c(raw.data.data(), 16));
  raw.manifest = m.SerializeAsString();
  if (manifest_out != nullptr) *manifest_out = m;
  return raw;
}

bool starts_with(const std::string& s, const std::string& prefix) { return s.rfind(prefix, 0) == 0; }
bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

// Number of allocator requests so far (hits and misses): equal before and after means
// nothing was allocated for tensors.
std::int64_t allocation_requests() {
  const AllocatorStats s = allocator_stats();
  return s.system_allocs + s.reuses;
}

// Caps the address space at current use + `extra` bytes, so any large allocation fails.
// Inactive under AddressSanitizer, whose shadow memory needs a huge address space.
class AddressSpaceBudget {
 public:
  explicit AddressSpaceBudget(std::uint64_t extra) {
#if !defined(__SANITIZE_ADDRESS__)
    if (::getrlimit(RLIMIT_AS, &saved_) != 0) return;
    std::ifstream statm("/proc/self/statm");
    std::uint64_t pages = 0;
    if (!(statm >> pages)) return;
    rlimit lim = saved_;
    lim.rlim_cur = pages * static_cast<std::uint64_t>(::sysconf(_SC_PAGESIZE)) + extra;
    if (saved_.rlim_cur != RLIM_INFINITY && lim.rlim_cur > saved_.rlim_cur) return;
    active_ = ::setrlimit(RLIMIT_AS, &lim) == 0;
#endif
  }
  ~AddressSpaceBudget() {
    if (active_) ::setrlimit(RLIMIT_AS, &saved_);
  }
  bool active() const { return active_; }

 private:
  rlimit saved_{};
  bool active_ = false;
};

class CheckpointFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (fs::path(::testing::TempDir()) / "prunerec_ckpt_XXXXXX").string();
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr) << std::strerror(errno);
    dir_ = tmpl;
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
  std::string path(const std::string& name) const { return (fs::path(dir_) / name).string(); }
  std::vector<std::string> listing() const {
    std::vector<std::string> names;
    for (const auto& e : fs::directory_iterator(dir_)) names.push_back(e.path().filename().string());
    std::sort(names.begin(), names.end());
    return names;
  }

  std::string dir_;
};

void expect_same_tensors(const std::vector<NamedTensor>& want, const LoadedCheckpoint& got) {
  ASSERT_EQ(got.tensors.size(), want.size());
  for (std::size_t i = 0; i < want.size(); ++i) {
    SCOPED_TRACE(want[i].name);
    const Tensor& t = got.tensors[i].tensor;
    EXPECT_EQ(got.tensors[i].name, want[i].name);  // file order == write order
    EXPECT_EQ(t.dtype(), want[i].tensor.dtype());
    EXPECT_EQ(t.shape(), want[i].tensor.shape());
    EXPECT_TRUE(t.is_contiguous());
    EXPECT_TRUE(bit_equal(t, want[i].tensor)) << t << "\nvs\n" << want[i].tensor;
    EXPECT_EQ(reinterpret_cast<std::uintptr_t>(t.raw_data()) % 64, 0u);
    EXPECT_EQ(got.find(want[i].name), &t);
  }
}

// ---- round trip -----------------------------------------------------------------------

class CheckpointRoundTrip : public CheckpointFileTest, public ::testing::WithParamInterface<bool> {};

TEST_P(CheckpointRoundTrip, TensorsAndManifestComeBackExactly) {
  const std::vector<NamedTensor> tensors = sample_tensors();
  ASSERT_FALSE(tensors[6].tensor.is_contiguous());
  ASSERT_FALSE(tensors[8].tensor.is_contiguous());
  ASSERT_NE(tensors[7].tensor.offset(), 0);
  const pb::Manifest manifest = sample_manifest();
  const std::string p = path("model.prc");
  write_checkpoint(p, manifest, tensors);
  EXPECT_EQ(listing(), std::vector<std::string>{"model.prc"});

  const LoadedCheckpoint ckpt = read_checkpoint(p, {.verify_checksums = true, .mmap = GetParam()});
  expect_same_tensors(tensors, ckpt);
  EXPECT_EQ(ckpt.find("absent"), nullptr);

  // The manifest survives; the writer added format_version and one record per tensor.
  pb::Manifest expected = manifest;
  expected.set_format_version(kCheckpointFormatVersion);
  pb::Manifest got = ckpt.manifest;
  ASSERT_EQ(got.tensors_size(), static_cast<int>(tensors.size()));
  for (int i = 0; i < got.tensors_size(); ++i) {
    const pb::TensorRecord& r = got.tensors(i);
    const Tensor& t = tensors[static_cast<std::size_t>(i)].tensor;
    EXPECT_EQ(r.name(), tensors[static_cast<std::size_t>(i)].name);
    EXPECT_EQ(static_cast<int>(r.dtype()), static_cast<int>(t.dtype()));
    EXPECT_EQ(Shape(r.shape().begin(), r.shape().end()), t.shape());
    EXPECT_EQ(r.nbytes(), t.nbytes());
    EXPECT_EQ(r.offset() % 64, 0u);
  }
  got.clear_tensors();
  std::string diff;
  MessageDifferencer differ;
  differ.ReportDifferencesToString(&diff);
  EXPECT_TRUE(differ.Compare(expected, got)) << diff;
  EXPECT_EQ(got.metadata().at("recipe"), "lr: 1e-3\nbatch: 256\n");
  EXPECT_EQ(got.config().layers(1).num_heads(), 2);
  EXPECT_EQ(got.state().history_size(), 3);

  // The manifest alone reads the same.
  pb::Manifest header_only = read_checkpoint_manifest(p);
  EXPECT_TRUE(MessageDifferencer::Equals(header_only, ckpt.manifest));
}

TEST_P(CheckpointRoundTrip, NoTensorsAtAll) {
  const std::string p = path("empty.prc");
  write_checkpoint(p, sample_manifest(), {});
  const LoadedCheckpoint ckpt = read_checkpoint(p, {.mmap = GetParam()});
  EXPECT_TRUE(ckpt.tensors.empty());
  EXPECT_EQ(ckpt.manifest.state().step(), 1200);
}

TEST_P(CheckpointRoundTrip, WriterReplacesStaleRecordsInTheManifest) {
  pb::Manifest m = sample_manifest();
  add_record(m, "stale", pb::F64, {1000}, 0, 8000);
  const std::string p = path("m.prc");
  write_checkpoint(p, m, small_tensors());
  const LoadedCheckpoint ckpt = read_checkpoint(p, {.mmap = GetParam()});
  expect_same_tensors(small_tensors(), ckpt);
  EXPECT_EQ(ckpt.find("stale"), nullptr);
}

INSTANTIATE_TEST_SUITE_P(ReadModes, CheckpointRoundTrip, ::testing::Values(false, true),
                         [](const auto& info) { return info.param ? "mmap" : "pread"; });

// ---- the byte layout ------------------------------------------------------------------

TEST_F(CheckpointFileTest, FileMatchesTheDocumentedLayoutByteForByte) {
  const std::vector<NamedTensor> tensors = sample_tensors();
  const std::string p = path("layout.prc");
  write_checkpoint(p, sample_manifest(), tensors);
  const std::string file = slurp(p);

  ASSERT_GE(file.size(), 48u);
  EXPECT_EQ(file.substr(0, 8), "PRUNEREC");
  EXPECT_EQ(get_u32(file, 8), 1u);
  EXPECT_EQ(get_u32(file, 12), 0u);
  const std::uint64_t manifest_size = get_u64(file, 16);
  const std::string manifest_bytes = file.substr(32, manifest_size);
  EXPECT_EQ(get_u32(file, 24), crc32c(manifest_bytes.data(), manifest_bytes.size()));
  EXPECT_EQ(get_u32(file, 28), crc32c(file.data(), 28));
  pb::Manifest m;
  ASSERT_TRUE(m.ParseFromString(manifest_bytes));

  // Rebuild the file from the parts the documentation names; it must be identical.
  RawCheckpoint raw;
  raw.manifest = manifest_bytes;
  for (int i = 0; i < m.tensors_size(); ++i) {
    const pb::TensorRecord& r = m.tensors(i);
    const Tensor c = tensors[static_cast<std::size_t>(i)].tensor.contiguous();
    EXPECT_EQ(r.offset(), align64(raw.data.size())) << r.name();  // packed at 64-byte steps
    raw.data.resize(r.offset(), '\0');
    const char* bytes = c.numel() > 0 ? static_cast<const char*>(c.raw_data()) : "";
    raw.data.append(bytes, c.nbytes());
    EXPECT_EQ(r.crc32c(), crc32c(bytes, c.nbytes())) << r.name();
  }
  EXPECT_EQ(raw.encode(), file);
  EXPECT_EQ(file.substr(file.size() - 8), "PRNR-END");
  EXPECT_EQ(get_u64(file, file.size() - 16), raw.data.size());
}

TEST_F(CheckpointFileTest, SameInputGivesSameBytes) {
  pb::Manifest m = sample_manifest();
  for (int i = 0; i < 40; ++i) (*m.mutable_metadata())["key" + std::to_string(i * 7919 % 101)] = std::to_string(i);
  write_checkpoint(path("a.prc"), m, sample_tensors());
  write_checkpoint(path("b.prc"), m, sample_tensors());
  EXPECT_EQ(slurp(path("a.prc")), slurp(path("b.prc")));
}

// ---- mapped reads ---------------------------------------------------------------------

TEST_F(CheckpointFileTest, MappedTensorsAreCopyOnWriteAndOutliveTheCheckpoint) {
  const std::string p = path("cow.prc");
  write_checkpoint(p, small_manifest(), small_tensors());
  const std::string before = slurp(p);
  Tensor w;
  {
    LoadedCheckpoint ckpt = read_checkpoint(p, {.mmap = true});
    w = *ckpt.find("w");
  }  // the checkpoint is gone; w keeps its storage (and, when borrowed, the mapping) alive
  w.set({0, 0}, 100.0);
  w.set({1, 2}, -100.0);
  EXPECT_EQ(w.at({0, 0}), 100.0);
  EXPECT_EQ(w.at({0, 1}), -2.0);
  EXPECT_EQ(w.at({1, 2}), -100.0);
  EXPECT_EQ(slurp(p), before);  // the file never changes
  const LoadedCheckpoint again = read_checkpoint(p, {.mmap = true});
  EXPECT_EQ(again.find("w")->at({0, 0}), 1.5);
}

TEST_F(CheckpointFileTest, MappedTensorsBorrowTheMapping) {
  {
    const std::string p = path("borrow.prc");
    write_checkpoint(p, small_manifest(), sample_tensors());
    const std::int64_t requests = allocation_requests();
    const LoadedCheckpoint ckpt = read_checkpoint(p, {.mmap = true});
    EXPECT_EQ(allocation_requests(), requests);  // no tensor memory from the allocator
    expect_same_tensors(sample_tensors(), ckpt);
  }
}

// ---- damaged files --------------------------------------------------------------------

TEST_F(CheckpointFileTest, EveryTruncationIsAnIoError) {
  const std::string good = path("good.prc");
  write_checkpoint(good, small_manifest(), small_tensors());
  const std::string file = slurp(good);
  ASSERT_LT(file.size(), 2000u);  // small enough to try every length
  const std::string p = path("cut.prc");
  for (std::size_t len = 0; len < file.size(); ++len) {
    SCOPED_TRACE("length " + std::to_string(len));
    spit(p, file.substr(0, len));
    for (bool mmap : {false, true}) {
      const std::string msg = error_message<IoError>([&] { read_checkpoint(p, {.mmap = mmap}); });
      EXPECT_TRUE(starts_with(msg, p + ": ")) << msg;
    }
    EXPECT_THROW(read_checkpoint_manifest(p), IoError);
  }
  // The messages say what happened.
  spit(p, file.substr(0, 40));
  EXPECT_EQ(error_message<IoError>([&] { read_checkpoint(p); }),
            p + ": truncated: file is 40 bytes, header and trailer need 48");
  spit(p, file.substr(0, file.size() - 1));
  EXPECT_TRUE(contains(error_message<IoError>([&] { read_checkpoint(p); }), "truncated"));
}

TEST_F(CheckpointFileTest, ExtraBytesAtTheEndAreAnIoError) {
  const std::string p = path("long.prc");
  write_checkpoint(p, small_manifest(), small_tensors());
  const std::string file = slurp(p);
  for (std::size_t extra : {1u, 7u, 16u, 64u, 100u}) {
    spit(p, file + std::string(extra, '\0'));
    EXPECT_THROW(read_checkpoint(p), IoError) << extra;
  }
  spit(p, file + file.substr(file.size() - 16));  // a second, plausible trailer
  EXPECT_TRUE(contains(error_message<IoError>([&] { read_checkpoint(p); }), "the trailer records a data section of"));
}

TEST_F(CheckpointFileTest, EveryFlippedBitIsAnIoError) {
  const std::string good = path("good.prc");
  write_checkpoint(good, small_manifest(), small_tensors());
  const std::string file = slurp(good);
  ASSERT_LT(file.size(), 2000u);
  const std::string p = path("flip.prc");
  for (std::size_t pos = 0; pos < file.size(); ++pos) {
    for (int bit = 0; bit < 8; ++bit) {
      std::string bad = file;
      bad[pos] = static_cast<char>(bad[pos] ^ (1 << bit));
      spit(p, bad);
      for (bool mmap : {false, true}) {
        SCOPED_TRACE("byte " + std::to_string(pos) + " bit " + std::to_string(bit) +
                     (mmap ? " mmap" : " pread"));
        const std::string msg = error_message<IoError>([&] { read_checkpoint(p, {.mmap = mmap}); });
        EXPECT_TRUE(starts_with(msg, p + ": ")) << msg;
      }
    }
  }
}

TEST_F(CheckpointFileTest, CorruptTensorIsNamedWithBothChecksums) {
  const std::string p = path("model.prc");
  write_checkpoint(p, small_manifest(), small_tensors());
  std::string file = slurp(p);
  const pb::Manifest m = read_checkpoint_manifest(p);
  const std::uint64_t data_start = align64(32 + get_u64(file, 16));
  const pb::TensorRecord& b = m.tensors(4);
  ASSERT_EQ(b.name(), "b");
  file[data_start + b.offset() + 5] ^= 0x10;
  spit(p, file);
  for (bool mmap : {false, true}) {
    const std::string msg = error_message<IoError>([&] { read_checkpoint(p, {.mmap = mmap}); });
    const std::string computed = [&] {
      char buf[16];
      const std::uint32_t c = crc32c(file.data() + data_start + b.offset(), b.nbytes());
      std::snprintf(buf, sizeof buf, "0x%08x", c);
      return std::string(buf);
    }();
    char stored[16];
    std::snprintf(stored, sizeof stored, "0x%08x", b.crc32c());
    EXPECT_EQ(msg, p + ": tensor 'b': checksum mismatch (stored " + stored + ", computed " + computed + ")");
  }
  // The manifest does not depend on tensor bytes.
  EXPECT_NO_THROW(read_checkpoint_manifest(p));
  // Without verification the damaged byte comes through, exactly where it was flipped.
  const LoadedCheckpoint unchecked = read_checkpoint(p, {.verify_checksums = false});
  EXPECT_EQ(unchecked.find("b")->to_vector<std::int32_t>(), (std::vector<std::int32_t>{1, 2 ^ (0x10 << 8), 3}));
  EXPECT_EQ(unchecked.find("w")->to_vector<float>(), small_tensors()[0].tensor.to_vector<float>());
}

TEST_F(CheckpointFileTest, WrongMagicSaysNotACheckpoint) {
  const std::string p = path("other.bin");
  spit(p, "GIF89a this is some other file, long enough to have a header and trailer");
  EXPECT_TRUE(contains(error_message<IoError>([&] { read_checkpoint(p); }), p + ": not a prunerec checkpoint"));
  spit(p, "PK");  // tiny, and not even a prefix of the magic
  EXPECT_TRUE(contains(error_message<IoError>([&] { read_checkpoint_manifest(p); }), "not a prunerec checkpoint"));
  spit(p, "");
  EXPECT_TRUE(contains(error_message<IoError>([&] { read_checkpoint(p); }), "truncated: file is 0 bytes"));
  EXPECT_TRUE(starts_with(error_message<IoError>([&] { read_checkpoint(path("absent.prc")); }),
                          path("absent.prc") + ": "));
  EXPECT_TRUE(contains(error_message<IoError>([&] { read_checkpoint(dir_); }), "not a regular file"));
}

TEST_F(CheckpointFileTest, NewerVersionAndUnknownFlagsAreRefused) {
  const std::string p = path("v2.prc");
  write_checkpoint(p, small_manifest(), small_tensors());
  std::string file = slurp(p);
  std::string v2 = file;
  put_u32(v2, 8, 2);
  reseal_header(v2);
  spit(p, v2);
  const std::string msg = error_message<IoError>([&] { read_checkpoint(p); });
  EXPECT_TRUE(starts_with(msg, p + ": unsupported checkpoint format version 2")) << msg;
  EXPECT_THROW(read_checkpoint_manifest(p), IoError);

  std::string flagged = file;
  put_u32(flagged, 12, 1);
  reseal_header(flagged);
  spit(p, flagged);
  EXPECT_TRUE(contains(error_message<IoError>([&] { read_checkpoint(p); }), "unknown header flags 0x00000001"));
}

TEST_F(CheckpointFileTest, HugeManifestSizeFailsFastWithoutAllocating) {
  const std::string p = path("huge_manifest.prc");
  write_checkpoint(p, small_manifest(), small_tensors());
  const std::string file = slurp(p);
  for (std::uint64_t claimed : {std::uint64_t{1} << 40, std::uint64_t{200} << 20, std::uint64_t{5000}}) {
    SCOPED_TRACE(claimed);
    std::string bad = file;
    put_u64(bad, 16, claimed);
    reseal_header(bad);
    spit(p, bad);
    AddressSpaceBudget budget(std::uint64_t{64} << 20);  // a 200 MiB allocation would fail
    const std::int64_t requests = allocation_requests();
    const std::string msg = error_message<IoError>([&] { read_checkpoint(p); });
    EXPECT_EQ(allocation_requests(), requests);
    if (claimed > kMaxManifestBytes)
      EXPECT_TRUE(contains(msg, "manifest size 1099511627776 exceeds the limit of 268435456 bytes")) << msg;
    else
      EXPECT_TRUE(starts_with(msg, p + ": truncated")) << msg;
  }
}

TEST_F(CheckpointFileTest, HugeTensorClaimFailsFastWithoutAllocating) {
  // Checksums are all valid: only the record's claim is wrong. The valid tensor "a" comes
  // first, and still nothing may be allocated: all records are checked before any data.
  pb::Manifest m;
  RawCheckpoint raw = one_tensor_file(&m);
  const std::uint64_t n = std::uint64_t{1} << 40;
  add_record(m, "blocks.9.mlp.up.weight", pb::F32, {1 << 20, 1 << 20}, 64, 4 * n);
  raw.manifest = m.SerializeAsString();
  const std::string p = path("huge_tensor.prc");
  spit(p, raw.encode());
  for (bool mmap : {false, true}) {
    AddressSpaceBudget budget(std::uint64_t{64} << 20);
    const std::int64_t requests = allocation_requests();
    const std::string msg = error_message<IoError>([&] { read_checkpoint(p, {.mmap = mmap}); });
    EXPECT_EQ(allocation_requests(), requests);
    EXPECT_EQ(msg, p + ": tensor 'blocks.9.mlp.up.weight': 4398046511104 bytes at offset 64 do not fit in "
                       "the data section of 16 bytes");
  }
  EXPECT_THROW(read_checkpoint_manifest(p), IoError);
}

// One hostile manifest per rule of Note [checkpoint validation], each with valid checksums.
TEST_F(CheckpointFileTest, EveryRecordRuleIsEnforcedAndNamesTheTensor) {
  struct Case {
    const char* what;
    std::function<void(pb::Manifest&)> damage;
    std::string expected;  // part of the message
  };
  const std::vector<Case> cases = {
      {"empty name", [](pb::Manifest& m) { m.mutable_tensors(0)->set_name(""); }, "tensor record #0 has no name"},
      {"duplicate", [](pb::Manifest& m) { add_record(m, "a", pb::F32, {0}, 64, 0); },
       "tensor 'a': appears twice in the manifest"},
      {"missing dtype", [](pb::Manifest& m) { m.mutable_tensors(0)->clear_dtype(); },
       "tensor 'a': missing or unknown dtype"},
      {"unknown dtype",
       [](pb::Manifest& m) {
         pb::TensorRecord* r = m.mutable_tensors(0);
         r->clear_dtype();
         r->GetReflection()->MutableUnknownFields(r)->AddVarint(pb::TensorRecord::kDtypeFieldNumber, 7);
       },
       "tensor 'a': missing or unknown dtype"},
      {"negative dim",
       [](pb::Manifest& m) {
         m.mutable_tensors(0)->set_shape(0, -2);
         m.mutable_tensors(0)->set_shape(1, -2);
       },
       "tensor 'a': negative dimension in shape [-2,-2]"},
      {"numel overflow",
       [](pb::Manifest& m) {
         m.mutable_tensors(0)->set_shape(0, std::int64_t{1} << 32);
         m.mutable_tensors(0)->set_shape(1, std::int64_t{1} << 32);
       },
       "tensor 'a': shape [4294967296,4294967296] has more elements than fit in 64 bits"},
      {"byte overflow",
       [](pb::Manifest& m) {
         m.mutable_tensors(0)->set_shape(0, std::int64_t{1} << 31);
         m.mutable_tensors(0)->set_shape(1, std::int64_t{1} << 31);
       },
       "tensor 'a': shape [2147483648,2147483648] of f32 has more bytes than fit in 64 bits"},
      {"nbytes mismatch", [](pb::Manifest& m) { m.mutable_tensors(0)->set_nbytes(12); },
       "tensor 'a': f32[2,2] needs 16 bytes but the record says 12"},
      {"dtype mismatch", [](pb::Manifest& m) { m.mutable_tensors(0)->set_dtype(pb::F64); },
       "tensor 'a': f64[2,2] needs 32 bytes but the record says 16"},
      {"misaligned", [](pb::Manifest& m) { m.mutable_tensors(0)->set_offset(8); },
       "tensor 'a': offset 8 is not a multiple of 64"},
      {"out of the data section", [](pb::Manifest& m) { m.mutable_tensors(0)->set_offset(64); },
       "tensor 'a': 16 bytes at offset 64 do not fit in the data section of 16 bytes"},
      {"offset wraps around",
       [](pb::Manifest& m) { m.mutable_tensors(0)->set_offset(~std::uint64_t{63}); },
       "do not fit in the data section"},
      {"overlap", [](pb::Manifest& m) { add_record(m, "c", pb::F32, {1}, 0, 4); },
       "tensor 'c': offset 0 overlaps the previous tensor, which ends at 16"},
      {"missing offset", [](pb::Manifest& m) { m.mutable_tensors(0)->clear_offset(); },
       "tensor 'a': record lacks offset, nbytes or crc32c"},
      {"too many dims",
       [](pb::Manifest& m) {
         for (int i = 0; i < 70; ++i) m.mutable_tensors(0)->add_shape(1);
       },
       "tensor 'a': 72 dimensions, more than the 64 allowed"},
      {"wrong format_version in manifest", [](pb::Manifest& m) { m.set_format_version(3); },
       "manifest says format version 3, header says 1"},
      {"no format_version in manifest", [](pb::Manifest& m) { m.clear_format_version(); },
       "manifest says format version 0, header says 1"},
  };
  const std::string p = path("hostile.prc");
  for (const Case& c : cases) {
    SCOPED_TRACE(c.what);
    pb::Manifest m;
    RawCheckpoint raw = one_tensor_file(&m);
    c.damage(m);
    raw.manifest = m.SerializeAsString();
    spit(p, raw.encode());
    const std::int64_t requests = allocation_requests();
    for (bool mmap : {false, true}) {
      const std::string msg = error_message<IoError>([&] { read_checkpoint(p, {.mmap = mmap}); });
      EXPECT_TRUE(starts_with(msg, p + ": ")) << msg;
      EXPECT_TRUE(contains(msg, c.expected)) << msg;
    }
    EXPECT_EQ(allocation_requests(), requests);
    EXPECT_THROW(read_checkpoint_manifest(p), IoError);
  }
  // The undamaged base file is fine, so each case above failed for its own reason.
  spit(p, one_tensor_file().encode());
  const LoadedCheckpoint ok = read_checkpoint(p);
  EXPECT_EQ(ok.find("a")->to_vector<float>(), (std::vector<float>{1, 2, 3, 4}));
}

TEST_F(CheckpointFileTest, UnparsableManifestIsAnIoError) {
  RawCheckpoint raw = one_tensor_file();
  raw.manifest = std::string("\x1a\x7f\x0a\x01", 4);  // a tensors field claiming 127 bytes, having 2
  const std::string p = path("garbled.prc");
  spit(p, raw.encode());
  EXPECT_EQ(error_message<IoError>([&] { read_checkpoint(p); }),
            p + ": manifest does not parse as prunerec.pb.Manifest (damaged, or an incompatible writer)");
}

TEST_F(CheckpointFileTest, NonZeroPaddingIsAnIoError) {
  // The writer's gaps are zero; a reader that ignored them would let flips there pass.
  pb::Manifest m;
  RawCheckpoint raw = one_tensor_file(&m);
  raw.data.resize(64 + 4, '\0');
  const float x = 9.0f;
  std::memcpy(raw.data.data() + 64, &x, 4);
  add_record(m, "x", pb::F32, {}, 64, 4, crc32c(&x, 4));
  raw.manifest = m.SerializeAsString();
  const std::string p = path("gap.prc");
  spit(p, raw.encode());
  EXPECT_EQ(read_checkpoint(p).find("x")->item(), 9.0);
  raw.data[40] = 1;
  spit(p, raw.encode());
  for (bool mmap : {false, true})
    EXPECT_TRUE(contains(error_message<IoError>([&] { read_checkpoint(p, {.mmap = mmap}); }),
                         "in the padding before tensor 'x' (damaged file)"));
}

// ---- failed writes keep the old file --------------------------------------------------

TEST_F(CheckpointFileTest, FailedOverwriteLeavesOldFileAndNoTemporary) {
  const std::string p = path("model.prc");
  write_checkpoint(p, small_manifest(), small_tensors());
  const std::string old_bytes = slurp(p);

  // A write(2) that fails midway (file size limit reached: EFBIG).
  std::vector<NamedTensor> big = sample_tensors();
  big.push_back({"big", Tensor::zeros({64, 1024}, DType::f32)});
  {
    FileSizeLimit limit(8192);
    ASSERT_TRUE(limit.ok());
    const std::string msg = error_message<IoError>([&] { write_checkpoint(p, sample_manifest(), big); });
    EXPECT_TRUE(starts_with(msg, p + ": ")) << msg;
    EXPECT_TRUE(contains(msg, std::strerror(EFBIG))) << msg;
  }
  EXPECT_EQ(slurp(p), old_bytes);
  EXPECT_EQ(listing(), std::vector<std::string>{"model.prc"});

  // Input the writer refuses, found before any file is created.
  std::vector<NamedTensor> duplicate = small_tensors();
  duplicate.push_back({"w", Tensor::zeros({1})});
  EXPECT_EQ(error_message<IoError>([&] { write_checkpoint(p, small_manifest(), duplicate); }),
            p + ": cannot write checkpoint: tensor 'w' appears twice");
  std::vector<NamedTensor> undefined = small_tensors();
  undefined.push_back({"later", Tensor()});
  EXPECT_TRUE(contains(error_message<IoError>([&] { write_checkpoint(p, small_manifest(), undefined); }),
                       "tensor 'later' is undefined"));
  std::vector<NamedTensor> unnamed = small_tensors();
  unnamed.push_back({"", Tensor::zeros({1})});
  EXPECT_TRUE(contains(error_message<IoError>([&] { write_checkpoint(p, small_manifest(), unnamed); }),
                       "tensor #5 has an empty name"));
  EXPECT_EQ(slurp(p), old_bytes);
  EXPECT_EQ(listing(), std::vector<std::string>{"model.prc"});

  // A directory that does not exist.
  const std::string nowhere = path("missing/dir/model.prc");
  const std::string msg = error_message<IoError>([&] { write_checkpoint(nowhere, small_manifest(), small_tensors()); });
  EXPECT_TRUE(starts_with(msg, nowhere + ": ")) << msg;
  EXPECT_TRUE(contains(msg, std::strerror(ENOENT))) << msg;
  EXPECT_EQ(listing(), std::vector<std::string>{"model.prc"});

  // And a successful overwrite replaces it completely.
  write_checkpoint(p, sample_manifest(), big);
  expect_same_tensors(big, read_checkpoint(p));
  EXPECT_EQ(listing(), std::vector<std::string>{"model.prc"});
}

// ---- streamed writes (Note [streamed checkpoint writes]) --------------------------------

// A file above the O_DIRECT threshold (64 MiB of data), with a tensor whose length is not
// a multiple of 4096 (the padded last write is truncated) and a 100 kB manifest (the head,
// kept in memory until the end, spans many 4096-byte pages and ends inside one): byte for
// byte the documented layout, and read back exactly.
TEST_F(CheckpointFileTest, LargeFilesWrittenDirectlyMatchTheLayout) {
  pb::Manifest m = sample_manifest();
  (*m.mutable_metadata())["blob"] = std::string(100'003, 'x');
  const std::int64_t n = (std::int64_t{64} << 20) / 4 + 1001;
  Tensor big = Tensor::empty({n}, DType::f32);
  for (std::int64_t i = 0; i < n; ++i) big.data<float>()[i] = static_cast<float>(i % 65521) * 0.25f;
  const std::vector<NamedTensor> tensors = {{"small", from_bits<std::int32_t>({1, 2, 3}, {3})}, {"big", big}};
  const std::string p = path("direct.prc");
  write_checkpoint(p, m, tensors);

  // Checked in place (a copy of 64 MiB per step costs seconds of page faults on a VM).
  std::string file(fs::file_size(p), '\0');
  std::ifstream(p, std::ios::binary).read(file.data(), static_cast<std::streamsize>(file.size()));
  const std::uint64_t manifest_size = get_u64(file, 16);
  const std::string manifest_bytes = file.substr(32, manifest_size);
  EXPECT_EQ(file.substr(0, 8), "PRUNEREC");
  EXPECT_EQ(get_u32(file, 24), crc32c(manifest_bytes.data(), manifest_bytes.size()));
  EXPECT_EQ(get_u32(file, 28), crc32c(file.data(), 28));
  pb::Manifest stored;
  ASSERT_TRUE(stored.ParseFromString(manifest_bytes));
  const std::uint64_t data_start = align64(32 + manifest_size);
  std::uint64_t at = 32 + manifest_size;  // every byte not in a tensor must be zero
  for (int i = 0; i < stored.tensors_size(); ++i) {
    const Tensor& t = tensors[static_cast<std::size_t>(i)].tensor;
    const pb::TensorRecord& r = stored.tensors(i);
    for (; at < data_start + r.offset(); ++at) ASSERT_EQ(file[at], '\0') << "padding at " << at;
    ASSERT_EQ(r.nbytes(), t.nbytes());
    EXPECT_EQ(std::memcmp(file.data() + at, t.raw_data(), t.nbytes()), 0) << r.name();
    EXPECT_EQ(r.crc32c(), crc32c(t.raw_data(), t.nbytes())) << r.name();
    at += r.nbytes();
  }
  ASSERT_EQ(file.size(), at + 16);
  EXPECT_EQ(get_u64(file, at), at - data_start);
  EXPECT_EQ(file.substr(at + 8), "PRNR-END");
  file = std::string();
  expect_same_tensors(tensors, read_checkpoint(p, {.verify_checksums = true, .mmap = true}));
  EXPECT_EQ(listing(), std::vector<std::string>{"direct.prc"});
}

// The pieces a StreamedTensor is asked for cover it once, in order, in whole elements; a
// fill that throws abandons the file.
TEST_F(CheckpointFileTest, StreamedTensorsArePiecesInOrderAndAFailingFillWritesNothing) {
  const std::int64_t n = (std::int64_t{10} << 20) / 8 + 3;  // > one 8 MiB staging block
  std::uint64_t expected_begin = 0;
  StreamedTensor t{"x", DType::f64, {n}, [&](std::uint64_t begin, std::size_t bytes, unsigned char* out) {
                     EXPECT_EQ(begin, expected_begin);
                     EXPECT_EQ(begin % 8, 0u);
                     EXPECT_EQ(bytes % 8, 0u);
                     for (std::size_t k = 0; k < bytes / 8; ++k) {
                       const double v = static_cast<double>(begin / 8 + k);
                       std::memcpy(out + 8 * k, &v, 8);
                     }
                     expected_begin += bytes;
                   }};
  const std::string p = path("streamed.prc");
  write_checkpoint_streamed(p, small_manifest(), {t});
  EXPECT_EQ(expected_begin, static_cast<std::uint64_t>(n) * 8);
  const LoadedCheckpoint back = read_checkpoint(p);
  ASSERT_EQ(back.tensors.size(), 1u);
  for (std::int64_t i = 0; i < n; ++i) ASSERT_EQ(back.tensors[0].tensor.data<double>()[i], static_cast<double>(i));

  const std::string old_bytes = slurp(p);
  StreamedTensor failing{"x", DType::f32, {n}, [](std::uint64_t begin, std::size_t, unsigned char*) {
                           if (begin > 0) throw IoError("source went away");
                         }};
  EXPECT_EQ(error_message<IoError>([&] { write_checkpoint_streamed(p, small_manifest(), {failing}); }),
            "source went away");
  EXPECT_EQ(slurp(p), old_bytes);
  EXPECT_EQ(listing(), std::vector<std::string>{"streamed.prc"});
}

}  // namespace
}  // namespace prunerec::nn
