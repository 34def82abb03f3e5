// `prunerec bench --preset catalogue`: training, evaluation and serving cost against the
// catalogue size (issue 17). cmd_bench hands such calls here.
#pragma once

#include <string>
#include <vector>

namespace prunerec::apps {

bool is_catalogue_preset(const std::vector<std::string>& args);
int cmd_bench_catalogue(const std::vector<std::string>& args);

}  // namespace prunerec::apps
