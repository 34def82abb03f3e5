// The decoder-only transformer (Qwen2-style) over a token vocabulary. In item-token mode
// every item is one token; the model is agnostic to what a token means.
//
//   ids [B,T] (i32, left-padded with -1)
//   x = embed(ids)                                     [B,T,d]   (zeros at padding)
//   per block: x = x + attn(attn_norm(x)); x = x + mlp(mlp_norm(x))
//   h = final_norm(x)                                  [B,T,d]
//   logits = h @ E^T  (E = embed.weight when tied, else lm_head.weight)  [B,T,V]
//
// The config (proto/model.proto) gives every layer its own widths, so a pruned, uneven
// model is described by its config alone; config() re-derives it from the tensor shapes.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "autograd/ops.h"
#include "nn/layers.h"
#include "proto/model.pb.h"

namespace prunerec::nn {

// Optional observation points in the forward pass (importance scoring, inspection).
class ForwardHooks {
 public:
  virtual ~ForwardHooks() = default;
  // The residual stream entering block `layer` (and, with layer == num_layers, entering
  // the final norm). A hook may call retain_grad() on it to read its gradient later.
  virtual void on_residual(int layer, const ag::Var& x) {}
  // Gated head outputs of block `layer` before o_proj, [B,T,Hq*dh].
  virtual void on_attention_heads(int layer, const Tensor& heads) {}
  // up(x) and the gated SwiGLU activation of block `layer`, [B,T,F] each.
  virtual void on_mlp(int layer, const Tensor& up, const Tensor& act) {}
  // The residual stream between the attention and MLP sub-blocks of `layer`.
  virtual void on_residual_mid(int layer, const ag::Var& x) {}
  // Output of a norm: which = 0 attn_norm, 1 mlp_norm of block `layer`; final_norm has
  // layer == num_layers and which = 0. [B,T,d].
  virtual void on_normalized(int layer, int which, const Tensor& y) {}
};

// Note [global dropout masks]
// ~~~~~~~~~~~~~~~~~~~~~~~~~~~
// A dropout mask is a pure function of (seed, stream, element index) (Note [counter-based
// RNG] in tensor/rng.h): the stream is (step, layer, site) and the element index is the
// element's place in the [B, T, d] tensor of the GLOBAL batch, ((row * T + t) * d + c).
// A data-parallel shard (Note [data-parallel training] in recsys/data_parallel.h) holds
// rows [begin, end) of that batch, padded to its own longest window T_s <= T; with left
// padding its position t is the global position t + T - T_s. The trainer passes
// global_row = begin and global_length = T, each dropout site reads its draws at that
// placement (ag::DropoutRows), and so every row is dropped as it is in one process, for
// any number of ranks. One process is global_row 0 and global_length its own T (or 0):
// the element index is then the tensor's flat index, the masks it always drew.
struct ForwardOptions {
  double dropout = 0.0;           // embedding and residual branches; 0 at inference
  std::uint64_t seed = 0;         // dropout masks depend on (seed, step, layer, site, global element)
  std::uint64_t step = 0;
  // Where this batch sits in the global batch of a data-parallel step (Note [global
  // dropout masks]): the global index of its first row, and the global batch's T (0: this
  // batch's own T). One process: 0, and its own T or 0.
  std::int64_t global_row = 0;
  std::int64_t global_length = 0;
  ForwardHooks* hooks = nullptr;
  // Depth-pruning probes: run as if these sub-blocks were removed (empty = none).
  std::vector<bool> skip_attention, skip_mlp;
};

// Note [zero-width sub-blocks]: a layer may have no attention (num_heads = 0, its
// projections are empty matrices) or no MLP (mlp_width = 0). The forward pass skips such a
// sub-block; its residual branch would be exactly zero anyway. Depth pruning by sub-blocks
// produces such layers, and their configs describe them without extra flags.
class Transformer : public Module {
 public:
  // Builds a model from a config (normalised here, see normalize_config) with parameters
  // initialised from `seed`: N(0, init_std) for matrices and the embedding, zeros for
  // biases, ones for norm gains. Each tensor's values depend only on (seed, its name).
  Transformer(const pb::ModelConfig& config, DType dtype, std::uint64_t seed);
  // A model whose parameters are allocated but not written (Note [unfilled parameters] in
  // nn/transformer.cc), for loading weights into: every parameter must be replaced or
  // overwritten before use. Buffers (gates) are ones.
  static std::unique_ptr<Transformer> uninitialized(const pb::ModelConfig& config, DType dtype);

  // Final hidden states h [B,T,d] (after final_norm). pads: i32 [B] leading padding.
  ag::Var hidden(const Tensor& ids, const Tensor& pads, const ForwardOptions& opt = {}) const;
  // Inference only (under a NoGradGuard, no dropout, no hooks): final hidden state at the
  // last position, [B,d]; equals hidden(ids, pads)[:, T-1] with less work (Note
  // [last-position inference] in transformer.cc).
  Tensor last_hidden(const Tensor& ids, const Tensor& pads) const;
  // Output projection weight [V, d] (the embedding when tied).
  const ag::Var& output_weight() const;
  // logits = h @ output_weight^T, for h [..., d].
  ag::Var logits(const ag::Var& h) const;
  // Mean next-item cross-entropy over positions whose target >= 0, through the fused
  // output loss (never materialises all logits). targets: i32 [B,T].
  ag::Var loss(const Tensor& ids, const Tensor& pads, const Tensor& targets, const ForwardOptions& opt = {}) const;

  // Shape facts (all derived from tensors).
  std::int64_t vocab_size() const { return embed_->num_embeddings(); }
  std::int64_t hidden_size() const { return embed_->dim(); }
  int num_layers() const { return static_cast<int>(blocks_->size()); }
  bool tied() const { return lm_head_ == nullptr; }
  const Block& block(int l) const { return blocks_->at<Block>(static_cast<std::size_t>(l)); }
  Block& block(int l) { return blocks_->at<Block>(static_cast<std::size_t>(l)); }
  const Embedding& embed() const { return *embed_; }
  const RMSNorm& final_norm() const { return *final_norm_; }
  DType dtype() const { return embed_->weight().dtype(); }

  // The config this model is now (after any surgery), with every layer listed.
  pb::ModelConfig config() const;

  // Parameter counts. "Non-embedding" = everything except the token-embedding table (a
  // tied head is not counted twice; an untied lm_head counts as non-embedding).
  std::int64_t embedding_parameters() const { return embed_->weight().numel(); }
  std::int64_t non_embedding_parameters() const { return num_parameters() - embedding_parameters(); }

  // Removes all blocks but `kept` (ascending), renumbering names (surgery only).
  void keep_layers(const std::vector<int>& kept) { blocks_->keep_only(kept); }

 protected:
  void check_own_invariants(const std::string& path) const override;

 private:
  Transformer(const pb::ModelConfig& config, DType dtype, std::uint64_t seed, bool initialize);
  // One layer of hidden(): attention and MLP sub-blocks with opt's hooks, dropout and skips.
  ag::Var layer_forward(int l, ag::Var x, const Tensor& pads, const ForwardOptions& opt) const;
  Embedding* embed_;
  ModuleList* blocks_;
  RMSNorm* final_norm_;
  Linear* lm_head_ = nullptr;
  pb::ModelConfig hyper_;  // only the fields no shape holds (name, eps, theta, ...)
};

// Note [loss on the target rows] (transformer.cc): the flat rows (b * T + t) of a batch
// whose target is >= 0, in order, and their targets; `all` when every row has one or none
// does (rows is then left empty and targets holds every row's: no gather is needed). Distillation on title batches gathers the
// student's and the teacher's states with the same rows (prune/title_distill.h).
struct TargetRows {
  Tensor rows;     // i32 [kept]
  Tensor targets;  // i32 [kept]
  bool all = false;
};
TargetRows target_rows(const Tensor& targets);  // targets: i32 [B,T]

// Expands shorthand (num_layers + layer_defaults), fills empty kv_maps with the usual
// contiguous grouping, and validates every field; throws ConfigError naming the field.
pb::ModelConfig normalize_config(const pb::ModelConfig& config);

// Counts for a config without building the model.
std::int64_t count_non_embedding_parameters(const pb::ModelConfig& config);

// Name and shape of every parameter and buffer the model of `config` has, in
// named_parameters() / named_buffers() order, without allocating it (checkpoint loading
// compares a file against this before building anything).
struct TensorSpec {
  std::string name;
  Shape shape;
  bool buffer = false;
};
std::vector<TensorSpec> tensor_specs(const pb::ModelConfig& config);

// Leading -1 count per row of ids [B,T]; throws ShapeError if a row has -1 after a real
// token or an id below -1.
Tensor pads_from_ids(const Tensor& ids);

}  // namespace prunerec::nn
