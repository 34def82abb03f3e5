# Turns the preset text files into a C++ source, so `--config teacher` works without the
# source tree. Run as: cmake -DOUT=... -DINPUTS=a.pbtxt;b.pbtxt -P embed.cmake
file(GLOB INPUTS ${DIR}/*.pbtxt)
list(SORT INPUTS)
set(body "// Generated from apps/presets/*.pbtxt by apps/presets/embed.cmake; do not edit.\n#include \"apps/presets.h\"\n\nnamespace prunerec::apps {\n\nconst std::vector<Preset>& presets() {\n  static const std::vector<Preset> all = {\n")
foreach(input IN LISTS INPUTS)
  get_filename_component(name ${input} NAME_WE)
  file(READ ${input} text)
  string(APPEND body "    {\"${name}\", R\"PRESET(${text})PRESET\"},\n")
endforeach()
string(APPEND body "  };\n  return all;\n}\n\n}  // namespace prunerec::apps\n")
file(WRITE ${OUT}.tmp "${body}")
execute_process(COMMAND ${CMAKE_COMMAND} -E copy_if_different ${OUT}.tmp ${OUT})
