// The embedding API (include/prunerec/prunerec.h) over the engine's recommender.
//
// Every entry point converts the engine's exceptions (prunerec::Error and its kinds) into
// the one public type, prunerec::api::Error, so an embedder needs no internal header.
#include "prunerec/prunerec.h"

#include <new>
#include <sstream>
#include <utility>

#include "base/error.h"
#include "recsys/ranking.h"
#include "recsys/recommender.h"
#include "tensor/parallel.h"

#ifndef PRUNEREC_VERSION
#define PRUNEREC_VERSION "unknown"
#endif

// The header's version and the build's must agree (Note [library ABI]).
static_assert(PRUNEREC_VERSION_MAJOR == PRUNEREC_PROJECT_VERSION_MAJOR &&
                  PRUNEREC_VERSION_MINOR == PRUNEREC_PROJECT_VERSION_MINOR,
              "include/prunerec/prunerec.h: PRUNEREC_VERSION_* and the inline namespace must follow "
              "project(prunerec VERSION ...) in CMakeLists.txt");

namespace prunerec::api {
inline namespace v0_1 {
namespace {

// Runs f, turning the engine's errors into api::Error of the matching kind.
template <class F>
auto translate_errors(F&& f) -> decltype(f()) {
  try {
    return f();
  } catch (const api::Error&) {
    throw;
  } catch (const prunerec::IoError& e) {
    throw Error(Error::Kind::kIo, e.what());
  } catch (const prunerec::ConfigError& e) {
    throw Error(Error::Kind::kInvalidArgument, e.what());
  } catch (const prunerec::ShapeError& e) {
    throw Error(Error::Kind::kInvalidArgument, e.what());
  } catch (const prunerec::Error& e) {
    throw Error(Error::Kind::kRuntime, e.what());
  } catch (const std::bad_alloc&) {
    throw Error(Error::Kind::kRuntime, "prunerec: out of memory");
  } catch (const std::exception& e) {
    throw Error(Error::Kind::kRuntime, e.what());
  }
}

std::string join(const std::vector<std::int64_t>& values) {
  std::string s = "[";
  for (std::size_t i = 0; i < values.size(); ++i) s.append(i ? "," : "").append(std::to_string(values[i]));
  return s + "]";
}

}  // namespace

struct Recommender::Impl {
  recsys::Recommender rec;
  int max_len = 0;

  // Dense indices of the known ids of `history`; unknown ones go to *unknown.
  std::vector<std::int32_t> known_items(const std::vector<std::string>& history, std::vector<std::string>* unknown) const {
    std::vector<std::int32_t> items;
    items.reserve(history.size());
    for (const auto& raw : history) {
      const std::int32_t i = rec.catalog.find(raw);
      if (i >= 0) {
        items.push_back(i);
      } else if (unknown) {
        unknown->push_back(raw);
      }
    }
    return items;
  }

  Recommendation make(std::int32_t item, float score) const {
    return {rec.catalog.raw_ids[static_cast<std::size_t>(item)], rec.catalog.title(item), score};
  }
};

Error::~Error() = default;

Recommender::Recommender(std::shared_ptr<const Impl> impl) : impl_(std::move(impl)) {}
Recommender::Recommender(const Recommender&) = default;
Recommender& Recommender::operator=(const Recommender&) = default;
Recommender::Recommender(Recommender&&) noexcept = default;
Recommender& Recommender::operator=(Recommender&&) noexcept = default;
Recommender::~Recommender() = default;

Recommender Recommender::load(const std::string& path) {
  return translate_errors([&] {
    // Starts the thread pool, which also pins OpenBLAS to one thread per call (Note
    // [threading policy] in tensor/parallel.h), before the first product runs: the
    // process-wide effects listed in Note [process-wide state] of the public header.
    (void)prunerec::num_threads();
    auto impl = std::make_shared<Impl>();
    impl->rec = recsys::load_recommender(path);
    impl->max_len = static_cast<int>(impl->rec.net->config().max_len());
    return Recommender(std::move(impl));
  });
}

Recommender Recommender::load_from_memory(const void* data, std::size_t size, const std::string& name) {
  return translate_errors([&] {
    (void)prunerec::num_threads();  // as in load()
    auto impl = std::make_shared<Impl>();
    impl->rec = recsys::load_recommender_from_memory(data, size, name);
    impl->max_len = static_cast<int>(impl->rec.net->config().max_len());
    return Recommender(std::move(impl));
  });
}

std::vector<Recommendation> Recommender::recommend(const std::vector<std::string>& history, int k,
                                                   bool exclude_history, std::vector<std::string>* unknown_ids) const {
  return translate_errors([&] {
    std::vector<Recommendation> out;
    for (auto& r : recsys::recommend(impl_->rec, history, k, exclude_history, unknown_ids))
      out.push_back({std::move(r.raw_id), std::move(r.title), r.score});
    return out;
  });
}

std::vector<std::vector<Recommendation>> Recommender::recommend_batch(
    const std::vector<std::vector<std::string>>& histories, int k, bool exclude_history,
    std::vector<std::vector<std::string>>* unknown_ids) const {
  return translate_errors([&] {
    PR_CHECK_T(ConfigError, k > 0, "recommend_batch: k must be positive, got ", k);
    const Impl& im = *impl_;
    const std::size_t n = histories.size();
    std::vector<std::vector<std::string>> unknown(n);
    std::vector<std::vector<std::int32_t>> items(n);
    for (std::size_t i = 0; i < n; ++i) {
      items[i] = im.known_items(histories[i], &unknown[i]);
      PR_CHECK_T(ConfigError, !items[i].empty(), "recommend_batch: history ", i, ": none of its ",
                 histories[i].size(), " ids is a known item of this model");
    }
    const auto top = recsys::top_items_batch(*im.rec.net, items, k, exclude_history);
    std::vector<std::vector<Recommendation>> out(n);
    for (std::size_t i = 0; i < n; ++i)
      for (const recsys::ScoredItem& r : top[i]) out[i].push_back(im.make(r.item, r.score));
    if (unknown_ids) *unknown_ids = std::move(unknown);
    return out;
  });
}

int Recommender::num_items() const { return impl_->rec.catalog.size(); }
int Recommender::max_history() const { return impl_->max_len; }
bool Recommender::has_item(const std::string& item_id) const { return impl_->rec.catalog.find(item_id) >= 0; }

std::string Recommender::model_summary() const {
  return translate_errors([&] {
    const nn::Transformer& net = *impl_->rec.net;
    std::vector<std::int64_t> heads, kv_heads, mlp;
    for (int l = 0; l < net.num_layers(); ++l) {
      heads.push_back(net.block(l).attn().num_heads());
      kv_heads.push_back(net.block(l).attn().num_kv_heads());
      mlp.push_back(net.block(l).mlp().width());
    }
    std::ostringstream os;
    os << net.num_layers() << " layers, hidden " << net.hidden_size() << ", heads " << join(heads) << ", kv heads "
       << join(kv_heads) << ", mlp " << join(mlp) << ", " << net.non_embedding_parameters()
       << " non-embedding parameters, " << num_items() << " items, max history " << impl_->max_len;
    return os.str();
  });
}

void set_num_threads(int n) {
  translate_errors([&] { prunerec::set_num_threads(n); });
}

int num_threads() {
  return translate_errors([] { return prunerec::num_threads(); });
}

const char* version() { return PRUNEREC_VERSION; }

}  // namespace v0_1
}  // namespace prunerec::api
