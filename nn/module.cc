#include "nn/module.h"

#include <algorithm>

namespace prunerec::nn {

namespace {
std::string join(const std::string& prefix, const std::string& name) { return prefix.empty() ? name : prefix + "." + name; }
}  // namespace

ag::Var Module::register_parameter(std::string name, Tensor value) {
  for (const auto& [n, v] : params_) PR_ASSERT(n != name);
  ag::Var var(std::move(value), /*requires_grad=*/true);
  params_.emplace_back(std::move(name), var);
  return var;
}

Tensor& Module::register_buffer(std::string name, Tensor value) {
  for (const auto& [n, v] : buffers_) PR_ASSERT(n != name);
  buffers_.emplace_back(std::move(name), std::make_unique<Tensor>(std::move(value)));
  return *buffers_.back().second;
}

void Module::add_child(std::string name, std::unique_ptr<Module> module) {
  for (const auto& [n, m] : children_) PR_ASSERT(n != name);
  children_.emplace_back(std::move(name), std::move(module));
}

std::unique_ptr<Module> Module::take_child(std::string_view name) {
  auto it = std::find_if(children_.begin(), children_.end(), [&](const auto& c) { return c.first == name; });
  PR_CHECK(it != children_.end(), "take_child: no child '", name, "'");
  std::unique_ptr<Module> m = std::move(it->second);
  children_.erase(it);
  return m;
}

void Module::renumber_children() {
  for (std::size_t i = 0; i < children_.size(); ++i) children_[i].first = std::to_string(i);
}

Module* Module::child(std::string_view name) const {
  for (const auto& [n, m] : children_)
    if (n == name) return m.get();
  return nullptr;
}

void Module::collect_parameters(const std::string& prefix, std::vector<std::pair<std::string, ag::Var>>& out) const {
  for (const auto& [n, v] : params_) out.emplace_back(join(prefix, n), v);
  for (const auto& [n, m] : children_) m->collect_parameters(join(prefix, n), out);
}

std::vector<std::pair<std::string, ag::Var>> Module::named_parameters() const {
  std::vector<std::pair<std::string, ag::Var>> out;
  collect_parameters("", out);
  return out;
}

std::vector<std::pair<std::string, Tensor*>> Module::named_buffers() {
  std::vector<std::pair<std::string, Tensor*>> out;
  for (const auto& [n, t] : buffers_) out.emplace_back(n, t.get());
  for (const auto& [cn, m] : children_)
    for (auto& [n, t] : m->named_buffers()) out.emplace_back(join(cn, n), t);
  return out;
}

std::vector<std::pair<std::string, const Tensor*>> Module::named_buffers() const {
  std::vector<std::pair<std::string, const Tensor*>> out;
  for (auto& [n, t] : const_cast<Module*>(this)->named_buffers()) out.emplace_back(n, t);
  return out;
}

ag::Var Module::parameter(std::string_view dotted) const {
  const Module* m = this;
  std::string_view rest = dotted;
  for (;;) {
    for (const auto& [n, v] : m->params_)
      if (n == rest) return v;
    const auto dot = rest.find('.');
    if (dot == std::string_view::npos) break;
    const Module* next = m->child(rest.substr(0, dot));
    if (!next) break;
    m = next;
    rest = rest.substr(dot + 1);
  }
  throw ShapeError(detail::str_cat("no parameter named '", dotted, "'"));
}

bool Module::has_parameter(std::string_view dotted) const {
  for (const auto& [n, v] : named_parameters())
    if (n == dotted) return true;
  return false;
}

Tensor& Module::buffer(std::string_view dotted) {
  for (auto& [n, t] : named_buffers())
    if (n == dotted) return *t;
  throw ShapeError(detail::str_cat("no buffer named '", dotted, "'"));
}

std::int64_t Module::num_parameters() const {
  std::int64_t n = 0;
  for (const auto& [name, v] : named_parameters()) n += v.numel();
  return n;
}

void Module::check_recursive(const std::string& path) const {
  check_own_invariants(path);
  for (const auto& [n, m] : children_) m->check_recursive(join(path, n));
}

void Module::check_invariants() const { check_recursive(""); }

void Module::zero_grad() {
  for (auto& [n, v] : named_parameters()) v.zero_grad();
}

void ModuleList::keep_only(const std::vector<int>& kept) {
  std::vector<std::unique_ptr<Module>> all;
  const std::size_t n = size();
  for (std::size_t i = 0; i < n; ++i) all.push_back(take_child(std::to_string(i)));
  for (int k : kept) {
    PR_CHECK(k >= 0 && static_cast<std::size_t>(k) < n && all[k], "keep_only: index ", k, " invalid for ", n,
             " modules");
    register_module(std::to_string(size()), std::move(all[k]));
  }
}

}  // namespace prunerec::nn
