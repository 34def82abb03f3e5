// Built-in configuration files (apps/presets/*.pbtxt), compiled into the binary so
// `--config teacher` works anywhere. A path to a file works the same way.
#pragma once

#include <string>
#include <vector>

namespace prunerec::apps {

struct Preset {
  std::string name, text;
};
const std::vector<Preset>& presets();

}  // namespace prunerec::apps
