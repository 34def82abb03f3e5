// Built-in configuration files, compiled into the binary so `--config teacher` works
// anywhere: apps/presets/<kind>/<name>.pbtxt, kind "recipe" (train/run --config) or
// "schedule" (prune/run --schedule), and apps/presets/template/<name>.txt, kind "template"
// (title mode's prompt templates, train --template; docs/title-mode.md). See Note [presets and files] in apps/common.h.
#pragma once

#include <string>
#include <vector>

namespace prunerec::apps {

struct Preset {
  std::string kind, name, text;
};
const std::vector<Preset>& presets();

}  // namespace prunerec::apps
