// The MPI communicator: the one file of the engine that names MPI (built with
// -DPRUNEREC_MPI=ON; base/comm_single.cc otherwise). Note [one world] in base/comm.h.
#include <mpi.h>

#include <climits>
#include <map>
#include <memory>

#include "base/comm.h"

namespace prunerec {
namespace {

std::string mpi_error_text(int code) {
  char text[MPI_MAX_ERROR_STRING];
  int len = 0;
  if (MPI_Error_string(code, text, &len) != MPI_SUCCESS) return "MPI error " + std::to_string(code);
  return std::string(text, static_cast<std::size_t>(len));
}

class MpiWorld final : public Communicator {
 public:
  MpiWorld() {
    MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
    MPI_Comm_size(MPI_COMM_WORLD, &size_);
  }
  int rank() const override { return rank_; }
  int size() const override { return size_; }
  std::string describe() const override {
    return detail::str_cat("MPI, rank ", rank_, " of ", size_, " (", mpi_library_version(), ")");
  }
  void allreduce_sum(float* data, std::int64_t n) override { allreduce(data, n, MPI_FLOAT, "float"); }
  void allreduce_sum(double* data, std::int64_t n) override { allreduce(data, n, MPI_DOUBLE, "double"); }
  void allreduce_sum(std::int64_t* data, std::int64_t n) override { allreduce(data, n, MPI_INT64_T, "int64"); }
  void allreduce_sum(std::int32_t* data, std::int64_t n) override { allreduce(data, n, MPI_INT32_T, "int32"); }
  void broadcast(void* data, std::int64_t bytes, int root) override {
    check(MPI_Bcast(data, count(bytes, "broadcast"), MPI_BYTE, root, MPI_COMM_WORLD), "broadcast of ", bytes, " bytes");
  }
  void barrier() override { check(MPI_Barrier(MPI_COMM_WORLD), "barrier"); }

  std::int64_t start_allreduce_sum(float* data, std::int64_t n) override {
    MPI_Request request;
    check(MPI_Iallreduce(MPI_IN_PLACE, data, count(n, "allreduce"), MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD, &request),
          "non-blocking allreduce of ", n, " floats");
    const std::int64_t id = next_id_++;
    pending_[id] = request;
    return id;
  }
  bool test(std::int64_t id) override {
    auto it = pending_.find(id);
    if (it == pending_.end()) return true;
    int done = 0;
    check(MPI_Test(&it->second, &done, MPI_STATUS_IGNORE), "test of a non-blocking allreduce");
    if (done) pending_.erase(it);
    return done != 0;
  }
  void wait(std::int64_t id) override {
    auto it = pending_.find(id);
    if (it == pending_.end()) return;
    check(MPI_Wait(&it->second, MPI_STATUS_IGNORE), "wait for a non-blocking allreduce");
    pending_.erase(it);
  }

 private:
  template <class... Args>
  void check(int code, const Args&... what) const {
    if (code != MPI_SUCCESS)
      throw CommError(detail::str_cat("rank ", rank_, " of ", size_, ": ", what..., " failed: ", mpi_error_text(code),
                                      " (another rank has probably died; rerun the same command to resume from the",
                                      " last checkpoint)"));
  }
  int count(std::int64_t n, const char* op) const {
    PR_CHECK_T(CommError, n >= 0 && n <= INT_MAX, op, ": ", n, " elements do not fit one MPI call");
    return static_cast<int>(n);
  }
  void allreduce(void* data, std::int64_t n, MPI_Datatype type, const char* type_name) {
    check(MPI_Allreduce(MPI_IN_PLACE, data, count(n, "allreduce"), type, MPI_SUM, MPI_COMM_WORLD), "allreduce of ", n,
          " ", type_name, " values");
  }

  int rank_ = 0, size_ = 1;
  std::int64_t next_id_ = 1;
  std::map<std::int64_t, MPI_Request> pending_;
};

std::unique_ptr<MpiWorld> g_mpi_world;

}  // namespace

bool mpi_built() { return true; }

std::string mpi_library_version() {
  char text[MPI_MAX_LIBRARY_VERSION_STRING];
  int len = 0;
  if (MPI_Get_library_version(text, &len) != MPI_SUCCESS) return "MPI";
  std::string s(text, static_cast<std::size_t>(len));
  if (const auto cut = s.find_first_of(",\n"); cut != std::string::npos) s.resize(cut);
  return s;
}

MpiSession::MpiSession(int* argc, char*** argv) {
  if (detail::launcher_world_size() == 0) return;  // not under mpirun: one process, no MPI
  int initialized = 0;
  MPI_Initialized(&initialized);
  if (initialized) return;
  // Only the main thread calls MPI; the thread pool (tensor/parallel.h) never does.
  int provided = 0;
  const int code = MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided);
  PR_CHECK_T(CommError, code == MPI_SUCCESS, "MPI_Init_thread failed: ", mpi_error_text(code));
  // Errors come back as codes (thrown as CommError naming the rank), not as an abort.
  MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
  g_mpi_world = std::make_unique<MpiWorld>();
  detail::set_world(g_mpi_world.get());
  active_ = true;
}

MpiSession::~MpiSession() {
  if (!active_) return;
  detail::set_world(nullptr);
  g_mpi_world.reset();
  MPI_Finalize();
}

}  // namespace prunerec

namespace prunerec {

void MpiSession::abort_job(int exit_code) {
  if (active_) MPI_Abort(MPI_COMM_WORLD, exit_code);
}

}  // namespace prunerec
