# Finds the five dependencies, all from Debian's packages:
#   OpenBLAS (cblas), oneTBB, Protobuf, GoogleTest, Google Benchmark.
#
# Note [threading policy]: oneTBB owns the cores; OpenBLAS runs one thread per call,
# inside TBB tasks (see tensor/parallel.h). That needs a BLAS that is safe to call from
# several threads at once. Debian's *serial* build (libopenblas-serial-dev) is not: it is
# built without USE_LOCKING, its buffer pool races, and concurrent sgemm calls silently
# return wrong numbers (seen here: the golden model test failed 74 times in 20x2 runs).
# We therefore link Debian's pthread build (libopenblas-pthread-dev), whose memory pool is
# locked, and call openblas_set_num_threads(1) at start-up so it never starts its own
# thread pool.

set(PRUNEREC_OPENBLAS_HINTS
    /usr/lib/${CMAKE_LIBRARY_ARCHITECTURE}/openblas-pthread/cmake/openblas
    /usr/lib/x86_64-linux-gnu/openblas-pthread/cmake/openblas
    /usr/lib/aarch64-linux-gnu/openblas-pthread/cmake/openblas)
find_package(OpenBLAS CONFIG QUIET PATHS ${PRUNEREC_OPENBLAS_HINTS} NO_DEFAULT_PATH)
if(NOT OpenBLAS_FOUND)
  find_package(OpenBLAS CONFIG QUIET)
endif()
if(NOT OpenBLAS_FOUND)
  message(FATAL_ERROR "OpenBLAS not found: apt-get install libopenblas-pthread-dev")
endif()
if(NOT TARGET prunerec_openblas)
  add_library(prunerec_openblas INTERFACE)
  target_include_directories(prunerec_openblas SYSTEM INTERFACE ${OpenBLAS_INCLUDE_DIRS})
  target_link_libraries(prunerec_openblas INTERFACE ${OpenBLAS_LIBRARIES})
endif()
message(STATUS "prunerec: OpenBLAS ${OpenBLAS_VERSION} at ${OpenBLAS_LIBRARIES}")

find_package(TBB REQUIRED COMPONENTS tbb)
find_package(Threads REQUIRED)
find_package(Protobuf REQUIRED)
if(PRUNEREC_MPI)
  # Data-parallel runs (docs/scale-out.md). Only base/comm_mpi.cc includes mpi.h.
  set(MPI_CXX_SKIP_MPICXX ON)  # the C API from C++; not the removed C++ bindings
  find_package(MPI REQUIRED COMPONENTS CXX)
  message(STATUS "prunerec: MPI ${MPI_CXX_VERSION} (${MPI_CXX_LIBRARIES}); mpiexec ${MPIEXEC_EXECUTABLE}")
endif()
if(PRUNEREC_BUILD_TESTS)
  find_package(GTest REQUIRED)
endif()
if(PRUNEREC_BUILD_BENCH)
  find_package(benchmark REQUIRED)
endif()
