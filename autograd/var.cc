#include "autograd/var.h"

#include <unordered_map>
#include <unordered_set>

#include "tensor/kernels/elementwise.h"

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

}  // namespace

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
  return impl_->grad;
}

void Var::zero_grad() {
  if (impl_) impl_->grad = Tensor();
}

void Var::set_grad(Tensor g) {
  PR_CHECK(impl_ != nullptr, "Var: undefined");
  PR_CHECK(!g.defined() || g.shape() == impl_->value.shape(), "set_grad: gradient ", g.shape_str(),
           " for value ", impl_->value.shape_str());
  impl_->grad = std::move(g);
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

void Var::backward(const Tensor& seed) const {
  PR_CHECK(impl_ != nullptr, "backward: undefined Var");
  PR_CHECK(impl_->requires_grad, "backward: ", impl_->value.shape_str(), " does not require a gradient");
  Tensor g = seed;
  if (!g.defined()) {
    PR_CHECK(impl_->value.numel() == 1, "backward: implicit seed needs a scalar, got ", impl_->value.shape_str());
    g = Tensor::full(impl_->value.shape(), 1.0, impl_->value.dtype());
  }
  PR_CHECK(g.shape() == impl_->value.shape(), "backward: seed ", g.shape_str(), " for ", impl_->value.shape_str());

  if (!impl_->grad_fn) {  // a leaf: its gradient is the seed
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

  // Reverse topological order: every node runs after all its consumers.
  std::unordered_map<Node*, Tensor> pending;
  pending[impl_->grad_fn.get()] = g;
  std::vector<Tensor> grad_inputs;
  for (auto it = order.rbegin(); it != order.rend(); ++it) {
    Node* node = *it;
    auto found = pending.find(node);
    if (found == pending.end()) continue;  // no gradient flows here
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
    node->backward(grad_out, grad_inputs);
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
      }
    }
    node->release();
  }
}

}  // namespace prunerec::ag
