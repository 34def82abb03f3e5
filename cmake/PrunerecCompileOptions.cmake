# Warnings, instruction set and sanitizers, applied to every prunerec target through the
# interface library prunerec_options.

add_library(prunerec_options INTERFACE)
target_compile_options(prunerec_options INTERFACE
    $<$<CXX_COMPILER_ID:GNU,Clang>:-Wall -Wextra -Wno-unused-parameter>)

# Kernels are written as plain loops that the compiler vectorises; AVX2 + FMA (x86-64-v3)
# roughly doubles their speed. "auto" enables it only when the build machine runs it, so
# a binary built here is not moved to an older CPU by accident.
if(PRUNEREC_ARCH STREQUAL "auto")
  include(CheckCXXSourceRuns)
  set(CMAKE_REQUIRED_FLAGS "-march=x86-64-v3")
  check_cxx_source_runs("
    #include <immintrin.h>
    int main() { __m256 a = _mm256_set1_ps(1.f); a = _mm256_fmadd_ps(a, a, a);
                 return _mm256_cvtss_f32(a) == 2.f ? 0 : 1; }" PRUNEREC_HAVE_X86_64_V3)
  unset(CMAKE_REQUIRED_FLAGS)
  if(PRUNEREC_HAVE_X86_64_V3)
    target_compile_options(prunerec_options INTERFACE -march=x86-64-v3)
  endif()
elseif(PRUNEREC_ARCH STREQUAL "native")
  target_compile_options(prunerec_options INTERFACE -march=native)
endif()

# Note [sanitizer builds]: PRUNEREC_SANITIZE (tools/test_sanitize.sh, GCC or Clang) and
# PRUNEREC_FUZZ (tools/test_fuzz.sh, Clang only) instrument every prunerec target with
# AddressSanitizer and UndefinedBehaviorSanitizer. A UB report is fatal
# (-fno-sanitize-recover), so a test or fuzz target cannot pass with one. libstdc++'s
# own checks (_GLIBCXX_ASSERTIONS: bounds of operator[], front() of an empty vector, ...)
# are on too (PRUNEREC_STDLIB_ASSERTIONS=OFF turns them off, to measure a fuzz campaign
# without them); they abort, which the tools count as a failure. Generated protobuf code and
# the system libraries (protobuf, oneTBB, OpenBLAS) are not instrumented.
option(PRUNEREC_STDLIB_ASSERTIONS "With PRUNEREC_SANITIZE or PRUNEREC_FUZZ: libstdc++ precondition checks" ON)
if(PRUNEREC_SANITIZE OR PRUNEREC_FUZZ)
  # GCC's "undefined" leaves out float-cast-overflow (Clang's includes it): a NaN or huge
  # double converted to an integer is undefined behaviour, and NaN is what this project's
  # inputs produce when they go wrong.
  set(sanitizer_flags -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
      $<$<CXX_COMPILER_ID:GNU>:-fsanitize=float-cast-overflow>
      $<$<CXX_COMPILER_ID:GNU>:-fno-sanitize-recover=float-cast-overflow>)
  if(PRUNEREC_STDLIB_ASSERTIONS)
    list(APPEND sanitizer_flags -D_GLIBCXX_ASSERTIONS)
  endif()
  target_compile_options(prunerec_options INTERFACE ${sanitizer_flags})
  target_link_options(prunerec_options INTERFACE -fsanitize=address,undefined)
endif()
if(PRUNEREC_FUZZ)
  if(NOT CMAKE_CXX_COMPILER_ID STREQUAL "Clang")
    message(FATAL_ERROR "PRUNEREC_FUZZ needs Clang (libFuzzer): configure with -DCMAKE_CXX_COMPILER=clang++")
  endif()
  # Coverage instrumentation for libFuzzer in the libraries; the fuzz targets themselves
  # link with -fsanitize=fuzzer (tests/fuzz/CMakeLists.txt).
  target_compile_options(prunerec_options INTERFACE -fsanitize=fuzzer-no-link)
endif()

# One helper so every area is declared the same way:
#   prunerec_add_library(tensor SOURCES ... DEPS ...)
# makes target prunerec_tensor with alias prunerec::tensor.
function(prunerec_add_library area)
  cmake_parse_arguments(ARG "" "" "SOURCES;DEPS;PRIVATE_DEPS" ${ARGN})
  add_library(prunerec_${area} ${ARG_SOURCES})
  add_library(prunerec::${area} ALIAS prunerec_${area})
  set_target_properties(prunerec_${area} PROPERTIES EXPORT_NAME ${area} OUTPUT_NAME prunerec_${area})
  target_include_directories(prunerec_${area} PUBLIC
      $<BUILD_INTERFACE:${PROJECT_SOURCE_DIR}>
      $<BUILD_INTERFACE:${PROJECT_BINARY_DIR}/gen>
      $<INSTALL_INTERFACE:${CMAKE_INSTALL_INCLUDEDIR}/prunerec>)
  target_link_libraries(prunerec_${area} PUBLIC ${ARG_DEPS} PRIVATE prunerec_options ${ARG_PRIVATE_DEPS})
endfunction()
