// base/: crc32c and crash-safe file writing.
#include <signal.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "base/error.h"
#include "base/atomic_file.h"
#include "base/crc32c.h"
#include "tensor/rng.h"
#include "tests/common/file_size_limit.h"

namespace prunerec {
namespace {

namespace fs = std::filesystem;
using prunerec::testing::FileSizeLimit;

// ---- crc32c ---------------------------------------------------------------------------

std::uint32_t crc_of(const std::string& s) { return crc32c(s.data(), s.size()); }

TEST(Crc32c, KnownValues) {
  EXPECT_EQ(crc_of("123456789"), 0xE3069283u);
  EXPECT_EQ(crc_of(""), 0u);
  EXPECT_EQ(crc32c(nullptr, 0, 0x12345678u), 0x12345678u);  // nothing appended: unchanged
  EXPECT_EQ(crc_of("a"), 0xC1D04330u);
  // RFC 3720 (iSCSI), appendix B.4.
  std::vector<unsigned char> buf(32, 0x00);
  EXPECT_EQ(crc32c(buf.data(), buf.size()), 0x8A9136AAu);
  std::fill(buf.begin(), buf.end(), 0xFF);
  EXPECT_EQ(crc32c(buf.data(), buf.size()), 0x62A8AB43u);
  for (int i = 0; i < 32; ++i) buf[i] = static_cast<unsigned char>(i);
  EXPECT_EQ(crc32c(buf.data(), buf.size()), 0x46DD794Eu);
  for (int i = 0; i < 32; ++i) buf[i] = static_cast<unsigned char>(31 - i);
  EXPECT_EQ(crc32c(buf.data(), buf.size()), 0x113FDB5Cu);
}

TEST(Crc32c, SoftwarePathKnownValues) {
  const std::string s = "123456789";
  EXPECT_EQ(detail::crc32c_software(s.data(), s.size(), 0), 0xE3069283u);
  std::vector<unsigned char> zeros(32, 0);
  EXPECT_EQ(detail::crc32c_software(zeros.data(), zeros.size(), 0), 0x8A9136AAu);
}

std::vector<unsigned char> random_bytes(std::size_t n, std::uint32_t seed) {
  Rng rng(seed);
  std::vector<unsigned char> out(n);
  for (auto& b : out) b = static_cast<unsigned char>(rng.next_u32());
  return out;
}

TEST(Crc32c, ChainsOverEverySplitPoint) {
  const std::vector<unsigned char> buf = random_bytes(300, 1);
  const std::uint32_t whole = crc32c(buf.data(), buf.size());
  for (std::size_t split = 0; split <= buf.size(); ++split) {
    const std::uint32_t head = crc32c(buf.data(), split);
    EXPECT_EQ(crc32c(buf.data() + split, buf.size() - split, head), whole) << "split " << split;
  }
  // Three pieces.
  const std::uint32_t a = crc32c(buf.data(), 7);
  const std::uint32_t b = crc32c(buf.data() + 7, 100, a);
  EXPECT_EQ(crc32c(buf.data() + 107, buf.size() - 107, b), whole);
}

TEST(Crc32c, DetectsEverySingleBitFlip) {
  std::vector<unsigned char> buf = random_bytes(64, 2);
  const std::uint32_t clean = crc32c(buf.data(), buf.size());
  for (std::size_t i = 0; i < buf.size(); ++i)
    for (int bit = 0; bit < 8; ++bit) {
      buf[i] ^= static_cast<unsigned char>(1u << bit);
      EXPECT_NE(crc32c(buf.data(), buf.size()), clean) << "byte " << i << " bit " << bit;
      buf[i] ^= static_cast<unsigned char>(1u << bit);
    }
}

TEST(Crc32c, HardwareAndSoftwareAgreeOnOddLengthsAndAlignments) {
  if (!detail::crc32c_hardware_available()) GTEST_SKIP() << "no SSE4.2 crc32 on this CPU";
  const std::vector<unsigned char> buf = random_bytes(4096 + 64, 3);
  Rng rng(4);
  for (std::size_t align = 0; align < 16; ++align) {
    for (std::size_t len = 0; len <= 257; ++len) {
      const std::uint32_t seed_crc = (len % 3 == 0) ? 0u : rng.next_u32();
      const unsigned char* p = buf.data() + align;
      ASSERT_EQ(detail::crc32c_hardware(p, len, seed_crc), detail::crc32c_software(p, len, seed_crc))
          << "align " << align << " len " << len;
    }
  }
  // A large buffer with an odd start and length.
  const std::vector<unsigned char> big = random_bytes((1u << 20) + 13, 5);
  EXPECT_EQ(detail::crc32c_hardware(big.data() + 3, big.size() - 3, 0),
            detail::crc32c_software(big.data() + 3, big.size() - 3, 0));
  // The public entry point picks the hardware path here; it must agree too.
  EXPECT_EQ(crc32c(big.data() + 1, big.size() - 1), detail::crc32c_software(big.data() + 1, big.size() - 1, 0));
}

// ---- files ----------------------------------------------------------------------------

class FileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (fs::path(::testing::TempDir()) / "prunerec_util_XXXXXX").string();
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr) << std::strerror(errno);
    dir_ = tmpl;
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
  std::string path(const std::string& name) const { return (fs::path(dir_) / name).string(); }
  static std::string slurp(const std::string& p) {
    std::ifstream in(p, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), {});
  }
  static void spit(const std::string& p, const std::string& content) {
    std::ofstream out(p, std::ios::binary | std::ios::trunc);
    out << content;
  }
  // Names in the test directory, sorted.
  std::vector<std::string> listing() const {
    std::vector<std::string> names;
    for (const auto& e : fs::directory_iterator(dir_)) names.push_back(e.path().filename().string());
    std::sort(names.begin(), names.end());
    return names;
  }

  std::string dir_;
};

TEST_F(FileTest, AtomicFileCommitWritesTheTargetAndLeavesNoTemporary) {
  const std::string target = path("out.bin");
  {
    AtomicFile f(target);
    EXPECT_EQ(f.target(), target);
    EXPECT_EQ(f.temp_path().rfind(target + ".tmp." + std::to_string(::getpid()) + ".", 0), 0u)
        << f.temp_path();
    EXPECT_TRUE(fs::exists(f.temp_path()));
    EXPECT_FALSE(fs::exists(target));  // nothing under the real name before commit
    f.write("hello, ", 7);
    f.write(std::string_view("world"));
    EXPECT_EQ(f.bytes_written(), 12u);
    f.commit();
    EXPECT_THROW(f.write("x", 1), IoError);
    EXPECT_THROW(f.commit(), IoError);
  }
  EXPECT_EQ(slurp(target), "hello, world");
  EXPECT_EQ(listing(), std::vector<std::string>{"out.bin"});
}

TEST_F(FileTest, AtomicFileTemporaryNamesAreDistinct) {
  AtomicFile a(path("same")), b(path("same"));
  EXPECT_NE(a.temp_path(), b.temp_path());
}

TEST_F(FileTest, ExceptionBeforeCommitRemovesTemporaryAndKeepsOldFile) {
  const std::string target = path("model.bin");
  spit(target, "old content");
  std::string temp;
  try {
    AtomicFile f(target);
    temp = f.temp_path();
    f.write("new content that never lands", 28);
    throw std::runtime_error("simulated failure while writing");
  } catch (const std::runtime_error& e) {
    EXPECT_STREQ(e.what(), "simulated failure while writing");
  }
  EXPECT_FALSE(temp.empty());
  EXPECT_FALSE(fs::exists(temp));
  EXPECT_EQ(slurp(target), "old content");
  EXPECT_EQ(listing(), std::vector<std::string>{"model.bin"});
}

TEST_F(FileTest, WriteFailureMidwayKeepsOldFileIntact) {
  const std::string target = path("big.bin");
  const std::string old_content(3000, 'o');
  write_file_atomic(target, old_content);
  {
    FileSizeLimit limit(4096);
    ASSERT_TRUE(limit.ok());
    const std::string new_content(100000, 'n');
    try {
      write_file_atomic(target, new_content);
      FAIL() << "expected IoError";
    } catch (const IoError& e) {
      const std::string msg = e.what();
      EXPECT_EQ(msg.rfind(target + ": ", 0), 0u) << msg;
      EXPECT_NE(msg.find(std::strerror(EFBIG)), std::string::npos) << msg;
    }
  }
  EXPECT_EQ(slurp(target), old_content);
  EXPECT_EQ(listing(), std::vector<std::string>{"big.bin"});
}

TEST_F(FileTest, MissingDirectoryIsAnIoErrorNamingPathAndReason) {
  const std::string target = path("no/such/dir/out.bin");
  try {
    write_file_atomic(target, "x");
    FAIL() << "expected IoError";
  } catch (const IoError& e) {
    const std::string msg = e.what();
    EXPECT_EQ(msg.rfind(target + ": ", 0), 0u) << msg;
    EXPECT_NE(msg.find(std::strerror(ENOENT)), std::string::npos) << msg;
  }
  EXPECT_TRUE(listing().empty());
}

TEST_F(FileTest, WriteFileAtomicReplacesContent) {
  const std::string target = path("r.txt");
  write_file_atomic(target, "first version, longer");
  write_file_atomic(target, "second");
  EXPECT_EQ(slurp(target), "second");
  write_file_atomic(target, "");
  EXPECT_EQ(slurp(target), "");
  EXPECT_EQ(fs::file_size(target), 0u);
}

TEST_F(FileTest, ReadFileRoundTripAndLimit) {
  const std::string p = path("data.bin");
  std::string content(10000, '\0');
  for (std::size_t i = 0; i < content.size(); ++i) content[i] = static_cast<char>(i * 7);
  write_file_atomic(p, content);
  EXPECT_EQ(read_file(p, 10000), content);   // exactly at the limit
  EXPECT_EQ(read_file(p, 1 << 20), content);
  try {
    read_file(p, 9999);
    FAIL() << "expected IoError";
  } catch (const IoError& e) {
    const std::string msg = e.what();
    EXPECT_EQ(msg.rfind(p + ": ", 0), 0u) << msg;
    EXPECT_NE(msg.find("10000 bytes"), std::string::npos) << msg;
    EXPECT_NE(msg.find("limit of 9999"), std::string::npos) << msg;
  }
  write_file_atomic(p, "");
  EXPECT_EQ(read_file(p, 0), "");
}

TEST_F(FileTest, ReadFileErrors) {
  EXPECT_THROW(read_file(path("absent"), 100), IoError);
  try {
    read_file(path("absent"), 100);
  } catch (const IoError& e) {
    EXPECT_NE(std::string(e.what()).find(std::strerror(ENOENT)), std::string::npos) << e.what();
  }
  EXPECT_THROW(read_file(dir_, 100), IoError);  // a directory
}

TEST_F(FileTest, ReadFileEnforcesLimitWhenSizeIsUnknown) {
  // /proc files report size 0; the limit must still hold while reading.
  const std::string self = "/proc/self/status";
  if (!fs::exists(self)) GTEST_SKIP() << "no /proc";
  EXPECT_GT(read_file(self, 1 << 20).size(), 10u);
  EXPECT_THROW(read_file(self, 10), IoError);
}

TEST_F(FileTest, PreadExactReportsTruncation) {
  const std::string p = path("short.bin");
  write_file_atomic(p, "0123456789");
  UniqueFd fd = open_for_reading(p);
  char buf[8];
  pread_exact(fd.get(), buf, 4, 6, p, "tail");
  EXPECT_EQ(std::string(buf, 4), "6789");
  try {
    pread_exact(fd.get(), buf, 8, 6, p, "tail");
    FAIL() << "expected IoError";
  } catch (const IoError& e) {
    const std::string msg = e.what();
    EXPECT_EQ(msg.rfind(p + ": truncated", 0), 0u) << msg;
  }
}

}  // namespace
}  // namespace prunerec
