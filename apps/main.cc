// prunerec: train a transformer sequential recommender, prune and distil it, evaluate and
// serve it. Exit codes: 0 success, 1 runtime failure, 2 usage error, 130 stopped by
// SIGINT/SIGTERM (Ctrl-C) after saving what can be resumed.
#include <iostream>
#include <optional>
#include <streambuf>
#include <string>

#include "apps/cli.h"
#include "apps/commands.h"
#include "base/comm.h"
#include "base/error.h"

namespace {

struct Command {
  const char* name;
  const char* summary;
  int (*run)(const prunerec::apps::Args&);
};

const Command kCommands[] = {
    {"run", "the whole pipeline: data, teacher, prune-and-distill schedule, ledger", prunerec::apps::cmd_run},
    {"data", "data stats: users, items, interactions, length percentiles", prunerec::apps::cmd_data},
    {"train", "train a recommender (the teacher) on a data set", prunerec::apps::cmd_train},
    {"eval", "evaluate a model: NDCG/HR/MRR at 1, 5, 10, 20", prunerec::apps::cmd_eval},
    {"recommend", "top-k next items for a history", prunerec::apps::cmd_recommend},
    {"inspect", "a model's layers and parameter counts", prunerec::apps::cmd_inspect},
    {"prune", "the three-stage prune-and-distill schedule", prunerec::apps::cmd_prune},
    {"report", "rebuild report.md and the charts of a prune run from report.json", prunerec::apps::cmd_report},
    {"compare", "paired bootstrap over users of two `eval --per-user` files", prunerec::apps::cmd_compare},
    {"export", "write a model as safetensors + config.json (Qwen2 names)", prunerec::apps::cmd_export},
    {"import", "read a Hugging Face Qwen2 / Llama checkpoint into a model file", prunerec::apps::cmd_import},
    {"forward", "a model's logits for a token sequence (JSON)", prunerec::apps::cmd_forward},
    {"tokenize", "encode text or decode ids with a tokenizer file", prunerec::apps::cmd_tokenize},
    {"bench", "training and inference speed on the reference configs", prunerec::apps::cmd_bench},
};

void usage(std::ostream& os) {
  os << "usage: prunerec <command> [flags]   (prunerec <command> --help for details)\n\ncommands:\n";
  for (const auto& c : kCommands) os << "  " << c.name << std::string(12 - std::string(c.name).size(), ' ') << c.summary << "\n";
  os << "\nexit codes: 0 ok, 1 runtime failure, 2 usage error, 130 stopped by Ctrl-C (SIGINT/SIGTERM; re-run to resume)\n";
}

// Note [rank 0 speaks]: under mpirun every rank runs the same command on the same data
// (docs/scale-out.md). Only rank 0 prints results, progress and logs: the other ranks'
// std::cout and std::cerr go nowhere, and the library writes files on rank 0 only
// (Communicator::is_root). An error is printed by every rank that meets it, named by
// rank, and ends the whole job (MpiSession::abort_job): a rank alone in an error must not
// leave the others waiting in a collective for ever.
class NullBuffer final : public std::streambuf {
 protected:
  int overflow(int c) override { return traits_type::not_eof(c); }
  std::streamsize xsputn(const char*, std::streamsize n) override { return n; }
};

int run_command(const Command& c, int argc, char** argv, std::ostream& err, const std::string& prefix) {
  using namespace prunerec;
  try {
    return c.run(apps::Args(argv + 2, argv + argc));
  } catch (const cli::HelpShown&) {
    return 0;
  } catch (const cli::UsageError& e) {
    err << prefix << e.what() << "\n";
    return 2;
  } catch (const Interrupted& e) {
    err << prefix << e.what() << "\n";
    return 130;
  } catch (const ConfigError& e) {
    err << prefix << e.what() << "\n";
    return 2;
  } catch (const Error& e) {
    err << prefix << e.what() << "\n";
    return 1;
  } catch (const std::exception& e) {
    err << prefix << "unexpected error: " << e.what() << "\n";
    return 1;
  }
}

}  // namespace

int main(int argc, char** argv) {
  using namespace prunerec;
  if (argc < 2) {
    usage(std::cerr);
    return 2;
  }
  const std::string name = argv[1];
  if (name == "--help" || name == "-h" || name == "help") {
    usage(std::cout);
    return 0;
  }
  if (name == "--version" || name == "version") {
    std::cout << "prunerec " << PRUNEREC_VERSION << "\n";  // CMake's PROJECT_VERSION (apps/CMakeLists.txt)
    std::cout << "mpi: " << (mpi_built() ? "yes (data-parallel under mpirun; docs/scale-out.md)" : "no (built without PRUNEREC_MPI)")
              << "\n";
    return 0;
  }
  cli::install_stop_handlers();
  for (const auto& c : kCommands) {
    if (name != c.name) continue;
    std::optional<MpiSession> mpi;
    try {
      mpi.emplace(&argc, &argv);
    } catch (const Error& e) {
      std::cerr << "prunerec: " << e.what() << "\n";
      return 2;
    }
    // Note [rank 0 speaks].
    const int rank = world().rank(), size = world().size();
    std::streambuf* const out_buf = std::cout.rdbuf();
    std::streambuf* const err_buf = std::cerr.rdbuf();
    NullBuffer nowhere;
    if (rank != 0) {
      std::cout.rdbuf(&nowhere);
      std::cerr.rdbuf(&nowhere);
    }
    std::ostream err(err_buf);
    const std::string prefix = size > 1 ? prunerec::detail::str_cat("prunerec (rank ", rank, " of ", size, "): ") : "prunerec: ";
    const int code = run_command(c, argc, argv, err, prefix);
    std::cout.rdbuf(out_buf);
    std::cerr.rdbuf(err_buf);
    if (code != 0 && size > 1) {
      err.flush();
      mpi->abort_job(code);
    }
    return code;
  }
  std::cerr << "prunerec: unknown command '" << name << "'\n";
  usage(std::cerr);
  return 2;
}
