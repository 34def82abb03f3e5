// tensor/tensor.h, allocator.h, rng.h, parallel.h: views and copies, printing, errors,
// allocator reuse, Philox determinism and the deterministic parallel sum.
//
// Views are checked element by element against index arithmetic written out here, so a
// wrong stride or offset shows up as a wrong value, not only as a wrong shape.
#include <gtest/gtest.h>

#include <array>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <limits>
#include <mutex>
#include <numeric>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "tensor/allocator.h"
#include "tensor/parallel.h"
#include "tensor/rng.h"
#include "tensor/tensor.h"
#include "tests/common/expect_error.h"

namespace prunerec {
namespace {

using testing::expect_shape_error;

// Sets the thread count for one scope and restores the previous one.
class ThreadCount {
 public:
  explicit ThreadCount(int n) : prev_(num_threads()) { set_num_threads(n); }
  ~ThreadCount() { set_num_threads(prev_); }

 private:
  int prev_;
};

// 0, 1, ..., n-1 laid out row-major in `shape`.
Tensor iota(const Shape& shape, DType dtype = DType::f32) {
  return Tensor::arange(shape_numel(shape), dtype).view(shape);
}

std::string printed(const Tensor& t) {
  std::ostringstream os;
  os << t;
  return os.str();
}

// ---- factories and properties -----------------------------------------------------------

TEST(TensorBasics, FactoriesShapesAndDtypes) {
  const Tensor z = Tensor::zeros({2, 3});
  EXPECT_EQ(z.dim(), 2);
  EXPECT_EQ(z.numel(), 6);
  EXPECT_EQ(z.nbytes(), 24u);
  EXPECT_EQ(z.shape_str(), "f32[2,3]");
  EXPECT_EQ(z.strides(), (Shape{3, 1}));
  EXPECT_TRUE(z.is_contiguous());
  EXPECT_EQ(z.to_vector<float>(), std::vector<float>(6, 0.0f));

  EXPECT_EQ(Tensor::ones({3}, DType::f64).to_vector<double>(), (std::vector<double>{1, 1, 1}));
  EXPECT_EQ(Tensor::full({2}, -2.5, DType::f64).to_vector<double>(), (std::vector<double>{-2.5, -2.5}));
  const Tensor s = Tensor::scalar(4.25, DType::f64);
  EXPECT_EQ(s.dim(), 0);
  EXPECT_EQ(s.numel(), 1);
  EXPECT_EQ(s.shape_str(), "f64[]");
  EXPECT_EQ(s.item(), 4.25);
  EXPECT_EQ(Tensor::arange(4).to_vector<std::int64_t>(), (std::vector<std::int64_t>{0, 1, 2, 3}));
  EXPECT_EQ(Tensor::arange(4).dtype(), DType::i64);
  const Tensor v = Tensor::from_vector<std::int32_t>({5, -1, 7}, {3});
  EXPECT_EQ(v.dtype(), DType::i32);
  EXPECT_EQ(v.at({1}), -1.0);
  EXPECT_EQ(Tensor::zeros({0, 4}).numel(), 0);
  EXPECT_FALSE(Tensor().defined());
  EXPECT_EQ(Tensor().shape_str(), "undefined");
  EXPECT_EQ(z.size(-1), 3);
  EXPECT_EQ(z.stride(-2), 3);
}

TEST(TensorBasics, ElementAccessAndTypedData) {
  Tensor x = iota({3, 4});
  EXPECT_EQ(x.at({2, 1}), 9.0);
  x.set({2, 1}, -7.5);
  EXPECT_EQ(x.data<float>()[9], -7.5f);
  EXPECT_EQ(x.narrow(0, 1, 2).data<float>()[0], 4.0f);  // data() applies the offset
  expect_shape_error([&] { (void)x.data<double>(); }, {"f32[3,4]", "f64"});
  expect_shape_error([&] { (void)x.at({3, 0}); }, {"f32[3,4]"});
  expect_shape_error([&] { (void)x.at({0}); }, {"f32[3,4]"});
  expect_shape_error([&] { x.set({0, 4}, 1.0); }, {"f32[3,4]"});
  expect_shape_error([&] { (void)x.item(); }, {"f32[3,4]"});
  expect_shape_error([&] { (void)x.size(2); }, {"f32[3,4]"});
  expect_shape_error([&] { (void)Tensor::from_vector<float>({1, 2, 3}, {2, 2}); }, {"[2,2]"});
  expect_shape_error([&] { (void)Tensor::empty({2, -1}); }, {"[2,-1]"});
}

// ---- views ----------------------------------------------------------------------------------

TEST(TensorViews, ReshapeAndViewShareStorage) {
  const Tensor x = iota({2, 3, 4});
  const Tensor r = x.reshape({4, -1});
  EXPECT_EQ(r.shape(), (Shape{4, 6}));
  EXPECT_TRUE(r.shares_storage(x));
  EXPECT_EQ(r.to_vector<float>(), x.to_vector<float>());
  const Tensor v = x.view({24});
  EXPECT_TRUE(v.shares_storage(x));
  EXPECT_EQ(x.flatten().shape(), (Shape{24}));
  // A view of a contiguous narrow keeps the offset.
  const Tensor n = x.narrow(0, 1, 1).view({3, 4});
  EXPECT_EQ(n.at({0, 0}), 12.0);
  EXPECT_EQ(n.at({2, 3}), 23.0);
  // Writes through a view reach the original.
  Tensor w = x.view({6, 4});
  w.set({5, 3}, 100.0);
  EXPECT_EQ(x.at({1, 2, 3}), 100.0);
}

TEST(TensorViews, ReshapeAndViewErrors) {
  const Tensor x = iota({2, 3, 4});
  expect_shape_error([&] { (void)x.view({5, 5}); }, {"f32[2,3,4]", "[5,5]"});
  expect_shape_error([&] { (void)x.view({-1, -1}); }, {"[-1,-1]"});
  expect_shape_error([&] { (void)x.view({5, -1}); }, {"f32[2,3,4]", "[5,-1]"});
  expect_shape_error([&] { (void)x.reshape({7, -1}); }, {"f32[2,3,4]", "[7,-1]"});
  expect_shape_error([&] { (void)x.view({-2, 12}); }, {"[-2,12]"});
  // view refuses a layout that would need a copy; reshape copies.
  const Tensor t = x.transpose(0, 2);  // [4,3,2]
  expect_shape_error([&] { (void)t.view({24}); }, {"f32[4,3,2]", "not contiguous"});
  const Tensor r = t.reshape({24});
  EXPECT_FALSE(r.shares_storage(x));
  std::vector<float> want;
  for (int i = 0; i < 4; ++i)
    for (int j = 0; j < 3; ++j)
      for (int k = 0; k < 2; ++k) want.push_back(static_cast<float>(k * 12 + j * 4 + i));
  EXPECT_EQ(r.to_vector<float>(), want);
}

TEST(TensorViews, PermuteAndTranspose) {
  const Tensor x = iota({2, 3, 4});
  const Tensor p = x.permute({2, 0, 1});  // p[i,j,k] = x[j,k,i]
  EXPECT_EQ(p.shape(), (Shape{4, 2, 3}));
  EXPECT_EQ(p.strides(), (Shape{1, 12, 4}));
  EXPECT_TRUE(p.shares_storage(x));
  EXPECT_FALSE(p.is_contiguous());
  for (std::int64_t i = 0; i < 4; ++i)
    for (std::int64_t j = 0; j < 2; ++j)
      for (std::int64_t k = 0; k < 3; ++k) EXPECT_EQ(p.at({i, j, k}), x.at({j, k, i}));
  EXPECT_EQ(x.permute({-1, 0, 1}).shape(), (Shape{4, 2, 3}));
  expect_shape_error([&] { (void)x.permute({0, 1}); }, {"f32[2,3,4]"});
  expect_shape_error([&] { (void)x.permute({0, 1, 1}); }, {"repeated"});
  expect_shape_error([&] { (void)x.permute({0, 1, 3}); }, {"f32[2,3,4]"});

  const Tensor m = iota({3, 5});
  const Tensor t = m.transpose(0, 1);
  EXPECT_EQ(t.shape(), (Shape{5, 3}));
  for (std::int64_t i = 0; i < 5; ++i)
    for (std::int64_t j = 0; j < 3; ++j) EXPECT_EQ(t.at({i, j}), m.at({j, i}));
  EXPECT_TRUE(m.transpose(-1, -2).transpose(0, 1).is_contiguous());
  expect_shape_error([&] { (void)m.transpose(0, 2); }, {"f32[3,5]"});
}

TEST(TensorViews, SliceWithStepsAndNegativeIndices) {
  const Tensor x = iota({10});
  EXPECT_EQ(x.slice(0, 1, 8, 3).to_vector<float>(), (std::vector<float>{1, 4, 7}));
  EXPECT_EQ(x.slice(0, 1, 9, 3).to_vector<float>(), (std::vector<float>{1, 4, 7}));
  EXPECT_EQ(x.slice(0, 1, 10, 3).to_vector<float>(), (std::vector<float>{1, 4, 7}));
  EXPECT_EQ(x.slice(0, 0, 10, 4).to_vector<float>(), (std::vector<float>{0, 4, 8}));
  EXPECT_EQ(x.slice(0, -4, -1).to_vector<float>(), (std::vector<float>{6, 7, 8}));
  EXPECT_EQ(x.slice(0, -3, 10).to_vector<float>(), (std::vector<float>{7, 8, 9}));
  EXPECT_EQ(x.slice(0, 7, 100).to_vector<float>(), (std::vector<float>{7, 8, 9}));    // end clamps
  EXPECT_EQ(x.slice(0, -100, 2).to_vector<float>(), (std::vector<float>{0, 1}));     // start clamps
  EXPECT_EQ(x.slice(0, 5, 2).numel(), 0);                                             // empty, not an error
  EXPECT_EQ(x.slice(0, 5, 2).shape(), (Shape{0}));
  EXPECT_TRUE(x.slice(0, 1, 8, 3).shares_storage(x));
  expect_shape_error([&] { (void)x.slice(0, 0, 5, 0); }, {"step"});
  expect_shape_error([&] { (void)x.slice(0, 0, 5, -1); }, {"step"});
  expect_shape_error([&] { (void)x.slice(1, 0, 5); }, {"f32[10]"});

  // 2-D: every other column, from the end, then a slice of that slice.
  const Tensor m = iota({4, 7});
  const Tensor c = m.slice(-1, 1, 7, 2);  // columns 1, 3, 5
  EXPECT_EQ(c.shape(), (Shape{4, 3}));
  EXPECT_EQ(c.strides(), (Shape{7, 2}));
  for (std::int64_t i = 0; i < 4; ++i)
    for (std::int64_t j = 0; j < 3; ++j) EXPECT_EQ(c.at({i, j}), m.at({i, 1 + 2 * j}));
  const Tensor cc = c.slice(0, 1, 4, 2).slice(1, -2, 3);  // rows 1, 3; columns 3, 5
  EXPECT_EQ(cc.to_vector<float>(), (std::vector<float>{10, 12, 24, 26}));
}

TEST(TensorViews, NarrowSelectUnsqueeze) {
  const Tensor m = iota({4, 6});
  const Tensor n = m.narrow(1, 2, 3);
  EXPECT_EQ(n.shape(), (Shape{4, 3}));
  EXPECT_EQ(n.offset(), 2);
  EXPECT_EQ(n.at({3, 2}), 22.0);
  EXPECT_EQ(m.narrow(0, 4, 0).numel(), 0);
  expect_shape_error([&] { (void)m.narrow(1, 4, 3); }, {"f32[4,6]"});
  expect_shape_error([&] { (void)m.narrow(1, -1, 2); }, {"f32[4,6]"});

  const Tensor r = m.select(0, 2);
  EXPECT_EQ(r.shape(), (Shape{6}));
  EXPECT_EQ(r.to_vector<float>(), (std::vector<float>{12, 13, 14, 15, 16, 17}));
  const Tensor col = m.select(-1, 5);
  EXPECT_EQ(col.to_vector<float>(), (std::vector<float>{5, 11, 17, 23}));
  EXPECT_FALSE(col.is_contiguous());
  const Tensor e = m.select(0, 3).select(0, 1);
  EXPECT_EQ(e.dim(), 0);
  EXPECT_EQ(e.item(), 19.0);
  expect_shape_error([&] { (void)m.select(0, 4); }, {"f32[4,6]", "4"});
  expect_shape_error([&] { (void)m.select(0, -1); }, {"f32[4,6]"});

  EXPECT_EQ(m.unsqueeze(0).shape(), (Shape{1, 4, 6}));
  EXPECT_EQ(m.unsqueeze(1).shape(), (Shape{4, 1, 6}));
  EXPECT_EQ(m.unsqueeze(-1).shape(), (Shape{4, 6, 1}));
  EXPECT_TRUE(m.unsqueeze(1).is_contiguous());
  const Tensor tu = m.transpose(0, 1).unsqueeze(1);  // [6,1,4] over a non-contiguous view
  for (std::int64_t i = 0; i < 6; ++i)
    for (std::int64_t j = 0; j < 4; ++j) EXPECT_EQ(tu.at({i, 0, j}), m.at({j, i}));
  expect_shape_error([&] { (void)m.unsqueeze(3); }, {"f32[4,6]"});
}

// ---- copies ---------------------------------------------------------------------------------

TEST(TensorCopies, IndexSelect) {
  const Tensor m = iota({4, 5}, DType::f64);
  const Tensor rows = m.index_select(0, Tensor::from_vector<std::int64_t>({3, 0, 3}));
  EXPECT_EQ(rows.shape(), (Shape{3, 5}));
  EXPECT_FALSE(rows.shares_storage(m));
  for (std::int64_t j = 0; j < 5; ++j) {
    EXPECT_EQ(rows.at({0, j}), m.at({3, j}));
    EXPECT_EQ(rows.at({1, j}), m.at({0, j}));
    EXPECT_EQ(rows.at({2, j}), m.at({3, j}));
  }
  // Columns of a transposed (non-contiguous) source with i32 indices.
  const Tensor t = m.transpose(0, 1);  // [5,4]
  const Tensor cols = t.index_select(1, Tensor::from_vector<std::int32_t>({2, 1}));
  EXPECT_EQ(cols.shape(), (Shape{5, 2}));
  EXPECT_TRUE(cols.is_contiguous());
  for (std::int64_t i = 0; i < 5; ++i) {
    EXPECT_EQ(cols.at({i, 0}), m.at({2, i}));
    EXPECT_EQ(cols.at({i, 1}), m.at({1, i}));
  }
  EXPECT_EQ(m.index_select(0, Tensor::from_vector<std::int64_t>(std::vector<std::int64_t>{})).shape(), (Shape{0, 5}));
  expect_shape_error([&] { (void)m.index_select(0, Tensor::from_vector<std::int64_t>({4})); }, {"f64[4,5]", "4"});
  expect_shape_error([&] { (void)m.index_select(0, Tensor::from_vector<std::int64_t>({-1})); }, {"f64[4,5]"});
  expect_shape_error([&] { (void)m.index_select(0, Tensor::zeros({2})); }, {"f32[2]"});
  expect_shape_error([&] { (void)m.index_select(0, Tensor::zeros({1, 1}, DType::i64)); }, {"i64[1,1]"});
}

// i64 values above 2^53 are not representable in double; copies between i64 tensors must
// still be exact whatever the layouts (ids and counters are i64).
TEST(TensorCopies, I64CopiesAreExactInEveryLayout) {
  const std::int64_t big = (std::int64_t{1} << 53) + 1;
  const Tensor src = Tensor::from_vector<std::int64_t>({big, big + 2, -big, 3, big + 4, 5}, {2, 3});
  // contiguous -> contiguous, and non-contiguous -> contiguous.
  EXPECT_EQ(src.clone().to_vector<std::int64_t>(), src.to_vector<std::int64_t>());
  EXPECT_EQ(src.transpose(0, 1).contiguous().at({1, 0}), src.at({0, 1}));
  EXPECT_EQ(src.transpose(0, 1).contiguous().to_vector<std::int64_t>(),
            (std::vector<std::int64_t>{big, 3, big + 2, big + 4, -big, 5}));
  // Into a non-contiguous destination.
  Tensor dst = Tensor::zeros({3, 2}, DType::i64);
  dst.transpose(0, 1).copy_from(src);
  EXPECT_EQ(dst.to_vector<std::int64_t>(), (std::vector<std::int64_t>{big, 3, big + 2, big + 4, -big, 5}));
  // index_select along an inner dim writes through non-contiguous column views.
  const Tensor picked = src.index_select(1, Tensor::from_vector<std::int64_t>({2, 0}));
  EXPECT_EQ(picked.to_vector<std::int64_t>(), (std::vector<std::int64_t>{-big, big, 5, 3}));
}

TEST(TensorCopies, ContiguousCloneTo) {
  const Tensor m = iota({3, 4});
  EXPECT_TRUE(m.contiguous().shares_storage(m));  // already contiguous: *this
  const Tensor t = m.transpose(0, 1);
  const Tensor tc = t.contiguous();
  EXPECT_FALSE(tc.shares_storage(m));
  EXPECT_TRUE(tc.is_contiguous());
  EXPECT_EQ(tc.strides(), (Shape{3, 1}));
  EXPECT_EQ(tc.to_vector<float>(), t.to_vector<float>());
  Tensor c = m.clone();
  EXPECT_FALSE(c.shares_storage(m));
  c.set({0, 0}, 99.0);
  EXPECT_EQ(m.at({0, 0}), 0.0);
  const Tensor nc = m.narrow(1, 1, 2).clone();  // clone of a view: fresh, offset 0
  EXPECT_EQ(nc.offset(), 0);
  EXPECT_EQ(nc.to_vector<float>(), (std::vector<float>{1, 2, 5, 6, 9, 10}));

  const Tensor d = Tensor::from_vector<double>({0.1, -2.7, 2.7, 1e10}, {4});
  const Tensor f = d.to(DType::f32);
  EXPECT_EQ(f.dtype(), DType::f32);
  EXPECT_EQ(f.to_vector<float>(), (std::vector<float>{0.1f, -2.7f, 2.7f, 1e10f}));
  const Tensor i = d.narrow(0, 0, 3).to(DType::i32);  // truncation toward zero
  EXPECT_EQ(i.to_vector<std::int32_t>(), (std::vector<std::int32_t>{0, -2, 2}));
  const Tensor back = Tensor::from_vector<std::int32_t>({-3, 4}).to(DType::f64);
  EXPECT_EQ(back.to_vector<double>(), (std::vector<double>{-3, 4}));
  // to() of a non-contiguous view gives a contiguous tensor in row-major order.
  const Tensor tf = t.to(DType::f64);
  EXPECT_TRUE(tf.is_contiguous());
  EXPECT_EQ(tf.to_vector<double>(), t.to_vector<double>());
}

TEST(TensorViews, FromStorageBorrowsMemory) {
  auto buffer = std::make_shared<std::vector<float>>(std::vector<float>{1, 2, 3, 4, 5, 6, 7});
  auto storage = std::make_shared<Storage>(buffer->data(), buffer->size() * sizeof(float), buffer);
  const Tensor t = Tensor::from_storage(storage, {2, 3}, DType::f32);  // uses 6 of 7 floats
  EXPECT_EQ(t.to_vector<float>(), (std::vector<float>{1, 2, 3, 4, 5, 6}));
  EXPECT_TRUE(t.is_contiguous());
  (*buffer)[4] = 50;  // a view of the borrowed memory, not a copy
  EXPECT_EQ(t.at({1, 1}), 50.0);
  expect_shape_error([&] { (void)Tensor::from_storage(storage, {2, 4}, DType::f32); }, {"f32[2,4]", "32", "28"});
  expect_shape_error([&] { (void)Tensor::from_storage(storage, {-1}, DType::f32); }, {"[-1]"});
  expect_shape_error([&] { (void)Tensor::from_storage(nullptr, {1}, DType::f32); }, {"null"});
  EXPECT_EQ(Tensor::from_storage(storage, {3}, DType::f64).numel(), 3);  // 24 of 28 bytes
}

TEST(TensorCopies, CopyFromAcrossLayoutsAndDtypes) {
  const Tensor m = iota({3, 4});
  // Non-contiguous source, contiguous destination, same dtype.
  Tensor a = Tensor::zeros({4, 3});
  a.copy_from(m.transpose(0, 1));
  for (std::int64_t i = 0; i < 4; ++i)
    for (std::int64_t j = 0; j < 3; ++j) EXPECT_EQ(a.at({i, j}), m.at({j, i}));
  // Contiguous f32 source into a transposed f64 destination: the storage holds m^T.
  Tensor b = Tensor::zeros({4, 3}, DType::f64);
  b.transpose(0, 1).copy_from(m);
  for (std::int64_t i = 0; i < 4; ++i)
    for (std::int64_t j = 0; j < 3; ++j) EXPECT_EQ(b.at({i, j}), m.at({j, i}));
  // Strided source into a strided destination of another dtype.
  Tensor c = Tensor::full({3, 8}, -1.0, DType::i32);
  const Tensor src = iota({3, 8}, DType::f64).slice(1, 0, 8, 2);  // columns 0, 2, 4, 6
  c.slice(1, 1, 8, 2).copy_from(src);                             // into columns 1, 3, 5, 7
  for (std::int64_t i = 0; i < 3; ++i)
    for (std::int64_t j = 0; j < 4; ++j) {
      EXPECT_EQ(c.at({i, 2 * j}), -1.0);
      EXPECT_EQ(c.at({i, 2 * j + 1}), static_cast<double>(i * 8 + 2 * j));
    }
  // Overlapping contiguous ranges of one storage behave as memmove.
  Tensor s = iota({6});
  s.narrow(0, 0, 5).copy_from(s.narrow(0, 1, 5));
  EXPECT_EQ(s.to_vector<float>(), (std::vector<float>{1, 2, 3, 4, 5, 5}));
  // Scalars, and fill on a strided view.
  Tensor sc = Tensor::scalar(0.0, DType::f64);
  sc.copy_from(Tensor::scalar(3.5));
  EXPECT_EQ(sc.item(), 3.5);
  Tensor f = Tensor::zeros({2, 4});
  f.slice(1, 0, 4, 3).fill(7.0);
  EXPECT_EQ(f.to_vector<float>(), (std::vector<float>{7, 0, 0, 7, 7, 0, 0, 7}));
  expect_shape_error([&] { a.copy_from(m); }, {"copy_from", "f32[3,4]", "f32[4,3]"});
  expect_shape_error([&] { a.copy_from(Tensor()); }, {"copy_from"});
}

// ---- printing -------------------------------------------------------------------------------

TEST(TensorPrinting, ShapeThenValues) {
  EXPECT_EQ(printed(iota({2, 3})), "f32[2,3] [[0, 1, 2], [3, 4, 5]]");
  EXPECT_EQ(printed(iota({2, 3}).narrow(1, 1, 2)), "f32[2,2] [[1, 2], [4, 5]]");
  EXPECT_EQ(printed(iota({2, 3}).transpose(0, 1)), "f32[3,2] [[0, 3], [1, 4], [2, 5]]");
  EXPECT_EQ(printed(Tensor::scalar(2.5, DType::f64)), "f64[] 2.5");
  EXPECT_EQ(printed(Tensor::from_vector<std::int32_t>({-1, 4})), "i32[2] [-1, 4]");
  EXPECT_EQ(printed(iota({10}, DType::i64)), "i64[10] [0, 1, 2, 3, ..., 6, 7, 8, 9]");  // at most 4 per end
  EXPECT_EQ(printed(Tensor::zeros({0})), "f32[0] []");
  EXPECT_EQ(printed(Tensor()), "undefined");
}

TEST(TensorComparisons, MaxAbsDiffAllcloseBitEqual) {
  const Tensor a = Tensor::from_vector<float>({1, 2, 3});
  const Tensor b = Tensor::from_vector<double>({1, 2.5, 3});
  EXPECT_EQ(max_abs_diff(a, b), 0.5);
  EXPECT_TRUE(allclose(a, b, 0.0, 0.5));
  EXPECT_FALSE(allclose(a, b, 0.0, 0.49));
  EXPECT_TRUE(allclose(a, b, 0.2, 0.0));  // |2 - 2.5| <= 0.2 * 2.5
  EXPECT_FALSE(bit_equal(a, b));          // dtypes differ
  EXPECT_TRUE(bit_equal(a, a.clone()));
  EXPECT_TRUE(bit_equal(iota({2, 3}).transpose(0, 1), iota({2, 3}).transpose(0, 1).contiguous()));
  const Tensor nan = Tensor::from_vector<float>({1, std::nanf(""), 3});
  EXPECT_TRUE(std::isnan(max_abs_diff(a, nan)));
  EXPECT_FALSE(allclose(nan, a, 1.0, 1.0));
  expect_shape_error([&] { (void)max_abs_diff(a, Tensor::zeros({2})); }, {"f32[3]", "f32[2]"});
}

// ---- allocator --------------------------------------------------------------------------------

TEST(Allocator, FreedBlocksAreReusedBySizeClass) {
  if (const char* v = std::getenv("PRUNEREC_NO_ALLOC_CACHE"); v != nullptr && v[0] != '\0' && v[0] != '0')
    GTEST_SKIP() << "PRUNEREC_NO_ALLOC_CACHE turns the cache off";
  release_cached();
  const AllocatorStats s0 = allocator_stats();
  EXPECT_EQ(s0.cached_bytes, 0);
  // 12345 floats = 49380 bytes, size class 53248 (8 classes per power of two: 4096 steps).
  { const Tensor a = Tensor::empty({12345}); }
  const AllocatorStats s1 = allocator_stats();
  EXPECT_EQ(s1.system_allocs, s0.system_allocs + 1);
  EXPECT_EQ(s1.live_bytes, s0.live_bytes);
  EXPECT_EQ(s1.cached_bytes, 53248);
  EXPECT_GE(s1.peak_bytes, s0.live_bytes + 53248);
  // Same size, then a different size in the same class: both served from the cache.
  {
    const Tensor b = Tensor::empty({12345});
    const AllocatorStats live = allocator_stats();
    EXPECT_EQ(live.live_bytes, s0.live_bytes + 53248);
    EXPECT_EQ(live.cached_bytes, 0);
  }
  { const Tensor c = Tensor::empty({12500}); }  // 50000 bytes, also class 53248
  const AllocatorStats s2 = allocator_stats();
  EXPECT_EQ(s2.system_allocs, s1.system_allocs);
  EXPECT_EQ(s2.reuses, s1.reuses + 2);
  // Outside the class: a new block.
  { const Tensor d = Tensor::empty({14000}); }  // 56000 bytes, class 57344
  EXPECT_EQ(allocator_stats().system_allocs, s2.system_allocs + 1);
  release_cached();
  EXPECT_EQ(allocator_stats().cached_bytes, 0);
  { const Tensor e = Tensor::empty({12345}); }
  EXPECT_EQ(allocator_stats().system_allocs, s2.system_allocs + 2);  // the cache was emptied
  // Requests beyond the guard are refused before anything is attempted.
  EXPECT_THROW((void)Tensor::empty({std::int64_t{1} << 40}), Error);
  // Memory is 64-byte aligned.
  for (std::int64_t n : {1, 3, 17, 1000, 5000}) {
    const Tensor t = Tensor::empty({n}, DType::f64);
    EXPECT_EQ(reinterpret_cast<std::uintptr_t>(t.raw_data()) % 64, 0u) << n;
  }
}

// A full cache makes room for a new shape by giving back its least recently freed blocks,
// so a working set that changes (inference after training) is served from the cache after
// its first round instead of from the system every time.
TEST(Allocator, FullCacheEvictsOldestBlocksForNewShapes) {
  if (const char* v = std::getenv("PRUNEREC_NO_ALLOC_CACHE"); v != nullptr && v[0] != '\0' && v[0] != '0')
    GTEST_SKIP() << "PRUNEREC_NO_ALLOC_CACHE turns the cache off";
  release_cached();
  // Fill the cache to its limit with one shape ("training"): blocks of 1 MiB (a size class
  // of its own), all live at once, then all freed.
  constexpr std::int64_t kOld = std::int64_t{1} << 18;  // floats = 1 MiB
  const std::int64_t limit = allocator_stats().cache_limit_bytes;
  {
    std::vector<Tensor> old;
    for (std::int64_t b = 0; b < limit; b += kOld * 4) old.push_back(Tensor::empty({kOld}));
  }
  constexpr std::int64_t kNew = 3 * kOld;
  const AllocatorStats full = allocator_stats();
  ASSERT_GT(full.cached_bytes + 2 * kNew * 4, full.cache_limit_bytes) << "the new blocks fit without eviction";
  // Another shape ("inference"): 3 MiB blocks, not servable from 1 MiB ones. The first
  // round comes from the system and evicts old blocks when freed; the second is reused.
  { const Tensor a = Tensor::empty({kNew}), b = Tensor::empty({kNew}); }
  const AllocatorStats after_first = allocator_stats();
  EXPECT_EQ(after_first.system_allocs, full.system_allocs + 2);
  EXPECT_GT(after_first.evictions, full.evictions);
  EXPECT_LE(after_first.cached_bytes, after_first.cache_limit_bytes);
  { const Tensor a = Tensor::empty({kNew}), b = Tensor::empty({kNew}); }
  const AllocatorStats after_second = allocator_stats();
  EXPECT_EQ(after_second.system_allocs, after_first.system_allocs);
  EXPECT_EQ(after_second.reuses, after_first.reuses + 2);
  // The old shape's surviving blocks are still served from the cache.
  { const Tensor a = Tensor::empty({kOld}); }
  EXPECT_EQ(allocator_stats().system_allocs, after_second.system_allocs);
  release_cached();
  EXPECT_EQ(allocator_stats().cached_bytes, 0);
}

// ---- RNG -------------------------------------------------------------------------------------

// Random123's published known-answer vectors for Philox4x32-10 (tests/kat_vectors): counter
// words (c0, c1, c2, c3) map to counter_lo = c0 | c1 << 32, counter_hi = c2 | c3 << 32.
TEST(Philox, KnownAnswers) {
  using W = std::array<std::uint32_t, 4>;
  EXPECT_EQ(philox4x32(0, 0, 0), (W{0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8}));
  EXPECT_EQ(philox4x32(~0ULL, ~0ULL, ~0ULL), (W{0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd}));
  EXPECT_EQ(philox4x32(0x299f31d0a4093822ULL, 0x0370734413198a2eULL, 0x85a308d3243f6a88ULL),
            (W{0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1}));
}

TEST(Philox, SameSeedStreamCounterSameValues) {
  Rng a(42, 7), b(42, 7), other_stream(42, 8), other_seed(43, 7);
  std::vector<std::uint64_t> va, vb, vs, vd;
  for (int i = 0; i < 100; ++i) {
    va.push_back(a.next_u64());
    vb.push_back(b.next_u64());
    vs.push_back(other_stream.next_u64());
    vd.push_back(other_seed.next_u64());
  }
  EXPECT_EQ(va, vb);
  EXPECT_NE(va, vs);
  EXPECT_NE(va, vd);
  EXPECT_EQ(a.state(), (Rng::State{42, 7, 100}));  // one block per draw
  // A state is the whole story: restoring it replays the sequence.
  Rng c(Rng::State{42, 7, 50});
  for (int i = 50; i < 100; ++i) EXPECT_EQ(c.next_u64(), va[i]);
  Rng d(1);
  d.set_state({42, 7, 99});
  EXPECT_EQ(d.next_u64(), va[99]);
  EXPECT_EQ(hash_stream(1, 2, 3), hash_stream(1, 2, 3));
  EXPECT_NE(hash_stream(1, 2, 3), hash_stream(1, 3, 2));
}

TEST(Philox, UniformBelowShuffle) {
  Rng rng(3);
  double total = 0;
  const int n = 100000;
  for (int i = 0; i < n; ++i) {
    const double u = rng.uniform();
    ASSERT_GE(u, 0.0);
    ASSERT_LT(u, 1.0);
    total += u;
  }
  // Mean of n uniforms: sd = sqrt(1/12/n) = 9.1e-4; 5 sd = 4.6e-3.
  EXPECT_NEAR(total / n, 0.5, 4.6e-3);
  std::vector<int> counts(7, 0);
  for (int i = 0; i < 70000; ++i) {
    const std::uint64_t k = rng.below(7);
    ASSERT_LT(k, 7u);
    ++counts[k];
  }
  // Each count ~ Binomial(70000, 1/7): sd = 92.6; 5 sd = 463.
  for (int c : counts) EXPECT_NEAR(c, 10000, 463);
  EXPECT_THROW((void)rng.below(0), ShapeError);
  std::vector<int> v(50), w;
  std::iota(v.begin(), v.end(), 0);
  w = v;
  Rng s1(9), s2(9);
  s1.shuffle(v);
  s2.shuffle(w);
  EXPECT_EQ(v, w);
  EXPECT_EQ(std::set<int>(v.begin(), v.end()).size(), 50u);
  std::vector<int> sorted(50);
  std::iota(sorted.begin(), sorted.end(), 0);
  EXPECT_NE(v, sorted);
}

TEST(Philox, FillNormalIndependentOfThreadsAndLength) {
  Tensor one = Tensor::empty({100001}, DType::f64), two = Tensor::empty({100001}, DType::f64);
  {
    ThreadCount tc(1);
    fill_normal(one, 0.0, 1.0, 1234, 5);
  }
  {
    ThreadCount tc(2);
    fill_normal(two, 0.0, 1.0, 1234, 5);
  }
  EXPECT_TRUE(bit_equal(one, two));
  // Element i depends only on (seed, stream, i): a shorter tensor is a prefix.
  Tensor shorter = Tensor::empty({1001}, DType::f64);
  fill_normal(shorter, 0.0, 1.0, 1234, 5);
  EXPECT_TRUE(bit_equal(shorter, one.narrow(0, 0, 1001)));
  Tensor other = Tensor::empty({1001}, DType::f64);
  fill_normal(other, 0.0, 1.0, 1234, 6);
  EXPECT_GT(max_abs_diff(other, shorter), 0.5);
  // f32 is the f64 draw rounded once.
  Tensor f = Tensor::empty({1001});
  fill_normal(f, 0.0, 1.0, 1234, 5);
  EXPECT_TRUE(bit_equal(f, shorter.to(DType::f32)));
  Tensor u1 = Tensor::empty({5003}), u2 = Tensor::empty({5003});
  {
    ThreadCount tc(1);
    fill_uniform(u1, -2.0, 3.0, 8, 1);
  }
  {
    ThreadCount tc(2);
    fill_uniform(u2, -2.0, 3.0, 8, 1);
  }
  EXPECT_TRUE(bit_equal(u1, u2));
  Tensor t = Tensor::zeros({4, 6});
  Tensor view = t.transpose(0, 1);
  expect_shape_error([&] { fill_normal(view, 0, 1, 1, 1); }, {"f32[6,4]"});
  Tensor ints = Tensor::zeros({4}, DType::i32);
  expect_shape_error([&] { fill_normal(ints, 0, 1, 1, 1); }, {"i32"});
}

TEST(Philox, NormalAndUniformMoments) {
  const std::int64_t n = 100000;
  Tensor t = Tensor::empty({n}, DType::f64);
  fill_normal(t, 3.0, 0.5, 77, 1);
  const std::vector<double> v = t.to_vector<double>();
  double mean = 0, var = 0;
  for (double x : v) mean += x;
  mean /= n;
  for (double x : v) var += (x - mean) * (x - mean);
  const double sd = std::sqrt(var / (n - 1));
  // Standard errors for n = 1e5: mean 0.5/sqrt(n) = 1.58e-3, sd 0.5/sqrt(2n) = 1.12e-3.
  // Bounds are 5 standard errors (a false alarm about once in 1.7 million seeds).
  EXPECT_NEAR(mean, 3.0, 7.9e-3);
  EXPECT_NEAR(sd, 0.5, 5.6e-3);
  // Tails: P(|z| > 3) = 0.27%, so about 270 of 1e5 (sd 16.4; bound 5 sd = 82).
  std::int64_t tail = 0;
  for (double x : v) tail += std::fabs(x - 3.0) > 1.5;
  EXPECT_NEAR(static_cast<double>(tail), 270.0, 82.0);

  Tensor u = Tensor::empty({n}, DType::f64);
  fill_uniform(u, -2.0, 3.0, 77, 2);
  const std::vector<double> uv = u.to_vector<double>();
  double umean = 0;
  for (double x : uv) {
    ASSERT_GE(x, -2.0);
    ASSERT_LT(x, 3.0);
    umean += x;
  }
  // sd of the mean: 5 / sqrt(12 n) = 4.56e-3; 5 sd = 2.3e-2.
  EXPECT_NEAR(umean / n, 0.5, 2.3e-2);

  Rng rng(5);
  double rm = 0, rs = 0;
  for (std::int64_t i = 0; i < n; ++i) {
    const double x = rng.normal();
    rm += x;
    rs += x * x;
  }
  rm /= n;
  EXPECT_NEAR(rm, 0.0, 1.6e-2);                        // 5 / sqrt(n)
  EXPECT_NEAR(std::sqrt(rs / n - rm * rm), 1.0, 1.12e-2);  // 5 / sqrt(2n)
}

// ---- threads -----------------------------------------------------------------------------------

TEST(Parallel, ParallelSumIsIndependentOfThreadCount) {
  const std::int64_t n = 1000003;
  std::vector<double> x(n);
  Rng rng(11);
  for (double& v : x) v = rng.normal() * std::exp(10 * rng.uniform());  // wide magnitudes: order matters
  auto f = [&](std::int64_t lo, std::int64_t hi) {
    double s = 0;
    for (std::int64_t i = lo; i < hi; ++i) s += x[i];
    return s;
  };
  // The documented rule: fixed chunks, partial sums added in chunk order.
  const std::int64_t chunk = 4099;
  double expect = 0;
  for (std::int64_t lo = 0; lo < n; lo += chunk) expect += f(lo, std::min(n, lo + chunk));
  double one, two;
  {
    ThreadCount tc(1);
    one = parallel_sum(n, chunk, f);
  }
  {
    ThreadCount tc(2);
    two = parallel_sum(n, chunk, f);
  }
  EXPECT_EQ(one, expect);
  EXPECT_EQ(two, expect);
  EXPECT_EQ(parallel_sum(0, 10, f), 0.0);
  EXPECT_EQ(parallel_sum(5, 0, f), f(0, 5));  // chunk < 1 is treated as 1
}

TEST(Parallel, ParallelForCoversEveryIndexOnce) {
  ThreadCount tc(2);
  for (std::int64_t n : {1, 7, 16, 17, 1000, 4099}) {
    for (std::int64_t grain : {1, 3, 16, 5000}) {
      std::vector<int> hits(static_cast<std::size_t>(n), 0);
      std::mutex mu;
      std::vector<std::pair<std::int64_t, std::int64_t>> pieces;
      parallel_for(5, 5 + n, grain, [&](std::int64_t lo, std::int64_t hi) {
        for (std::int64_t i = lo; i < hi; ++i) ++hits[i - 5];
        std::lock_guard<std::mutex> lock(mu);
        pieces.emplace_back(lo, hi);
      });
      for (int h : hits) ASSERT_EQ(h, 1) << "n " << n << " grain " << grain;
      // The pieces are exactly [begin + k*grain, begin + (k+1)*grain), the last one
      // shorter: fixed by the range and grain alone (tensor/parallel.h).
      std::sort(pieces.begin(), pieces.end());
      ASSERT_EQ(static_cast<std::int64_t>(pieces.size()), (n + grain - 1) / grain) << "n " << n << " grain " << grain;
      for (std::size_t k = 0; k < pieces.size(); ++k) {
        EXPECT_EQ(pieces[k].first, 5 + static_cast<std::int64_t>(k) * grain);
        EXPECT_EQ(pieces[k].second, std::min<std::int64_t>(5 + n, 5 + (static_cast<std::int64_t>(k) + 1) * grain));
      }
    }
  }
  {
    ThreadCount one(1);  // one thread: the same pieces, in order, on the calling thread
    std::vector<std::int64_t> starts;
    parallel_for(0, 10, 4, [&](std::int64_t lo, std::int64_t) { starts.push_back(lo); });
    EXPECT_EQ(starts, (std::vector<std::int64_t>{0, 4, 8}));
  }
  int calls = 0;
  parallel_for(3, 3, 1, [&](std::int64_t, std::int64_t) { ++calls; });
  EXPECT_EQ(calls, 0);
  EXPECT_THROW(set_num_threads(0), ConfigError);
  EXPECT_EQ(num_threads(), 2);
}

}  // namespace
}  // namespace prunerec
