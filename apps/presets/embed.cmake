# Turns the preset text files into a C++ source, so `--config teacher` works without the
# source tree. Presets live in one folder per kind: presets/recipe/*.pbtxt (--config) and
# presets/schedule/*.pbtxt (--schedule); see apps/presets.h.
# Run as: cmake -DOUT=gen/presets.cc -DDIR=apps/presets -P embed.cmake
set(KINDS recipe schedule)
file(GLOB STRAY ${DIR}/*.pbtxt)
if(STRAY)
  message(FATAL_ERROR "presets must be in a folder named after their kind (${KINDS}): ${STRAY}")
endif()
set(body "// Generated from apps/presets/<kind>/*.pbtxt by apps/presets/embed.cmake; do not edit.\n#include \"apps/presets.h\"\n\nnamespace prunerec::apps {\n\nconst std::vector<Preset>& presets() {\n  static const std::vector<Preset> all = {\n")
foreach(kind IN LISTS KINDS)
  file(GLOB INPUTS ${DIR}/${kind}/*.pbtxt)
  list(SORT INPUTS)
  foreach(input IN LISTS INPUTS)
    get_filename_component(name ${input} NAME_WE)
    file(READ ${input} text)
    string(APPEND body "    {\"${kind}\", \"${name}\", R\"PRESET(${text})PRESET\"},\n")
  endforeach()
endforeach()
string(APPEND body "  };\n  return all;\n}\n\n}  // namespace prunerec::apps\n")
file(WRITE ${OUT}.tmp "${body}")
execute_process(COMMAND ${CMAKE_COMMAND} -E copy_if_different ${OUT}.tmp ${OUT})
