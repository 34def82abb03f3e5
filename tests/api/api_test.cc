// The public embedding API (include/prunerec/prunerec.h): answers, errors, batch ==
// one-by-one, and bit-exact answers under concurrent use from 8 threads.
#include "prunerec/prunerec.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <fstream>
#include <iterator>
#include <set>
#include <thread>

#include "nn/checkpoint.h"
#include "tests/api/test_model.h"
#include "tensor/rng.h"

namespace prunerec::testing {
namespace {

using api::Recommendation;

constexpr int kItems = 2000;  // big enough that the output product is split over tasks
constexpr int kMaxLen = 12;

// One uneven model (GQA with a custom kv map, a layer without MLP), saved once per binary.
class ApiTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir("prunerec_api");
    path_ = save_test_model(dir_->path() / "model.prc",
                            make_config(kItems, 64, 16, kMaxLen,
                                        {{4, 2, 48, {1, 0, 0, 1}}, {2, 1, 0, {}}, {2, 2, 40, {}}}),
                            11);
  }
  static void TearDownTestSuite() {
    delete dir_;
    dir_ = nullptr;
  }
  static TempDir* dir_;
  static std::string path_;
};
TempDir* ApiTest::dir_ = nullptr;
std::string ApiTest::path_;

// `count` histories of 1 .. 2*kMaxLen distinct known items (some longer than max_len).
std::vector<std::vector<std::string>> make_histories(int count, std::uint64_t seed) {
  Rng rng(seed);
  std::vector<std::vector<std::string>> out;
  for (int i = 0; i < count; ++i) {
    const int len = 1 + static_cast<int>(rng.below(2 * kMaxLen));
    std::set<int> seen;
    std::vector<std::string> h;
    while (static_cast<int>(h.size()) < len) {
      const int item = static_cast<int>(rng.below(kItems));
      if (seen.insert(item).second) h.push_back("item" + std::to_string(item));
    }
    out.push_back(std::move(h));
  }
  return out;
}

// Same ids, titles and bit-identical scores.
bool same_answer(const std::vector<Recommendation>& a, const std::vector<Recommendation>& b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (a[i].item_id != b[i].item_id || a[i].title != b[i].title) return false;
    if (std::memcmp(&a[i].score, &b[i].score, sizeof(float)) != 0) return false;
  }
  return true;
}

TEST_F(ApiTest, LoadsAndDescribesTheModel) {
  const auto rec = api::Recommender::load(path_);
  EXPECT_EQ(rec.num_items(), kItems);
  EXPECT_EQ(rec.max_history(), kMaxLen);
  EXPECT_TRUE(rec.has_item("item7"));
  EXPECT_FALSE(rec.has_item("item7000"));
  const std::string summary = rec.model_summary();
  EXPECT_NE(summary.find("3 layers, hidden 64, heads [4,2,2], kv heads [2,1,2], mlp [48,0,40]"), std::string::npos)
      << summary;
  EXPECT_STRNE(api::version(), "");
  EXPECT_GE(api::num_threads(), 1);
}

TEST_F(ApiTest, RecommendsRankedItemsWithTitles) {
  const auto rec = api::Recommender::load(path_);
  const auto top = rec.recommend({"item1", "item2", "item3"}, 10);
  ASSERT_EQ(top.size(), 10u);
  for (std::size_t i = 0; i < top.size(); ++i) {
    EXPECT_TRUE(rec.has_item(top[i].item_id));
    EXPECT_NE(top[i].item_id, "item1");
    EXPECT_NE(top[i].item_id, "item2");
    EXPECT_NE(top[i].item_id, "item3");
    EXPECT_EQ(top[i].title, "Title " + top[i].item_id.substr(4));
    if (i > 0) {
      EXPECT_GE(top[i - 1].score, top[i].score);
    }
  }
}

// load_from_memory checks the bytes as load() checks a file, and gives the same model.
TEST_F(ApiTest, LoadsFromMemoryLikeFromAFile) {
  const auto from_file = api::Recommender::load(path_);
  std::string bytes;
  {
    std::ifstream in(path_, std::ios::binary);
    bytes.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }
  ASSERT_GT(bytes.size(), 64u);
  auto from_memory = api::Recommender::load_from_memory(bytes.data(), bytes.size(), "buffer");
  bytes.assign(bytes.size(), '\0');  // the model must not borrow the caller's buffer
  EXPECT_EQ(from_memory.model_summary(), from_file.model_summary());
  const std::vector<std::vector<std::string>> histories = {{"item1", "item2"}, {"item7"}, {"item3", "item9", "item4"}};
  for (const auto& h : histories) EXPECT_TRUE(same_answer(from_memory.recommend(h, 10), from_file.recommend(h, 10)));

  // Damaged or empty buffers are I/O errors that name the buffer.
  {
    std::ifstream in(path_, std::ios::binary);
    bytes.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }
  auto expect_io_error = [](const std::string& data, std::size_t size, const char* what) {
    try {
      (void)api::Recommender::load_from_memory(data.data(), size, "buffer");
      ADD_FAILURE() << what << ": loaded";
    } catch (const api::Error& e) {
      EXPECT_EQ(e.kind(), api::Error::Kind::kIo) << what << ": " << e.what();
      EXPECT_EQ(std::string(e.what()).rfind("buffer", 0), 0u) << what << ": " << e.what();
    }
  };
  std::string flipped = bytes;
  flipped[flipped.size() / 2] = static_cast<char>(flipped[flipped.size() / 2] ^ 0x10);
  expect_io_error(flipped, flipped.size(), "a flipped bit");
  expect_io_error(bytes, bytes.size() - 1, "one byte short");
  expect_io_error(bytes, 0, "empty");
}

TEST_F(ApiTest, UnknownIdsAreSkippedAndReported) {
  const auto rec = api::Recommender::load(path_);
  std::vector<std::string> unknown;
  const auto with_unknown = rec.recommend({"nope", "item5", "zz", "item9"}, 7, true, &unknown);
  EXPECT_EQ(unknown, (std::vector<std::string>{"nope", "zz"}));
  EXPECT_TRUE(same_answer(with_unknown, rec.recommend({"item5", "item9"}, 7)));

  std::vector<std::vector<std::string>> batch_unknown;
  const auto batch = rec.recommend_batch({{"item5", "x1"}, {"item9"}, {"y", "item5", "item9"}}, 7, true, &batch_unknown);
  ASSERT_EQ(batch_unknown.size(), 3u);
  EXPECT_EQ(batch_unknown[0], (std::vector<std::string>{"x1"}));
  EXPECT_TRUE(batch_unknown[1].empty());
  EXPECT_EQ(batch_unknown[2], (std::vector<std::string>{"y"}));
  ASSERT_EQ(batch.size(), 3u);
}

TEST_F(ApiTest, EmptyOrUnknownHistoryAndBadKAreErrors) {
  const auto rec = api::Recommender::load(path_);
  auto kind_of = [](auto&& f) {
    try {
      f();
    } catch (const api::Error& e) {
      EXPECT_NE(std::string(e.what()), "");
      return e.kind();
    }
    ADD_FAILURE() << "no api::Error thrown";
    return api::Error::Kind::kRuntime;
  };
  EXPECT_EQ(kind_of([&] { rec.recommend({}, 5); }), api::Error::Kind::kInvalidArgument);
  std::vector<std::string> unknown;
  EXPECT_EQ(kind_of([&] { rec.recommend({"a", "b"}, 5, true, &unknown); }), api::Error::Kind::kInvalidArgument);
  EXPECT_EQ(unknown.size(), 2u);
  EXPECT_EQ(kind_of([&] { rec.recommend({"item1"}, 0); }), api::Error::Kind::kInvalidArgument);
  EXPECT_EQ(kind_of([&] { rec.recommend_batch({{"item1"}, {}}, 5); }), api::Error::Kind::kInvalidArgument);
  EXPECT_EQ(kind_of([&] { rec.recommend_batch({{"item1"}}, -1); }), api::Error::Kind::kInvalidArgument);
  EXPECT_TRUE(rec.recommend_batch({}, 5).empty());
  // A missing file, and a checkpoint without an item catalogue, are I/O errors.
  EXPECT_EQ(kind_of([&] { api::Recommender::load((dir_->path() / "missing.prc").string()); }), api::Error::Kind::kIo);
  const std::string bare = (dir_->path() / "bare.prc").string();
  nn::save_model(bare, nn::Transformer(make_config(20, 16, 8, 4, {{2, 1, 8, {}}}), DType::f32, 1));
  EXPECT_EQ(kind_of([&] { api::Recommender::load(bare); }), api::Error::Kind::kIo);
  EXPECT_EQ(kind_of([] { api::set_num_threads(0); }), api::Error::Kind::kInvalidArgument);
}

TEST_F(ApiTest, KLargerThanTheCatalogueReturnsEveryCandidate) {
  const auto rec = api::Recommender::load(path_);
  const std::vector<std::string> history = {"item4", "item8", "item4", "item15"};  // 3 distinct
  const auto excluded = rec.recommend(history, 10 * kItems);
  EXPECT_EQ(excluded.size(), static_cast<std::size_t>(kItems - 3));
  std::set<std::string> ids;
  for (const auto& r : excluded) ids.insert(r.item_id);
  EXPECT_EQ(ids.size(), excluded.size());
  EXPECT_EQ(ids.count("item4") + ids.count("item8") + ids.count("item15"), 0u);
  const auto all = rec.recommend(history, 10 * kItems, /*exclude_history=*/false);
  EXPECT_EQ(all.size(), static_cast<std::size_t>(kItems));
  EXPECT_TRUE(std::is_sorted(all.begin(), all.end(), [](const auto& a, const auto& b) { return a.score > b.score; }));
}

TEST_F(ApiTest, BatchEqualsOneByOne) {
  const auto rec = api::Recommender::load(path_);
  const auto histories = make_histories(150, 5);  // several chunks of 64, mixed lengths
  for (bool exclude : {true, false}) {
    const auto batch = rec.recommend_batch(histories, 10, exclude);
    ASSERT_EQ(batch.size(), histories.size());
    int exact = 0;
    for (std::size_t i = 0; i < histories.size(); ++i) {
      const auto single = rec.recommend(histories[i], 10, exclude);
      ASSERT_EQ(batch[i].size(), single.size()) << "history " << i;
      for (std::size_t r = 0; r < single.size(); ++r) {
        // The same items; a score may differ in its last bits (products of another size).
        EXPECT_EQ(batch[i][r].item_id, single[r].item_id) << "history " << i << " rank " << r;
        EXPECT_NEAR(batch[i][r].score, single[r].score, 1e-5f * (1 + std::abs(single[r].score)));
      }
      exact += same_answer(batch[i], single);
    }
    RecordProperty(exclude ? "bit_exact_batch_rows_excluding" : "bit_exact_batch_rows_including", exact);
  }
}

// Eight threads ask for recommendations at once, each for many histories (single calls and
// batches, in its own order), several rounds; every answer must equal the one computed
// before on a single thread, bit for bit.
TEST_F(ApiTest, ConcurrentCallersGetSingleThreadAnswers) {
  const auto rec = api::Recommender::load(path_);
  const auto histories = make_histories(96, 9);
  constexpr std::size_t kChunk = 16;
  std::vector<std::vector<Recommendation>> single(histories.size());
  std::vector<std::vector<std::vector<Recommendation>>> batches;
  for (std::size_t i = 0; i < histories.size(); ++i) single[i] = rec.recommend(histories[i], 10);
  for (std::size_t lo = 0; lo < histories.size(); lo += kChunk) {
    std::vector<std::vector<std::string>> chunk(histories.begin() + lo, histories.begin() + lo + kChunk);
    batches.push_back(rec.recommend_batch(chunk, 10));
  }

  constexpr int kThreads = 8, kRounds = 3;
  std::atomic<int> mismatches{0}, calls{0}, errors{0};
  std::atomic<bool> go{false};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      const api::Recommender mine = rec;  // a copy shares the loaded model
      while (!go.load()) std::this_thread::yield();
      try {
        for (int round = 0; round < kRounds; ++round) {
          for (std::size_t j = 0; j < histories.size(); ++j) {
            const std::size_t i = (j * 7 + static_cast<std::size_t>(t) * 13 + static_cast<std::size_t>(round)) % histories.size();
            mismatches += !same_answer(mine.recommend(histories[i], 10), single[i]);
            ++calls;
          }
          for (std::size_t b = 0; b < batches.size(); ++b) {
            const std::size_t c = (b + static_cast<std::size_t>(t)) % batches.size();
            std::vector<std::vector<std::string>> chunk(histories.begin() + c * kChunk,
                                                        histories.begin() + (c + 1) * kChunk);
            const auto got = mine.recommend_batch(chunk, 10);
            for (std::size_t r = 0; r < kChunk; ++r) mismatches += !same_answer(got[r], batches[c][r]);
            ++calls;
          }
        }
      } catch (const std::exception&) {
        ++errors;
      }
    });
  }
  go = true;
  for (auto& th : threads) th.join();
  EXPECT_EQ(errors.load(), 0);
  EXPECT_EQ(mismatches.load(), 0);
  EXPECT_EQ(calls.load(), kThreads * kRounds * static_cast<int>(histories.size() + batches.size()));
}

// Answers do not depend on the size of the engine's thread pool either.
TEST_F(ApiTest, AnswersDoNotDependOnThreadCount) {
  const auto rec = api::Recommender::load(path_);
  const auto histories = make_histories(40, 21);
  const int before = api::num_threads();
  api::set_num_threads(1);
  const auto one = rec.recommend_batch(histories, 10);
  api::set_num_threads(2);
  const auto two = rec.recommend_batch(histories, 10);
  api::set_num_threads(before);
  for (std::size_t i = 0; i < histories.size(); ++i) EXPECT_TRUE(same_answer(one[i], two[i])) << "history " << i;
}

}  // namespace
}  // namespace prunerec::testing
