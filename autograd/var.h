// Reverse-mode automatic differentiation.
//
// A Var is a tensor value plus its place in the graph. Ops (autograd/ops.h) take Vars and
// return a Var whose grad_fn Node remembers how to send gradients back to the inputs.
// backward() walks the recorded graph from a scalar in reverse order and accumulates into
// the .grad() of every leaf that requires a gradient.
//
//   Var w(Tensor::zeros({4, 3}), /*requires_grad=*/true);
//   Var x(input);
//   Var loss = ops::sum(ops::linear(x, w));
//   loss.backward();              // w.grad() now holds d loss / d w
//   { NoGradGuard ng; ... }       // ops inside record nothing (inference, teacher forward)
//
// Note [graph lifetime]: nodes hold the tensors their backward needs and are freed with
// the last Var that refers to them; backward() releases each node's saved tensors as soon
// as it has run, so a step's activations do not outlive its backward.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "tensor/tensor.h"

namespace prunerec::ag {

class Node;

// Note [row-sparse gradients]: an op whose gradient for a [V, d] table touches only a few
// rows (the embedding gather; the sampled output losses for the item table) may hand it
// back as rows + values instead of a dense [V, d] tensor. A leaf keeps such pieces as they
// come (rows may repeat; contributions add) until someone asks: grad() scatter-adds them
// into a dense tensor (so every existing reader sees the usual gradient), row_grad() merges
// them into sorted unique rows, summing repeated rows in arrival order (deterministic).
// A dense contribution arriving while pieces are held, or pieces arriving once the
// gradient is dense, are scatter-added into the dense one. Only leaves hold pieces: a
// row-sparse gradient for a non-leaf input is made dense before it is passed on. The
// optimizer (nn/optim.h, Note [lazy AdamW rows]) reads row_grad() so that a 1,000,000-row
// item table never gets a dense gradient when the loss samples.
struct RowGrad {
  Tensor rows;    // i32 [R], each in [0, V)
  Tensor values;  // [R, d], the table's dtype
  bool defined() const { return rows.defined(); }
};

struct VarImpl {
  Tensor value;
  Tensor grad;                     // accumulated gradient (leaves, and retained non-leaves)
  std::vector<RowGrad> row_grads;  // pending row-sparse pieces (leaves only; see above)
  bool requires_grad = false;
  bool retain_grad = false;        // keep .grad on a non-leaf after backward
  std::shared_ptr<Node> grad_fn;   // null for leaves
};

class Var {
 public:
  Var() = default;
  explicit Var(Tensor value, bool requires_grad = false);

  bool defined() const { return impl_ != nullptr; }
  const Tensor& value() const;
  const Shape& shape() const { return value().shape(); }
  std::int64_t size(int d) const { return value().size(d); }
  int dim() const { return value().dim(); }
  DType dtype() const { return value().dtype(); }
  std::int64_t numel() const { return value().numel(); }

  bool requires_grad() const { return impl_ && impl_->requires_grad; }
  void set_requires_grad(bool on);
  bool is_leaf() const { return impl_ && impl_->grad_fn == nullptr; }
  const std::shared_ptr<Node>& grad_fn() const;

  // Undefined until a backward reached this Var. Row-sparse pieces are made dense here
  // (Note [row-sparse gradients]).
  const Tensor& grad() const;
  // True when the gradient is held as row-sparse pieces only (no dense tensor yet).
  bool has_row_grad() const;
  // The pieces merged into sorted unique rows (also replaces the pieces with the merged
  // one). Only when has_row_grad().
  RowGrad row_grad() const;
  void zero_grad();                // drops the gradient (the next backward allocates anew)
  void set_grad(Tensor g);
  // Replaces the gradient by a row-sparse one whose rows are strictly increasing (the
  // data-parallel reduction of recsys/data_parallel.h hands back the summed row sets).
  void set_row_grad(RowGrad g);
  void retain_grad();              // keep the gradient of a non-leaf

  // Replaces the value (same Var identity): how surgery swaps a parameter's tensor in
  // its slot. Drops the gradient, which no longer matches.
  void set_value(Tensor value);

  // Gradient of this scalar with respect to every leaf requiring one, accumulated into
  // their grad(). seed defaults to 1.
  //
  // Note [leaf-ready hook]: on_leaf_ready, when given, is called once for every leaf that
  // requires a gradient and that the graph reaches, as soon as its gradient is final: after
  // the last node that has it as an input has run (whether or not that node sent it a
  // gradient). The data-parallel reducer (recsys/data_parallel.h) starts summing a bucket
  // of parameters over the ranks there, while the rest of the backward pass runs. The order
  // of the calls is a function of the graph alone.
  void backward(const Tensor& seed = Tensor(),
                const std::function<void(const VarImpl* leaf)>* on_leaf_ready = nullptr) const;

  const VarImpl* impl() const { return impl_.get(); }
  bool same(const Var& other) const { return impl_ == other.impl_; }

 private:
  friend Var make_result(Tensor value, std::shared_ptr<Node> node);
  std::shared_ptr<VarImpl> impl_;
};

// One recorded op. Subclasses save what their backward needs.
class Node {
 public:
  virtual ~Node() = default;
  virtual const char* name() const = 0;
  // grad_inputs has one slot per input; leave a slot undefined when that input gets no
  // gradient. grad_out has the shape of the op's output.
  virtual void backward(const Tensor& grad_out, std::vector<Tensor>& grad_inputs) = 0;
  // Drops saved tensors (called once backward has run).
  virtual void release() {}
  // For backward(): gives input `i` a row-sparse gradient (Note [row-sparse gradients])
  // instead of a dense slot in grad_inputs. rows i32 [R], values [R, d].
  void set_row_grad(std::size_t i, Tensor rows, Tensor values);

  std::vector<Var> inputs;
  std::vector<RowGrad> row_grads_out;  // filled by set_row_grad, consumed by Var::backward
  bool used = false;  // backward already ran through this node (graphs are used once)
  std::weak_ptr<VarImpl> output;  // for retain_grad
};

// Whether ops record the graph (thread-local; on by default).
bool grad_enabled();

class NoGradGuard {
 public:
  NoGradGuard();
  ~NoGradGuard();
  NoGradGuard(const NoGradGuard&) = delete;
  NoGradGuard& operator=(const NoGradGuard&) = delete;

 private:
  bool prev_;
};

// Op helpers: does any input need a graph? Wraps a result with its node when it does.
bool any_requires_grad(std::initializer_list<const Var*> inputs);
Var make_result(Tensor value, std::shared_ptr<Node> node);

}  // namespace prunerec::ag
