# `cmake --install build --prefix P` installs:
#   P/bin/prunerec                                   the command line
#   P/include/prunerec/prunerec.h                    the public API (the only header: pimpl)
#   P/lib/libprunerec.so.0.1.0 (+ .so.0.1, .so)      the library, shared (Note [library ABI])
#   P/lib/libprunerec.a                              the same library, static
#   P/lib/cmake/prunerec/prunerecConfig.cmake        find_package(prunerec) -> prunerec::prunerec
#   P/lib/cmake/prunerec/prunerecConfigVersion.cmake
#   P/lib/cmake/prunerec/prunerec{,Static}Targets*.cmake
#   P/lib/pkgconfig/prunerec.pc                      pkg-config --cflags --libs prunerec
# ("lib" is CMAKE_INSTALL_LIBDIR; GNUInstallDirs makes it lib/<multiarch> for prefix /usr.)
#
# Note [exported link closure]
# ~~~~~~~~~~~~~~~~~~~~~~~~~~~~
# Two export sets. prunerecTargets holds prunerec::prunerec, the shared library: its
# dependencies (oneTBB, Protobuf, OpenBLAS) are linked into it privately and named
# nowhere in the export (cmake/PrunerecLibrary.cmake), so find_package(prunerec) finds
# nothing else and a program links -lprunerec alone. prunerecStaticTargets holds
# prunerec::prunerec_static, loaded only with COMPONENTS static: a static library cannot
# hide its dependencies, so CMake exports them as $<LINK_ONLY:...> entries, and refuses
# to export a target whose link interface names a target outside the export set. That
# set therefore also holds the two INTERFACE helpers the objects were built with:
# prunerec::options (nothing for the consumer unless the build was sanitized: then
# -fsanitize, which the objects need) and prunerec::openblas, exported empty and filled
# in by prunerecConfig.cmake on the consumer's machine (the pthread build first, Note
# [threading policy] in PrunerecDependencies.cmake), so no absolute path of the build
# machine is baked in. TBB::tbb, Threads::Threads and protobuf::libprotobuf are found
# the usual way with find_dependency.

include(CMakePackageConfigHelpers)

set(PRUNEREC_INSTALL_CMAKEDIR ${CMAKE_INSTALL_LIBDIR}/cmake/prunerec)

# The INTERFACE helpers: build-tree behaviour unchanged; installed, openblas is filled in by
# prunerecConfig.cmake (Note [exported link closure]).
set_target_properties(prunerec_options PROPERTIES EXPORT_NAME options)
get_target_property(_prunerec_blas_libs prunerec_openblas INTERFACE_LINK_LIBRARIES)
get_target_property(_prunerec_blas_dirs prunerec_openblas INTERFACE_INCLUDE_DIRECTORIES)
set(_prunerec_blas_link)
foreach(lib IN LISTS _prunerec_blas_libs)
  list(APPEND _prunerec_blas_link "$<BUILD_INTERFACE:${lib}>")
endforeach()
set(_prunerec_blas_include)
foreach(dir IN LISTS _prunerec_blas_dirs)
  list(APPEND _prunerec_blas_include "$<BUILD_INTERFACE:${dir}>")
endforeach()
set_target_properties(prunerec_openblas PROPERTIES
    EXPORT_NAME openblas
    INTERFACE_LINK_LIBRARIES "${_prunerec_blas_link}"
    INTERFACE_INCLUDE_DIRECTORIES "${_prunerec_blas_include}"
    INTERFACE_SYSTEM_INCLUDE_DIRECTORIES "${_prunerec_blas_include}")

install(TARGETS prunerec_shared
    EXPORT prunerecTargets
    LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR})
install(FILES ${PROJECT_SOURCE_DIR}/include/prunerec/prunerec.h DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/prunerec)
install(EXPORT prunerecTargets
    NAMESPACE prunerec::
    DESTINATION ${PRUNEREC_INSTALL_CMAKEDIR})
install(TARGETS prunerec_static prunerec_options prunerec_openblas
    EXPORT prunerecStaticTargets
    ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR})
install(EXPORT prunerecStaticTargets
    NAMESPACE prunerec::
    DESTINATION ${PRUNEREC_INSTALL_CMAKEDIR})

# The command line. Its OpenBLAS is found by full path at link time; keep that directory
# in the installed binary's RPATH so it runs with the pthread build even when the system
# alternative points at the serial one (Note [threading policy]).
set_target_properties(prunerec PROPERTIES INSTALL_RPATH_USE_LINK_PATH TRUE)
install(TARGETS prunerec RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})

# ---- CMake package --------------------------------------------------------------------
string(JOIN " " _prunerec_blas_hints ${PRUNEREC_OPENBLAS_HINTS})
file(CONFIGURE OUTPUT ${PROJECT_BINARY_DIR}/install/prunerecConfig.cmake @ONLY CONTENT [=[
# prunerec @PROJECT_VERSION@: the embedding API of include/prunerec/prunerec.h.
#
#   find_package(prunerec REQUIRED)
#   target_link_libraries(app PRIVATE prunerec::prunerec)          # libprunerec.so
#
#   find_package(prunerec REQUIRED COMPONENTS static)
#   target_link_libraries(app PRIVATE prunerec::prunerec_static)   # libprunerec.a
#
# The shared library brings its own dependencies; only the static one needs them found
# here (Note [exported link closure] in cmake/PrunerecInstall.cmake).
include("${CMAKE_CURRENT_LIST_DIR}/prunerecTargets.cmake")
# Whether this install's `prunerec` command runs data-parallel under mpirun (built with
# PRUNEREC_MPI; docs/scale-out.md). The library itself is inference only and never links MPI.
set(prunerec_MPI @PRUNEREC_MPI@)
if(NOT TARGET prunerec::api)
  add_library(prunerec::api ALIAS prunerec::prunerec)  # the name of releases before 0.1
endif()

foreach(_prunerec_component IN LISTS prunerec_FIND_COMPONENTS)
  if(NOT _prunerec_component STREQUAL "static")
    set(prunerec_FOUND FALSE)
    set(prunerec_NOT_FOUND_MESSAGE "prunerec: unknown component '${_prunerec_component}' (known: static)")
    return()
  endif()
endforeach()
if("static" IN_LIST prunerec_FIND_COMPONENTS)
  include(CMakeFindDependencyMacro)
  find_dependency(Threads)
  find_dependency(TBB)
  find_dependency(Protobuf)
  # OpenBLAS: Debian's pthread build, whose buffer pool is safe under concurrent calls (the
  # serial build is not); any OpenBLAS CMake package otherwise.
  find_package(OpenBLAS CONFIG QUIET PATHS @_prunerec_blas_hints@ NO_DEFAULT_PATH)
  if(NOT OpenBLAS_FOUND)
    find_dependency(OpenBLAS CONFIG)
  endif()
  include("${CMAKE_CURRENT_LIST_DIR}/prunerecStaticTargets.cmake")
  set_property(TARGET prunerec::openblas APPEND PROPERTY INTERFACE_LINK_LIBRARIES ${OpenBLAS_LIBRARIES})
  set(prunerec_static_FOUND TRUE)
endif()
]=])
write_basic_package_version_file(${PROJECT_BINARY_DIR}/install/prunerecConfigVersion.cmake
    VERSION ${PROJECT_VERSION}
    COMPATIBILITY SameMinorVersion)
install(FILES
    ${PROJECT_BINARY_DIR}/install/prunerecConfig.cmake
    ${PROJECT_BINARY_DIR}/install/prunerecConfigVersion.cmake
    DESTINATION ${PRUNEREC_INSTALL_CMAKEDIR})

# ---- pkg-config -----------------------------------------------------------------------
# The prefix is found relative to the .pc file (${pcfiledir}), so the file is right for
# whatever --prefix the install uses. `pkg-config --libs prunerec` gives -lprunerec (the
# shared library, which links its own dependencies); `--static` adds what libprunerec.a
# needs. No path of the build machine is written: a program linked against an install
# outside the loader's path finds libprunerec.so through its own RPATH or
# LD_LIBRARY_PATH, as with any library.
set(_prunerec_pc_up "..")
string(REPLACE "/" ";" _prunerec_libdir_parts "${CMAKE_INSTALL_LIBDIR}")
foreach(part IN LISTS _prunerec_libdir_parts)
  string(APPEND _prunerec_pc_up "/..")
endforeach()
if(PRUNEREC_MPI)
  set(_prunerec_pc_mpi yes)
else()
  set(_prunerec_pc_mpi no)
endif()
file(CONFIGURE OUTPUT ${PROJECT_BINARY_DIR}/install/prunerec.pc @ONLY CONTENT [=[
prefix=${pcfiledir}/@_prunerec_pc_up@
exec_prefix=${prefix}
libdir=${prefix}/@CMAKE_INSTALL_LIBDIR@
includedir=${prefix}/@CMAKE_INSTALL_INCLUDEDIR@

Name: prunerec
Description: Transformer sequential recommender engine: embedding API (prunerec/prunerec.h)
Version: @PROJECT_VERSION@
# mpi: whether the installed `prunerec` command runs data-parallel under mpirun
# (`pkg-config --variable=mpi prunerec`); the library never links MPI.
mpi=@_prunerec_pc_mpi@
Requires.private: protobuf tbb
Cflags: -I${includedir}
Libs: -L${libdir} -lprunerec
Libs.private: -lopenblas -pthread
]=])
install(FILES ${PROJECT_BINARY_DIR}/install/prunerec.pc DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)
