#include "api/safetensors.h"

#include <fcntl.h>
#include <google/protobuf/struct.pb.h>
#include <google/protobuf/util/json_util.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <bit>
#include <cstring>
#include <set>

#include "base/atomic_file.h"
#include "base/json.h"

namespace prunerec::hf {

static_assert(std::endian::native == std::endian::little,
              "safetensors data is little-endian; add byte swapping before building on a big-endian host");

SafetensorsLayout plan_safetensors(const std::vector<std::pair<std::string, Shape>>& tensors,
                                   const std::map<std::string, std::string>& metadata) {
  SafetensorsLayout layout;
  layout.tensors = tensors;
  std::sort(layout.tensors.begin(), layout.tensors.end(),
            [](const auto& a, const auto& b) { return a.first < b.first; });
  for (std::size_t i = 0; i < layout.tensors.size(); ++i) {
    const std::string& name = layout.tensors[i].first;
    PR_CHECK_T(ConfigError, !name.empty(), "safetensors: a tensor has an empty name");
    PR_CHECK_T(ConfigError, name != "__metadata__", "safetensors: '__metadata__' is reserved, not a tensor name");
    PR_CHECK_T(ConfigError, i == 0 || layout.tensors[i - 1].first != name, "safetensors: tensor '", name,
               "' is listed twice");
  }

  // Compact JSON (base/json.h), keys in byte order (std::map and the sorted list above).
  Json json;
  json.begin_object();
  if (!metadata.empty()) {
    json.key("__metadata__").begin_object();
    for (const auto& [k, v] : metadata) json.key(k).value(v);
    json.end_object();
  }
  std::uint64_t offset = 0;
  for (const auto& [name, shape] : layout.tensors) {
    const std::uint64_t bytes = static_cast<std::uint64_t>(shape_numel(shape)) * sizeof(float);
    json.key(name).begin_object().key("dtype").value("F32").key("shape").begin_array();
    for (const std::int64_t d : shape) {
      PR_CHECK_T(ConfigError, d >= 0, "safetensors: tensor '", name, "' has negative shape ", shape_str(shape));
      json.value(d);
    }
    json.end_array().key("data_offsets").begin_array().value(offset).value(offset + bytes).end_array().end_object();
    layout.offsets.emplace_back(offset, offset + bytes);
    offset += bytes;
  }
  json.end_object();
  std::string header = json.str();
  // Pad with spaces so 8 + header is a multiple of 8: the data starts aligned.
  header.append((8 - header.size() % 8) % 8, ' ');
  layout.header = std::move(header);
  layout.data_bytes = offset;
  return layout;
}

std::uint64_t write_safetensors(const std::string& path, const std::vector<NamedTensor>& tensors,
                                const std::map<std::string, std::string>& metadata) {
  std::vector<std::pair<std::string, Shape>> shapes;
  std::map<std::string, const Tensor*> by_name;
  for (const auto& [name, value] : tensors) {
    PR_CHECK_T(ConfigError, value.defined(), "safetensors: tensor '", name, "' is undefined");
    PR_CHECK_T(ConfigError, is_floating(value.dtype()), "safetensors: tensor '", name, "' is ", value.shape_str(),
               ", not floating point");
    shapes.emplace_back(name, value.shape());
    by_name[name] = &value;
  }
  const SafetensorsLayout layout = plan_safetensors(shapes, metadata);

  AtomicFile out(path);
  const std::uint64_t n = layout.header.size();
  unsigned char length[8];
  for (int i = 0; i < 8; ++i) length[i] = static_cast<unsigned char>(n >> (8 * i));
  out.write(length, sizeof length);
  out.write(layout.header);
  for (const auto& [name, shape] : layout.tensors) {
    const Tensor values = by_name.at(name)->to(DType::f32).contiguous();
    if (values.numel() > 0) out.write(values.data<float>(), values.nbytes());
  }
  PR_ASSERT(out.bytes_written() == 8 + n + layout.data_bytes);
  const std::uint64_t total = out.bytes_written();
  out.commit();
  return total;
}

// ---- Reading ---------------------------------------------------------------------------

namespace {

constexpr std::uint64_t kMaxHeaderBytes = 100'000'000;  // the format's own limit
constexpr double kMaxExactInteger = 9007199254740992.0;  // 2^53

template <class... Args>
[[noreturn]] void fail(const std::string& path, Args&&... args) {
  throw IoError(detail::str_cat(path, ": ", std::forward<Args>(args)...));
}

// A JSON number that must be a non-negative integer exactly representable in a double.
std::uint64_t whole_number(const google::protobuf::Value& v, const std::string& path, const std::string& what) {
  if (v.kind_case() != google::protobuf::Value::kNumberValue) fail(path, what, " must be a number");
  const double d = v.number_value();
  if (!(d >= 0 && d < kMaxExactInteger && std::floor(d) == d))
    fail(path, what, " must be a non-negative integer below 2^53, got ", d);
  return static_cast<std::uint64_t>(d);
}

bool parse_dtype(const std::string& s, StDType* out) {
  static const std::pair<const char*, StDType> kNames[] = {
      {"F32", StDType::f32}, {"F16", StDType::f16}, {"BF16", StDType::bf16}, {"F64", StDType::f64}};
  for (const auto& [name, t] : kNames)
    if (s == name) {
      *out = t;
      return true;
    }
  return false;
}

}  // namespace

const char* st_dtype_name(StDType t) {
  switch (t) {
    case StDType::f32: return "F32";
    case StDType::f16: return "F16";
    case StDType::bf16: return "BF16";
    case StDType::f64: return "F64";
  }
  return "?";
}

std::size_t st_dtype_size(StDType t) {
  switch (t) {
    case StDType::f32: return 4;
    case StDType::f16: return 2;
    case StDType::bf16: return 2;
    case StDType::f64: return 8;
  }
  return 0;
}

float bf16_to_f32(std::uint16_t bits) { return std::bit_cast<float>(static_cast<std::uint32_t>(bits) << 16); }

float f16_to_f32(std::uint16_t h) {
  const std::uint32_t sign = static_cast<std::uint32_t>(h & 0x8000u) << 16;
  const std::uint32_t exp = (h >> 10) & 0x1fu, man = h & 0x3ffu;
  if (exp == 0x1f) return std::bit_cast<float>(sign | 0x7f800000u | (man << 13));  // inf, nan
  if (exp != 0) return std::bit_cast<float>(sign | ((exp + 112) << 23) | (man << 13));
  // Zero or subnormal: man * 2^-24, exact in float.
  const float v = std::ldexp(static_cast<float>(man), -24);
  return sign ? -v : v;
}

void bf16_to_f32(const unsigned char* src, std::size_t n, float* dst) {
  for (std::size_t i = 0; i < n; ++i) {
    std::uint16_t bits;
    std::memcpy(&bits, src + 2 * i, 2);
    const std::uint32_t word = static_cast<std::uint32_t>(bits) << 16;
    std::memcpy(dst + i, &word, 4);
  }
}

// Branch-free IEEE half -> float: for a normal half, its exponent and mantissa bits moved
// into a float's place plus the exponent bias difference (127 - 15) << 23; for exponent 0
// (zero, subnormal) the mantissa m converted exactly and scaled, m * 2^-24 (a normal float,
// so no denormal arithmetic, whatever the FTZ/DAZ flags of the host process); for exponent
// 31 (infinity, NaN) the float's all-ones exponent with the mantissa kept. All three are
// computed and one is selected, so the loop vectorises.
void f16_to_f32(const unsigned char* src, std::size_t n, float* dst) {
  for (std::size_t i = 0; i < n; ++i) {
    std::uint16_t h;
    std::memcpy(&h, src + 2 * i, 2);
    const std::uint32_t sign = static_cast<std::uint32_t>(h & 0x8000u) << 16;
    const std::uint32_t exponent = h & 0x7c00u, mantissa = h & 0x3ffu;
    const std::uint32_t shifted = static_cast<std::uint32_t>(h & 0x7fffu) << 13;
    const float small = static_cast<float>(static_cast<std::int32_t>(mantissa)) * 0x1p-24f;
    std::uint32_t small_bits;
    std::memcpy(&small_bits, &small, 4);
    const std::uint32_t bits = exponent == 0 ? small_bits
                               : exponent == 0x7c00u ? (shifted | 0x7f800000u)
                                                     : shifted + (std::uint32_t{127 - 15} << 23);
    const std::uint32_t word = bits | sign;
    std::memcpy(dst + i, &word, 4);
  }
}

SafetensorsHeader parse_safetensors_header(std::string_view prefix, std::uint64_t file_size, const std::string& path) {
  if (file_size < 8 || prefix.size() < 8) fail(path, "truncated: ", file_size, " bytes, the header length needs 8");
  std::uint64_t n = 0;
  for (int i = 0; i < 8; ++i) n |= static_cast<std::uint64_t>(static_cast<unsigned char>(prefix[i])) << (8 * i);
  if (n > kMaxHeaderBytes) fail(path, "header length ", n, " is beyond the format's limit of ", kMaxHeaderBytes, " bytes");
  if (n > file_size - 8) fail(path, "truncated: the header needs ", n, " bytes after the length, the file has ", file_size - 8);
  if (prefix.size() < 8 + n) fail(path, "truncated: header incomplete");
  const std::string_view json = prefix.substr(8, n);
  if (json.empty() || json[0] != '{') fail(path, "the header is not a JSON object (it must start with '{')");

  google::protobuf::Struct root;
  google::protobuf::util::JsonParseOptions options;
  const auto status = google::protobuf::util::JsonStringToMessage(
      google::protobuf::StringPiece(json.data(), json.size()), &root, options);
  if (!status.ok()) fail(path, "the header is not valid JSON: ", status.ToString());

  SafetensorsHeader h;
  h.data_start = 8 + n;
  const std::uint64_t buffer = file_size - h.data_start;
  // Struct's map has no order; the header's key order does not matter to the format, so
  // entries are listed by name.
  std::vector<std::string> keys;
  for (const auto& [k, v] : root.fields()) keys.push_back(k);
  std::sort(keys.begin(), keys.end());
  for (const std::string& key : keys) {
    const google::protobuf::Value& v = root.fields().at(key);
    if (key == "__metadata__") {
      if (v.kind_case() != google::protobuf::Value::kStructValue) fail(path, "__metadata__ must be an object");
      for (const auto& [mk, mv] : v.struct_value().fields()) {
        if (mv.kind_case() != google::protobuf::Value::kStringValue)
          fail(path, "__metadata__ '", mk, "' must be a string");
        h.metadata[mk] = mv.string_value();
      }
      continue;
    }
    const std::string what = "tensor '" + key + "'";
    if (key.empty()) fail(path, "a tensor has an empty name");
    if (v.kind_case() != google::protobuf::Value::kStructValue) fail(path, what, " must be an object");
    const auto& f = v.struct_value().fields();
    for (const auto& [fk, fv] : f)
      if (fk != "dtype" && fk != "shape" && fk != "data_offsets") fail(path, what, ": unknown field '", fk, "'");
    if (!f.count("dtype") || !f.count("shape") || !f.count("data_offsets"))
      fail(path, what, " needs dtype, shape and data_offsets");
    SafetensorsEntry e;
    e.name = key;
    const auto& dt = f.at("dtype");
    if (dt.kind_case() != google::protobuf::Value::kStringValue) fail(path, what, ": dtype must be a string");
    if (!parse_dtype(dt.string_value(), &e.dtype))
      fail(path, what, ": dtype ", dt.string_value(), " is not one the engine reads (F32, F16, BF16, F64)");
    const auto& shape = f.at("shape");
    if (shape.kind_case() != google::protobuf::Value::kListValue) fail(path, what, ": shape must be a list");
    if (shape.list_value().values_size() > 8) fail(path, what, ": shape has ", shape.list_value().values_size(), " dims");
    std::uint64_t numel = 1;
    bool overflow = false;
    for (const auto& d : shape.list_value().values()) {
      const std::uint64_t dim = whole_number(d, path, what + " shape");
      e.shape.push_back(static_cast<std::int64_t>(dim));
      if (dim != 0 && numel > (std::uint64_t{1} << 62) / dim) overflow = true;
      numel *= dim;
    }
    const auto& off = f.at("data_offsets");
    if (off.kind_case() != google::protobuf::Value::kListValue || off.list_value().values_size() != 2)
      fail(path, what, ": data_offsets must be a list of two numbers");
    e.begin = whole_number(off.list_value().values(0), path, what + " data_offsets");
    e.end = whole_number(off.list_value().values(1), path, what + " data_offsets");
    if (e.begin > e.end) fail(path, what, ": data_offsets [", e.begin, ", ", e.end, "] run backwards");
    if (e.end > buffer)
      fail(path, what, ": data_offsets [", e.begin, ", ", e.end, "] reach beyond the ", buffer,
           "-byte data buffer (truncated file or a header that lies)");
    const std::uint64_t need = numel * st_dtype_size(e.dtype);
    if (overflow || need != e.end - e.begin)
      fail(path, what, ": data_offsets [", e.begin, ", ", e.end, "] hold ", e.end - e.begin, " bytes, ",
           st_dtype_name(e.dtype), shape_str(e.shape), " needs ", overflow ? std::string("more than 2^62") : std::to_string(need));
    h.entries.push_back(std::move(e));
  }
  // The tensors, by offset, must tile the buffer exactly.
  std::vector<const SafetensorsEntry*> by_offset;
  for (const auto& e : h.entries) by_offset.push_back(&e);
  std::sort(by_offset.begin(), by_offset.end(), [](const auto* a, const auto* b) {
    return a->begin != b->begin ? a->begin < b->begin : a->end < b->end;
  });
  std::uint64_t at = 0;
  for (const auto* e : by_offset) {
    if (e->begin != at)
      fail(path, "tensor '", e->name, "': data_offsets [", e->begin, ", ", e->end, "] ",
           e->begin < at ? "overlap the previous tensor" : "leave a gap after the previous tensor", " (which ends at ", at, ")");
    at = e->end;
  }
  if (at != buffer)
    fail(path, "the tensors cover ", at, " bytes of the ", buffer, "-byte data buffer (extra bytes at the end)");
  return h;
}

SafetensorsFile::SafetensorsFile(const std::string& path) : path_(path) {
  UniqueFd fd = open_for_reading(path);
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) fail(path, "stat: ", std::strerror(errno));
  if (!S_ISREG(st.st_mode)) fail(path, "not a regular file");
  size_ = static_cast<std::uint64_t>(st.st_size);
  if (size_ < 8) fail(path, "truncated: ", size_, " bytes, the header length needs 8");
  void* p = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd.get(), 0);
  if (p == MAP_FAILED) fail(path, "mmap: ", std::strerror(errno));
  map_ = static_cast<const unsigned char*>(p);
  try {
    header_ = parse_safetensors_header(std::string_view(reinterpret_cast<const char*>(map_), size_), size_, path);
  } catch (...) {
    ::munmap(const_cast<unsigned char*>(map_), size_);
    map_ = nullptr;
    throw;
  }
}

SafetensorsFile::~SafetensorsFile() {
  if (map_) ::munmap(const_cast<unsigned char*>(map_), size_);
}

SafetensorsFile::SafetensorsFile(SafetensorsFile&& o) noexcept
    : path_(std::move(o.path_)), map_(o.map_), size_(o.size_), header_(std::move(o.header_)) {
  o.map_ = nullptr;
}

const SafetensorsEntry* SafetensorsFile::find(std::string_view name) const {
  for (const auto& e : header_.entries)
    if (e.name == name) return &e;
  return nullptr;
}

std::string_view SafetensorsFile::bytes(const SafetensorsEntry& e) const {
  return {reinterpret_cast<const char*>(map_ + header_.data_start + e.begin), e.end - e.begin};
}

void SafetensorsFile::convert_f32(const SafetensorsEntry& e, std::uint64_t first, std::uint64_t count,
                                  float* dst) const {
  const std::size_t size = st_dtype_size(e.dtype);
  PR_ASSERT(first + count <= (e.end - e.begin) / size);
  const unsigned char* src = map_ + header_.data_start + e.begin + first * size;
  switch (e.dtype) {
    case StDType::f32: std::memcpy(dst, src, count * 4); break;
    case StDType::f64:
      for (std::uint64_t i = 0; i < count; ++i) {
        double v;
        std::memcpy(&v, src + 8 * i, 8);
        dst[i] = static_cast<float>(v);
      }
      break;
    case StDType::bf16: bf16_to_f32(src, count, dst); break;
    case StDType::f16: f16_to_f32(src, count, dst); break;
  }
}

void SafetensorsFile::drop_pages(const SafetensorsEntry& e) const {
  // A private, read-only map of an unchanged file: the data is read again from the page
  // cache if touched later.
  const unsigned char* src = map_ + header_.data_start + e.begin;
  const std::uintptr_t page = static_cast<std::uintptr_t>(::sysconf(_SC_PAGESIZE));
  const std::uintptr_t lo = reinterpret_cast<std::uintptr_t>(src) & ~(page - 1);
  const std::uintptr_t hi = reinterpret_cast<std::uintptr_t>(src + (e.end - e.begin)) & ~(page - 1);
  if (hi > lo) (void)::madvise(reinterpret_cast<void*>(lo), hi - lo, MADV_DONTNEED);
}

void SafetensorsFile::read_f32(const SafetensorsEntry& e, float* dst) const {
  convert_f32(e, 0, (e.end - e.begin) / st_dtype_size(e.dtype), dst);
  drop_pages(e);
}

Tensor SafetensorsFile::read_f32(const SafetensorsEntry& e) const {
  Tensor t = Tensor::empty(e.shape, DType::f32);
  if (t.numel() > 0) read_f32(e, t.data<float>());
  return t;
}

}  // namespace prunerec::hf
