#include "autograd/var.h"

#include <algorithm>
#include <numeric>
#include <unordered_map>
#include <unordered_set>

#include "tensor/kernels/elementwise.h"
#include "tensor/kernels/embedding.h"
#include "tensor/parallel.h"

namespace prunerec::ag {
namespace {

thread_local bool g_grad_enabled = true;

// a += b, in place (a owned by the caller).
void accumulate_into(Tensor& a, const Tensor& b) {
  PR_CHECK(a.shape() == b.shape() && a.dtype() == b.dtype(), "backward: gradient ", b.shape_str(),
           " does not match accumulated ", a.shape_str());
  const Tensor bc = b.contiguous();
  dispatch_floating(a.dtype(), "backward", [&](auto tag) {
    using T = decltype(tag);
    kernels::axpy<T>(a.numel(), T(1), bc.data<T>(), a.data<T>());
  });
}

// dense[rows[r], :] += values[r, :] in order (Note [row-sparse gradients]).
void scatter_rows_into(Tensor& dense, const RowGrad& piece) {
  const Tensor rows = piece.rows.contiguous(), values = piece.values.contiguous();
  dispatch_floating(dense.dtype(), "backward", [&](auto tag) {
    using T = decltype(tag);
    kernels::embedding_scatter_add<T>(rows.numel(), dense.size(1), dense.size(0), rows.data<std::int32_t>(),
                                      values.data<T>(), dense.data<T>());
  });
}

Tensor densify(const Shape& shape, DType dtype, const std::vector<RowGrad>& pieces) {
  Tensor dense = Tensor::zeros(shape, dtype);
  for (const RowGrad& p : pieces) scatter_rows_into(dense, p);
  return dense;
}

}  // namespace

void Node::set_row_grad(std::size_t i, Tensor rows, Tensor values) {
  PR_ASSERT(i < inputs.size());
  PR_CHECK(rows.dtype() == DType::i32 && rows.dim() == 1 && values.dim() == 2 && values.size(0) == rows.size(0) &&
               inputs[i].dim() == 2 && values.size(1) == inputs[i].size(1) && values.dtype() == inputs[i].dtype(),
           "backward of ", name(), ": row gradient rows ", rows.shape_str(), " values ", values.shape_str(),
           " for input ", inputs[i].value().shape_str());
  row_grads_out.resize(inputs.size());
  row_grads_out[i] = {std::move(rows), std::move(values)};
}

bool grad_enabled() { return g_grad_enabled; }
NoGradGuard::NoGradGuard() : prev_(g_grad_enabled) { g_grad_enabled = false; }
NoGradGuard::~NoGradGuard() { g_grad_enabled = prev_; }

Var::Var(Tensor value, bool requires_grad) : impl_(std::make_shared<VarImpl>()) {
  PR_CHECK(value.defined(), "Var: undefined tensor");
  if (requires_grad)
    PR_CHECK(is_floating(value.dtype()), "Var: only floating tensors can require a gradient, got ",
             value.shape_str());
  impl_->value = std::move(value);
  impl_->requires_grad = requires_grad;
}

const Tensor& Var::value() const {
  PR_CHECK(impl_ != nullptr, "Var: undefined");
  return impl_->value;
}

void Var::set_requires_grad(bool on) {
  PR_CHECK(impl_ && impl_->grad_fn == nullptr, "set_requires_grad: only leaves can change it");
  impl_->requires_grad = on;
}

const std::shared_ptr<Node>& Var::grad_fn() const {
  static const std::shared_ptr<Node> none;
  return impl_ ? impl_->grad_fn : none;
}

const Tensor& Var::grad() const {
  PR_CHECK(impl_ != nullptr, "Var: undefined");
  if (!impl_->row_grads.empty()) {
    PR_ASSERT(!impl_->grad.defined());
    impl_->grad = densify(impl_->value.shape(), impl_->value.dtype(), impl_->row_grads);
    impl_->row_grads.clear();
  }
  return impl_->grad;
}

bool Var::has_row_grad() const { return impl_ && !impl_->row_grads.empty(); }

RowGrad Var::row_grad() const {
  PR_CHECK(has_row_grad(), "row_grad: ", impl_ ? impl_->value.shape_str() : "undefined",
           " holds no row-sparse gradient");
  std::vector<RowGrad>& pieces = impl_->row_grads;
  if (pieces.size() == 1 && pieces[0].values.is_contiguous()) {
    // Already merged when rows are strictly increasing.
    const Tensor r = pieces[0].rows.contiguous();
    const std::int32_t* p = r.data<std::int32_t>();
    if (std::adjacent_find(p, p + r.numel(), [](std::int32_t a, std::int32_t b) { return a >= b; }) == p + r.numel())
      return pieces[0];
  }
  // Every contribution in arrival order: (row, piece, index within piece).
  struct Entry {
    std::int32_t row;
    std::int32_t piece;
    std::int64_t index;
  };
  std::vector<Entry> entries;
  std::vector<Tensor> rows(pieces.size()), values(pieces.size());
  for (std::size_t k = 0; k < pieces.size(); ++k) {
    rows[k] = pieces[k].rows.contiguous();
    values[k] = pieces[k].values.contiguous();
    const std::int32_t* p = rows[k].data<std::int32_t>();
    for (std::int64_t i = 0; i < rows[k].numel(); ++i) entries.push_back({p[i], static_cast<std::int32_t>(k), i});
  }
  std::stable_sort(entries.begin(), entries.end(), [](const Entry& a, const Entry& b) { return a.row < b.row; });
  std::vector<std::int64_t> starts;  // first entry of each unique row
  for (std::size_t e = 0; e < entries.size(); ++e)
    if (e == 0 || entries[e].row != entries[e - 1].row) starts.push_back(static_cast<std::int64_t>(e));
  const std::int64_t unique = static_cast<std::int64_t>(starts.size()), d = impl_->value.size(1);
  starts.push_back(static_cast<std::int64_t>(entries.size()));
  RowGrad merged{Tensor::empty({unique}, DType::i32), Tensor::zeros({unique, d}, impl_->value.dtype())};
  std::int32_t* out_rows = merged.rows.data<std::int32_t>();
  dispatch_floating(impl_->value.dtype(), "row_grad", [&](auto tag) {
    using T = decltype(tag);
    T* out = merged.values.data<T>();
    parallel_for(0, unique, 64, [&](std::int64_t lo, std::int64_t hi) {  // one writer per row
      for (std::int64_t u = lo; u < hi; ++u) {
        out_rows[u] = entries[starts[u]].row;
        T* dst = out + u * d;
        for (std::int64_t e = starts[u]; e < starts[u + 1]; ++e) {
          const T* src = values[entries[e].piece].template data<T>() + entries[e].index * d;
          for (std::int64_t c = 0; c < d; ++c) dst[c] += src[c];
        }
      }
    });
  });
  pieces.assign(1, merged);
  return merged;
}

void Var::zero_grad() {
  if (impl_) {
    impl_->grad = Tensor();
    impl_->row_grads.clear();
  }
}

void Var::set_grad(Tensor g) {
  PR_CHECK(impl_ != nullptr, "Var: undefined");
  PR_CHECK(!g.defined() || g.shape() == impl_->value.shape(), "set_grad: gradient ", g.shape_str(),
           " for value ", impl_->value.shape_str());
  impl_->grad = std::move(g);
  impl_->row_grads.clear();
}

void Var::set_row_grad(RowGrad g) {
  PR_CHECK(impl_ != nullptr, "Var: undefined");
  const Tensor& v = impl_->value;
  PR_CHECK(g.rows.defined() && g.rows.dtype() == DType::i32 && g.rows.dim() == 1 && g.values.defined() &&
               v.dim() == 2 && g.values.shape() == Shape({g.rows.numel(), v.size(1)}) && g.values.dtype() == v.dtype(),
           "set_row_grad: rows ", g.rows.defined() ? g.rows.shape_str() : "undefined", " and values ",
           g.values.defined() ? g.values.shape_str() : "undefined", " do not fit the table ", v.shape_str());
  const Tensor r = g.rows.contiguous();
  const std::int32_t* p = r.data<std::int32_t>();
  for (std::int64_t i = 0; i < r.numel(); ++i)
    PR_CHECK(p[i] >= 0 && p[i] < v.size(0) && (i == 0 || p[i] > p[i - 1]), "set_row_grad: rows must be strictly",
             " increasing and in [0, ", v.size(0), "); row ", i, " is ", p[i]);
  impl_->grad = Tensor();
  impl_->row_grads.assign(1, RowGrad{r, g.values.contiguous()});
}

void Var::retain_grad() {
  PR_CHECK(impl_ != nullptr, "Var: undefined");
  impl_->retain_grad = true;
}

void Var::set_value(Tensor value) {
  PR_CHECK(impl_ != nullptr, "Var: undefined");
  PR_CHECK(impl_->grad_fn == nullptr, "set_value: only leaves can be replaced");
  impl_->value = std::move(value);
  impl_->grad = Tensor();
  impl_->row_grads.clear();
}

bool any_requires_grad(std::initializer_list<const Var*> inputs) {
  if (!g_grad_enabled) return false;
  for (const Var* v : inputs)
    if (v && v->defined() && v->requires_grad()) return true;
  return false;
}

Var make_result(Tensor value, std::shared_ptr<Node> node) {
  Var out;
  out.impl_ = std::make_shared<VarImpl>();
  out.impl_->value = std::move(value);
  if (node && g_grad_enabled) {
    node->output = out.impl_;
    out.impl_->grad_fn = std::move(node);
    out.impl_->requires_grad = true;
  }
  return out;
}

void Var::backward(const Tensor& seed, const std::function<void(const VarImpl*)>* on_leaf_ready) const {
  PR_CHECK(impl_ != nullptr, "backward: undefined Var");
  PR_CHECK(impl_->requires_grad, "backward: ", impl_->value.shape_str(), " does not require a gradient");
  Tensor g = seed;
  if (!g.defined()) {
    PR_CHECK(impl_->value.numel() == 1, "backward: implicit seed needs a scalar, got ", impl_->value.shape_str());
    g = Tensor::full(impl_->value.shape(), 1.0, impl_->value.dtype());
  }
  PR_CHECK(g.shape() == impl_->value.shape(), "backward: seed ", g.shape_str(), " for ", impl_->value.shape_str());

  if (!impl_->grad_fn) {  // a leaf: its gradient is the seed
    (void)grad();  // pending row pieces become dense first
    if (impl_->grad.defined())
      accumulate_into(impl_->grad, g);
    else
      impl_->grad = g.clone();
    return;
  }

  // Topological order of the nodes reachable from this one (iterative DFS, post-order).
  std::vector<Node*> order;
  std::unordered_set<Node*> seen;
  std::vector<std::pair<Node*, std::size_t>> stack{{impl_->grad_fn.get(), 0}};
  seen.insert(impl_->grad_fn.get());
  while (!stack.empty()) {
    auto& [node, next] = stack.back();
    if (next < node->inputs.size()) {
      const Var& in = node->inputs[next++];
      Node* child = in.defined() ? in.grad_fn().get() : nullptr;
      if (child && seen.insert(child).second) stack.push_back({child, 0});
    } else {
      order.push_back(node);
      stack.pop_back();
    }
  }

  // Note [leaf-ready hook]: how many nodes still have each leaf as an input.
  std::unordered_map<const VarImpl*, int> uses;
  if (on_leaf_ready)
    for (Node* node : order)
      for (const Var& in : node->inputs)
        if (in.defined() && in.requires_grad() && !in.impl()->grad_fn) ++uses[in.impl()];
  auto leaves_done = [&](Node* node) {
    if (!on_leaf_ready) return;
    for (const Var& in : node->inputs)
      if (in.defined() && in.requires_grad() && !in.impl()->grad_fn && --uses[in.impl()] == 0) (*on_leaf_ready)(in.impl());
  };

  // Reverse topological order: every node runs after all its consumers.
  std::unordered_map<Node*, Tensor> pending;
  pending[impl_->grad_fn.get()] = g;
  std::vector<Tensor> grad_inputs;
  for (auto it = order.rbegin(); it != order.rend(); ++it) {
    Node* node = *it;
    auto found = pending.find(node);
    if (found == pending.end()) {  // no gradient flows here
      leaves_done(node);
      continue;
    }
    Tensor grad_out = std::move(found->second);
    pending.erase(found);
    PR_CHECK(!node->used, "backward: the graph through '", node->name(),
             "' was already used by a backward pass (its saved tensors are freed); run the forward again");
    node->used = true;
    if (auto out = node->output.lock(); out && out->retain_grad) {
      if (out->grad.defined())
        accumulate_into(out->grad, grad_out);
      else
        out->grad = grad_out.clone();
    }
    grad_inputs.assign(node->inputs.size(), Tensor());
    node->row_grads_out.clear();
    node->backward(grad_out, grad_inputs);
    for (std::size_t i = 0; i < node->row_grads_out.size(); ++i) {
      RowGrad& piece = node->row_grads_out[i];
      const Var& in = node->inputs[i];
      if (!piece.defined() || !in.defined() || !in.requires_grad()) continue;
      VarImpl* target = const_cast<VarImpl*>(in.impl());
      if (target->grad_fn) {  // only leaves hold pieces: pass a dense gradient on
        Tensor dense = densify(in.value().shape(), in.dtype(), {piece});
        if (grad_inputs[i].defined()) accumulate_into(dense, grad_inputs[i]);
        grad_inputs[i] = std::move(dense);
      } else if (target->grad.defined()) {
        scatter_rows_into(target->grad, piece);
      } else {
        target->row_grads.push_back(std::move(piece));
      }
    }
    for (std::size_t i = 0; i < node->inputs.size(); ++i) {
      const Var& in = node->inputs[i];
      Tensor& gi = grad_inputs[i];
      if (!gi.defined() || !in.defined() || !in.requires_grad()) continue;
      PR_CHECK(gi.shape() == in.value().shape(), "backward of ", node->name(), ": gradient ", gi.shape_str(),
               " for input ", i, " of shape ", in.value().shape_str());
      VarImpl* target = const_cast<VarImpl*>(in.impl());
      if (target->grad_fn) {
        Tensor& acc = pending[target->grad_fn.get()];
        if (!acc.defined()) {
          acc = std::move(gi);
        } else {
          // The first gradient may be shared with another slot (e.g. add passes grad_out
          // to both inputs), so sum into a fresh tensor rather than in place.
          Tensor sum = acc.clone();
          accumulate_into(sum, gi);
          acc = std::move(sum);
        }
      } else if (target->grad.defined()) {
        accumulate_into(target->grad, gi);
      } else {
        // Own the leaf's gradient: clone when the tensor is shared with the incoming
        // gradient or another slot, or is a strided view.
        bool shared = gi.shares_storage(grad_out) || !gi.is_contiguous();
        for (std::size_t j = 0; j < grad_inputs.size() && !shared; ++j)
          shared = j != i && grad_inputs[j].defined() && grad_inputs[j].shares_storage(gi);
        target->grad = shared ? gi.clone() : std::move(gi);
        for (const RowGrad& p : target->row_grads) scatter_rows_into(target->grad, p);
        target->row_grads.clear();
      }
    }
    node->row_grads_out.clear();
    leaves_done(node);
    node->release();
  }
}

}  // namespace prunerec::ag
