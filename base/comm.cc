#include "base/comm.h"

#include <cstdlib>
#include <string>
#include <vector>

namespace prunerec {
namespace {

// One process: every collective leaves the buffer as it is.
class SingleProcess final : public Communicator {
 public:
  int rank() const override { return 0; }
  int size() const override { return 1; }
  std::string describe() const override { return "single process"; }
  void allreduce_sum(float*, std::int64_t) override {}
  void allreduce_sum(double*, std::int64_t) override {}
  void allreduce_sum(std::int64_t*, std::int64_t) override {}
  void allreduce_sum(std::int32_t*, std::int64_t) override {}
  void broadcast(void*, std::int64_t, int root) override {
    PR_CHECK_T(CommError, root == 0, "broadcast: root ", root, " but there is one process");
  }
  void barrier() override {}
  std::int64_t start_allreduce_sum(float*, std::int64_t) override { return 0; }
  bool test(std::int64_t) override { return true; }
  void wait(std::int64_t) override {}
};

Communicator* g_world = nullptr;

}  // namespace

void Communicator::check_same(std::uint64_t value, const std::string& what) {
  if (size() == 1) return;
  std::uint64_t root_value = value;
  broadcast(&root_value, sizeof root_value, 0);
  std::vector<std::int64_t> differs(static_cast<std::size_t>(size()), 0);
  differs[static_cast<std::size_t>(rank())] = root_value != value;
  allreduce_sum(differs.data(), size());
  std::string ranks;
  for (int r = 0; r < size(); ++r)
    if (differs[static_cast<std::size_t>(r)]) ranks += (ranks.empty() ? "" : ", ") + std::to_string(r);
  PR_CHECK_T(ConfigError, ranks.empty(), "the ", size(), " ranks disagree on ", what, ": rank", ranks.find(',') == std::string::npos ? " " : "s ",
             ranks, " differ", ranks.find(',') == std::string::npos ? "s" : "", " from rank 0 (every rank must be started with the same",
             " data file and flags; refused before training)");
}

namespace detail {

Communicator& single_process() {
  static SingleProcess single;
  return single;
}

void set_world(Communicator* comm) { g_world = comm; }

int launcher_world_size() {
  for (const char* name : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE", "MPI_LOCALNRANKS"}) {
    if (const char* v = std::getenv(name); v && *v) return std::atoi(v);
  }
  return 0;
}

}  // namespace detail

Communicator& world() { return g_world ? *g_world : detail::single_process(); }

}  // namespace prunerec
