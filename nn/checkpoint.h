// Saving and loading models (and, optionally, optimizer and training state) in the
// checkpoint container of nn/checkpoint_file.h.
//
//   save_model("run/best.prc", model, {.catalog = &catalog});
//   LoadedModel m = load_model("run/best.prc");     // builds the model from its stored config
//   m.model->block(0) ...
//
// Tensor names in the file: every parameter and buffer under its dotted name; optimizer
// moments as "optim.exp_avg.<name>" and "optim.exp_avg_sq.<name>". Loading builds the model
// from the stored config, then checks that the file holds exactly the tensors that model
// has, with the same shapes and dtypes; every mismatch is listed by name in one IoError.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>

#include "nn/checkpoint_file.h"
#include "nn/optim.h"
#include "nn/transformer.h"

namespace prunerec::nn {

struct SaveOptions {
  const AdamW* optimizer = nullptr;           // saves the moments and step count
  const pb::TrainingState* state = nullptr;   // resume position, early-stopping state
  const pb::ItemCatalog* catalog = nullptr;   // raw item ids and titles
  std::map<std::string, std::string> metadata;
  const pb::Pretrained* pretrained = nullptr;  // an imported model's source and tokenizer
  const pb::TitleMode* title_mode = nullptr;   // a title-mode model's template and tokenizer
};

void save_model(const std::string& path, const Transformer& model, const SaveOptions& options = {});

// Writes the checkpoint save_model would write for an f32 model of `config` (without
// optimizer state) whose tensor bytes come from `fill`, piece by piece, so the model never
// has to exist in memory (Note [streamed checkpoint writes] in nn/checkpoint_file.h). The
// tensors are tensor_specs(config), parameters then buffers; fill(spec, begin, n, out)
// writes bytes [begin, begin + n) of that tensor. Used by the Hugging Face import.
using TensorFill = std::function<void(const TensorSpec& spec, std::uint64_t begin, std::size_t n, unsigned char* out)>;
void save_model_streamed(const std::string& path, const pb::ModelConfig& config, const SaveOptions& options,
                         const TensorFill& fill);

struct LoadedModel {
  std::unique_ptr<Transformer> model;
  pb::Manifest manifest;                           // config, state, catalog, metadata
  std::map<std::string, AdamW::State> optimizer;   // empty when the file has none
  bool has_optimizer() const { return !optimizer.empty(); }
};

struct LoadOptions {
  bool mmap = false;              // borrow tensors from a private mapping of the file
  bool with_optimizer = true;     // read optimizer moments when present
};

LoadedModel load_model(const std::string& path, const LoadOptions& options = {});
// The same from a checkpoint's bytes in memory (options.mmap is ignored; the buffer may
// be freed afterwards). `name` stands for the path in error messages.
LoadedModel load_model_from_memory(const void* data, std::size_t size, const std::string& name,
                                   const LoadOptions& options = {});

// Copies loaded moments and the step count into an optimizer for `model`.
void restore_optimizer(AdamW& optimizer, const LoadedModel& loaded);

}  // namespace prunerec::nn
