// Embedding gather; backward hands the table a row-sparse gradient (the rows of the ids
// that are not padding, Note [row-sparse gradients] in autograd/var.h): a catalogue of
// 1,000,000 items never gets a dense [V, d] gradient from the input side.
#include <algorithm>

#include "autograd/ops.h"
#include "autograd/ops/common.h"
#include "tensor/kernels/embedding.h"

namespace prunerec::ag {
namespace {

class EmbeddingNode final : public Node {
 public:
  const char* name() const override { return "embedding"; }
  void backward(const Tensor& dy_in, std::vector<Tensor>& grads) override {
    const Tensor& table = inputs[0].value();
    const std::int64_t d = table.size(1), n = ids.numel();
    const Tensor dy = dy_in.contiguous().reshape({n, d});
    const std::int32_t* ip = ids.data<std::int32_t>();
    const std::int64_t kept = std::count_if(ip, ip + n, [](std::int32_t i) { return i >= 0; });
    if (kept == n) {
      set_row_grad(0, ids.reshape({n}), dy);
      return;
    }
    Tensor rows = Tensor::empty({kept}, DType::i32), values = Tensor::empty({kept, d}, table.dtype());
    dispatch_floating(table.dtype(), name(), [&](auto tag) {
      using T = decltype(tag);
      std::int64_t r = 0;
      for (std::int64_t i = 0; i < n; ++i) {
        if (ip[i] < 0) continue;
        rows.data<std::int32_t>()[r] = ip[i];
        std::copy(dy.data<T>() + i * d, dy.data<T>() + (i + 1) * d, values.data<T>() + r * d);
        ++r;
      }
    });
    set_row_grad(0, rows, values);
    (void)grads;
  }
  void release() override { ids = Tensor(); }
  Tensor ids;
};

}  // namespace

Var embedding(const Var& table, const Tensor& ids) {
  PR_CHECK(table.dim() == 2, "embedding: table must be [V, d], got ", detail::sh(table));
  PR_CHECK(ids.defined() && ids.dtype() == DType::i32, "embedding: ids must be i32, got ", ids.shape_str());
  const Tensor idc = ids.contiguous();
  const std::int64_t V = table.size(0), d = table.size(1), n = idc.numel();
  const std::int32_t* ip = idc.data<std::int32_t>();
  for (std::int64_t i = 0; i < n; ++i)
    PR_CHECK(ip[i] < V && ip[i] >= -1, "embedding: id ", ip[i], " at position ", i, " is out of range for table ",
             detail::sh(table), " (-1 marks padding)");
  Shape out_shape = ids.shape();
  out_shape.push_back(d);
  Tensor y = Tensor::empty(out_shape, table.dtype());
  const Tensor tc = table.value().contiguous();
  dispatch_floating(table.dtype(), "embedding", [&](auto tag) {
    using T = decltype(tag);
    kernels::embedding_gather<T>(n, d, tc.data<T>(), ip, y.data<T>());
  });
  std::shared_ptr<Node> node;
  if (any_requires_grad({&table})) {
    auto e = std::make_shared<EmbeddingNode>();
    e->inputs = {table};
    e->ids = idc;
    node = e;
  }
  return make_result(std::move(y), std::move(node));
}

}  // namespace prunerec::ag
