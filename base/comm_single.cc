// The MPI entry points of a build without PRUNEREC_MPI (base/comm_mpi.cc is the other).
#include "base/comm.h"

namespace prunerec {

bool mpi_built() { return false; }
std::string mpi_library_version() { return ""; }

MpiSession::MpiSession(int*, char***) {
  const int n = detail::launcher_world_size();
  PR_CHECK_T(ConfigError, n <= 1, "started as one of ", n,
             " processes (mpirun), but this prunerec was built without MPI: each process would train alone and write the",
             " same files. Rebuild with -DPRUNEREC_MPI=ON (docs/scale-out.md), or run one process");
}

MpiSession::~MpiSession() = default;

void MpiSession::abort_job(int) {}

}  // namespace prunerec
