# Warnings, instruction set and sanitizers, applied to every prunerec target through the
# interface library prunerec_options.

add_library(prunerec_options INTERFACE)
target_compile_options(prunerec_options INTERFACE
    $<$<CXX_COMPILER_ID:GNU,Clang>:-Wall -Wextra -Wno-unused-parameter>)

# Note [portable build]
# ~~~~~~~~~~~~~~~~~~~~~
# PRUNEREC_ARCH=portable (the default) builds everything for the x86-64 baseline, so the
# command line and the installed library run on any x86-64 CPU; the hot kernels carry an
# AVX2 + FMA copy as well and pick it at run time (Note [kernel dispatch] in
# tensor/kernels/isa.h). PRUNEREC_ARCH=native (or any other -march value, e.g. x86-64-v3)
# compiles every target for that CPU: a little faster outside the kernels, and a binary
# that dies with SIGILL on an older CPU. Never use it for what is installed elsewhere.
# ("auto", the old default that meant x86-64-v3 when the build machine had it, now means
# portable, so an existing build directory does not keep the old behaviour.)
#
# -ffp-contract=off everywhere (Note [kernel math flags] in tensor/kernels/math.h): a
# multiply and an add are never fused into an FMA behind our back, so the baseline and
# AVX2 paths, GCC and Clang, and every -march give the same bits.
target_compile_options(prunerec_options INTERFACE $<$<CXX_COMPILER_ID:GNU,Clang>:-ffp-contract=off>)
if(PRUNEREC_ARCH STREQUAL "auto")
  message(STATUS "prunerec: PRUNEREC_ARCH=auto is now PRUNEREC_ARCH=portable")
  set_property(CACHE PRUNEREC_ARCH PROPERTY VALUE portable)
endif()
if(PRUNEREC_ARCH STREQUAL "portable" OR PRUNEREC_ARCH STREQUAL "none")
  # The compiler's default target (x86-64 baseline on Debian); nothing to add.
elseif(PRUNEREC_ARCH STREQUAL "")
  message(FATAL_ERROR "PRUNEREC_ARCH is empty: use portable, native or a -march value")
else()
  target_compile_options(prunerec_options INTERFACE -march=${PRUNEREC_ARCH})
endif()
message(STATUS "prunerec: instruction set ${PRUNEREC_ARCH} (kernels dispatch to AVX2+FMA at run time)")

# Warnings: -Wall -Wextra always; PRUNEREC_WERROR makes them errors (the CI builds of
# tools/setup.sh and tools/asan_build.sh set it, so a new warning fails CI).
option(PRUNEREC_WERROR "Treat compiler warnings as errors" OFF)
if(PRUNEREC_WERROR)
  target_compile_options(prunerec_options INTERFACE $<$<CXX_COMPILER_ID:GNU,Clang>:-Werror>)
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
