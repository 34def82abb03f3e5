#include "base/crc32c.h"

#include <array>
#include <bit>
#include <cstring>

#include "base/error.h"

#if defined(__x86_64__)
#include <nmmintrin.h>
#define PRUNEREC_CRC32C_X86 1
#else
#define PRUNEREC_CRC32C_X86 0
#endif

namespace prunerec {
namespace {

static_assert(std::endian::native == std::endian::little,
              "crc32c slicing-by-8 loads words as little-endian");

constexpr std::uint32_t kPolynomial = 0x82F63B78u;  // Castagnoli, bit-reversed

// kTables[0] is the classic byte-at-a-time table; kTables[k][b] is the CRC of byte b
// followed by k zero bytes, so eight lookups advance the CRC by eight bytes at once.
constexpr std::array<std::array<std::uint32_t, 256>, 8> make_tables() {
  std::array<std::array<std::uint32_t, 256>, 8> tables{};
  for (std::uint32_t b = 0; b < 256; ++b) {
    std::uint32_t c = b;
    for (int bit = 0; bit < 8; ++bit) c = (c >> 1) ^ ((c & 1u) ? kPolynomial : 0u);
    tables[0][b] = c;
  }
  for (int k = 1; k < 8; ++k)
    for (std::uint32_t b = 0; b < 256; ++b)
      tables[k][b] = (tables[k - 1][b] >> 8) ^ tables[0][tables[k - 1][b] & 0xFFu];
  return tables;
}
constexpr auto kTables = make_tables();

std::uint32_t load_u32(const unsigned char* p) {
  std::uint32_t v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

#if PRUNEREC_CRC32C_X86
__attribute__((target("sse4.2"))) std::uint32_t crc32c_sse42(const unsigned char* p, std::size_t n,
                                                             std::uint32_t state) {
  // Bytes up to an 8-byte boundary, then whole words, then the tail.
  while (n > 0 && (reinterpret_cast<std::uintptr_t>(p) & 7u) != 0) {
    state = _mm_crc32_u8(state, *p++);
    --n;
  }
  std::uint64_t state64 = state;
  for (; n >= 8; n -= 8, p += 8) {
    std::uint64_t word;
    std::memcpy(&word, p, sizeof word);
    state64 = _mm_crc32_u64(state64, word);
  }
  state = static_cast<std::uint32_t>(state64);
  for (; n > 0; --n) state = _mm_crc32_u8(state, *p++);
  return state;
}
#endif

using Crc32cFn = std::uint32_t (*)(const void*, std::size_t, std::uint32_t);

Crc32cFn select_implementation() {
  return detail::crc32c_hardware_available() ? &detail::crc32c_hardware : &detail::crc32c_software;
}

}  // namespace

namespace detail {

std::uint32_t crc32c_software(const void* data, std::size_t n, std::uint32_t crc) {
  const auto* p = static_cast<const unsigned char*>(data);
  std::uint32_t state = ~crc;
  for (; n >= 8; n -= 8, p += 8) {
    const std::uint32_t lo = load_u32(p) ^ state;
    const std::uint32_t hi = load_u32(p + 4);
    state = kTables[7][lo & 0xFFu] ^ kTables[6][(lo >> 8) & 0xFFu] ^
            kTables[5][(lo >> 16) & 0xFFu] ^ kTables[4][lo >> 24] ^
            kTables[3][hi & 0xFFu] ^ kTables[2][(hi >> 8) & 0xFFu] ^
            kTables[1][(hi >> 16) & 0xFFu] ^ kTables[0][hi >> 24];
  }
  for (; n > 0; --n) state = (state >> 8) ^ kTables[0][(state ^ *p++) & 0xFFu];
  return ~state;
}

bool crc32c_hardware_available() {
#if PRUNEREC_CRC32C_X86
  __builtin_cpu_init();  // safe to call repeatedly; needed if we run before constructors
  return __builtin_cpu_supports("sse4.2");
#else
  return false;
#endif
}

std::uint32_t crc32c_hardware(const void* data, std::size_t n, std::uint32_t crc) {
#if PRUNEREC_CRC32C_X86
  return ~crc32c_sse42(static_cast<const unsigned char*>(data), n, ~crc);
#else
  throw InternalError("crc32c_hardware: no hardware CRC-32C on this architecture");
#endif
}

}  // namespace detail

std::uint32_t crc32c(const void* data, std::size_t n, std::uint32_t crc) {
  static const Crc32cFn impl = select_implementation();
  return impl(data, n, crc);
}

}  // namespace prunerec
