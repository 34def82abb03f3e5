#include "nn/checkpoint.h"

#include <set>

#include "tensor/kernels/elementwise.h"

namespace prunerec::nn {
namespace {

constexpr const char* kExpAvg = "optim.exp_avg.";
constexpr const char* kExpAvgSq = "optim.exp_avg_sq.";
constexpr const char* kRowStep = "optim.row_step.";  // lazy rows only (Note [lazy AdamW rows])

bool starts_with(const std::string& s, const char* prefix) { return s.rfind(prefix, 0) == 0; }

pb::Manifest model_manifest(const pb::ModelConfig& config, const SaveOptions& options) {
  pb::Manifest manifest;
  *manifest.mutable_config() = config;
  manifest.set_created_by("prunerec 0.1.0");
  if (options.state) *manifest.mutable_state() = *options.state;
  if (options.catalog) *manifest.mutable_catalog() = *options.catalog;
  if (options.pretrained) *manifest.mutable_pretrained() = *options.pretrained;
  if (options.title_mode) *manifest.mutable_title_mode() = *options.title_mode;
  for (const auto& [k, v] : options.metadata) (*manifest.mutable_metadata())[k] = v;
  if (options.optimizer) manifest.mutable_state()->set_step(options.optimizer->steps());
  return manifest;
}

}  // namespace

void save_model(const std::string& path, const Transformer& model, const SaveOptions& options) {
  model.check_invariants();
  pb::Manifest manifest = model_manifest(model.config(), options);

  std::vector<NamedTensor> tensors;
  for (const auto& [name, var] : model.named_parameters()) tensors.push_back({name, var.value()});
  for (const auto& [name, t] : model.named_buffers()) tensors.push_back({name, *t});
  if (options.optimizer) {
    for (const auto& [name, st] : options.optimizer->state()) {
      tensors.push_back({kExpAvg + name, st.exp_avg});
      tensors.push_back({kExpAvgSq + name, st.exp_avg_sq});
      if (st.row_step.defined()) tensors.push_back({kRowStep + name, st.row_step});
    }
  }
  write_checkpoint(path, std::move(manifest), tensors);
}

void save_model_streamed(const std::string& path, const pb::ModelConfig& config, const SaveOptions& options,
                         const TensorFill& fill) {
  PR_CHECK(options.optimizer == nullptr, "save_model_streamed: optimizer state cannot be streamed");
  // The config a Transformer built from `config` reports (Transformer::config()), so the
  // bytes equal save_model's (tests/api/import_test.cc compares them).
  const pb::ModelConfig normal = normalize_config(config);
  std::vector<StreamedTensor> tensors;
  for (const TensorSpec& spec : tensor_specs(normal)) {
    // Parameters first, then buffers, as save_model lists them (tensor_specs lists them so).
    tensors.push_back({spec.name, DType::f32, spec.shape,
                       [spec, &fill](std::uint64_t begin, std::size_t n, unsigned char* out) { fill(spec, begin, n, out); }});
  }
  write_checkpoint_streamed(path, model_manifest(normal, options), tensors);
}

namespace {
// Builds the model a read checkpoint describes; `path` names it in errors.
LoadedModel model_from_checkpoint(const std::string& path, LoadedCheckpoint ckpt, const LoadOptions& options);
}  // namespace

LoadedModel load_model(const std::string& path, const LoadOptions& options) {
  return model_from_checkpoint(path, read_checkpoint(path, {.verify_checksums = true, .mmap = options.mmap}), options);
}

LoadedModel load_model_from_memory(const void* data, std::size_t size, const std::string& name,
                                   const LoadOptions& options) {
  return model_from_checkpoint(name, read_checkpoint_from_memory(data, size, name), options);
}

namespace {
LoadedModel model_from_checkpoint(const std::string& path, LoadedCheckpoint ckpt, const LoadOptions& options) {
  PR_CHECK_T(IoError, ckpt.manifest.has_config(), path, ": checkpoint has no model config");
  pb::ModelConfig config;
  try {
    config = normalize_config(ckpt.manifest.config());
  } catch (const ConfigError& e) {
    throw IoError(detail::str_cat(path, ": stored model config is invalid: ", e.what()));
  }
  const Tensor* first = ckpt.tensors.empty() ? nullptr : &ckpt.tensors.front().tensor;

  // Compare the file with the tensors the stored config describes before building the
  // model, so a small or corrupt file cannot make us allocate what it does not hold, and
  // list every mismatch by name.
  const DType dtype = first && is_floating(first->dtype()) ? first->dtype() : DType::f32;
  std::vector<std::string> problems;
  std::set<std::string> expected;
  for (const TensorSpec& spec : tensor_specs(config)) {
    expected.insert(spec.name);
    const Tensor* t = ckpt.find(spec.name);
    if (!t)
      problems.push_back(detail::str_cat("missing tensor '", spec.name, "' (expected ", dtype_name(dtype),
                                         shape_str(spec.shape), ")"));
    else if (t->shape() != spec.shape || t->dtype() != dtype)
      problems.push_back(detail::str_cat("tensor '", spec.name, "' is ", t->shape_str(), ", the stored config needs ",
                                         dtype_name(dtype), shape_str(spec.shape)));
  }
  for (const auto& nt : ckpt.tensors) {
    if (starts_with(nt.name, kExpAvg) || starts_with(nt.name, kExpAvgSq) || starts_with(nt.name, kRowStep)) continue;
    if (!expected.count(nt.name)) problems.push_back(detail::str_cat("unexpected tensor '", nt.name, "' ", nt.tensor.shape_str()));
  }
  if (!problems.empty()) {
    std::string msg = detail::str_cat(path, ": checkpoint does not match its model config (", problems.size(),
                                      " problem", problems.size() > 1 ? "s" : "", "):");
    constexpr std::size_t kShown = 20;
    for (std::size_t i = 0; i < problems.size() && i < kShown; ++i) msg += "\n  " + problems[i];
    if (problems.size() > kShown) msg += detail::str_cat("\n  ... and ", problems.size() - kShown, " more");
    throw IoError(msg);
  }

  LoadedModel out;
  out.model = Transformer::uninitialized(config, dtype);
  for (auto& [name, var] : out.model->named_parameters()) var.set_value(*ckpt.find(name));
  for (auto& [name, buf] : out.model->named_buffers()) *buf = *ckpt.find(name);
  if (options.with_optimizer) {
    for (const auto& [name, var] : out.model->named_parameters()) {
      const Tensor* m = ckpt.find(kExpAvg + name);
      const Tensor* v = ckpt.find(kExpAvgSq + name);
      if (!m && !v) continue;
      PR_CHECK_T(IoError, m && v && m->shape() == var.shape() && v->shape() == var.shape(), path,
                 ": optimizer state of '", name, "' is incomplete or has the wrong shape");
      out.optimizer[name] = {.exp_avg = *m, .exp_avg_sq = *v, .row_step = {}};
      if (const Tensor* rs = ckpt.find(kRowStep + name)) {
        PR_CHECK_T(IoError, rs->dtype() == DType::i64 && rs->dim() == 1 && var.dim() == 2 && rs->size(0) == var.size(0),
                   path, ": lazy row steps of '", name, "' are ", rs->shape_str(), ", expected i64[", var.shape()[0], "]");
        out.optimizer[name].row_step = *rs;
      }
    }
  }
  // A model with NaN or Inf weights or gates is damaged even when its checksums hold (it
  // was saved that way): refuse it rather than serve garbage.
  auto require_finite = [&](const std::string& name, const Tensor& t) {
    bool finite = true;
    dispatch_floating(t.dtype(), "load", [&](auto tag) {
      using T = decltype(tag);
      finite = kernels::all_finite<T>(t.numel(), t.data<T>());
    });
    PR_CHECK_T(IoError, finite, path, ": tensor '", name, "' contains NaN or Inf values (the model is damaged)");
  };
  for (const auto& [name, var] : out.model->named_parameters()) require_finite(name, var.value());
  for (const auto& [name, buffer] : out.model->named_buffers()) require_finite(name, *buffer);
  try {
    out.model->check_invariants();
  } catch (const InternalError& e) {
    throw IoError(detail::str_cat(path, ": loaded model is inconsistent: ", e.what()));
  }
  out.manifest = std::move(ckpt.manifest);
  out.manifest.clear_tensors();
  return out;
}

}  // namespace

void restore_optimizer(AdamW& optimizer, const LoadedModel& loaded) {
  for (const auto& [name, st] : loaded.optimizer) optimizer.state()[name] = {st.exp_avg.clone(), st.exp_avg_sq.clone(),
                                                                 st.row_step.defined() ? st.row_step.clone() : Tensor()};
  optimizer.set_steps(loaded.manifest.state().step());
}

}  // namespace prunerec::nn
