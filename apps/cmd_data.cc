// prunerec data stats
#include <iostream>

#include "apps/commands.h"
#include "apps/common.h"
#include "recsys/data/stats.h"

namespace prunerec::apps {

int cmd_data(const Args& args) {
  if (args.empty() || args[0] != "stats") {
    if (!args.empty() && (args[0] == "--help" || args[0] == "-h")) {
      std::cout << "usage: prunerec data stats --data PATH [--format F] [--json]\n\n"
                   "Data commands:\n  stats   users, items, interactions and length percentiles of a data set\n\n"
                   "example:\n  prunerec data stats --data ../shared/data/amazon-beauty/s3rec/Beauty.txt\n";
      return 0;
    }
    throw cli::UsageError("data: expected the subcommand 'stats' (see prunerec data --help)");
  }
  cli::Flags flags("data stats", "Users, items, interactions and sequence-length percentiles of a data set.",
                   "prunerec data stats --data ../shared/data/amazon-beauty/s3rec/Beauty.txt");
  DataFlags data;
  data.add_to(flags, cli::Flags::kRequired);
  bool json = false;
  flags.add_switch("json", &json, "print one JSON object");
  flags.parse(Args(args.begin() + 1, args.end()));
  const LoadedData d = load_data(data, pb::DataConfig());
  const recsys::DatasetStats s = recsys::compute_stats(d.data);
  if (json) {
    std::cout << recsys::stats_json(s) << "\n";
  } else {
    std::cout << recsys::format_stats(s) << d.summary << "\n";
  }
  return 0;
}

}  // namespace prunerec::apps
