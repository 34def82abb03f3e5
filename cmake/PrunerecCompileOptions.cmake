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

if(PRUNEREC_SANITIZE)
  target_compile_options(prunerec_options INTERFACE
      -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined)
  target_link_options(prunerec_options INTERFACE -fsanitize=address,undefined)
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
