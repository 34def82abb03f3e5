# The library an embedder links: one library, libprunerec, shared (libprunerec.so, target
# prunerec_shared, exported as prunerec::prunerec) and static (libprunerec.a, target
# prunerec_static, prunerec::prunerec_static), made of the object files of the api area
# and of every area it links, found by walking the link graph (so a new area, such as
# text/, joins when api or recsys links it). Only the public API is exported (Note
# [library ABI] in include/prunerec/prunerec.h; cmake/prunerec.map.in). The areas' own
# static libraries (libprunerec_<area>.a) stay what the command line and the tests link;
# they are not installed.
#
# Included at the end of the top-level CMakeLists.txt, after every area is declared.

# Walks LINK_LIBRARIES from `root`: prunerec_<area> static libraries go to out_areas (in
# discovery order), everything else they link (imported packages, prunerec_options,
# prunerec_openblas) to out_external.
function(prunerec_link_closure root out_areas out_external)
  set(areas)
  set(external)
  set(todo ${root})
  while(todo)
    list(POP_FRONT todo item)
    if(TARGET ${item})
      get_target_property(aliased ${item} ALIASED_TARGET)
      if(aliased)
        set(item ${aliased})
      endif()
      get_target_property(type ${item} TYPE)
      if(item MATCHES "^prunerec_" AND type STREQUAL "STATIC_LIBRARY")
        if(NOT item IN_LIST areas)
          list(APPEND areas ${item})
          get_target_property(deps ${item} LINK_LIBRARIES)
          if(deps)
            list(APPEND todo ${deps})
          endif()
        endif()
        continue()
      endif()
    endif()
    if(NOT item IN_LIST external)
      list(APPEND external ${item})
    endif()
  endwhile()
  set(${out_areas} ${areas} PARENT_SCOPE)
  set(${out_external} ${external} PARENT_SCOPE)
endfunction()

prunerec_link_closure(prunerec_api PRUNEREC_LIBRARY_AREAS PRUNEREC_LIBRARY_EXTERNAL)
set(PRUNEREC_LIBRARY_AREAS ${PRUNEREC_LIBRARY_AREAS} CACHE INTERNAL "areas inside libprunerec")
set(PRUNEREC_LIBRARY_EXTERNAL ${PRUNEREC_LIBRARY_EXTERNAL} CACHE INTERNAL "what libprunerec links")
message(STATUS "prunerec: libprunerec holds ${PRUNEREC_LIBRARY_AREAS}; links ${PRUNEREC_LIBRARY_EXTERNAL}")
set(_prunerec_objects)
foreach(area IN LISTS PRUNEREC_LIBRARY_AREAS)
  list(APPEND _prunerec_objects $<TARGET_OBJECTS:${area}>)
endforeach()

# The public header's inline namespace follows the version (Note [library ABI]); a
# version bump that forgets it fails here rather than shipping a mislabelled ABI.
set(_prunerec_abi_namespace "v${PROJECT_VERSION_MAJOR}_${PROJECT_VERSION_MINOR}")
foreach(file include/prunerec/prunerec.h api/prunerec.cc)
  file(STRINGS ${PROJECT_SOURCE_DIR}/${file} _prunerec_ns REGEX "^inline namespace ")
  if(NOT _prunerec_ns STREQUAL "inline namespace ${_prunerec_abi_namespace} {")
    message(FATAL_ERROR "${file}: the inline namespace is '${_prunerec_ns}', the version "
                        "${PROJECT_VERSION} needs 'inline namespace ${_prunerec_abi_namespace} {'")
  endif()
endforeach()
string(LENGTH "${_prunerec_abi_namespace}" _prunerec_abi_length)
set(PRUNEREC_MANGLED_NAMESPACE "8prunerec3api${_prunerec_abi_length}${_prunerec_abi_namespace}")
set(PRUNEREC_VERSION_SCRIPT ${PROJECT_BINARY_DIR}/install/prunerec.map)
configure_file(${PROJECT_SOURCE_DIR}/cmake/prunerec.map.in ${PRUNEREC_VERSION_SCRIPT} @ONLY)
foreach(kind shared static)
  string(TOUPPER ${kind} KIND)
  add_library(prunerec_${kind} ${KIND} ${_prunerec_objects})
  target_include_directories(prunerec_${kind} INTERFACE
      $<BUILD_INTERFACE:${PROJECT_SOURCE_DIR}/include>
      $<INSTALL_INTERFACE:${CMAKE_INSTALL_INCLUDEDIR}>)
  # The public header needs C++17 only; the library itself is built as C++20.
  target_compile_features(prunerec_${kind} INTERFACE cxx_std_17)
  set_target_properties(prunerec_${kind} PROPERTIES OUTPUT_NAME prunerec LINKER_LANGUAGE CXX)
endforeach()

# Shared: the dependencies are linked here and hidden from the program (BUILD_INTERFACE:
# the installed target names none of them). The soname carries major.minor, as the
# inline namespace does; the pthread OpenBLAS's directory stays in the RUNPATH, so the
# library finds the thread-safe build even when the system alternative is the serial
# one (Note [threading policy] in cmake/PrunerecDependencies.cmake).
set_target_properties(prunerec_shared PROPERTIES
    EXPORT_NAME prunerec
    VERSION ${PROJECT_VERSION}
    SOVERSION ${PROJECT_VERSION_MAJOR}.${PROJECT_VERSION_MINOR}
    LINK_DEPENDS ${PRUNEREC_VERSION_SCRIPT}
    INSTALL_RPATH_USE_LINK_PATH TRUE)
foreach(dep IN LISTS PRUNEREC_LIBRARY_EXTERNAL)
  target_link_libraries(prunerec_shared PRIVATE $<BUILD_INTERFACE:${dep}>)
endforeach()
target_link_options(prunerec_shared PRIVATE "LINKER:--version-script=${PRUNEREC_VERSION_SCRIPT}")
if(NOT PRUNEREC_SANITIZE AND NOT PRUNEREC_FUZZ)
  # Every symbol resolved at link time (sanitizer runtimes live in the executable instead).
  target_link_options(prunerec_shared PRIVATE "LINKER:--no-undefined")
endif()

# Static: the program links the dependencies itself; they come along as $<LINK_ONLY:...>
# entries (Note [exported link closure] in cmake/PrunerecInstall.cmake).
set_target_properties(prunerec_static PROPERTIES EXPORT_NAME prunerec_static)
target_link_libraries(prunerec_static PRIVATE ${PRUNEREC_LIBRARY_EXTERNAL})
