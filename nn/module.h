// Module tree with named parameter slots.
//
// Every parameter lives in exactly one slot of one module and is reached by its dotted
// name ("blocks.3.attn.q_proj.weight"). Optimizer state, checkpoints, pruning plans and
// logs all key on these names. A module may keep a handle to its own parameter (an
// ag::Var shares its value with the slot: one tensor, two names for it); surgery swaps the
// tensor with Var::set_value, so every holder sees the new one.
//
// Buffers are named constant tensors saved with the model but never trained (per-head and
// per-channel gates used for masked pruning).
//
//   class Scale : public Module {
//    public:
//     explicit Scale(int n) : w_(register_parameter("weight", Tensor::ones({n}))) {}
//    private:
//     ag::Var w_;
//   };
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "autograd/var.h"

namespace prunerec::nn {

class Module {
 public:
  Module() = default;
  virtual ~Module() = default;
  Module(const Module&) = delete;
  Module& operator=(const Module&) = delete;

  // All parameters of the subtree, depth-first in registration order, with dotted names.
  std::vector<std::pair<std::string, ag::Var>> named_parameters() const;
  std::vector<std::pair<std::string, Tensor*>> named_buffers();
  std::vector<std::pair<std::string, const Tensor*>> named_buffers() const;
  // Throws ShapeError naming the missing parameter (and the module's path).
  ag::Var parameter(std::string_view dotted) const;
  Tensor& buffer(std::string_view dotted);
  bool has_parameter(std::string_view dotted) const;

  std::int64_t num_parameters() const;  // total elements over all parameters

  // Checks this module and every child (shapes agree, derived widths are consistent).
  // Throws InternalError naming the module path and the broken fact.
  void check_invariants() const;

  void zero_grad();

  const std::vector<std::pair<std::string, std::unique_ptr<Module>>>& children() const { return children_; }

 protected:
  ag::Var register_parameter(std::string name, Tensor value);
  Tensor& register_buffer(std::string name, Tensor value);
  template <class M>
  M& register_module(std::string name, std::unique_ptr<M> module) {
    M& ref = *module;
    add_child(std::move(name), std::move(module));
    return ref;
  }
  // Removes and returns a child (layer removal); later children keep their names.
  std::unique_ptr<Module> take_child(std::string_view name);
  // Renames children to "0", "1", ... in order (after removing layers).
  void renumber_children();
  Module* child(std::string_view name) const;

  // This module's own facts; check_invariants() calls it with the module's dotted path.
  virtual void check_own_invariants(const std::string& path) const {}

 private:
  void add_child(std::string name, std::unique_ptr<Module> module);
  void collect_parameters(const std::string& prefix, std::vector<std::pair<std::string, ag::Var>>& out) const;
  void check_recursive(const std::string& path) const;

  std::vector<std::pair<std::string, ag::Var>> params_;
  std::vector<std::pair<std::string, std::unique_ptr<Tensor>>> buffers_;
  std::vector<std::pair<std::string, std::unique_ptr<Module>>> children_;
};

// A numbered list of modules ("0", "1", ...).
class ModuleList : public Module {
 public:
  template <class M>
  M& append(std::unique_ptr<M> m) {
    return register_module(std::to_string(size()), std::move(m));
  }
  std::size_t size() const { return children().size(); }
  Module& operator[](std::size_t i) const { return *children()[i].second; }
  template <class M>
  M& at(std::size_t i) const {
    return static_cast<M&>(*children()[i].second);
  }
  // Keeps the modules at `kept` (ascending indices), renumbered from 0.
  void keep_only(const std::vector<int>& kept);
};

// Internal invariant check with a message naming the module path.
#define PR_INVARIANT(cond, path, ...)                                                                  \
  do {                                                                                                 \
    if (!(cond))                                                                                       \
      throw ::prunerec::InternalError(::prunerec::detail::str_cat("invariant broken in '", path, "': ", \
                                                                  __VA_ARGS__));                      \
  } while (0)

}  // namespace prunerec::nn
