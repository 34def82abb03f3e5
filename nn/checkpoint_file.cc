#include "nn/checkpoint_file.h"

#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/io/zero_copy_stream_impl_lite.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <concepts>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <future>
#include <memory>
#include <unordered_set>

#include "base/error.h"
#include "base/atomic_file.h"
#include "base/crc32c.h"

namespace prunerec::nn {
namespace {

// Tensor bytes are written as they sit in memory; the format is little-endian.
static_assert(std::endian::native == std::endian::little,
              "the checkpoint format stores host bytes and is defined as little-endian");

// ---- layout constants (Note [checkpoint layout]) --------------------------------------

constexpr char kMagic[8] = {'P', 'R', 'U', 'N', 'E', 'R', 'E', 'C'};
constexpr char kEndMagic[8] = {'P', 'R', 'N', 'R', '-', 'E', 'N', 'D'};
constexpr std::uint64_t kHeaderBytes = 32;
constexpr std::uint64_t kTrailerBytes = 16;
constexpr std::uint64_t kAlign = 64;
constexpr int kMaxRank = 64;  // far beyond any real tensor; bounds what a record may claim
// Tensors are read and checksummed in pieces of this size, so each piece is checked
// while it is still in cache.
constexpr std::size_t kReadChunk = std::size_t{8} << 20;

constexpr std::uint64_t align_up(std::uint64_t x) { return (x + kAlign - 1) / kAlign * kAlign; }

void put_u32(unsigned char* p, std::uint32_t v) { std::memcpy(p, &v, sizeof v); }
void put_u64(unsigned char* p, std::uint64_t v) { std::memcpy(p, &v, sizeof v); }
std::uint32_t get_u32(const unsigned char* p) {
  std::uint32_t v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
std::uint64_t get_u64(const unsigned char* p) {
  std::uint64_t v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

std::string hex32(std::uint32_t v) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "0x%08x", v);
  return buf;
}

// The first bytes of a file as a C-like escaped string, for "not a checkpoint" messages.
std::string printable(const unsigned char* p, std::size_t n) {
  std::string out;
  for (std::size_t i = 0; i < n; ++i) {
    if (p[i] >= 0x20 && p[i] < 0x7f && p[i] != '"' && p[i] != '\\') {
      out += static_cast<char>(p[i]);
    } else {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", p[i]);
      out += buf;
    }
  }
  return out;
}

template <class... Args>
[[noreturn]] void fail(const std::string& path, Args&&... args) {
  throw IoError(detail::str_cat(path, ": ", std::forward<Args>(args)...));
}

std::string quoted(std::string_view name) { return detail::str_cat("tensor '", name, "'"); }

pb::DType to_pb(DType t) {
  switch (t) {
    case DType::f32: return pb::F32;
    case DType::i32: return pb::I32;
    case DType::i64: return pb::I64;
    case DType::f64: return pb::F64;
  }
  throw InternalError("checkpoint: unhandled dtype");
}

bool from_pb(int t, DType* out) {
  switch (t) {
    case pb::F32: *out = DType::f32; return true;
    case pb::I32: *out = DType::i32; return true;
    case pb::I64: *out = DType::i64; return true;
    case pb::F64: *out = DType::f64; return true;
    default: return false;
  }
}

// ---- reading: header, trailer, manifest, records --------------------------------------

// A tensor record after validation, with everything the data pass needs.
struct TensorSlot {
  int record;  // index into manifest.tensors
  DType dtype;
  Shape shape;
  std::uint64_t offset;  // from data_start
  std::uint64_t nbytes;
  std::uint32_t crc;
};

// A checkpoint whose header, trailer and manifest passed every check; the tensor data
// has not been read yet.
struct OpenedCheckpoint {
  UniqueFd fd;                           // the file, or
  const unsigned char* memory = nullptr;  // its bytes in memory (read_checkpoint_from_memory)
  std::uint64_t file_size = 0;
  std::uint64_t data_start = 0;
  std::uint64_t data_size = 0;
  pb::Manifest manifest;
  std::vector<TensorSlot> slots;  // in manifest order

  // Reads n bytes at `pos` (checked against file_size by the callers).
  void read(void* buf, std::size_t n, std::uint64_t pos, const std::string& path, std::string_view what) const {
    if (memory != nullptr)
      std::memcpy(buf, memory + pos, n);
    else
      pread_exact(fd.get(), buf, n, pos, path, what);
  }
};

// Checks every tensor record against Note [checkpoint validation]; allocates nothing
// sized by the records except the (rank-bounded) shapes.
std::vector<TensorSlot> validate_records(const std::string& path, const pb::Manifest& manifest,
                                         std::uint64_t data_size) {
  std::vector<TensorSlot> slots;
  slots.reserve(static_cast<std::size_t>(manifest.tensors_size()));
  std::unordered_set<std::string_view> names;
  names.reserve(static_cast<std::size_t>(manifest.tensors_size()));
  std::uint64_t previous_end = 0;
  for (int i = 0; i < manifest.tensors_size(); ++i) {
    const pb::TensorRecord& rec = manifest.tensors(i);
    if (rec.name().empty()) fail(path, "tensor record #", i, " has no name");
    const std::string who = quoted(rec.name());
    if (!names.insert(rec.name()).second) fail(path, who, ": appears twice in the manifest");
    TensorSlot slot;
    slot.record = i;
    if (!rec.has_dtype() || !from_pb(rec.dtype(), &slot.dtype))
      fail(path, who, ": missing or unknown dtype (this build knows f32, i32, i64, f64)");
    if (!rec.has_offset() || !rec.has_nbytes() || !rec.has_crc32c())
      fail(path, who, ": record lacks offset, nbytes or crc32c");
    if (rec.shape_size() > kMaxRank)
      fail(path, who, ": ", rec.shape_size(), " dimensions, more than the ", kMaxRank, " allowed");
    slot.shape.assign(rec.shape().begin(), rec.shape().end());
    std::int64_t numel = 1;
    for (std::int64_t d : slot.shape) {
      if (d < 0) fail(path, who, ": negative dimension in shape ", shape_str(slot.shape));
      if (__builtin_mul_overflow(numel, d, &numel))
        fail(path, who, ": shape ", shape_str(slot.shape), " has more elements than fit in 64 bits");
    }
    std::uint64_t need = 0;
    if (__builtin_mul_overflow(static_cast<std::uint64_t>(numel),
                               static_cast<std::uint64_t>(dtype_size(slot.dtype)), &need))
      fail(path, who, ": shape ", shape_str(slot.shape), " of ", dtype_name(slot.dtype),
           " has more bytes than fit in 64 bits");
    slot.offset = rec.offset();
    slot.nbytes = rec.nbytes();
    slot.crc = rec.crc32c();
    if (need != slot.nbytes)
      fail(path, who, ": ", dtype_name(slot.dtype), shape_str(slot.shape), " needs ", need,
           " bytes but the record says ", slot.nbytes);
    if (slot.offset % kAlign != 0)
      fail(path, who, ": offset ", slot.offset, " is not a multiple of ", kAlign);
    if (slot.offset < previous_end)
      fail(path, who, ": offset ", slot.offset, " overlaps the previous tensor, which ends at ",
           previous_end);
    if (slot.offset > data_size || slot.nbytes > data_size - slot.offset)
      fail(path, who, ": ", slot.nbytes, " bytes at offset ", slot.offset,
           " do not fit in the data section of ", data_size, " bytes");
    previous_end = slot.offset + slot.nbytes;
    slots.push_back(std::move(slot));
  }
  return slots;
}

// Fails unless the n bytes of the file at `pos` are all zero (padding).
void check_zero_in_file(const std::string& path, const OpenedCheckpoint& f, std::uint64_t pos, std::uint64_t n,
                        std::string_view what) {
  unsigned char buf[4096];
  while (n > 0) {
    const std::size_t k = static_cast<std::size_t>(std::min<std::uint64_t>(n, sizeof buf));
    f.read(buf, k, pos, path, what);
    for (std::size_t i = 0; i < k; ++i)
      if (buf[i] != 0) fail(path, "non-zero byte at offset ", pos + i, " in ", what, " (damaged file)");
    pos += k;
    n -= k;
  }
}

void check_zero_in_memory(const std::string& path, const unsigned char* file_base, std::uint64_t pos,
                          std::uint64_t n, std::string_view what) {
  for (std::uint64_t i = 0; i < n; ++i)
    if (file_base[pos + i] != 0) fail(path, "non-zero byte at offset ", pos + i, " in ", what, " (damaged file)");
}

// Checks header, trailer, manifest and records of an opened file or buffer (f.fd or
// f.memory, and f.file_size, are set).
void validate_checkpoint(const std::string& path, OpenedCheckpoint& f);

OpenedCheckpoint open_checkpoint(const std::string& path) {
  OpenedCheckpoint f;
  f.fd = open_for_reading(path);
  struct stat st;
  if (::fstat(f.fd.get(), &st) != 0) fail(path, "stat: ", std::strerror(errno));
  if (!S_ISREG(st.st_mode)) fail(path, "not a regular file");
  f.file_size = static_cast<std::uint64_t>(st.st_size);
  validate_checkpoint(path, f);
  return f;
}

OpenedCheckpoint open_checkpoint_in_memory(const void* data, std::size_t size, const std::string& name) {
  PR_CHECK_T(IoError, data != nullptr || size == 0, name, ": null buffer of ", size, " bytes");
  OpenedCheckpoint f;
  f.memory = static_cast<const unsigned char*>(data);
  f.file_size = size;
  validate_checkpoint(name, f);
  return f;
}

void validate_checkpoint(const std::string& path, OpenedCheckpoint& f) {

  // Magic first: a wrong file should be called that, not "truncated".
  unsigned char header[kHeaderBytes];
  const std::size_t head_n = static_cast<std::size_t>(std::min(f.file_size, kHeaderBytes));
  f.read(header, head_n, 0, path, "header");
  const std::size_t magic_n = std::min<std::size_t>(head_n, sizeof kMagic);
  if (std::memcmp(header, kMagic, magic_n) != 0)
    fail(path, "not a prunerec checkpoint (starts with \"", printable(header, magic_n),
         "\", expected \"PRUNEREC\")");
  if (f.file_size < kHeaderBytes + kTrailerBytes)
    fail(path, "truncated: file is ", f.file_size, " bytes, header and trailer need ",
         kHeaderBytes + kTrailerBytes);

  // The version before the header checksum: a newer format may lay its header out
  // differently, and "unsupported version" is the useful message then.
  const std::uint32_t version = get_u32(header + 8);
  if (version != kCheckpointFormatVersion)
    fail(path, "unsupported checkpoint format version ", version, " (this build reads version ",
         kCheckpointFormatVersion, "; written by a newer prunerec, or damaged)");
  const std::uint32_t header_crc = get_u32(header + 28);
  const std::uint32_t header_crc_computed = crc32c(header, 28);
  if (header_crc != header_crc_computed)
    fail(path, "header checksum mismatch (stored ", hex32(header_crc), ", computed ",
         hex32(header_crc_computed), ")");
  const std::uint32_t flags = get_u32(header + 12);
  if (flags != 0) fail(path, "unknown header flags ", hex32(flags), " (this build knows none)");

  const std::uint64_t manifest_size = get_u64(header + 16);
  if (manifest_size > kMaxManifestBytes)
    fail(path, "manifest size ", manifest_size, " exceeds the limit of ", kMaxManifestBytes, " bytes");
  f.data_start = align_up(kHeaderBytes + manifest_size);
  if (f.data_start + kTrailerBytes > f.file_size)
    fail(path, "truncated: file is ", f.file_size, " bytes, but a manifest of ", manifest_size,
         " bytes puts the data section at ", f.data_start);

  unsigned char trailer[kTrailerBytes];
  f.read(trailer, kTrailerBytes, f.file_size - kTrailerBytes, path, "trailer");
  if (std::memcmp(trailer + 8, kEndMagic, sizeof kEndMagic) != 0)
    fail(path, "truncated or damaged: the file (", f.file_size,
         " bytes) does not end with the marker \"PRNR-END\"");
  f.data_size = get_u64(trailer);
  const std::uint64_t data_room = f.file_size - kTrailerBytes - f.data_start;
  if (f.data_size != data_room)
    fail(path, "truncated or damaged: the trailer records a data section of ", f.data_size,
         " bytes, but the file (", f.file_size, " bytes) holds ", data_room, " between data start ",
         f.data_start, " and the trailer");

  // Everything sized by the header is now known to fit in the file.
  std::string manifest_bytes(static_cast<std::size_t>(manifest_size), '\0');
  f.read(manifest_bytes.data(), manifest_bytes.size(), kHeaderBytes, path, "manifest");
  const std::uint32_t manifest_crc = get_u32(header + 24);
  const std::uint32_t manifest_crc_computed = crc32c(manifest_bytes.data(), manifest_bytes.size());
  if (manifest_crc != manifest_crc_computed)
    fail(path, "manifest checksum mismatch (stored ", hex32(manifest_crc), ", computed ",
         hex32(manifest_crc_computed), ")");
  check_zero_in_file(path, f, kHeaderBytes + manifest_size,
                     f.data_start - kHeaderBytes - manifest_size, "the padding after the manifest");
  if (!f.manifest.ParseFromString(manifest_bytes))
    fail(path, "manifest does not parse as prunerec.pb.Manifest (damaged, or an incompatible writer)");
  manifest_bytes = std::string();  // give the memory back before tensors are allocated
  if (f.manifest.format_version() != version)
    fail(path, "manifest says format version ", f.manifest.format_version(), ", header says ", version);

  f.slots = validate_records(path, f.manifest, f.data_size);
}

// Note [borrowed tensors]: a mapped checkpoint hands out tensors whose Storage borrows
// the mapping (Storage's borrowing constructor; the owner munmaps when the last tensor
// goes), so loading a large model touches only the pages it uses.
Tensor tensor_on_mapping(unsigned char* data, std::size_t nbytes, const std::shared_ptr<void>& owner,
                         const Shape& shape, DType dtype) {
  return Tensor::from_storage(std::make_shared<Storage>(data, nbytes, owner), shape, dtype);
}

}  // namespace

// ---- write ----------------------------------------------------------------------------

namespace {

constexpr std::size_t kDirectAlign = 4096;                      // O_DIRECT: offsets, lengths, buffers
constexpr std::size_t kStagingBlock = std::size_t{8} << 20;     // bytes per write(2)
constexpr std::uint64_t kDirectIoMinData = std::uint64_t{64} << 20;

constexpr std::uint64_t align_direct(std::uint64_t x) { return (x + kDirectAlign - 1) / kDirectAlign * kDirectAlign; }

struct FreeDeleter {
  void operator()(unsigned char* p) const { std::free(p); }
};
using AlignedBytes = std::unique_ptr<unsigned char[], FreeDeleter>;

AlignedBytes aligned_zeros(std::size_t n, const std::string& path) {
  auto* p = static_cast<unsigned char*>(std::aligned_alloc(kDirectAlign, align_direct(std::max<std::size_t>(n, 1))));
  if (p == nullptr) fail(path, "cannot write checkpoint: out of memory for a ", n, "-byte staging buffer");
  std::memset(p, 0, n);
  return AlignedBytes(p);
}

// The file of Note [streamed checkpoint writes], written front to back through two staging
// blocks (one filled while the other is written), except its head [0, head_size), which
// stays in memory until finish().
class StagedFile {
 public:
  StagedFile(const AtomicFile& file, std::uint64_t head_size, std::uint64_t file_size, bool direct)
      : path_(file.target()), temp_(file.temp_path()), file_size_(file_size),
        head_size_(std::min(align_direct(head_size), file_size)),
        block_size_(static_cast<std::size_t>(std::min<std::uint64_t>(kStagingBlock, file_size - head_size_))),
        head_(aligned_zeros(static_cast<std::size_t>(head_size_), path_)),
        blocks_{aligned_zeros(block_size_, path_), aligned_zeros(block_size_, path_)} {
    open(direct);
  }
  ~StagedFile() {
    if (pending_.valid()) pending_.wait();  // never leave a write running on our buffers
  }

  unsigned char* head() { return head_.get(); }
  std::uint64_t position() const { return pos_; }

  // Where the bytes at position() go, and how many fit there before the next write.
  unsigned char* next(std::size_t* room) {
    PR_ASSERT(pos_ < file_size_);
    if (pos_ < head_size_) {
      *room = static_cast<std::size_t>(head_size_ - pos_);
      return head_.get() + pos_;
    }
    const std::uint64_t in_block = (pos_ - head_size_) % block_size_;
    *room = static_cast<std::size_t>(std::min<std::uint64_t>(block_size_ - in_block, file_size_ - pos_));
    return blocks_[current_].get() + in_block;
  }
  // n bytes at next() are written; a full block (or the file's last) goes to the file.
  void advance(std::size_t n) {
    pos_ += n;
    if (pos_ <= head_size_) return;
    const std::uint64_t in_block = (pos_ - head_size_) % block_size_;
    if (in_block == 0 || pos_ == file_size_) {
      // The block goes to the file on another thread while the next one is filled (the
      // write of the one before must be done first: its buffer is the next one).
      const std::size_t len = in_block == 0 ? block_size_ : static_cast<std::size_t>(in_block);
      if (pending_.valid()) pending_.get();  // rethrows its IoError
      unsigned char* block = blocks_[current_].get();
      const std::uint64_t offset = pos_ - len;
      pending_ = std::async(std::launch::async, [this, block, len, offset] { write_at(block, len, offset); });
      current_ ^= 1;
    }
  }
  void put(const void* data, std::size_t n) {
    const auto* p = static_cast<const unsigned char*>(data);
    while (n > 0) {
      std::size_t room = 0;
      unsigned char* dst = next(&room);
      const std::size_t k = std::min(n, room);
      std::memcpy(dst, p, k);
      p += k;
      n -= k;
      advance(k);
    }
  }
  void put_zeros(std::uint64_t n) {
    while (n > 0) {
      std::size_t room = 0;
      unsigned char* dst = next(&room);
      const std::size_t k = static_cast<std::size_t>(std::min<std::uint64_t>(n, room));
      std::memset(dst, 0, k);
      n -= k;
      advance(k);
    }
  }
  // Writes the head and gives the file its exact size (the last write may be padded).
  void finish() {
    PR_ASSERT(pos_ == file_size_);
    if (pending_.valid()) pending_.get();
    write_at(head_.get(), static_cast<std::size_t>(head_size_), 0);
    if (::ftruncate(fd_.get(), static_cast<off_t>(file_size_)) != 0)
      fail(path_, "truncate of ", temp_, ": ", std::strerror(errno));
    fd_.reset();
  }

 private:
  void open(bool direct) {
    int fd;
    do {
      fd = ::open(temp_.c_str(), O_WRONLY | O_CLOEXEC | (direct ? O_DIRECT : 0));
    } while (fd < 0 && errno == EINTR);
    if (fd < 0 && direct && errno == EINVAL) return open(false);  // e.g. tmpfs
    if (fd < 0) fail(path_, "cannot open ", temp_, " for writing: ", std::strerror(errno));
    fd_ = UniqueFd(fd);
    direct_ = direct;
  }
  // len bytes at `offset` (a multiple of kDirectAlign); with O_DIRECT the length is
  // padded with zeros to a multiple of it (the buffers have the room, see aligned_zeros)
  // and finish() truncates.
  void write_at(unsigned char* data, std::size_t len, std::uint64_t offset) {
    PR_ASSERT(offset % kDirectAlign == 0);
    const std::size_t padded = static_cast<std::size_t>(align_direct(len));
    std::memset(data + len, 0, padded - len);
    std::size_t done = 0;
    const std::size_t total = direct_ ? padded : len;
    while (done < total) {
      const ssize_t n = ::pwrite(fd_.get(), data + done, total - done, static_cast<off_t>(offset + done));
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && errno == EINVAL && direct_ && done == 0) {  // O_DIRECT refused at write time
        open(false);
        return write_at(data, len, offset);
      }
      if (n <= 0) fail(path_, "write to ", temp_, " at offset ", offset + done, ": ", n < 0 ? std::strerror(errno) : "no progress");
      done += static_cast<std::size_t>(n);
    }
  }

  std::string path_, temp_;
  std::uint64_t file_size_, head_size_;
  std::size_t block_size_;
  AlignedBytes head_, blocks_[2];
  int current_ = 0;                // the block being filled
  std::future<void> pending_;      // the write of the other one
  UniqueFd fd_;
  bool direct_ = false;
  std::uint64_t pos_ = 0;
};

std::string serialize_manifest(const std::string& path, const pb::Manifest& manifest) {
  std::string bytes;
  {
    google::protobuf::io::StringOutputStream stream(&bytes);
    google::protobuf::io::CodedOutputStream coded(&stream);
    coded.SetSerializationDeterministic(true);
    if (!manifest.SerializeToCodedStream(&coded)) fail(path, "cannot serialize the manifest");
  }
  return bytes;
}

}  // namespace

void write_checkpoint_streamed(const std::string& path, pb::Manifest manifest,
                               const std::vector<StreamedTensor>& tensors) {
  // Everything that can be checked is checked before the temporary file exists.
  std::unordered_set<std::string_view> names;
  names.reserve(tensors.size());
  for (std::size_t i = 0; i < tensors.size(); ++i) {
    const StreamedTensor& st = tensors[i];
    if (st.name.empty()) fail(path, "cannot write checkpoint: tensor #", i, " has an empty name");
    if (!names.insert(st.name).second) fail(path, "cannot write checkpoint: ", quoted(st.name), " appears twice");
    if (!st.fill) fail(path, "cannot write checkpoint: ", quoted(st.name), " has no data");
    for (std::int64_t d : st.shape)
      if (d < 0) fail(path, "cannot write checkpoint: ", quoted(st.name), " has shape ", shape_str(st.shape));
  }

  // The records, with zero CRCs until the data has been produced.
  manifest.clear_tensors();
  manifest.set_format_version(kCheckpointFormatVersion);
  std::uint64_t data_size = 0;
  for (const StreamedTensor& st : tensors) {
    const std::uint64_t nbytes = static_cast<std::uint64_t>(shape_numel(st.shape)) * dtype_size(st.dtype);
    const std::uint64_t offset = align_up(data_size);
    pb::TensorRecord* rec = manifest.add_tensors();
    rec->set_name(st.name);
    rec->set_dtype(to_pb(st.dtype));
    for (std::int64_t d : st.shape) rec->add_shape(d);
    rec->set_offset(offset);
    rec->set_nbytes(nbytes);
    rec->set_crc32c(0);
    data_size = offset + nbytes;
  }
  // Deterministic serialization: map entries in key order, so equal input gives equal bytes.
  const std::size_t manifest_size = manifest.ByteSizeLong();
  if (manifest_size > kMaxManifestBytes)
    fail(path, "cannot write checkpoint: manifest of ", manifest_size, " bytes exceeds the limit of ",
         kMaxManifestBytes);
  const std::uint64_t data_start = align_up(kHeaderBytes + manifest_size);
  const std::uint64_t file_size = data_start + data_size + kTrailerBytes;

  AtomicFile file(path);
  StagedFile out(file, data_start, file_size, data_size >= kDirectIoMinData);
  out.put_zeros(data_start);  // header and manifest: written into the head by finish()
  for (int i = 0; i < manifest.tensors_size(); ++i) {
    pb::TensorRecord& rec = *manifest.mutable_tensors(i);
    const StreamedTensor& st = tensors[static_cast<std::size_t>(i)];
    out.put_zeros(data_start + rec.offset() - out.position());
    std::uint32_t crc = 0;
    for (std::uint64_t begin = 0; begin < rec.nbytes();) {
      std::size_t room = 0;
      unsigned char* dst = out.next(&room);
      const std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(room, rec.nbytes() - begin));
      PR_ASSERT(begin % dtype_size(st.dtype) == 0 && n % dtype_size(st.dtype) == 0);
      st.fill(begin, n, dst);
      crc = crc32c(dst, n, crc);  // while the piece is in cache
      out.advance(n);
      begin += n;
    }
    rec.set_crc32c(crc);
  }
  unsigned char trailer[kTrailerBytes];
  put_u64(trailer, data_size);
  std::memcpy(trailer + 8, kEndMagic, sizeof kEndMagic);
  out.put(trailer, sizeof trailer);

  const std::string manifest_bytes = serialize_manifest(path, manifest);
  if (manifest_bytes.size() != manifest_size)
    throw InternalError(detail::str_cat(path, ": manifest serialized to ", manifest_bytes.size(),
                                        " bytes, expected ", manifest_size));
  unsigned char* head = out.head();
  std::memcpy(head, kMagic, sizeof kMagic);
  put_u32(head + 8, kCheckpointFormatVersion);
  put_u32(head + 12, 0);
  put_u64(head + 16, manifest_size);
  put_u32(head + 24, crc32c(manifest_bytes.data(), manifest_bytes.size()));
  put_u32(head + 28, crc32c(head, 28));
  std::memcpy(head + kHeaderBytes, manifest_bytes.data(), manifest_bytes.size());
  out.finish();
  file.commit();
}

void write_checkpoint(const std::string& path, pb::Manifest manifest,
                      const std::vector<NamedTensor>& tensors) {
  std::vector<StreamedTensor> streamed;
  streamed.reserve(tensors.size());
  for (std::size_t i = 0; i < tensors.size(); ++i) {
    const NamedTensor& nt = tensors[i];
    if (!nt.tensor.defined()) fail(path, "cannot write checkpoint: ", quoted(nt.name), " is undefined");
    // Non-contiguous tensors are copied; the copy lives in the closure until the write ends.
    Tensor c = nt.tensor.contiguous();
    streamed.push_back({nt.name, c.dtype(), c.shape(), [c](std::uint64_t begin, std::size_t n, unsigned char* out) {
                          std::memcpy(out, static_cast<const unsigned char*>(c.raw_data()) + begin, n);
                        }});
  }
  write_checkpoint_streamed(path, std::move(manifest), streamed);
}

// ---- read -----------------------------------------------------------------------------

const Tensor* LoadedCheckpoint::find(std::string_view name) const {
  for (const NamedTensor& nt : tensors)
    if (nt.name == name) return &nt.tensor;
  return nullptr;
}

pb::Manifest read_checkpoint_manifest(const std::string& path) {
  return std::move(open_checkpoint(path).manifest);
}

namespace {
LoadedCheckpoint read_tensors(const std::string& path, OpenedCheckpoint f, const ReadOptions& opts);
}  // namespace

LoadedCheckpoint read_checkpoint(const std::string& path, const ReadOptions& opts) {
  return read_tensors(path, open_checkpoint(path), opts);
}

LoadedCheckpoint read_checkpoint_from_memory(const void* data, std::size_t size, const std::string& name,
                                             const ReadOptions& opts) {
  // The tensors are copied out of the buffer: the caller may free it once this returns.
  return read_tensors(name, open_checkpoint_in_memory(data, size, name), {.verify_checksums = opts.verify_checksums});
}

namespace {
LoadedCheckpoint read_tensors(const std::string& path, OpenedCheckpoint f, const ReadOptions& opts) {

  unsigned char* file_base = nullptr;  // the whole file, when mapped
  std::shared_ptr<void> mapping;
  if (opts.mmap) {
    // MAP_PRIVATE + PROT_WRITE: copy-on-write, callers may modify tensors; the file never changes.
    void* p = ::mmap(nullptr, f.file_size, PROT_READ | PROT_WRITE, MAP_PRIVATE, f.fd.get(), 0);
    if (p == MAP_FAILED) fail(path, "mmap of ", f.file_size, " bytes: ", std::strerror(errno));
    const std::size_t length = f.file_size;
    mapping = std::shared_ptr<void>(p, [length](void* q) { ::munmap(q, length); });
    file_base = static_cast<unsigned char*>(p);
  }

  LoadedCheckpoint out;
  out.tensors.reserve(f.slots.size());
  std::uint64_t position = 0;  // bytes of the data section checked so far
  for (const TensorSlot& slot : f.slots) {
    const std::string& name = f.manifest.tensors(slot.record).name();
    const std::string who = quoted(name);
    const std::uint64_t file_offset = f.data_start + slot.offset;
    const std::size_t nbytes = static_cast<std::size_t>(slot.nbytes);
    const std::string padding_what = "the padding before " + who;
    std::uint32_t crc = 0;
    Tensor tensor;
    if (file_base != nullptr) {
      check_zero_in_memory(path, file_base, f.data_start + position, slot.offset - position, padding_what);
      unsigned char* data = file_base + file_offset;
      if (opts.verify_checksums) crc = crc32c(data, nbytes);
      tensor = tensor_on_mapping(data, nbytes, mapping, slot.shape, slot.dtype);
    } else {
      check_zero_in_file(path, f, f.data_start + position, slot.offset - position, padding_what);
      try {
        tensor = Tensor::empty(slot.shape, slot.dtype);
      } catch (const Error& e) {  // e.g. above kMaxAllocationBytes, or out of memory
        fail(path, who, ": cannot allocate ", nbytes, " bytes: ", e.what());
      }
      auto* dst = static_cast<unsigned char*>(tensor.raw_data());
      for (std::size_t done = 0; done < nbytes;) {
        const std::size_t k = std::min(nbytes - done, kReadChunk);
        f.read(dst + done, k, file_offset + done, path, who);
        if (opts.verify_checksums) crc = crc32c(dst + done, k, crc);
        done += k;
      }
    }
    if (opts.verify_checksums && crc != slot.crc)
      fail(path, who, ": checksum mismatch (stored ", hex32(slot.crc), ", computed ", hex32(crc), ")");
    out.tensors.push_back(NamedTensor{name, std::move(tensor)});
    position = slot.offset + slot.nbytes;
  }
  const std::uint64_t tail = f.data_size - position;
  if (file_base != nullptr)
    check_zero_in_memory(path, file_base, f.data_start + position, tail, "the padding after the last tensor");
  else
    check_zero_in_file(path, f, f.data_start + position, tail, "the padding after the last tensor");

  out.manifest = std::move(f.manifest);
  return out;
}

}  // namespace

}  // namespace prunerec::nn
