// prunerec: the embedding API. Load a recommender written by `prunerec train` (or a model
// pruned by `prunerec prune`) and ask it for the next items of a user's history.
//
// This header is the whole public surface of the library. It is self-contained (standard
// library only, C++17 or later) and hides the engine behind a pointer, so programs that
// include it never see tensors, Protobuf or oneTBB.
//
// Complete example (examples/embed/ builds it against an installed prunerec):
//
//   #include <prunerec/prunerec.h>
//   #include <iostream>
//
//   int main(int argc, char** argv) {
//     try {
//       prunerec::api::set_num_threads(2);                 // optional; before any inference
//       const auto rec = prunerec::api::Recommender::load(argv[1]);   // "runs/ml1m/teacher.prc"
//       std::cout << rec.model_summary() << "\n";
//
//       std::vector<std::string> unknown;
//       for (const auto& r : rec.recommend({"1193", "661", "914"}, 10, true, &unknown))
//         std::cout << r.item_id << "\t" << r.score << "\t" << r.title << "\n";
//       for (const auto& id : unknown) std::cerr << "not in the catalogue: " << id << "\n";
//
//       // Many users at once (one forward pass per chunk of histories; faster):
//       auto lists = rec.recommend_batch({{"1193", "661"}, {"2355"}, {"3408", "2804"}}, 5);
//     } catch (const prunerec::api::Error& e) {       // every failure is this type
//       std::cerr << "prunerec: " << e.what() << "\n";
//       return 1;
//     }
//   }
//
// Build with CMake:      find_package(prunerec REQUIRED)
//                        target_link_libraries(app PRIVATE prunerec::prunerec)   # libprunerec.so
//                        (or prunerec::prunerec_static with COMPONENTS static: libprunerec.a)
// or with pkg-config:    g++ -std=c++17 app.cc $(pkg-config --cflags --libs prunerec)
//
// Note [library ABI]
// ~~~~~~~~~~~~~~~~~~
// libprunerec.so exports the names of this header and nothing else: everything is built
// with hidden visibility, the declarations below carry PRUNEREC_API, and a linker version
// script (cmake/prunerec.map.in) keeps even template instantiations of the standard library
// local. tests/api/exported_symbols.sh lists the dynamic symbols and fails on any other.
// The names live in an inline namespace named after the version (prunerec::api::v0_1),
// so a program built against another version fails to link instead of crashing; the
// shared library's soname carries the same version (libprunerec.so.0.1). Source code
// keeps writing prunerec::api::. The engine's dependencies (oneTBB, Protobuf, OpenBLAS)
// are private: the shared library links them itself, the program needs none of their
// headers or flags. The static library (libprunerec.a) needs them at link time.
//
// Note [process-wide state]
// ~~~~~~~~~~~~~~~~~~~~~~~~~
// What the library does to the process it is loaded into, all of it on the first call
// that runs the engine (load, load_from_memory, set_num_threads, num_threads):
//   * OpenBLAS is set to one thread (openblas_set_num_threads(1)), for the whole process:
//     the engine runs many single-threaded products at once inside its own pool (Note
//     [thread safety]), and OpenBLAS's own threads would compete with it. A program that
//     calls OpenBLAS itself sees its products run on one thread from then on; it may call
//     openblas_set_num_threads(n) again, at the price of oversubscribed cores while both
//     run. Prefer the pthread build of OpenBLAS (Debian: libopenblas0-pthread): the
//     serial build is not safe under concurrent calls.
//   * A oneTBB task arena of num_threads() workers is created; it is the process's one
//     instance of prunerec's pool. oneTBB's own global scheduler is shared with the
//     program, as with any oneTBB user.
//   * Environment read once: PRUNEREC_THREADS (default thread count),
//     PRUNEREC_NO_ALLOC_CACHE=1 (tensor memory goes back to malloc at once instead of
//     being cached for reuse), PRUNEREC_ISA=baseline (kernels without AVX2).
//   * Freed tensor memory is kept in a cache for reuse until the process ends; each
//     thread that ran inference keeps a few kernel scratch rows (thread_local).
//   * The kernels pick AVX2 + FMA or the x86-64 baseline once, by the CPU's features.
//   * MPI is never initialised: the library is inference only and does not link MPI even
//     in a build with PRUNEREC_MPI (only the `prunerec` command opens an MPI session under
//     mpirun; Note [one world] in the engine's base/comm.h).
// Nothing else: no signal handler, no atexit hook, no global locale or floating-point
// mode change, no output to stdout or stderr.
//
// Note [public namespace]
// ~~~~~~~~~~~~~~~~~~~~~~~
// The public names live in prunerec::api. The engine's own code already uses prunerec::Error,
// prunerec::set_num_threads and prunerec::recsys::Recommender; a separate namespace keeps the
// two sets apart, so the implementation can include both and an embedder never meets an
// internal name by accident. The library target is prunerec::api for the same reason.
//
// Note [thread safety]
// ~~~~~~~~~~~~~~~~~~~~
// A loaded Recommender may be used from any number of threads at once: recommend(),
// recommend_batch() and the accessors are const and share no mutable state, and every
// answer is bit-for-bit the answer the same call gives on one thread (tests/api/api_test.cc
// checks this with 8 threads). What guarantees it (each point checked in the engine's code):
//   * Inference records no autograd graph: the no-grad flag (ag::NoGradGuard) is a
//     thread_local (autograd/var.cc), so one thread's inference cannot switch another
//     thread's recording on or off, and no op writes to the shared parameter tensors.
//   * Kernel scratch (attention and softmax work rows, tensor/kernels/) is thread_local and
//     is only used inside one parallel piece, which never waits on other tasks (no nested
//     parallel call) while holding it, so no other task can run on that thread meanwhile.
//   * The caching allocator's free lists are guarded by a mutex (tensor/allocator.cc); the
//     RoPE table cache is guarded by a mutex and never frees a table a caller may still
//     read (tensor/kernels/rope.cc).
//   * Kernels split work by a rule that depends on the shapes only, every output element
//     has one writer, and cross-piece sums are added in a fixed order, so thread timing,
//     the number of concurrent callers and set_num_threads() never change a result
//     (tensor/parallel.h).
//   * All callers share one oneTBB arena of set_num_threads() workers; OpenBLAS (Debian's
//     pthread build, whose buffer pool is locked) runs one thread per call inside it.
// Not thread-safe: set_num_threads() replaces that arena. Call it before inference starts
// (or while no inference runs), never concurrently with recommend().
//
// Errors: every function reports failure by throwing prunerec::api::Error (a
// std::runtime_error) with a message naming the file, id or value at fault. Nothing calls
// exit() or abort().
#pragma once

#include <cstddef>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

// Marks the exported names (Note [library ABI]).
#if defined(__GNUC__) || defined(__clang__)
#define PRUNEREC_API __attribute__((visibility("default")))
#else
#define PRUNEREC_API
#endif

// The version of this header; the inline namespace below must match it.
#define PRUNEREC_VERSION_MAJOR 0
#define PRUNEREC_VERSION_MINOR 1

namespace prunerec::api {
inline namespace v0_1 {

// The only exception type thrown through this API.
class PRUNEREC_API Error : public std::runtime_error {
 public:
  enum class Kind {
    kInvalidArgument,  // a bad argument: k <= 0, a history with no known item, ...
    kIo,               // a model file that cannot be read or is not a recommender
    kRuntime,          // anything else (out of memory, an internal invariant)
  };
  Error(Kind kind, const std::string& what) : std::runtime_error(what), kind_(kind) {}
  ~Error() override;  // defined in the library: one vtable and typeinfo for every program
  Kind kind() const noexcept { return kind_; }

 private:
  Kind kind_;
};

struct Recommendation {
  std::string item_id;  // the item's raw id, exactly as in the training data
  std::string title;    // "" when the model was trained without titles
  float score = 0;      // the model's logit for the item; higher is better
};

class PRUNEREC_API Recommender {
 public:
  // Loads a model file written by `prunerec train` or `prunerec prune` (a checkpoint that
  // carries its item catalogue). Throws Error (kIo) when the file is missing, damaged or
  // holds no catalogue.
  static Recommender load(const std::string& path);
  // The same from the file's bytes in memory (a model embedded in the program, fetched
  // over the network, ...). The bytes are checked as a file's are, then copied: the
  // buffer may be freed when this returns. `name` stands for the path in error messages.
  static Recommender load_from_memory(const void* data, std::size_t size, const std::string& name = "<memory>");

  // Copies are cheap and share the loaded model, which nothing ever changes. A moved-from
  // Recommender may only be assigned to or destroyed.
  Recommender(const Recommender&);
  Recommender& operator=(const Recommender&);
  Recommender(Recommender&&) noexcept;
  Recommender& operator=(Recommender&&) noexcept;
  ~Recommender();

  // The k items most likely to come next after `history` (raw item ids, oldest first), best
  // first; ties go to the item listed first in the catalogue. Only the newest max_history()
  // items are read. Ids the model does not know are skipped and appended to *unknown_ids
  // when it is given. With exclude_history, items of the history are never recommended.
  // Fewer than k items come back only when the catalogue (minus the excluded items) has
  // fewer. Throws Error (kInvalidArgument) when k <= 0 or no id of the history is known.
  std::vector<Recommendation> recommend(const std::vector<std::string>& history, int k = 10,
                                        bool exclude_history = true,
                                        std::vector<std::string>* unknown_ids = nullptr) const;

  // recommend() for many histories at once: result[i] answers histories[i]. Histories of
  // similar length share a forward pass (chunks of up to 64), which is several times faster
  // than calling recommend() in a loop. The same items come back as from recommend() one
  // by one; scores may differ from recommend()'s in the last bits (matrix products of
  // another size sum in another order). If unknown_ids is given it is resized to
  // histories.size() and (*unknown_ids)[i] lists the unknown ids of history i. Throws
  // Error (kInvalidArgument, naming the index) when k <= 0 or some history has no known id;
  // then nothing is returned.
  std::vector<std::vector<Recommendation>> recommend_batch(
      const std::vector<std::vector<std::string>>& histories, int k = 10, bool exclude_history = true,
      std::vector<std::vector<std::string>>* unknown_ids = nullptr) const;

  int num_items() const;                          // size of the item catalogue
  int max_history() const;                        // newest items of a history the model reads
  bool has_item(const std::string& item_id) const;
  // One line: layers, widths per layer, parameters, items, e.g.
  //   "2 layers, hidden 64, heads [2,2], kv heads [1,1], mlp [128,128], 55424 non-embedding
  //    parameters, 3416 items, max history 50"
  std::string model_summary() const;

 private:
  struct Impl;
  explicit Recommender(std::shared_ptr<const Impl> impl);
  std::shared_ptr<const Impl> impl_;  // null only when moved from
};

// Worker threads of the engine's thread pool (default: all cores, or $PRUNEREC_THREADS).
// Results do not depend on it. Not safe to call while inference runs (Note [thread safety]).
PRUNEREC_API void set_num_threads(int n);
PRUNEREC_API int num_threads();

// The library version, e.g. "0.1.0".
PRUNEREC_API const char* version();

}  // namespace v0_1
}  // namespace prunerec::api
