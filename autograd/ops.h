// Differentiable ops on Vars. Each family lives in one file under autograd/ops/, its
// forward and backward side by side; the hot composites (attention, RMSNorm, SwiGLU and
// the losses) are fused ops with hand-written backward passes (derivations in
// docs/derivations.md).
//
// Shapes are checked here, at the top, and errors name the op and every shape:
//   linear: x f32[32,64] and weight f32[16,48]: in_features 64 != 48
// Every op accepts f32 and f64 (f64 is what the finite-difference gradient checks use).
#pragma once

#include <cstdint>
#include <vector>

#include "autograd/var.h"

namespace prunerec::ag {

// ---- linear algebra (ops/linear.cc) ---------------------------------------------------
// x [..., in] @ weight[out, in]^T + bias[out]  ->  [..., out]. bias may be undefined.
Var linear(const Var& x, const Var& weight, const Var& bias = Var());
// a [M, K] @ b [K, N] -> [M, N]
Var matmul(const Var& a, const Var& b);

// ---- element-wise and shape (ops/elementwise.cc) --------------------------------------
Var add(const Var& a, const Var& b);                 // same shapes
Var mul(const Var& a, const Var& b);                 // same shapes
Var scale(const Var& a, double factor);
Var sum(const Var& a);                               // -> scalar []
Var mean(const Var& a);                              // -> scalar []
Var reshape(const Var& a, const Shape& shape);
// Multiplies the last dimension by gate [C] (a constant, no gradient): per-channel masks.
Var mul_channels(const Var& a, const Tensor& gate);
// Inverted dropout; identity (and no node) when p == 0. The mask is a pure function of
// (seed, stream, element index), so it is reproducible and never stored.
//
// `at` places x's rows in a larger, left-padded batch so that each element takes the mask
// of its place there (Note [global dropout masks] in nn/transformer.h): x is read as
// [R = size(0), C] rows; row r is row first_row + r of a batch whose rows hold
// row_elements >= C elements each, and x's row is the last C of them. The element index
// of (r, c) is then (first_row + r) * row_elements + (row_elements - C) + c. The default
// ({0, 0}: row_elements = C) is x's own flat index.
struct DropoutRows {
  std::int64_t first_row = 0;
  std::int64_t row_elements = 0;  // 0: the row length of x
};
Var dropout(const Var& x, double p, std::uint64_t seed, std::uint64_t stream, const DropoutRows& at = {});

// ---- normalisation and activations (ops/norm.cc) -----------------------------------------
// RMSNorm over the last dimension: x [..., C] * weight [C].
Var rmsnorm(const Var& x, const Var& weight, double eps);
// silu(gate) * up * channel_gate, channel_gate [C] optional (a constant: MLP channel masks).
Var swiglu(const Var& gate, const Var& up, const Tensor& channel_gate = Tensor());

// ---- embedding (ops/embedding.cc) -------------------------------------------------------
// table [V, d] gathered at ids (i32, any shape; -1 = padding -> zero row) -> [ids..., d].
Var embedding(const Var& table, const Tensor& ids);

// ---- attention (ops/attention.cc) ---------------------------------------------------------
struct AttentionArgs {
  std::int64_t head_dim = 0;
  double rope_theta = 10000.0;
  Tensor pads;                      // i32 [B]: leading padding tokens per row
  std::vector<std::int32_t> kv_map; // query head -> KV head, size Hq
  Tensor head_gates;                // [Hq] constant gates (same dtype as q), optional
};
// q [B,T,Hq*dh], k,v [B,T,Hkv*dh] -> [B,T,Hq*dh]; see tensor/kernels/attention.h.
Var attention(const Var& q, const Var& k, const Var& v, const AttentionArgs& args);
// Row T-1 of attention() alone: q_last [B,Hq*dh] is the query at the last position, k and v
// are full; -> [B,Hq*dh]. Inference only: refuses inputs that require grad.
Var attention_last(const Var& q_last, const Var& k, const Var& v, const AttentionArgs& args);
// Incremental decoding over a KV cache (nn/kv_cache.h, Note [cached decoding]): the output at
// position length-1 of B rows whose keys and values sit in preallocated buffers k_rot, v
// [P, C, Hkv*dh] (keys already rotated by RoPE at position j - pads[b]); rows i32 [B, C]
// names the physical row holding position j < length of row b. q_last [B,Hq*dh] is the
// newest query before RoPE -> [B,Hq*dh], the same bits as attention_last on the gathered
// keys before rotation. Inference only.
Var attention_cached(const Var& q_last, const Tensor& k_rot, const Tensor& v, const Tensor& rows, std::int64_t length,
                     const AttentionArgs& args);

// ---- losses (ops/loss.cc) -------------------------------------------------------------------
// Mean cross-entropy of logits [N, V] against targets (i32 [N], negative = ignore) over
// the non-ignored rows. 0 when every row is ignored.
Var cross_entropy(const Var& logits, const Tensor& targets);
// Distillation: mean over non-ignored rows of
//   alpha * CE(student, target) + (1 - alpha) * T^2 * KL(softmax(teacher/T) || softmax(student/T)).
// teacher_logits is a constant [N, V].
Var distill_loss(const Var& student_logits, const Tensor& teacher_logits, const Tensor& targets, double alpha,
                 double temperature);

// Fused output layer + loss: logits = h [N, d] @ weight [V, d]^T computed in row chunks
// and never materialised whole (Note [fused output loss] in ops/loss.cc). Same value as
// cross_entropy(matmul(h, weight^T), targets).
Var linear_cross_entropy(const Var& h, const Var& weight, const Tensor& targets);
// Same for distillation; the teacher's logits are teacher_h [N, dt] @ teacher_weight [V, dt]^T,
// also computed chunk by chunk.
Var linear_distill_loss(const Var& h, const Var& weight, const Tensor& teacher_h, const Tensor& teacher_weight,
                        const Tensor& targets, double alpha, double temperature);
// Distillation from the teacher's top k items at temperature T (Note [top-k distillation]
// in ops/loss.cc): teacher_items i32 [N, k] (distinct per row), teacher_logp [N, k] their
// log-probabilities under softmax(teacher / T), teacher_rest_logp [N] the log of the rest's
// mass (-inf when none). Rows with a negative target are ignored and may hold anything.
// Equals linear_distill_loss when every row lists all V items.
Var linear_topk_distill_loss(const Var& h, const Var& weight, const Tensor& teacher_items, const Tensor& teacher_logp,
                             const Tensor& teacher_rest_logp, const Tensor& targets, double alpha, double temperature);

// Sampled output losses (Note [sampled output loss] in ops/loss.cc): only each position's
// target and S negatives shared by all positions are scored, so the cost does not grow
// with V; the weight's gradient is row-sparse (Note [row-sparse gradients], var.h).
// h [N, d], weight [V, d], targets i32 [N] (negative = ignore), negatives i32 [S] in [0, V).
//
// Sampled softmax with the log-Q correction: per row, cross-entropy over the logits
// [s_target, s_j - neg_log_count[j] for each negative j != target]; neg_log_count [S] is
// log(S q_j), the log of the expected number of draws of j (q = the sampling
// distribution). Uniform negatives with S = V and every item once: exactly the full
// softmax. Mean over non-ignored rows.
Var sampled_softmax_loss(const Var& h, const Var& weight, const Tensor& targets, const Tensor& negatives,
                         const Tensor& neg_log_count);
// gSASRec's gBCE (Petrov and Macdonald, RecSys 2023): per row
//   (beta * softplus(-s_target) + sum over negatives j != target of softplus(s_j)) / (S + 1),
// i.e. -(log(sigmoid(s_target)^beta) + sum log(1 - sigmoid(s_j))) / (S + 1); mean over
// non-ignored rows.
Var gbce_loss(const Var& h, const Var& weight, const Tensor& targets, const Tensor& negatives, double beta);
// gBCE's calibrated beta = alpha (t (1 - 1/alpha) + 1/alpha) with the sampling rate
// alpha = S / (V - 1) (capped at 1); t = 0 gives plain BCE (beta 1), t = 1 beta = alpha.
double gbce_beta(std::int64_t num_negatives, std::int64_t num_items, double t);

// Parts of the last loss computed by linear_distill_loss / distill_loss on this thread:
// the mean CE and mean KL (for logging).
struct LossParts {
  double ce = 0, kl = 0;
};
LossParts last_loss_parts();

}  // namespace prunerec::ag
