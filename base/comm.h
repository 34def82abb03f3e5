// The communicator of a data-parallel run: which process this is among how many, and the
// few collectives training, distillation, importance scoring and evaluation need.
//
//   Communicator& comm = world();           // one process unless `prunerec` runs under mpirun
//   comm.allreduce_sum(grad.data<float>(), grad.numel());   // every rank now holds the sum
//   if (comm.rank() == 0) save(...);
//
// Two implementations: the single process (every collective is the identity; the default,
// and the only one of a build without PRUNEREC_MPI) and MPI (base/comm_mpi.cc, the one
// file of the engine that names MPI). docs/scale-out.md says how to run it.
//
// Note [one world]: the engine's heavy loops (recsys/trainer.h, recsys/eval/evaluator.h,
// prune/distill.h) take the process's world() communicator. It is the single process
// until the command line opens an MpiSession (apps/main.cc) under mpirun, so a library
// embedder, and every test that does not run under mpirun, sees one process and the
// behaviour of a build without MPI. The library itself never initialises MPI (Note
// [process-wide state] in include/prunerec/prunerec.h).
//
// Note [deterministic reduction]: a sum over ranks is MPI_Allreduce (or MPI_Iallreduce)
// with MPI_SUM on the world communicator. Open MPI chooses the algorithm from the
// communicator size and the message size alone (its tuned decision rules; no timing
// enters), so the same N, the same buffers and the same build add the same numbers in the
// same order: two runs give the same bits. Every algorithm it uses leaves every rank with
// the same bits (ring and reduce+broadcast hand out one result; recursive doubling adds
// the same pairs, and a + b == b + a exactly in IEEE arithmetic). The trainer checks
// that the ranks agree on their weights at start and at every checkpoint
// (Communicator::check_same), so a library that broke this would be caught, not trusted.
// Different N sum in a different order: 1 and 2 ranks agree up to float rounding.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "base/error.h"

namespace prunerec {

// A collective failed, or a peer process is gone; the message names the operation and rank.
class CommError : public Error {
 public:
  using Error::Error;
};

class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  // "single process", or the MPI library's version string.
  virtual std::string describe() const = 0;

  // In place: every rank's buffer ends up holding the element-wise sum over ranks (Note
  // [deterministic reduction]). n is the same on every rank.
  virtual void allreduce_sum(float* data, std::int64_t n) = 0;
  virtual void allreduce_sum(double* data, std::int64_t n) = 0;
  virtual void allreduce_sum(std::int64_t* data, std::int64_t n) = 0;
  virtual void allreduce_sum(std::int32_t* data, std::int64_t n) = 0;
  // root's bytes to every rank.
  virtual void broadcast(void* data, std::int64_t bytes, int root) = 0;
  virtual void barrier() = 0;

  // Non-blocking sum of floats (MPI_Iallreduce): start returns a request id; test() lets the
  // library make progress and says whether it finished; wait() blocks until it has. The
  // buffer must stay untouched until then. Requests finish in any order but each sums in
  // the fixed order of its blocking twin.
  virtual std::int64_t start_allreduce_sum(float* data, std::int64_t n) = 0;
  virtual bool test(std::int64_t request) = 0;
  virtual void wait(std::int64_t request) = 0;

  // Refuses a run whose ranks disagree: every rank passes its value (a hash of what must
  // agree); each rank compares with rank 0's, and if any differs every rank throws
  // ConfigError naming `what` and the ranks that differ. A no-op on one process.
  void check_same(std::uint64_t value, const std::string& what);
  bool is_root() const { return rank() == 0; }
};

// The process's communicator (Note [one world]).
Communicator& world();

namespace detail {
// The single-process communicator, and the setter MpiSession uses (nullptr = back to it).
Communicator& single_process();
void set_world(Communicator* comm);
// World size announced by the launcher's environment (Open MPI, PMI, PMIx), 0 if none.
int launcher_world_size();
}  // namespace detail

// Whether this build has the MPI backend (CMake option PRUNEREC_MPI), and its library
// version ("" without).
bool mpi_built();
std::string mpi_library_version();

// For the command line only: under mpirun (Open MPI's or PMI's environment variables are
// set), initialises MPI and makes world() the MPI communicator until destroyed, which
// finalises MPI. Without mpirun, or in a build without MPI, does nothing (a build without
// MPI run under mpirun with N > 1 is refused: each process would train alone).
class MpiSession {
 public:
  MpiSession(int* argc, char*** argv);
  ~MpiSession();
  // Ends every process of the job with exit_code (MPI_Abort), for a command that failed on
  // some rank; does nothing on one process. The command line's choice, never the library's.
  void abort_job(int exit_code);
  // Whether this process opened MPI (runs under mpirun in a build with MPI).
  bool active() const { return active_; }
  MpiSession(const MpiSession&) = delete;
  MpiSession& operator=(const MpiSession&) = delete;

 private:
  bool active_ = false;
};

}  // namespace prunerec
