# Turns the preset text files into a C++ source, so `--config teacher` works without the
# source tree. Presets live in one folder per kind: presets/recipe/*.pbtxt (--config),
# presets/schedule/*.pbtxt (--schedule) and presets/template/*.txt (title mode's prompt
# templates, --template); see apps/presets.h.
# Run as: cmake -DOUT=gen/presets.cc -DDIR=apps/presets -P embed.cmake
set(KINDS recipe schedule)
file(GLOB STRAY ${DIR}/*.pbtxt)
if(STRAY)
  message(FATAL_ERROR "presets must be in a folder named after their kind (${KINDS}): ${STRAY}")
endif()
set(body "// Generated from apps/presets/<kind>/*.pbtxt by apps/presets/embed.cmake; do not edit.\n#include \"apps/presets.h\"\n\nnamespace prunerec::apps {\n\nconst std::vector<Preset>& presets() {\n  static const std::vector<Preset> all = {\n")
foreach(kind IN LISTS KINDS ITEMS template)
  if(kind STREQUAL "template")
    file(GLOB INPUTS ${DIR}/${kind}/*.txt)
  else()
    file(GLOB INPUTS ${DIR}/${kind}/*.pbtxt)
  endif()
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
