# `cmake --install build --prefix P` installs:
#   P/bin/prunerec                                   the command line
#   P/include/prunerec/prunerec.h                    the public API (the only header: pimpl)
#   P/lib/libprunerec_{api,recsys,nn,autograd,tensor,base,proto}.a
#   P/lib/cmake/prunerec/prunerecConfig.cmake        find_package(prunerec) -> prunerec::api
#   P/lib/cmake/prunerec/prunerecConfigVersion.cmake
#   P/lib/cmake/prunerec/prunerecTargets*.cmake
#   P/lib/pkgconfig/prunerec.pc                      pkg-config --cflags --libs prunerec
# ("lib" is CMAKE_INSTALL_LIBDIR; GNUInstallDirs makes it lib/<multiarch> for prefix /usr.)
#
# Note [exported link closure]
# ~~~~~~~~~~~~~~~~~~~~~~~~~~~~
# The libraries are static, so a program linking prunerec::api also links every library
# api depends on, and their own dependencies. CMake exports private dependencies of a
# static library as $<LINK_ONLY:...> entries and refuses to export a target whose link
# interface names a target outside the export set. So the export set holds:
#   * the area libraries api needs: api, recsys, nn, autograd, tensor, base, proto (not prune:
#     the API does not use it). Their headers are not installed: they are exported only
#     as link dependencies of prunerec::api, not as an API;
#   * the two INTERFACE helpers they link privately: prunerec::options (warnings, -march,
#     sanitizers) and prunerec::openblas. Through $<LINK_ONLY:> a consumer receives only
#     their link requirements: nothing for options unless the build was sanitized (then
#     -fsanitize, which the static objects need), and OpenBLAS for openblas.
# prunerec::openblas is exported empty; prunerecConfig.cmake finds OpenBLAS on the
# consumer's machine (the pthread build first, Note [threading policy] in
# PrunerecDependencies.cmake) and fills it in, so no absolute path of the build machine
# is baked into the exported targets. TBB::tbb, Threads::Threads and
# protobuf::libprotobuf are found the usual way with find_dependency.

include(CMakePackageConfigHelpers)

set(PRUNEREC_INSTALL_CMAKEDIR ${CMAKE_INSTALL_LIBDIR}/cmake/prunerec)
set(PRUNEREC_INSTALL_LIBRARIES prunerec_api prunerec_recsys prunerec_nn prunerec_autograd prunerec_tensor prunerec_base prunerec_proto)

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

install(TARGETS ${PRUNEREC_INSTALL_LIBRARIES} prunerec_options prunerec_openblas
    EXPORT prunerecTargets
    ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
    LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
    RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR}
    PUBLIC_HEADER DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/prunerec)
install(EXPORT prunerecTargets
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
# prunerec @PROJECT_VERSION@: find_package(prunerec REQUIRED) gives prunerec::api, the
# embedding API of include/prunerec/prunerec.h:
#
#   find_package(prunerec REQUIRED)
#   target_link_libraries(app PRIVATE prunerec::api)
#
# The libraries are static; their dependencies are found here.
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

include("${CMAKE_CURRENT_LIST_DIR}/prunerecTargets.cmake")
set_property(TARGET prunerec::openblas APPEND PROPERTY INTERFACE_LINK_LIBRARIES ${OpenBLAS_LIBRARIES})
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
# whatever --prefix the install uses. Static libraries: Libs lists the whole closure in
# link order, with OpenBLAS by full path and its directory in the RPATH (as above).
set(_prunerec_pc_up "..")
string(REPLACE "/" ";" _prunerec_libdir_parts "${CMAKE_INSTALL_LIBDIR}")
foreach(part IN LISTS _prunerec_libdir_parts)
  string(APPEND _prunerec_pc_up "/..")
endforeach()
set(_prunerec_pc_libs "")
foreach(lib IN LISTS PRUNEREC_INSTALL_LIBRARIES)
  string(APPEND _prunerec_pc_libs " -l${lib}")
endforeach()
set(_prunerec_pc_blas "")
foreach(lib IN LISTS _prunerec_blas_libs)
  get_filename_component(_dir "${lib}" DIRECTORY)
  string(APPEND _prunerec_pc_blas " -Wl,-rpath,${_dir} ${lib}")
endforeach()
file(CONFIGURE OUTPUT ${PROJECT_BINARY_DIR}/install/prunerec.pc @ONLY CONTENT [=[
prefix=${pcfiledir}/@_prunerec_pc_up@
exec_prefix=${prefix}
libdir=${prefix}/@CMAKE_INSTALL_LIBDIR@
includedir=${prefix}/@CMAKE_INSTALL_INCLUDEDIR@

Name: prunerec
Description: Transformer sequential recommender engine: embedding API (prunerec/prunerec.h)
Version: @PROJECT_VERSION@
Requires: protobuf tbb
Cflags: -I${includedir} -pthread
Libs: -L${libdir}@_prunerec_pc_libs@@_prunerec_pc_blas@ -pthread
]=])
install(FILES ${PROJECT_BINARY_DIR}/install/prunerec.pc DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)
