// tensor/kernels: every fast kernel against its naive twin (tensor/kernels/reference.h) or,
// where there is none, a plain loop written here, on odd shapes that are not multiples of
// any tile (1, 7, 13, 33, 65, 129 rows/cols, head_dim 6, T = 1/5/17), in f32 and f64.
//
// Note [kernel test tolerances]: a tolerance is a forward-error bound, not a guess. Most
// references are evaluated in long double (64-bit mantissa), so their own error is far
// below the bound; the bound then covers the fast kernel's rounding: with eps the machine
// epsilon of T (2x the unit roundoff u), a length-K sum has worst-case error
// gamma_K * sum|terms| ~ K u sum|terms|, and each further multiply, divide, exp or sqrt
// adds a few u. We use eps where the analysis gives u, which leaves a factor 2 for FMA and
// blocked summation orders. Each check prints "[ measured ]" with the largest error seen
// and the largest error/bound ratio, so the headroom is visible in the test log.
//
// Kernels that promise it (Note [GEMM splitting], Note [attention parallelism], the
// fixed-chunk reductions) are also checked bit for bit between set_num_threads(1) and 2,
// and every dispatched kernel between its baseline and AVX2 + FMA copies (Note [kernel
// dispatch] in tensor/kernels/isa.h, Note [kernel math flags] in tensor/kernels/math.h).
// exp_fast is inline; the kernels are compiled without reassociation flags (Note
// [no fast-math] in tensor/kernels/math.h), and so is this file.
#include <cmath>
#include <cstdint>
#include <cstring>

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <cstdlib>
#include <limits>
#include <map>
#include <sstream>
#include <string>
#include <type_traits>
#include <vector>

#include "tensor/kernels/attention.h"
#include "tensor/kernels/elementwise.h"
#include "tensor/kernels/embedding.h"
#include "tensor/kernels/gemm.h"
#include "tensor/kernels/isa.h"
#include "tensor/kernels/math.h"
#include "tensor/kernels/norm.h"
#include "tensor/kernels/reference.h"
#include "tensor/kernels/rope.h"
#include "tensor/kernels/softmax.h"
#include "tensor/parallel.h"
#include "tensor/rng.h"

namespace prunerec::kernels {
namespace {

using i64 = std::int64_t;
using ld = long double;

template <class T>
constexpr double kEps = std::numeric_limits<T>::epsilon();

template <class T>
const char* type_name() {
  return std::is_same_v<T, float> ? "f32" : "f64";
}

class TypeNames {
 public:
  template <class T>
  static std::string GetName(int) {
    return type_name<T>();
  }
};
using FloatTypes = ::testing::Types<float, double>;

// Sets the thread count for one scope and restores the previous one.
class ThreadCount {
 public:
  explicit ThreadCount(int n) : prev_(num_threads()) { set_num_threads(n); }
  ~ThreadCount() { set_num_threads(prev_); }

 private:
  int prev_;
};

template <class T>
std::vector<T> randn(i64 n, std::uint64_t seed, double scale = 1.0) {
  Rng rng(seed, 99);
  std::vector<T> v(static_cast<std::size_t>(n));
  for (T& x : v) x = static_cast<T>(scale * rng.normal());
  return v;
}

template <class T>
bool same_bits(const std::vector<T>& a, const std::vector<T>& b) {
  return a.size() == b.size() && (a.empty() || std::memcmp(a.data(), b.data(), a.size() * sizeof(T)) == 0);
}

// Largest error and error/bound ratio per group of checks (the check's name without its
// shape and parameter tokens), printed once at the end of the run as "[ measured ]" lines;
// PRUNEREC_TEST_VERBOSE=1 prints every check.
struct Headroom {
  i64 count = 0;
  double max_err = 0, max_ratio = 0;
};
std::map<std::string, Headroom>& headroom() {
  static std::map<std::string, Headroom> table;
  return table;
}
std::string group_of(const std::string& name) {
  std::string group, token;
  std::istringstream in(name);
  while (in >> token) {
    const bool has_digit = std::any_of(token.begin(), token.end(), [](char ch) { return ch >= '0' && ch <= '9'; });
    if (has_digit && token != "f32" && token != "f64") continue;
    group += (group.empty() ? "" : " ") + token;
  }
  return group;
}
class HeadroomReport : public ::testing::Environment {
 public:
  void TearDown() override {
    for (const auto& [group, h] : headroom())
      std::printf("[ measured ] %-52s %9ld values  max|err| %9.3g  max err/bound %7.3g\n", group.c_str(),
                  static_cast<long>(h.count), h.max_err, h.max_ratio);
  }
};
[[maybe_unused]] ::testing::Environment* const kHeadroomReport = ::testing::AddGlobalTestEnvironment(new HeadroomReport);

// Element-wise |got - want| <= bound, with the first few violations reported
// (Note [kernel test tolerances]); the headroom goes into the table above.
class ErrorCheck {
 public:
  explicit ErrorCheck(std::string name) : name_(std::move(name)) {}
  ErrorCheck(const ErrorCheck&) = delete;
  ~ErrorCheck() {
    static const bool verbose = std::getenv("PRUNEREC_TEST_VERBOSE") != nullptr;
    if (verbose)
      std::printf("[ measured ] %-58s n %8ld  max|err| %9.3g  max err/bound %7.3g\n", name_.c_str(),
                  static_cast<long>(count_), max_err_, max_ratio_);
    if (count_ == 0) return;
    Headroom& h = headroom()[group_of(name_)];
    h.count += count_;
    h.max_err = std::max(h.max_err, max_err_);
    h.max_ratio = std::max(h.max_ratio, max_ratio_);
  }
  void operator()(double got, double want, double bound, i64 index) {
    ++count_;
    const double err = std::fabs(got - want);
    if (!(err <= bound)) {  // also catches NaN
      if (failures_++ < 5)
        ADD_FAILURE() << name_ << " [" << index << "]: got " << got << ", want " << want << ", |err| " << err
                      << " > bound " << bound;
    }
    if (err > max_err_) max_err_ = err;
    if (bound > 0 && err / bound > max_ratio_) max_ratio_ = err / bound;
  }

 private:
  std::string name_;
  i64 count_ = 0, failures_ = 0;
  double max_err_ = 0, max_ratio_ = 0;
};

std::string shape_name(std::initializer_list<i64> dims) {
  std::string s;
  for (i64 d : dims) {
    if (!s.empty()) s += 'x';
    s += std::to_string(d);
  }
  return s;
}

// ---- GEMM ------------------------------------------------------------------------------------

template <class T>
using GemmFn = void (*)(bool, bool, i64, i64, i64, T, const T*, i64, const T*, i64, T, T*, i64);

constexpr double kSentinel = 12345.0;  // in C's padding columns: must never be written

// op(A) [M,K], op(B) [K,N], C [M,N] with leading dimensions `pad` larger than the minimum.
// The padding of A and B holds NaN, so reading it would poison the result; C's padding holds
// kSentinel. With beta == 0, C holds NaN, which must be ignored (C is not read).
template <class T>
struct GemmProblem {
  bool ta = false, tb = false;
  i64 M = 0, N = 0, K = 0, lda = 0, ldb = 0, ldc = 0;
  T alpha = 1, beta = 0;
  std::vector<T> A, B, C0;

  GemmProblem(bool ta_, bool tb_, i64 M_, i64 N_, i64 K_, T alpha_, T beta_, i64 pad, std::uint64_t seed)
      : ta(ta_), tb(tb_), M(M_), N(N_), K(K_), alpha(alpha_), beta(beta_) {
    const T nan = std::numeric_limits<T>::quiet_NaN();
    const i64 rows_a = ta ? K : M, cols_a = ta ? M : K, rows_b = tb ? N : K, cols_b = tb ? K : N;
    lda = std::max<i64>(1, cols_a + pad);
    ldb = std::max<i64>(1, cols_b + pad);
    ldc = std::max<i64>(1, N + pad);
    A.assign(static_cast<std::size_t>(rows_a * lda), nan);
    B.assign(static_cast<std::size_t>(rows_b * ldb), nan);
    C0.assign(static_cast<std::size_t>(M * ldc), static_cast<T>(kSentinel));
    const auto va = randn<T>(rows_a * cols_a, seed), vb = randn<T>(rows_b * cols_b, seed + 1),
               vc = randn<T>(M * N, seed + 2);
    for (i64 r = 0; r < rows_a; ++r)
      for (i64 c = 0; c < cols_a; ++c) A[r * lda + c] = va[r * cols_a + c];
    for (i64 r = 0; r < rows_b; ++r)
      for (i64 c = 0; c < cols_b; ++c) B[r * ldb + c] = vb[r * cols_b + c];
    for (i64 r = 0; r < M; ++r)
      for (i64 c = 0; c < N; ++c) C0[r * ldc + c] = beta == T(0) ? nan : vc[r * N + c];
  }

  std::vector<T> run(GemmFn<T> fn) const {
    std::vector<T> C = C0;
    fn(ta, tb, M, N, K, alpha, A.data(), lda, B.data(), ldb, beta, C.data(), ldc);
    return C;
  }

  // Checks C against the long-double product. Bound (Note [kernel test tolerances]):
  // (K + 3) eps (|alpha| sum_k |a b| + |beta c0|): gamma_K for the K-term dot product plus
  // the alpha scaling, the beta term and the final addition.
  void check(const std::vector<T>& C, const std::string& name) const {
    ErrorCheck err(name);
    for (i64 i = 0; i < M; ++i)
      for (i64 j = 0; j < N; ++j) {
        ld acc = 0, mag = 0;
        for (i64 k = 0; k < K; ++k) {
          const ld a = ta ? A[k * lda + i] : A[i * lda + k];
          const ld b = tb ? B[j * ldb + k] : B[k * ldb + j];
          acc += a * b;
          mag += std::fabs(a * b);
        }
        const ld c0 = beta == T(0) ? 0 : static_cast<ld>(beta) * C0[i * ldc + j];
        const ld want = alpha * acc + c0;
        const double bound = (K + 3) * kEps<T> * static_cast<double>(std::fabs(alpha) * mag + std::fabs(c0));
        err(C[i * ldc + j], static_cast<double>(want), bound, i * ldc + j);
      }
    for (i64 i = 0; i < M; ++i)
      for (i64 j = N; j < ldc; ++j)
        ASSERT_EQ(C[i * ldc + j], static_cast<T>(kSentinel)) << name << ": padding of C written at " << i << "," << j;
  }
};

struct Mnk {
  i64 M, N, K;
};
// Small shapes (one BLAS call) and shapes above the 2^18 multiply-add split threshold, both
// tall (row blocks) and wide (column blocks), none a multiple of 16.
const std::vector<Mnk> kSmallShapes = {{1, 1, 1}, {1, 7, 13}, {7, 1, 13}, {13, 33, 7}, {33, 13, 65}, {65, 7, 1}};
const std::vector<Mnk> kSplitShapes = {{129, 65, 33}, {33, 257, 65}, {129, 129, 17}};

template <class T>
class Gemm : public ::testing::Test {};
TYPED_TEST_SUITE(Gemm, FloatTypes, TypeNames);

TYPED_TEST(Gemm, AllTransposesOddShapesStridedAgainstExactAndTwin) {
  using T = TypeParam;
  ThreadCount threads(2);
  struct Scalars {
    T alpha, beta;
  };
  const std::vector<Scalars> scalars = {{T(0.75), T(-0.5)}, {T(1), T(0)}, {T(-1.25), T(1)}};
  std::vector<Mnk> shapes = kSmallShapes;
  shapes.insert(shapes.end(), kSplitShapes.begin(), kSplitShapes.end());
  std::uint64_t seed = 1;
  for (const Mnk& s : shapes)
    for (int t = 0; t < 4; ++t)
      for (const Scalars& ab : scalars)
        for (i64 pad : {0, 3}) {
          const bool ta = t & 1, tb = t & 2;
          const GemmProblem<T> p(ta, tb, s.M, s.N, s.K, ab.alpha, ab.beta, pad, seed++);
          const std::string name = std::string("gemm ") + type_name<T>() + " " + (ta ? "T" : "N") + (tb ? "T" : "N") +
                                   " " + shape_name({s.M, s.N, s.K}) + " a" + std::to_string(double(ab.alpha)) +
                                   " b" + std::to_string(double(ab.beta)) + " pad" + std::to_string(pad);
          const std::vector<T> fast = p.run(&gemm<T>), serial = p.run(&gemm_serial<T>), twin = p.run(&gemm_ref<T>);
          p.check(fast, name);
          p.check(serial, name + " serial");
          p.check(twin, name + " ref");
          // Fast vs twin directly: both are within the bound of the exact product.
          ErrorCheck vs_twin(name + " vs ref");
          for (i64 i = 0; i < s.M; ++i)
            for (i64 j = 0; j < s.N; ++j) {
              ld mag = std::fabs(static_cast<ld>(ab.beta) * (ab.beta == T(0) ? 0 : p.C0[i * p.ldc + j]));
              for (i64 k = 0; k < s.K; ++k)
                mag += std::fabs(static_cast<ld>(ab.alpha) * (ta ? p.A[k * p.lda + i] : p.A[i * p.lda + k]) *
                                 (tb ? p.B[j * p.ldb + k] : p.B[k * p.ldb + j]));
              vs_twin(fast[i * p.ldc + j], twin[i * p.ldc + j], 2 * (s.K + 3) * kEps<T> * static_cast<double>(mag),
                      i * p.ldc + j);
            }
        }
}

TYPED_TEST(Gemm, EmptyInnerDimensionScalesC) {
  using T = TypeParam;
  for (GemmFn<T> fn : {&gemm<T>, &gemm_serial<T>, &gemm_ref<T>}) {
    const GemmProblem<T> scaled(false, true, 7, 13, 0, T(2), T(-0.5), 2, 5);
    const std::vector<T> c = scaled.run(fn);
    for (i64 i = 0; i < 7; ++i)
      for (i64 j = 0; j < 13; ++j) EXPECT_EQ(c[i * scaled.ldc + j], T(-0.5) * scaled.C0[i * scaled.ldc + j]);
    const GemmProblem<T> zeroed(true, false, 7, 13, 0, T(2), T(0), 2, 6);  // C holds NaN: beta = 0 ignores it
    const std::vector<T> z = zeroed.run(fn);
    for (i64 i = 0; i < 7; ++i)
      for (i64 j = 0; j < 13; ++j) EXPECT_EQ(z[i * zeroed.ldc + j], T(0));
  }
}

TYPED_TEST(Gemm, BatchedMatchesPerMatrixProducts) {
  using T = TypeParam;
  ThreadCount threads(2);
  // batch 1 < threads: each product is split as in gemm(); batch 5: spread over the batch.
  for (i64 batch : {1, 5})
    for (int t = 0; t < 4; ++t)
      for (const Mnk& s : {Mnk{13, 7, 33}, Mnk{129, 65, 33}}) {
        const bool ta = t & 1, tb = t & 2;
        std::vector<GemmProblem<T>> probs;
        for (i64 b = 0; b < batch; ++b)
          probs.emplace_back(ta, tb, s.M, s.N, s.K, T(0.5), T(-1), 2, 100 + 10 * b);
        // Matrices laid end to end with a gap of 5 elements between them.
        const i64 sa = static_cast<i64>(probs[0].A.size()) + 5, sb = static_cast<i64>(probs[0].B.size()) + 5,
                  sc = static_cast<i64>(probs[0].C0.size()) + 5;
        std::vector<T> A(batch * sa, std::numeric_limits<T>::quiet_NaN()), B(batch * sb, std::numeric_limits<T>::quiet_NaN()),
            C(batch * sc, static_cast<T>(kSentinel));
        for (i64 b = 0; b < batch; ++b) {
          std::copy(probs[b].A.begin(), probs[b].A.end(), A.begin() + b * sa);
          std::copy(probs[b].B.begin(), probs[b].B.end(), B.begin() + b * sb);
          std::copy(probs[b].C0.begin(), probs[b].C0.end(), C.begin() + b * sc);
        }
        gemm_batched<T>(batch, ta, tb, s.M, s.N, s.K, T(0.5), A.data(), probs[0].lda, sa, B.data(), probs[0].ldb, sb,
                        T(-1), C.data(), probs[0].ldc, sc);
        for (i64 b = 0; b < batch; ++b) {
          const std::vector<T> cb(C.begin() + b * sc, C.begin() + b * sc + static_cast<i64>(probs[b].C0.size()));
          probs[b].check(cb, std::string("gemm_batched ") + type_name<T>() + " batch " + std::to_string(batch) + " " +
                                 (ta ? "T" : "N") + (tb ? "T" : "N") + " " + shape_name({s.M, s.N, s.K}));
          for (i64 g = 0; g < 5; ++g)
            ASSERT_EQ(C[b * sc + static_cast<i64>(probs[b].C0.size()) + g], static_cast<T>(kSentinel)) << "gap written";
        }
      }
}

TYPED_TEST(Gemm, SplitShapesBitIdenticalAcrossThreadCounts) {
  using T = TypeParam;
  for (const Mnk& s : kSplitShapes)
    for (int t = 0; t < 4; ++t) {
      const GemmProblem<T> p(t & 1, t & 2, s.M, s.N, s.K, T(0.75), T(0.25), 3, 7);
      std::vector<T> one, two;
      {
        ThreadCount threads(1);
        one = p.run(&gemm<T>);
      }
      {
        ThreadCount threads(2);
        two = p.run(&gemm<T>);
      }
      EXPECT_TRUE(same_bits(one, two)) << shape_name({s.M, s.N, s.K}) << " transposes " << t;
    }
}

// ---- RMSNorm -----------------------------------------------------------------------------------

template <class T>
class RmsNorm : public ::testing::Test {};
TYPED_TEST_SUITE(RmsNorm, FloatTypes, TypeNames);

TYPED_TEST(RmsNorm, ForwardMatchesTwin) {
  using T = TypeParam;
  const T eps = T(1e-5);
  for (i64 rows : {1, 7, 65, 129})
    for (i64 cols : {1, 6, 13, 33, 129}) {
      std::vector<T> x = randn<T>(rows * cols, rows * 1000 + cols, 2.0), w = randn<T>(cols, cols + 7);
      for (i64 c = 0; c < cols; ++c) x[c] = 0;  // an all-zero row: inv_rms = 1/sqrt(eps), y = 0
      std::vector<T> y(rows * cols, std::numeric_limits<T>::quiet_NaN()), inv(rows), yref(rows * cols);
      rmsnorm_forward<T>(rows, cols, x.data(), w.data(), eps, y.data(), inv.data());
      ref::rmsnorm<T>(rows, cols, x.data(), w.data(), eps, yref.data());
      const std::string name = std::string("rmsnorm fwd ") + type_name<T>() + " " + shape_name({rows, cols});
      // Sum of squares: gamma_cols; mean, +eps, sqrt (halves), divide: +4u; times x, w: +2u;
      // the twin rounds once more: (cols/2 + 7) u < (cols + 12) eps relative.
      ErrorCheck ey(name + " y"), ei(name + " inv_rms");
      for (i64 r = 0; r < rows; ++r) {
        ld ss = 0;
        for (i64 c = 0; c < cols; ++c) ss += static_cast<ld>(x[r * cols + c]) * x[r * cols + c];
        const ld inv_exact = 1.0L / std::sqrt(ss / cols + static_cast<ld>(eps));
        ei(inv[r], static_cast<double>(inv_exact), (cols + 12) * kEps<T> * static_cast<double>(inv_exact), r);
        for (i64 c = 0; c < cols; ++c) {
          const i64 i = r * cols + c;
          const double exact = static_cast<double>(x[i] * inv_exact * w[c]);
          ey(y[i], yref[i], (cols + 12) * kEps<T> * std::fabs(exact), i);
        }
      }
    }
}

// Plain loop for the backward (no twin in reference.h), in long double:
//   dx = inv dy w - x inv^3 / C sum_c(dy w x),   dw = dw0 + sum_r dy x inv.
TYPED_TEST(RmsNorm, BackwardMatchesPlainLoop) {
  using T = TypeParam;
  const T eps = T(1e-5);
  for (i64 rows : {1, 7, 65, 129})
    for (i64 cols : {1, 6, 13, 33}) {
      const std::vector<T> x = randn<T>(rows * cols, 3 * rows + cols), w = randn<T>(cols, 5), dy = randn<T>(rows * cols, 11 * rows);
      std::vector<T> y(rows * cols), inv(rows);
      rmsnorm_forward<T>(rows, cols, x.data(), w.data(), eps, y.data(), inv.data());
      const std::string name = std::string("rmsnorm bwd ") + type_name<T>() + " " + shape_name({rows, cols});
      std::vector<ld> dx_exact(rows * cols), dx_mag(rows * cols), dw_exact(cols, 0.25L), dw_mag(cols, 0.25L);
      for (i64 r = 0; r < rows; ++r) {
        ld ss = 0, dot = 0, dot_mag = 0;
        for (i64 c = 0; c < cols; ++c) ss += static_cast<ld>(x[r * cols + c]) * x[r * cols + c];
        const ld iv = 1.0L / std::sqrt(ss / cols + static_cast<ld>(eps));
        for (i64 c = 0; c < cols; ++c) {
          const ld t = static_cast<ld>(dy[r * cols + c]) * w[c] * x[r * cols + c];
          dot += t;
          dot_mag += std::fabs(t);
        }
        for (i64 c = 0; c < cols; ++c) {
          const i64 i = r * cols + c;
          dx_exact[i] = iv * dy[i] * w[c] - x[i] * iv * iv * iv / cols * dot;
          dx_mag[i] = std::fabs(iv * dy[i] * w[c]) + std::fabs(x[i]) * iv * iv * iv / cols * dot_mag;
          dw_exact[c] += static_cast<ld>(dy[i]) * x[i] * iv;
          dw_mag[c] += std::fabs(static_cast<ld>(dy[i]) * x[i] * iv);
        }
      }
      // Both outputs, then each alone (the other pointer null); dw accumulates onto 0.25.
      for (int variant = 0; variant < 3; ++variant) {
        std::vector<T> dx(rows * cols, std::numeric_limits<T>::quiet_NaN()), dw(cols, T(0.25));
        rmsnorm_backward<T>(rows, cols, x.data(), w.data(), inv.data(), dy.data(), variant == 2 ? nullptr : dx.data(),
                            variant == 1 ? nullptr : dw.data());
        const std::string label = name + (variant == 0 ? "" : variant == 1 ? " dx only" : " dw only");
        if (variant != 2) {
          // inv_rms carries (cols/2 + 3) u (forward), cubed 3x that; the dot adds gamma_cols:
          // under (3 cols + 16) eps relative to the magnitude of the two terms.
          ErrorCheck edx(label + " dx");
          for (i64 i = 0; i < rows * cols; ++i)
            edx(dx[i], static_cast<double>(dx_exact[i]), (3 * cols + 16) * kEps<T> * static_cast<double>(dx_mag[i]), i);
        } else {
          for (T v : dx) ASSERT_TRUE(std::isnan(v)) << label << ": dx written though null";
        }
        if (variant != 1) {
          // dw: a sum over rows (in 64-row chunks, then over chunks) of terms that carry the
          // inv_rms error: (rows + cols + 16) eps relative to sum |terms|.
          ErrorCheck edw(label + " dw");
          for (i64 c = 0; c < cols; ++c)
            edw(dw[c], static_cast<double>(dw_exact[c]), (rows + cols + 16) * kEps<T> * static_cast<double>(dw_mag[c]), c);
        }
      }
    }
}

// ---- softmax and the fused losses ------------------------------------------------------------

template <class T>
class Softmax : public ::testing::Test {};
TYPED_TEST_SUITE(Softmax, FloatTypes, TypeNames);

// Logits with spread 4 per row and one row shifted by +1000 (the max subtraction must
// handle it); returns the largest within-row range, which enters the bounds below.
template <class T>
std::vector<T> logits(i64 rows, i64 cols, std::uint64_t seed, double* range) {
  std::vector<T> x = randn<T>(rows * cols, seed, 4.0);
  if (rows > 2)
    for (i64 c = 0; c < cols; ++c) x[2 * cols + c] += T(1000);
  *range = 0;
  for (i64 r = 0; r < rows; ++r) {
    const auto [lo, hi] = std::minmax_element(x.begin() + r * cols, x.begin() + (r + 1) * cols);
    *range = std::max(*range, static_cast<double>(*hi - *lo));
  }
  return x;
}

// Exact log-sum-exp of a row in long double.
template <class T>
ld lse_exact(const T* x, i64 n, ld a = 1) {
  ld m = -std::numeric_limits<ld>::infinity(), z = 0;
  for (i64 c = 0; c < n; ++c) m = std::max(m, a * x[c]);
  for (i64 c = 0; c < n; ++c) z += std::exp(a * x[c] - m);
  return m + std::log(z);
}

TYPED_TEST(Softmax, SoftmaxAndLogSoftmaxMatchTwin) {
  using T = TypeParam;
  for (i64 rows : {1, 7, 65})
    for (i64 cols : {1, 7, 13, 129, 1031}) {
      double range = 0;
      const std::vector<T> x = logits<T>(rows, cols, rows * 31 + cols, &range);
      std::vector<T> p(rows * cols, std::numeric_limits<T>::quiet_NaN()), pref(rows * cols),
          lp(rows * cols, std::numeric_limits<T>::quiet_NaN());
      softmax_rows<T>(rows, cols, x.data(), p.data());
      log_softmax_rows<T>(rows, cols, x.data(), lp.data());
      ref::softmax<T>(rows, cols, x.data(), pref.data());
      const std::string name = std::string(type_name<T>()) + " " + shape_name({rows, cols});
      ErrorCheck ep("softmax_rows " + name), elp("log_softmax_rows " + name);
      for (i64 r = 0; r < rows; ++r) {
        const ld lse = lse_exact(x.data() + r * cols, cols);
        for (i64 c = 0; c < cols; ++c) {
          const i64 i = r * cols + c;
          // x - max rounds with error u |x - max| (<= u range), exp_fast adds 2 ulp, the row
          // sum gamma_cols, the division and the twin's rounding 2u more: relative
          // (cols + range + 8) eps, plus the smallest normal for underflowing entries.
          ep(p[i], pref[i], (cols + range + 8) * kEps<T> * pref[i] + std::numeric_limits<T>::min(), i);
          // x - lse: the log of the row sum inherits the sum's relative error as an absolute
          // one; the two subtractions add u (|x| + |lse|).
          elp(lp[i], static_cast<double>(x[i] - lse),
              (cols + range + 8) * kEps<T> * (1 + std::fabs(static_cast<double>(x[i])) + std::fabs(static_cast<double>(lse))), i);
        }
      }
    }
}

TYPED_TEST(Softmax, CrossEntropyRowsWithIgnoredRowsAndInPlaceGradient) {
  using T = TypeParam;
  const T scale = T(0.37);
  for (i64 rows : {1, 7, 33})
    for (i64 V : {1, 7, 129, 1031}) {
      double range = 0;
      const std::vector<T> x = logits<T>(rows, V, rows * 17 + V, &range);
      std::vector<std::int32_t> target(rows);
      Rng rng(rows + V);
      for (i64 r = 0; r < rows; ++r) target[r] = static_cast<std::int32_t>(rng.below(V));
      target[0] = 0;
      if (rows > 1) target[rows - 1] = static_cast<std::int32_t>(V - 1);
      if (rows > 3) target[1] = target[3] = -1;  // ignored
      const std::string name = std::string("cross_entropy_rows ") + type_name<T>() + " " + shape_name({rows, V});
      // Three calls: a separate dx buffer, dx aliasing x (in place), and no dx (loss only).
      // Each is checked against the exact values (the compiler may order the sums of the
      // three code paths differently under Note [kernel math flags]).
      for (int variant = 0; variant < 3; ++variant) {
        std::vector<T> loss(rows, std::numeric_limits<T>::quiet_NaN()), dx(rows * V, std::numeric_limits<T>::quiet_NaN());
        if (variant == 1) dx = x;
        const T* xin = variant == 1 ? dx.data() : x.data();
        cross_entropy_rows<T>(rows, V, xin, target.data(), loss.data(), variant == 2 ? nullptr : dx.data(), scale);
        const std::string label = name + (variant == 0 ? "" : variant == 1 ? " in place" : " loss only");
        ErrorCheck el(label + " loss"), eg(label + " dx");
        ld mean_got = 0;
        i64 valid = 0;
        for (i64 r = 0; r < rows; ++r) {
          const T* xr = x.data() + r * V;
          if (target[r] < 0) {
            EXPECT_EQ(loss[r], T(0)) << label << " ignored row " << r;
            if (variant != 2) {
              for (i64 c = 0; c < V; ++c) EXPECT_EQ(dx[r * V + c], T(0)) << label << " ignored row " << r;
            }
            continue;
          }
          const ld lse = lse_exact(xr, V);
          const double mag = 1 + std::fabs(static_cast<double>(lse)) + std::fabs(static_cast<double>(xr[target[r]]));
          // The row's log-sum-exp has the softmax's relative error as an absolute one
          // (Softmax test above); the subtraction of the target logit adds u |x_t|.
          el(loss[r], static_cast<double>(lse - xr[target[r]]), (V + range + 8) * kEps<T> * mag, r);
          mean_got += loss[r];
          ++valid;
          if (variant == 2) continue;
          for (i64 c = 0; c < V; ++c) {
            const ld pc = std::exp(xr[c] - lse), onehot = c == target[r];
            // softmax bound times |scale|, plus eps |scale| for the one-hot subtraction.
            eg(dx[r * V + c], static_cast<double>((pc - onehot) * scale),
               (V + range + 8) * kEps<T> * static_cast<double>((pc + onehot) * scale) + std::numeric_limits<T>::min(),
               r * V + c);
          }
        }
        // The twin's mean over valid rows agrees with the mean of the per-row values (the
        // +1000 row has |lse| ~ 1000: the bound scales with it).
        if (valid > 0) {
          EXPECT_NEAR(static_cast<double>(mean_got / valid),
                      ref::cross_entropy_mean<T>(rows, V, x.data(), target.data()),
                      (V + range + 8) * kEps<T> * 1002)
              << label;
        }
      }
    }
}

TYPED_TEST(Softmax, DistillRowsMatchesTwinAndPlainGradient) {
  using T = TypeParam;
  const T scale = T(0.6);
  for (i64 V : {1, 7, 129})
    for (double alpha : {0.0, 0.3, 1.0})
      for (double temp : {1.0, 2.0}) {
        const i64 rows = 9;
        const std::vector<T> s = randn<T>(rows * V, 7 * V + 1, 3.0), t = randn<T>(rows * V, 7 * V + 2, 2.0);
        std::vector<std::int32_t> target(rows);
        for (i64 r = 0; r < rows; ++r) target[r] = static_cast<std::int32_t>((r * 5) % V);
        target[2] = target[7] = -1;
        const std::string name = std::string("distill_rows ") + type_name<T>() + " V" + std::to_string(V) + " alpha " +
                                 std::to_string(alpha).substr(0, 3) + " temp " + std::to_string(temp).substr(0, 3);
        // Variants: separate ds with ce/kl outputs; ds aliasing s without ce/kl; loss only.
        for (int variant = 0; variant < 3; ++variant) {
          std::vector<T> loss(rows, std::numeric_limits<T>::quiet_NaN()), ce(rows, std::numeric_limits<T>::quiet_NaN()),
              kl(rows, std::numeric_limits<T>::quiet_NaN()), ds(rows * V, std::numeric_limits<T>::quiet_NaN());
          if (variant == 1) ds = s;
          distill_rows<T>(rows, V, variant == 1 ? ds.data() : s.data(), t.data(), target.data(), T(alpha), T(temp),
                          loss.data(), variant == 0 ? ce.data() : nullptr, variant == 0 ? kl.data() : nullptr,
                          variant == 2 ? nullptr : ds.data(), scale);
          const std::string label = name + (variant == 0 ? "" : variant == 1 ? " in place" : " loss only");
          ErrorCheck el(label + " loss"), ec(label + " ce"), ek(label + " kl"), eg(label + " ds");
          for (i64 r = 0; r < rows; ++r) {
            const T* sr = s.data() + r * V;
            const T* tr = t.data() + r * V;
            if (target[r] < 0) {
              EXPECT_EQ(loss[r], T(0)) << label;
              if (variant == 0) {
                EXPECT_EQ(ce[r], T(0)) << label;
                EXPECT_EQ(kl[r], T(0)) << label;
              }
              if (variant != 2) {
                for (i64 c = 0; c < V; ++c) EXPECT_EQ(ds[r * V + c], T(0)) << label << " ignored row " << r;
              }
              continue;
            }
            const ld lse_s = lse_exact(sr, V), lse_st = lse_exact(sr, V, 1 / static_cast<ld>(temp)),
                     lse_t = lse_exact(tr, V, 1 / static_cast<ld>(temp));
            // Twins, one row at a time.
            const double ce_want = ref::cross_entropy_mean<T>(1, V, sr, &target[r]);
            const double kl_want = ref::kl_mean<T>(1, V, sr, tr, &target[r], temp);
            // Every log-probability is a logit/temp minus a log-sum-exp; their rounding and
            // the V-term sums give absolute errors of (V + 16) eps times the magnitude below.
            double amax = 0;
            for (i64 c = 0; c < V; ++c) amax = std::max({amax, std::fabs(double(sr[c])), std::fabs(double(tr[c]))});
            const double mag = 1 + amax / std::min(temp, 1.0) + std::fabs(double(lse_s)) + std::fabs(double(lse_st)) +
                               std::fabs(double(lse_t));
            const double bound = (V + 16) * kEps<T> * mag;
            if (variant == 0) {
              ec(ce[r], ce_want, bound, r);
              ek(kl[r], kl_want, bound, r);
            }
            el(loss[r], alpha * ce_want + (1 - alpha) * temp * temp * kl_want,
               (alpha + (1 - alpha) * temp * temp) * bound * 2, r);
            if (variant == 2) continue;
            for (i64 c = 0; c < V; ++c) {
              const ld ps = std::exp(sr[c] - lse_s), pst = std::exp(sr[c] / static_cast<ld>(temp) - lse_st),
                       pt = std::exp(tr[c] / static_cast<ld>(temp) - lse_t), onehot = c == target[r];
              const ld want = scale * (alpha * (ps - onehot) + (1 - alpha) * temp * (pst - pt));
              const ld gmag = std::fabs(scale) * (alpha * (ps + onehot) + (1 - alpha) * temp * (pst + pt));
              // Each probability carries the relative error `bound` (exp of an absolutely
              // perturbed log-probability); the combination adds a few u.
              eg(ds[r * V + c], static_cast<double>(want),
                 (bound + 8 * kEps<T>) * static_cast<double>(gmag) + std::numeric_limits<T>::min(), r * V + c);
            }
          }
        }
      }
}

// ---- SwiGLU and dropout -------------------------------------------------------------------------

template <class T>
class Elementwise : public ::testing::Test {};
TYPED_TEST_SUITE(Elementwise, FloatTypes, TypeNames);

// Gate inputs: normal with spread 3, plus saturating values where exp_fast clamps.
template <class T>
std::vector<T> swiglu_g(i64 rows, i64 cols, std::uint64_t seed) {
  std::vector<T> g = randn<T>(rows * cols, seed, 3.0);
  const T special[] = {T(0), T(-1.2785), T(20), T(-20), T(100), T(-100)};
  for (i64 i = 0; i < std::min<i64>(6, rows * cols); ++i) g[i * 7 % (rows * cols)] = special[i];
  return g;
}

TYPED_TEST(Elementwise, SwigluForwardBackwardWithAndWithoutGates) {
  using T = TypeParam;
  // Below this, values are float denormals from the clamped exp_fast (g <= -88); irrelevant
  // to training and not worth a relative bound.
  const double tiny = 1e-30;
  for (i64 rows : {1, 7, 33})
    for (i64 cols : {1, 6, 13, 65})
      for (bool gated : {false, true}) {
        const std::vector<T> g = swiglu_g<T>(rows, cols, rows * 100 + cols), u = randn<T>(rows * cols, rows + 3 * cols),
                             dout = randn<T>(rows * cols, 77 + cols);
        std::vector<T> gate(cols);
        for (i64 c = 0; c < cols; ++c) gate[c] = c % 4 == 0 ? T(0) : c % 4 == 1 ? T(1) : c % 4 == 2 ? T(-0.5) : T(2.5);
        const T* gp = gated ? gate.data() : nullptr;
        std::vector<T> y(rows * cols, std::numeric_limits<T>::quiet_NaN()), yref(rows * cols);
        swiglu_forward<T>(rows, cols, g.data(), u.data(), gp, y.data());
        ref::swiglu<T>(rows, cols, g.data(), u.data(), gp, yref.data());
        const std::string name = std::string("swiglu ") + type_name<T>() + " " + shape_name({rows, cols}) +
                                 (gated ? " gated" : "");
        {
          ErrorCheck ey(name + " y");
          // sigmoid: exp_fast 2 ulp, 1 + e and the division 2u; then three products and the
          // twin's rounding: under 8 eps relative.
          for (i64 i = 0; i < rows * cols; ++i) ey(y[i], yref[i], 8 * kEps<T> * std::fabs(double(yref[i])) + tiny, i);
        }
        // Backward with both outputs, then each alone.
        for (int variant = 0; variant < 3; ++variant) {
          std::vector<T> dg(rows * cols, std::numeric_limits<T>::quiet_NaN()), du(rows * cols, std::numeric_limits<T>::quiet_NaN());
          swiglu_backward<T>(rows, cols, g.data(), u.data(), gp, dout.data(), variant == 2 ? nullptr : dg.data(),
                             variant == 1 ? nullptr : du.data());
          const std::string label = name + (variant == 0 ? "" : variant == 1 ? " dg only" : " du only");
          ErrorCheck eg(label + " dg"), eu(label + " du");
          for (i64 r = 0; r < rows; ++r)
            for (i64 c = 0; c < cols; ++c) {
              const i64 i = r * cols + c;
              const ld x = g[i], s = 1 / (1 + std::exp(-x)), gc = gated ? gate[c] : 1, d = dout[i] * gc;
              if (variant != 1)
                eu(du[i], static_cast<double>(d * x * s), 8 * kEps<T> * std::fabs(double(d * x * s)) + tiny, i);
              else
                ASSERT_TRUE(std::isnan(du[i])) << label << ": du written though null";
              if (variant == 2) {
                ASSERT_TRUE(std::isnan(dg[i])) << label << ": dg written though null";
                continue;
              }
              // silu' = s (1 + x (1 - s)) cancels near x = -1.28: bound relative to the
              // magnitude |d u s| (1 + |x| (1 - s)), with 2 more roundings.
              const ld want = d * u[i] * s * (1 + x * (1 - s)), mag = std::fabs(d * u[i] * s) * (1 + std::fabs(x) * (1 - s));
              eg(dg[i], static_cast<double>(want), 10 * kEps<T> * static_cast<double>(mag) + tiny, i);
            }
        }
      }
}

TYPED_TEST(Elementwise, DropoutKeepFractionScalingAndRegeneratedMask) {
  using T = TypeParam;
  const i64 n = 100003;  // not a multiple of the draws per Philox block
  std::vector<T> x = randn<T>(n, 3);
  for (T& v : x)
    if (v == T(0)) v = T(1);  // so that "dropped" and "zero output" are the same thing
  for (float p : {0.1f, 0.3f, 0.5f}) {
    std::vector<T> out(n, std::numeric_limits<T>::quiet_NaN());
    dropout_apply<T>(n, p, 42, 7, x.data(), out.data());
    const T keep_scale = T(1) / (T(1) - static_cast<T>(p));
    i64 kept = 0;
    for (i64 i = 0; i < n; ++i) {
      // Kept elements are scaled by exactly 1 / (1 - p), dropped ones are exactly 0.
      ASSERT_TRUE(out[i] == T(0) || out[i] == x[i] * keep_scale) << "element " << i << " p " << p;
      kept += out[i] != T(0);
    }
    // Binomial(n, 1 - p): sd sqrt(p (1 - p) / n) <= 1.6e-3; 5 sd = 7.9e-3 (covers the
    // rounding of p to the mask's resolution too).
    EXPECT_NEAR(static_cast<double>(kept) / n, 1.0 - p, 7.9e-3) << "p " << p;
    // The backward regenerates the mask from (seed, stream): applying it again (to another
    // tensor) keeps the same positions, and a prefix of the tensor has the same mask.
    std::vector<T> ones(n, T(1)), mask(n), prefix(1001);
    dropout_apply<T>(n, p, 42, 7, ones.data(), mask.data());
    for (i64 i = 0; i < n; ++i) ASSERT_EQ(mask[i] != T(0), out[i] != T(0)) << i;
    dropout_apply<T>(1001, p, 42, 7, x.data(), prefix.data());
    EXPECT_TRUE(same_bits(prefix, std::vector<T>(out.begin(), out.begin() + 1001)));
    // Another stream or seed gives another mask: agreement ~ p^2 + (1-p)^2, far from 1.
    for (auto [seed, stream] : {std::pair<std::uint64_t, std::uint64_t>{42, 8}, {43, 7}}) {
      std::vector<T> other(n);
      dropout_apply<T>(n, p, seed, stream, ones.data(), other.data());
      i64 agree = 0;
      for (i64 i = 0; i < n; ++i) agree += (other[i] != T(0)) == (mask[i] != T(0));
      EXPECT_LT(static_cast<double>(agree) / n, 0.95) << "seed " << seed << " stream " << stream;
    }
  }
  std::vector<T> same(n);
  dropout_apply<T>(n, 0.0f, 42, 7, x.data(), same.data());  // p = 0 keeps everything unscaled
  EXPECT_TRUE(same_bits(same, x));
}

// The mask's definition, written out plainly: element i is kept when the 16-bit lane i % 8
// of Philox block i / 8 is >= p * 65536 (the kernel's masks must never change: a run's
// dropout is part of what a seed reproduces).
template <class T>
T reference_dropout(std::int64_t i, float p, std::uint64_t seed, std::uint64_t stream, T x) {
  const auto w = philox4x32(seed, stream, static_cast<std::uint64_t>(i / 8));
  const std::uint32_t draw = (w[(i % 8) / 2] >> (16 * (i % 2))) & 0xFFFFu;
  return draw >= static_cast<std::uint32_t>(p * 65536.0f + 0.5f) ? x * (T(1) / (T(1) - static_cast<T>(p))) : T(0);
}

// Note [global dropout masks]: a shard of a left-padded batch, read at its placement, takes
// the masks of its elements' places in the whole batch.
TYPED_TEST(Elementwise, DropoutRowsTakeTheMasksOfTheirPlaceInTheWholeBatch) {
  using T = TypeParam;
  const i64 rows = 13, length = 9, d = 7, cols = length * d;  // a [13, 9, 7] batch: odd sizes
  const std::vector<T> x = randn<T>(rows * cols, 4);
  std::vector<T> whole(rows * cols);
  dropout_apply<T>(rows * cols, 0.3f, 5, 11, x.data(), whole.data());
  for (i64 i = 0; i < rows * cols; ++i) ASSERT_EQ(whole[i], reference_dropout<T>(i, 0.3f, 5, 11, x[i])) << i;
  // Rows [4, 11) padded to their own length 6 (the last 6 positions of each row).
  const i64 first_row = 4, shard_rows = 7, shard_length = 6, shard_cols = shard_length * d;
  std::vector<T> shard_x, shard(shard_rows * shard_cols);
  for (i64 r = first_row; r < first_row + shard_rows; ++r)
    shard_x.insert(shard_x.end(), x.begin() + r * cols + cols - shard_cols, x.begin() + (r + 1) * cols);
  dropout_apply_rows<T>(shard_rows, shard_cols, cols, first_row * cols + cols - shard_cols, 0.3f, 5, 11, shard_x.data(),
                        shard.data());
  for (i64 r = 0; r < shard_rows; ++r)
    for (i64 c = 0; c < shard_cols; ++c)
      ASSERT_EQ(shard[r * shard_cols + c], whole[(first_row + r) * cols + cols - shard_cols + c]) << r << " " << c;
}

TYPED_TEST(Elementwise, SimpleMapsMatchPlainLoops) {
  using T = TypeParam;
  const i64 n = 40001, rows = 129, cols = 13;
  const std::vector<T> a = randn<T>(n, 1), b = randn<T>(n, 2);
  std::vector<T> out(n), y = b;
  add<T>(n, a.data(), b.data(), out.data());
  for (i64 i = 0; i < n; ++i) ASSERT_EQ(out[i], a[i] + b[i]);  // one rounding: exact agreement
  mul<T>(n, a.data(), b.data(), out.data());
  for (i64 i = 0; i < n; ++i) ASSERT_EQ(out[i], a[i] * b[i]);
  scale<T>(n, T(-1.5), a.data(), out.data());
  for (i64 i = 0; i < n; ++i) ASSERT_EQ(out[i], T(-1.5) * a[i]);
  axpy<T>(n, T(0.3), a.data(), y.data());
  // y + alpha x: two roundings, or one if contracted to an FMA: within eps (|y| + |alpha x|).
  for (i64 i = 0; i < n; ++i)
    ASSERT_NEAR(y[i], b[i] + T(0.3) * a[i], kEps<T> * (std::fabs(b[i]) + std::fabs(T(0.3) * a[i]))) << i;
  fill<T>(n, T(2.5), out.data());
  for (i64 i = 0; i < n; ++i) ASSERT_EQ(out[i], T(2.5));
  copy<T>(n, a.data(), out.data());
  EXPECT_TRUE(same_bits(out, a));
  std::vector<T> colscale = randn<T>(cols, 9), m(rows * cols);
  colscale[0] = 0;
  mul_cols<T>(rows, cols, a.data(), colscale.data(), m.data());
  for (i64 r = 0; r < rows; ++r)
    for (i64 c = 0; c < cols; ++c) ASSERT_EQ(m[r * cols + c], a[r * cols + c] * colscale[c]);
  EXPECT_TRUE(all_finite<T>(n, a.data()));
  for (T bad : {std::numeric_limits<T>::quiet_NaN(), std::numeric_limits<T>::infinity(), -std::numeric_limits<T>::infinity()}) {
    std::vector<T> z = a;
    z[n - 2] = bad;  // in the last chunk
    EXPECT_FALSE(all_finite<T>(n, z.data()));
  }
  EXPECT_TRUE(all_finite<T>(0, a.data()));
}

// ---- reductions -----------------------------------------------------------------------------------

TYPED_TEST(Elementwise, SumAndSumSquares) {
  using T = TypeParam;
  for (i64 n : {0, 1, 7, 16383, 16385, 100003}) {
    const std::vector<T> x = randn<T>(n, n + 1, 10.0);
    ld s = 0, sa = 0, q = 0;
    for (T v : x) {
      s += v;
      sa += std::fabs(static_cast<ld>(v));
      q += static_cast<ld>(v) * v;
    }
    // Accumulated in double in fixed chunks: (n + 16) double-eps relative to sum |x|.
    const double bound_s = (n + 16) * kEps<double> * static_cast<double>(sa), bound_q = (n + 16) * kEps<double> * static_cast<double>(q);
    EXPECT_NEAR(sum<T>(n, x.data()), static_cast<double>(s), bound_s) << n;
    EXPECT_NEAR(sum_squares<T>(n, x.data()), static_cast<double>(q), bound_q) << n;
  }
}

TYPED_TEST(Elementwise, SumRowsOverwriteAndAccumulate) {
  using T = TypeParam;
  for (i64 rows : {1, 7, 2341, 5000})
    for (i64 cols : {1, 7, 13, 129}) {
      const std::vector<T> x = randn<T>(rows * cols, rows + cols);
      std::vector<T> out(cols, std::numeric_limits<T>::quiet_NaN()), acc = randn<T>(cols, 3);
      const std::vector<T> acc0 = acc;
      sum_rows<T>(rows, cols, x.data(), out.data(), false);
      sum_rows<T>(rows, cols, x.data(), acc.data(), true);
      const std::string name = std::string("sum_rows ") + type_name<T>() + " " + shape_name({rows, cols});
      ErrorCheck eo(name), ea(name + " accumulate");
      for (i64 c = 0; c < cols; ++c) {
        ld s = 0, mag = 0;
        for (i64 r = 0; r < rows; ++r) {
          s += x[r * cols + c];
          mag += std::fabs(static_cast<ld>(x[r * cols + c]));
        }
        // Accumulated in T over row chunks, then over chunks: (rows + 2) eps sum |x|.
        eo(out[c], static_cast<double>(s), (rows + 2) * kEps<T> * static_cast<double>(mag), c);
        ea(acc[c], static_cast<double>(s + acc0[c]), (rows + 3) * kEps<T> * static_cast<double>(mag + std::fabs(acc0[c])), c);
      }
    }
}

// ---- embedding ------------------------------------------------------------------------------------

TYPED_TEST(Elementwise, EmbeddingGatherAndScatterAdd) {
  using T = TypeParam;
  struct Case {
    i64 V, d, n;
  };
  for (const Case& k : {Case{7, 1, 33}, Case{7, 6, 33}, Case{2500, 13, 1000}, Case{2500, 6, 5}}) {
    const std::vector<T> table = randn<T>(k.V * k.d, k.V + k.d);
    std::vector<std::int32_t> ids(k.n);
    Rng rng(k.n);
    for (i64 i = 0; i < k.n; ++i) {
      const std::uint64_t pick = rng.below(4);  // padding, a hot id (repeated), or random
      ids[i] = pick == 0 ? -1 : pick == 1 ? static_cast<std::int32_t>(k.V - 1) : static_cast<std::int32_t>(rng.below(k.V));
    }
    ids[0] = 0;
    std::vector<T> out(k.n * k.d, std::numeric_limits<T>::quiet_NaN());
    embedding_gather<T>(k.n, k.d, table.data(), ids.data(), out.data());
    for (i64 i = 0; i < k.n; ++i)
      for (i64 c = 0; c < k.d; ++c)
        ASSERT_EQ(out[i * k.d + c], ids[i] < 0 ? T(0) : table[ids[i] * k.d + c]) << i << "," << c;
    // Scatter-add: each table row sums its ids' gradients in id order (documented), so a
    // plain loop in the same order gives the same bits. The table starts non-zero.
    const std::vector<T> dout = randn<T>(k.n * k.d, 5);
    std::vector<T> dtable = randn<T>(k.V * k.d, 6), want = dtable;
    for (i64 i = 0; i < k.n; ++i)
      if (ids[i] >= 0)
        for (i64 c = 0; c < k.d; ++c) want[ids[i] * k.d + c] += dout[i * k.d + c];
    embedding_scatter_add<T>(k.n, k.d, k.V, ids.data(), dout.data(), dtable.data());
    EXPECT_TRUE(same_bits(dtable, want)) << "V " << k.V << " d " << k.d;
  }
}

// ---- RoPE -----------------------------------------------------------------------------------------

TYPED_TEST(Elementwise, RopeTableRotationAndCache) {
  using T = TypeParam;
  const i64 dh = 6, max_pos = 17;
  const double theta = 10000.0;
  const RopeTable<T> tab = make_rope_table<T>(max_pos, dh, theta);
  ASSERT_EQ(tab.half, 3);
  for (i64 p = 0; p < max_pos; ++p)
    for (i64 i = 0; i < 3; ++i) {
      const double a = p * std::pow(theta, -2.0 * i / dh);
      // Computed in double and rounded once: u relative, plus double's own error.
      EXPECT_NEAR(tab.cos[p * 3 + i], std::cos(a), kEps<T> / 2 * std::fabs(std::cos(a)) + 1e-15);
      EXPECT_NEAR(tab.sin[p * 3 + i], std::sin(a), kEps<T> / 2 * std::fabs(std::sin(a)) + 1e-15);
    }
  const std::vector<T> x = randn<T>(dh, 1);
  for (i64 pos : {0, 1, 16}) {
    std::vector<T> y(dh), back(dh);
    rope_rotate(tab, pos, x.data(), y.data(), false);
    for (i64 i = 0; i < 3; ++i) {  // the documented formula
      const double c = tab.cos[pos * 3 + i], s = tab.sin[pos * 3 + i];
      EXPECT_NEAR(y[i], x[i] * c - x[i + 3] * s, 2 * kEps<T> * (std::fabs(x[i]) + std::fabs(x[i + 3])));
      EXPECT_NEAR(y[i + 3], x[i + 3] * c + x[i] * s, 2 * kEps<T> * (std::fabs(x[i]) + std::fabs(x[i + 3])));
    }
    back = y;
    rope_rotate(tab, pos, back.data(), back.data(), true);  // in place (y may alias x)
    // A rotation and its inverse: each adds 2u per component, cos^2 + sin^2 = 1 within 2u.
    for (i64 i = 0; i < dh; ++i) EXPECT_NEAR(back[i], x[i], 8 * kEps<T> * (std::fabs(x[i % 3]) + std::fabs(x[i % 3 + 3])));
  }
  const RopeTable<T>& small = cached_rope_table<T>(10, dh, theta);
  EXPECT_GE(small.max_pos, 10);
  for (std::size_t i = 0; i < tab.cos.size(); ++i) ASSERT_EQ(small.cos[i], tab.cos[i]);
  const T first = small.cos[5];
  const RopeTable<T>& big = cached_rope_table<T>(1000, dh, theta);
  EXPECT_GE(big.max_pos, 1000);
  EXPECT_EQ(big.cos[5], first);
  EXPECT_EQ(small.cos[5], first);  // an older table stays valid after growth
}

// ---- attention ----------------------------------------------------------------------------------------

struct AttentionCase {
  AttentionDims d;
  std::vector<std::int32_t> pads, kv_map;
  std::vector<double> gates;  // empty: no gates
  double theta;
};

// GQA with a non-contiguous query-to-KV map, gates including 0 and a negative one, padding
// including a fully padded row, T = 1, and a KV head no query head uses.
std::vector<AttentionCase> attention_cases() {
  return {
      {{3, 17, 4, 2, 6}, {0, 5, 17}, {1, 0, 0, 1}, {1.0, 0.5, 0.0, -1.25}, 10000.0},
      {{2, 5, 3, 3, 6}, {0, 4}, {0, 1, 2}, {}, 500.0},
      {{2, 1, 2, 1, 6}, {0, 1}, {0, 0}, {0.7, 1.0}, 10000.0},
      {{2, 5, 2, 2, 6}, {1, 0}, {1, 1}, {1.0, 2.0}, 10000.0},
      {{1, 33, 2, 1, 8}, {3}, {0, 0}, {}, 10000.0},
  };
}

template <class T>
struct AttentionData {
  AttentionCase c;
  std::vector<T> q, k, v, gates;
  AttentionData(const AttentionCase& c_, std::uint64_t seed) : c(c_) {
    const AttentionDims& d = c.d;
    q = randn<T>(d.B * d.T * d.Hq * d.dh, seed, 1.5);
    k = randn<T>(d.B * d.T * d.Hkv * d.dh, seed + 1, 1.5);
    v = randn<T>(d.B * d.T * d.Hkv * d.dh, seed + 2);
    for (double g : c.gates) gates.push_back(static_cast<T>(g));
  }
  const T* gate_ptr() const { return gates.empty() ? nullptr : gates.data(); }
  T scale() const { return static_cast<T>(1.0 / std::sqrt(static_cast<double>(c.d.dh))); }
  void forward(std::vector<T>& out, std::vector<T>& lse) const {
    const AttentionDims& d = c.d;
    out.assign(d.B * d.T * d.Hq * d.dh, std::numeric_limits<T>::quiet_NaN());
    lse.assign(d.B * d.Hq * d.T, std::numeric_limits<T>::quiet_NaN());
    attention_forward<T>(d, q.data(), k.data(), v.data(), c.pads.data(), c.kv_map.data(), gate_ptr(),
                         cached_rope_table<T>(d.T, d.dh, c.theta), scale(), out.data(), lse.data());
  }
  void backward(const std::vector<T>& out, const std::vector<T>& lse, const std::vector<T>& dout, std::vector<T>& dq,
                std::vector<T>& dk, std::vector<T>& dv) const {
    const AttentionDims& d = c.d;
    const T nan = std::numeric_limits<T>::quiet_NaN();
    dq.assign(q.size(), nan);
    dk.assign(k.size(), nan);
    dv.assign(v.size(), nan);
    attention_backward<T>(d, q.data(), k.data(), v.data(), c.pads.data(), c.kv_map.data(), gate_ptr(),
                          cached_rope_table<T>(d.T, d.dh, c.theta), scale(), out.data(), lse.data(), dout.data(),
                          dq.data(), dk.data(), dv.data());
  }
};

std::string case_name(const AttentionCase& c) {
  char buf[96];
  std::snprintf(buf, sizeof buf, "B%ld T%ld Hq%ld Hkv%ld dh%ld", static_cast<long>(c.d.B), static_cast<long>(c.d.T),
                static_cast<long>(c.d.Hq), static_cast<long>(c.d.Hkv), static_cast<long>(c.d.dh));
  return buf;
}

// Rotates one head vector at pos by the documented formula, in long double.
template <class T>
std::vector<ld> rope_exact(const T* x, i64 pos, i64 dh, double theta) {
  std::vector<ld> y(dh);
  for (i64 i = 0; i < dh / 2; ++i) {
    const ld a = pos * std::pow(static_cast<ld>(theta), -2.0L * i / dh);
    y[i] = x[i] * std::cos(a) - x[i + dh / 2] * std::sin(a);
    y[i + dh / 2] = x[i + dh / 2] * std::cos(a) + x[i] * std::sin(a);
  }
  return y;
}

template <class T>
class Attention : public ::testing::Test {};
TYPED_TEST_SUITE(Attention, FloatTypes, TypeNames);

TYPED_TEST(Attention, ForwardMatchesTwinAndLogSumExp) {
  using T = TypeParam;
  for (const AttentionCase& c : attention_cases()) {
    const AttentionData<T> a(c, 21);
    const AttentionDims& d = c.d;
    std::vector<T> out, lse, out_ref(a.q.size());
    a.forward(out, lse);
    ref::attention<T>(d.B, d.T, d.Hq, d.Hkv, d.dh, a.q.data(), a.k.data(), a.v.data(), c.pads.data(), c.kv_map.data(),
                      a.gate_ptr(), c.theta, out_ref.data());
    const std::string name = std::string("attention fwd ") + type_name<T>() + " " + case_name(c);
    ErrorCheck eo(name + " out"), el(name + " lse");
    const i64 ldq = d.Hq * d.dh, ldk = d.Hkv * d.dh;
    for (i64 b = 0; b < d.B; ++b)
      for (i64 h = 0; h < d.Hq; ++h) {
        const i64 g = c.kv_map[h];
        const double gate = c.gates.empty() ? 1.0 : c.gates[h];
        for (i64 i = 0; i < d.T; ++i) {
          const i64 o = (b * d.T + i) * ldq + h * d.dh;
          if (i < c.pads[b]) {  // padding query rows: exact zeros
            for (i64 e = 0; e < d.dh; ++e) ASSERT_EQ(out[o + e], T(0)) << name << " padded row";
            continue;
          }
          // |score| <= scale |q_i| max_j |k_j| (rotations keep norms); vmax = max_j |v_j|_inf.
          const std::vector<ld> qi = rope_exact(a.q.data() + (b * d.T + i) * ldq + h * d.dh, i - c.pads[b], d.dh, c.theta);
          ld m = -std::numeric_limits<ld>::infinity(), z = 0, qn = 0, kn = 0, vmax = 0;
          for (i64 e = 0; e < d.dh; ++e) qn += qi[e] * qi[e];
          std::vector<ld> s(d.T);
          for (i64 j = c.pads[b]; j <= i; ++j) {
            const std::vector<ld> kj = rope_exact(a.k.data() + (b * d.T + j) * ldk + g * d.dh, j - c.pads[b], d.dh, c.theta);
            ld dot = 0, kk = 0;
            for (i64 e = 0; e < d.dh; ++e) {
              dot += qi[e] * kj[e];
              kk += kj[e] * kj[e];
              vmax = std::max<ld>(vmax, std::fabs(a.v[(b * d.T + j) * ldk + g * d.dh + e]));
            }
            kn = std::max(kn, kk);
            s[j] = dot / std::sqrt(static_cast<ld>(d.dh));
            m = std::max(m, s[j]);
          }
          for (i64 j = c.pads[b]; j <= i; ++j) z += std::exp(s[j] - m);
          const double smax = static_cast<double>(std::sqrt(qn * kn / d.dh));
          // Scores carry (dh + 6) eps |score| (RoPE tables, rotation, dot); exp, the row sum
          // and the normalisation (T + 4) eps; the output is a convex combination of v rows
          // times the gate: (T + dh + 16) eps (1 + 2 smax) |gate| vmax.
          const double bound = (d.T + d.dh + 16) * kEps<T> * (1 + 2 * smax);
          el(lse[(b * d.Hq + h) * d.T + i], static_cast<double>(m + std::log(z)), bound, (b * d.Hq + h) * d.T + i);
          for (i64 e = 0; e < d.dh; ++e)
            eo(out[o + e], out_ref[o + e], bound * std::fabs(gate) * static_cast<double>(vmax) + std::numeric_limits<T>::min(), o + e);
        }
      }
  }
}

// The last-position kernel against row T-1 of the full kernel (itself checked against the
// twin above). Both are within (T + dh + 16) eps (1 + 2 smax) |gate| vmax of the exact row
// (the bound derived in ForwardMatchesTwinAndLogSumExp), so they differ by at most twice it.
TYPED_TEST(Attention, ForwardLastMatchesLastRowOfForward) {
  using T = TypeParam;
  for (const AttentionCase& c : attention_cases()) {
    const AttentionData<T> a(c, 23);
    const AttentionDims& d = c.d;
    const i64 ldq = d.Hq * d.dh, ldk = d.Hkv * d.dh;
    std::vector<T> out, lse;
    a.forward(out, lse);
    std::vector<T> q_last(d.B * ldq), out_last(d.B * ldq, std::numeric_limits<T>::quiet_NaN());
    for (i64 b = 0; b < d.B; ++b)
      std::copy_n(a.q.data() + (b * d.T + d.T - 1) * ldq, ldq, q_last.data() + b * ldq);
    attention_forward_last<T>(d, q_last.data(), a.k.data(), a.v.data(), c.pads.data(), c.kv_map.data(), a.gate_ptr(),
                              cached_rope_table<T>(d.T, d.dh, c.theta), a.scale(), out_last.data());
    const std::string name = std::string("attention last ") + type_name<T>() + " " + case_name(c);
    ErrorCheck err(name);
    for (i64 b = 0; b < d.B; ++b)
      for (i64 h = 0; h < d.Hq; ++h) {
        const i64 o = b * ldq + h * d.dh, full = (b * d.T + d.T - 1) * ldq + h * d.dh;
        if (c.pads[b] == d.T) {  // a row of padding only: exact zeros, as the full kernel
          for (i64 e = 0; e < d.dh; ++e) ASSERT_EQ(out_last[o + e], T(0)) << name;
          continue;
        }
        const i64 g = c.kv_map[h];
        double qn = 0, kn = 0, vmax = 0;
        for (i64 e = 0; e < d.dh; ++e) qn += static_cast<double>(q_last[o + e]) * q_last[o + e];
        for (i64 j = c.pads[b]; j < d.T; ++j) {
          double kk = 0;
          for (i64 e = 0; e < d.dh; ++e) {
            const i64 at = (b * d.T + j) * ldk + g * d.dh + e;
            kk += static_cast<double>(a.k[at]) * a.k[at];
            vmax = std::max(vmax, std::fabs(static_cast<double>(a.v[at])));
          }
          kn = std::max(kn, kk);
        }
        const double smax = std::sqrt(qn * kn / d.dh), gate = c.gates.empty() ? 1.0 : c.gates[h];
        const double bound = 2 * (d.T + d.dh + 16) * kEps<T> * (1 + 2 * smax) * std::fabs(gate) * vmax;
        for (i64 e = 0; e < d.dh; ++e)
          err(out_last[o + e], out[full + e], bound + std::numeric_limits<T>::min(), o + e);
      }
  }
}

// The backward against central differences of the twin (ref::attention in f64) for
// L = sum(out * dout). Step 1e-6: truncation error ~ h^2 |L'''| ~ 1e-12, cancellation
// ~ 1e-16 |L| / h ~ 1e-10 |L|; tolerance 1e-6 (1 + |g|) leaves a factor > 1e3.
TEST(AttentionBackward, F64MatchesFiniteDifferencesOfTwin) {
  for (const AttentionCase& c : attention_cases()) {
    if (c.d.T > 17) continue;  // the FD sweep is O(elements * T^2)
    const AttentionData<double> a(c, 31);
    const AttentionDims& d = c.d;
    std::vector<double> out, lse, dq, dk, dv;
    a.forward(out, lse);
    const std::vector<double> dout = randn<double>(out.size(), 41);
    a.backward(out, lse, dout, dq, dk, dv);
    auto loss = [&](const std::vector<double>& q, const std::vector<double>& k, const std::vector<double>& v) {
      std::vector<double> o(q.size());
      ref::attention<double>(d.B, d.T, d.Hq, d.Hkv, d.dh, q.data(), k.data(), v.data(), c.pads.data(), c.kv_map.data(),
                             a.gate_ptr(), c.theta, o.data());
      double l = 0;
      for (std::size_t i = 0; i < o.size(); ++i) l += o[i] * dout[i];
      return l;
    };
    const double h = 1e-6;
    const std::string name = "attention bwd f64 vs FD " + case_name(c);
    ErrorCheck eq(name + " dq"), ek(name + " dk"), ev(name + " dv");
    std::vector<double> q = a.q, k = a.k, v = a.v;
    auto sweep = [&](std::vector<double>& x, const std::vector<double>& grad, ErrorCheck& err) {
      for (std::size_t i = 0; i < x.size(); ++i) {
        const double x0 = x[i];
        x[i] = x0 + h;
        const double up = loss(q, k, v);
        x[i] = x0 - h;
        const double down = loss(q, k, v);
        x[i] = x0;
        const double fd = (up - down) / (2 * h);
        err(grad[i], fd, 1e-6 * (1 + std::fabs(fd)), static_cast<i64>(i));
      }
    };
    sweep(q, dq, eq);
    sweep(k, dk, ek);
    sweep(v, dv, ev);
  }
}

// f32 backward against the f64 backward on the same (f32-representable) inputs.
TEST(AttentionBackward, F32MatchesF64) {
  for (const AttentionCase& c : attention_cases()) {
    const AttentionData<float> a(c, 51);
    AttentionData<double> a64(c, 51);
    a64.q.assign(a.q.begin(), a.q.end());
    a64.k.assign(a.k.begin(), a.k.end());
    a64.v.assign(a.v.begin(), a.v.end());
    const AttentionDims& d = c.d;
    std::vector<float> out, lse, dq, dk, dv;
    std::vector<double> out64, lse64, dq64, dk64, dv64;
    a.forward(out, lse);
    a64.forward(out64, lse64);
    const std::vector<float> dout = randn<float>(out.size(), 61);
    a.backward(out, lse, dout, dq, dk, dv);
    a64.backward(out64, lse64, std::vector<double>(dout.begin(), dout.end()), dq64, dk64, dv64);
    // Largest |score| bound over the case (as in the forward test) and element maxima.
    auto max_abs = [](const std::vector<float>& x) {
      double m = 0;
      for (float e : x) m = std::max(m, std::fabs(static_cast<double>(e)));
      return m;
    };
    double qn = 0, kn = 0;
    for (i64 t = 0; t < d.B * d.T; ++t) {
      for (i64 h = 0; h < d.Hq; ++h) {
        double n = 0;
        for (i64 e = 0; e < d.dh; ++e) n += double(a.q[t * d.Hq * d.dh + h * d.dh + e]) * a.q[t * d.Hq * d.dh + h * d.dh + e];
        qn = std::max(qn, n);
      }
      for (i64 g = 0; g < d.Hkv; ++g) {
        double n = 0;
        for (i64 e = 0; e < d.dh; ++e) n += double(a.k[t * d.Hkv * d.dh + g * d.dh + e]) * a.k[t * d.Hkv * d.dh + g * d.dh + e];
        kn = std::max(kn, n);
      }
    }
    const double smax = std::sqrt(qn * kn / d.dh), scale = 1.0 / std::sqrt(static_cast<double>(d.dh));
    double gate_max = c.gates.empty() ? 1.0 : 0.0;
    for (double g : c.gates) gate_max = std::max(gate_max, std::fabs(g));
    const double dout_max = max_abs(dout), v_max = max_abs(a.v);
    // Magnitudes of the terms each gradient entry sums, before cancellation (which can
    // make the entry itself exactly 0: with T = 1, dS = P (dP - D) vanishes):
    //   |dS| <= |dO.v| + |dout.out| <= 2 dh gate dout v;  dq = scale dS K;  dk = scale dS^T Q;
    //   dv = P^T dO, summed over the query heads of a KV head.
    const double ds_mag = 2 * d.dh * gate_max * dout_max * v_max;
    const double mag_q = scale * d.T * ds_mag * max_abs(a.k), mag_k = d.Hq * d.T * scale * ds_mag * max_abs(a.q),
                 mag_v = d.Hq * d.T * gate_max * dout_max;
    // The same error sources as the forward ((T + dh + 16) eps (1 + 2 smax) per probability),
    // squared for dS (P and dP both carry it): relative to those magnitudes.
    const double rel = (d.Hq * d.T + d.dh + 16) * kEps<float> * (1 + 2 * smax) * (1 + 2 * smax);
    auto check = [&](const std::vector<float>& g32, const std::vector<double>& g64, double mag, const std::string& what) {
      ErrorCheck err("attention bwd f32 vs f64 " + case_name(c) + " " + what);
      for (std::size_t i = 0; i < g32.size(); ++i) err(g32[i], g64[i], rel * mag, static_cast<i64>(i));
    };
    check(dq, dq64, mag_q, "dq");
    check(dk, dk64, mag_k, "dk");
    check(dv, dv64, mag_v, "dv");
    // Padding rows of q, k, v and a KV head no query head uses get exact zeros.
    const i64 ldq = d.Hq * d.dh, ldk = d.Hkv * d.dh;
    for (i64 b = 0; b < d.B; ++b)
      for (i64 t = 0; t < c.pads[b]; ++t) {
        for (i64 e = 0; e < ldq; ++e) ASSERT_EQ(dq[(b * d.T + t) * ldq + e], 0.0f);
        for (i64 e = 0; e < ldk; ++e) {
          ASSERT_EQ(dk[(b * d.T + t) * ldk + e], 0.0f);
          ASSERT_EQ(dv[(b * d.T + t) * ldk + e], 0.0f);
        }
      }
    for (i64 g = 0; g < d.Hkv; ++g) {
      if (std::find(c.kv_map.begin(), c.kv_map.end(), g) != c.kv_map.end()) continue;
      for (i64 t = 0; t < d.B * d.T; ++t)
        for (i64 e = 0; e < d.dh; ++e) {
          ASSERT_EQ(dk[t * ldk + g * d.dh + e], 0.0f) << "unused KV head " << g;
          ASSERT_EQ(dv[t * ldk + g * d.dh + e], 0.0f) << "unused KV head " << g;
        }
    }
  }
}

// ---- exp_fast ---------------------------------------------------------------------------------------

// Distance in units in the last place of float at the exact value.
double ulps(float got, double exact) {
  const int e = std::ilogb(exact);
  const double ulp = std::ldexp(1.0, std::max(e, -126) - 23);
  return std::fabs(got - exact) / ulp;
}

TEST(ExpFast, AccuracyOverNormalRange) {
  // 2^22 evenly spaced points over [-87, 88] plus every float in [-1, 1] near 0 at a coarse
  // stride: compared with std::exp in double (< 1 double ulp, negligible here).
  double max_rel = 0, max_ulp = 0, worst_x = 0;
  auto visit = [&](float x) {
    const double exact = std::exp(static_cast<double>(x));
    const float got = exp_fast(x);
    const double rel = std::fabs(got - exact) / exact, u = ulps(got, exact);
    if (rel > max_rel) {
      max_rel = rel;
      worst_x = x;
    }
    max_ulp = std::max(max_ulp, u);
  };
  const int n = 1 << 22;
  for (int i = 0; i <= n; ++i) visit(static_cast<float>(-87.0 + 175.0 * i / n));
  for (float x = -1.0f; x <= 1.0f; x = std::nextafter(x, 2.0f) + 1e-6f) visit(x);
  visit(-87.0f);
  visit(88.0f);
  visit(0.0f);
  std::printf("[ measured ] exp_fast over [-87, 88]: max rel err %.3g (at x = %.9g), max %.3g ulp\n", max_rel, worst_x,
              max_ulp);
  // Documented as within 2 ulp; 2 ulp is at most 2 * 2^-23 = 2.4e-7 relative.
  EXPECT_LE(max_ulp, 2.0);
  EXPECT_LT(max_rel, 2.4e-7);
  EXPECT_EQ(exp_fast(0.0f), 1.0f);
  EXPECT_EQ(exp_fast(0.0), 1.0);  // the double overload is std::exp
}

// math.h: "0 below -87.3 and +inf-free above 88.7 (clamped)". exp_fast(x) must be finite
// for every finite x (the true e^x is below FLT_MAX up to 88.7228). Below the clamp it
// returns e^-87.33654 ~ 1.1755e-38 (FLT_MIN, not the 0 the header says; harmless).
TEST(ExpFast, ClampedOutsideRange) {
  for (float x : {88.0f, 88.3f, 88.37626f, 88.3762741f, 88.5f, 88.7f, 88.72283f, 89.0f, 100.0f, 1e30f}) {
    EXPECT_TRUE(std::isfinite(exp_fast(x))) << "exp_fast(" << x << ") = " << exp_fast(x);
    EXPECT_GE(exp_fast(x), 1.6e38f) << x;  // e^88 = 1.65e38
  }
  for (float x : {-87.4f, -88.0f, -100.0f, -1e30f}) {
    EXPECT_GE(exp_fast(x), 0.0f) << x;
    EXPECT_LE(exp_fast(x), 1.2e-38f) << "exp_fast(" << x << ") = " << exp_fast(x);
  }
  // Monotone across the clamp points.
  EXPECT_LE(exp_fast(-87.33654f), exp_fast(-87.0f));
}

// ---- thread-count independence ----------------------------------------------------------------------

// Each kernel with a deterministic split gives the same bits with 1 and 2 threads.
template <class F>
void expect_same_bits_everywhere(const char* what, F&& run) {
  // Reference: the baseline path on one thread. Then two threads, and the AVX2 + FMA path
  // (Note [kernel dispatch]) on one and two threads when this CPU has it: all must agree
  // bit for bit (Note [kernel math flags]).
  struct Setting {
    Isa isa;
    int threads;
  };
  std::vector<Setting> settings = {{Isa::kBaseline, 1}, {Isa::kBaseline, 2}};
  if (isa_supported(Isa::kAvx2Fma)) settings.insert(settings.end(), {{Isa::kAvx2Fma, 1}, {Isa::kAvx2Fma, 2}});
  const Isa previous = active_isa();
  decltype(run()) reference;
  for (std::size_t i = 0; i < settings.size(); ++i) {
    set_isa(settings[i].isa);
    decltype(run()) got;
    {
      ThreadCount threads(settings[i].threads);
      got = run();
    }
    if (i == 0) {
      reference = std::move(got);
      continue;
    }
    std::size_t differ = 0;
    for (std::size_t j = 0; j < std::min(reference.size(), got.size()); ++j) differ += reference[j] != got[j];
    EXPECT_TRUE(reference == got) << what << ": " << isa_name(settings[i].isa) << " with " << settings[i].threads
                                  << " threads differs from baseline with 1 thread (" << differ << " of "
                                  << reference.size() << " bytes)";
  }
  set_isa(previous);
}

template <class T>
std::vector<std::uint8_t> bytes(const std::vector<T>& v) {
  std::vector<std::uint8_t> b(v.size() * sizeof(T));
  if (!v.empty()) std::memcpy(b.data(), v.data(), b.size());
  return b;
}

TYPED_TEST(Elementwise, ResultsIdenticalAcrossThreadCountsAndInstructionSets) {
  using T = TypeParam;
  // The simple maps, the gather and all_finite: one piece per 16384 elements.
  {
    const i64 n = 40001, rows = 211, cols = 37;
    const std::vector<T> a = randn<T>(n, 21), b = randn<T>(n, 22), colscale = randn<T>(cols, 23);
    expect_same_bits_everywhere("add axpy scale mul fill copy mul_cols all_finite", [&] {
      std::vector<T> o1(n), o2 = b, o3(n), o4(n), o5(n), o6(n), o7(rows * cols);
      add<T>(n, a.data(), b.data(), o1.data());
      axpy<T>(n, T(0.3), a.data(), o2.data());
      scale<T>(n, T(-1.7), a.data(), o3.data());
      mul<T>(n, a.data(), b.data(), o4.data());
      fill<T>(n, T(2.5), o5.data());
      copy<T>(n, a.data(), o6.data());
      mul_cols<T>(rows, cols, a.data(), colscale.data(), o7.data());
      auto out = bytes(o1);
      for (auto* v : {&o2, &o3, &o4, &o5, &o6, &o7}) {
        const auto more = bytes(*v);
        out.insert(out.end(), more.begin(), more.end());
      }
      out.push_back(static_cast<std::uint8_t>(all_finite<T>(n, a.data())));
      return out;
    });
    const i64 V = 300, d = 19, m = 997;
    std::vector<std::int32_t> ids(m);
    Rng rng(24);
    for (auto& id : ids) id = static_cast<std::int32_t>(rng.below(V + 1)) - 1;  // -1: padding
    expect_same_bits_everywhere("embedding_gather", [&] {
      std::vector<T> out(m * d);
      embedding_gather<T>(m, d, a.data(), ids.data(), out.data());
      return bytes(out);
    });
  }
  // RMSNorm backward dw: 1000 rows = 16 fixed 64-row chunks.
  {
    const i64 rows = 1000, cols = 33;
    const std::vector<T> x = randn<T>(rows * cols, 1), w = randn<T>(cols, 2), dy = randn<T>(rows * cols, 3);
    expect_same_bits_everywhere("rmsnorm", [&] {
      std::vector<T> y(rows * cols), inv(rows), dx(rows * cols), dw(cols, T(0));
      rmsnorm_forward<T>(rows, cols, x.data(), w.data(), T(1e-5), y.data(), inv.data());
      rmsnorm_backward<T>(rows, cols, x.data(), w.data(), inv.data(), dy.data(), dx.data(), dw.data());
      auto b = bytes(y);
      for (auto* v : {&inv, &dx, &dw}) {
        const auto more = bytes(*v);
        b.insert(b.end(), more.begin(), more.end());
      }
      return b;
    });
  }
  // Embedding scatter-add over 3 table ranges of 1024 rows, many repeated ids.
  {
    const i64 V = 2500, d = 13, n = 4000;
    std::vector<std::int32_t> ids(n);
    Rng rng(4);
    for (auto& id : ids) id = static_cast<std::int32_t>(rng.below(V + 1)) - 1;
    const std::vector<T> dout = randn<T>(n * d, 5);
    expect_same_bits_everywhere("embedding_scatter_add", [&] {
      std::vector<T> dtable(V * d, T(0));
      embedding_scatter_add<T>(n, d, V, ids.data(), dout.data(), dtable.data());
      return bytes(dtable);
    });
  }
  // sum_rows with several row chunks, sum and sum_squares with several fixed chunks.
  {
    const i64 rows = 5000, cols = 7;
    const std::vector<T> x = randn<T>(rows * cols, 6);
    expect_same_bits_everywhere("sum_rows", [&] {
      std::vector<T> out(cols);
      sum_rows<T>(rows, cols, x.data(), out.data(), false);
      return bytes(out);
    });
    expect_same_bits_everywhere("sum", [&] { return std::vector<double>{sum<T>(rows * cols, x.data()), sum_squares<T>(rows * cols, x.data())}; });
  }
  // Softmax, cross-entropy and distillation split by rows.
  {
    const i64 rows = 257, V = 129;
    const std::vector<T> s = randn<T>(rows * V, 7, 3.0), t = randn<T>(rows * V, 8, 3.0);
    std::vector<std::int32_t> target(rows);
    for (i64 r = 0; r < rows; ++r) target[r] = r % 5 == 0 ? -1 : static_cast<std::int32_t>(r % V);
    expect_same_bits_everywhere("softmax and losses", [&] {
      std::vector<T> p(rows * V), lp(rows * V), loss(rows), dx(rows * V), dl(rows), ds(rows * V);
      softmax_rows<T>(rows, V, s.data(), p.data());
      log_softmax_rows<T>(rows, V, s.data(), lp.data());
      cross_entropy_rows<T>(rows, V, s.data(), target.data(), loss.data(), dx.data(), T(0.5));
      distill_rows<T>(rows, V, s.data(), t.data(), target.data(), T(0.3), T(2), dl.data(), nullptr, nullptr, ds.data(), T(0.5));
      auto b = bytes(p);
      for (auto* v : {&lp, &loss, &dx, &dl, &ds}) {
        const auto more = bytes(*v);
        b.insert(b.end(), more.begin(), more.end());
      }
      return b;
    });
  }
  // Dropout and SwiGLU over several pieces (elementwise.h: "results never depend on the
  // thread count").
  {
    const i64 n = 70001;
    const std::vector<T> x = randn<T>(n, 9), u = randn<T>(n, 10), dout = randn<T>(n, 11);
    expect_same_bits_everywhere("dropout_apply", [&] {
      std::vector<T> out(n);
      dropout_apply<T>(n, 0.2f, 1, 2, x.data(), out.data());
      return bytes(out);
    });
    expect_same_bits_everywhere("swiglu_forward", [&] {
      std::vector<T> y(n);
      swiglu_forward<T>(n / 7, 7, x.data(), u.data(), nullptr, y.data());
      return bytes(y);
    });
    expect_same_bits_everywhere("swiglu_backward dg", [&] {
      std::vector<T> dg(n);
      swiglu_backward<T>(n / 7, 7, x.data(), u.data(), nullptr, dout.data(), dg.data(), nullptr);
      return bytes(dg);
    });
    expect_same_bits_everywhere("swiglu_backward du", [&] {
      std::vector<T> du(n);
      swiglu_backward<T>(n / 7, 7, x.data(), u.data(), nullptr, dout.data(), nullptr, du.data());
      return bytes(du);
    });
  }
}

TYPED_TEST(Attention, ForwardAndBackwardIdenticalAcrossThreadCountsAndInstructionSets) {
  using T = TypeParam;
  for (const AttentionCase& c : attention_cases()) {
    const AttentionData<T> a(c, 71);
    const std::vector<T> dout = randn<T>(a.q.size(), 72);
    expect_same_bits_everywhere(case_name(c).c_str(), [&] {
      std::vector<T> out, lse, dq, dk, dv;
      a.forward(out, lse);
      a.backward(out, lse, dout, dq, dk, dv);
      const AttentionDims& d = c.d;
      const i64 ldq = d.Hq * d.dh;
      std::vector<T> q_last(d.B * ldq), out_last(d.B * ldq);
      for (i64 b = 0; b < d.B; ++b) std::copy_n(a.q.data() + (b * d.T + d.T - 1) * ldq, ldq, q_last.data() + b * ldq);
      attention_forward_last<T>(d, q_last.data(), a.k.data(), a.v.data(), c.pads.data(), c.kv_map.data(),
                                a.gate_ptr(), cached_rope_table<T>(d.T, d.dh, c.theta), a.scale(), out_last.data());
      auto b = bytes(out);
      for (auto* v : {&lse, &dq, &dk, &dv, &out_last}) {
        const auto more = bytes(*v);
        b.insert(b.end(), more.begin(), more.end());
      }
      return b;
    });
  }
}

// The decoding kernel over a cache of keys rotated in advance, scattered over physical rows
// by a row table with a leading dimension and capacity larger than T, gives the bits of the
// last-position kernel (which rotates the keys itself): the same rotation and the same
// sums in the same order (Note [cached decoding] in nn/kv_cache.h), on every thread count
// and instruction set.
TYPED_TEST(Attention, DecodeOverRotatedCacheEqualsForwardLastBitForBit) {
  using T = TypeParam;
  for (const AttentionCase& c : attention_cases()) {
    const AttentionData<T> a(c, 29);
    const AttentionDims& d = c.d;
    const i64 ldq = d.Hq * d.dh, ldk = d.Hkv * d.dh, P = d.B + 2, capacity = d.T + 3, rows_ld = d.T + 5;
    const auto& rope = cached_rope_table<T>(d.T, d.dh, c.theta);
    std::vector<T> k_rot(P * capacity * ldk, std::numeric_limits<T>::quiet_NaN()), v(k_rot.size(), k_rot[0]);
    std::vector<std::int32_t> rows(d.B * rows_ld, -1);
    for (i64 b = 0; b < d.B; ++b)
      for (i64 j = c.pads[b]; j < d.T; ++j) {
        const i64 r = (b + 3 * j) % P;  // position j of row b lives in physical row r
        rows[b * rows_ld + j] = static_cast<std::int32_t>(r);
        for (i64 g = 0; g < d.Hkv; ++g) {
          const i64 src = (b * d.T + j) * ldk + g * d.dh, dst = (r * capacity + j) * ldk + g * d.dh;
          rope_rotate(rope, j - c.pads[b], a.k.data() + src, k_rot.data() + dst, false);
          std::copy_n(a.v.data() + src, d.dh, v.data() + dst);
        }
      }
    std::vector<T> q_last(d.B * ldq), expected(d.B * ldq);
    for (i64 b = 0; b < d.B; ++b) std::copy_n(a.q.data() + (b * d.T + d.T - 1) * ldq, ldq, q_last.data() + b * ldq);
    attention_forward_last<T>(d, q_last.data(), a.k.data(), a.v.data(), c.pads.data(), c.kv_map.data(), a.gate_ptr(),
                              rope, a.scale(), expected.data());
    const std::string name = std::string("attention decode ") + type_name<T>() + " " + case_name(c);
    expect_same_bits_everywhere(name.c_str(), [&] {
      std::vector<T> out(d.B * ldq, std::numeric_limits<T>::quiet_NaN());
      attention_decode<T>(d, q_last.data(), k_rot.data(), v.data(), capacity, rows.data(), rows_ld, c.pads.data(),
                          c.kv_map.data(), a.gate_ptr(), rope, a.scale(), out.data());
      EXPECT_TRUE(bytes(out) == bytes(expected)) << name;
      return bytes(out);
    });
  }
}

}  // namespace
}  // namespace prunerec::kernels
