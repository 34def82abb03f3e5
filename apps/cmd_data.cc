// prunerec data stats
#include <iostream>

#include "apps/commands.h"
#include "apps/common.h"
#include "recsys/data/stats.h"

namespace prunerec::apps {

int cmd_data(const Args& args) {
  cli::Flags flags("data", "Users, items, interactions, sequence-length percentiles and split sizes of a data set.",
                   "prunerec data stats --data ../shared/data/amazon-beauty/s3rec/Beauty.txt");
  std::string what;
  flags.add_positional("what", &what, "stats (the only data command)");
  flags.choices("what", {"stats"});
  DataFlags data;
  data.add_to(flags, cli::Flags::kRequired);
  bool json = false;
  flags.add_switch("json", &json, "print one JSON object");
  flags.parse(args);
  const LoadedData d = load_data(data, pb::DataConfig());
  recsys::DatasetStats s = recsys::compute_stats(d.data);
  recsys::add_split_stats(s, d.split);
  if (json) {
    std::cout << recsys::stats_json(s) << "\n";
  } else {
    std::cout << recsys::format_stats(s);
    if (!d.notes.empty()) std::cout << d.notes << "\n";
  }
  return 0;
}

}  // namespace prunerec::apps
