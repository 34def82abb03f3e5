// Fused causal self-attention (RoPE inside, padding mask, GQA through an explicit
// query-to-KV-head map, per-head gates). Kernels: tensor/kernels/attention.h.
#include <cmath>

#include "autograd/ops.h"
#include "autograd/ops/common.h"
#include "tensor/kernels/attention.h"

namespace prunerec::ag {
namespace {

class AttentionNode final : public Node {
 public:
  const char* name() const override { return "attention"; }
  void backward(const Tensor& dy_in, std::vector<Tensor>& grads) override {
    const Tensor q = inputs[0].value().contiguous(), k = inputs[1].value().contiguous(),
                 v = inputs[2].value().contiguous(), dy = dy_in.contiguous();
    Tensor dq = Tensor::empty(q.shape(), q.dtype()), dk = Tensor::empty(k.shape(), k.dtype()),
           dv = Tensor::empty(v.shape(), v.dtype());
    dispatch_floating(q.dtype(), name(), [&](auto tag) {
      using T = decltype(tag);
      const auto& rope = kernels::cached_rope_table<T>(dims.T, dims.dh, theta);
      kernels::attention_backward<T>(dims, q.data<T>(), k.data<T>(), v.data<T>(), pads.data<std::int32_t>(),
                                     kv_map.data(), gates.defined() ? gates.data<T>() : nullptr, rope,
                                     static_cast<T>(1.0 / std::sqrt(static_cast<double>(dims.dh))), out.data<T>(),
                                     lse.data<T>(), dy.data<T>(), dq.data<T>(), dk.data<T>(), dv.data<T>());
    });
    grads[0] = dq;
    grads[1] = dk;
    grads[2] = dv;
  }
  void release() override {
    out = lse = pads = gates = Tensor();
  }
  kernels::AttentionDims dims;
  double theta = 0;
  std::vector<std::int32_t> kv_map;
  Tensor pads, gates, out, lse;
};

// Checks the arguments of attention() (q [B,T,..]) and attention_last() (q [B,..], the last
// position's query) and returns the dims, the contiguous pads and gates.
struct Checked {
  kernels::AttentionDims dims;
  Tensor pads, gates;
};
Checked check_args(const char* op, const Var& q, const Var& k, const Var& v, const AttentionArgs& args,
                   bool last_only) {
  using detail::sh;
  const std::int64_t dh = args.head_dim;
  PR_CHECK(q.dim() == (last_only ? 2 : 3) && k.dim() == 3 && v.dim() == 3, op, ": q ", sh(q), ", k ", sh(k), ", v ",
           sh(v), last_only ? " must be [B, heads*head_dim], [B, T, kv_heads*head_dim] twice"
                            : " must be [B, T, heads*head_dim]");
  PR_CHECK(dh > 0 && dh % 2 == 0, op, ": head_dim ", dh, " must be positive and even (RoPE)");
  PR_CHECK(k.shape() == v.shape() && q.size(0) == k.size(0) && (last_only || q.size(1) == k.size(1)), op, ": q ", sh(q),
           ", k ", sh(k), ", v ", sh(v), ": batch, length or k/v widths differ");
  PR_CHECK(q.size(-1) % dh == 0 && k.size(2) % dh == 0, op, ": widths of q ", sh(q), " and k ", sh(k),
           " are not multiples of head_dim ", dh);
  detail::check_same_dtype(op, q, k);
  detail::check_same_dtype(op, q, v);
  kernels::AttentionDims dims{q.size(0), k.size(1), q.size(-1) / dh, k.size(2) / dh, dh};
  PR_CHECK(static_cast<std::int64_t>(args.kv_map.size()) == dims.Hq, op, ": kv_map has ", args.kv_map.size(),
           " entries for ", dims.Hq, " query heads");
  for (std::int32_t g : args.kv_map)
    PR_CHECK(g >= 0 && g < dims.Hkv, op, ": kv_map entry ", g, " out of range for ", dims.Hkv, " KV heads");
  PR_CHECK(args.pads.defined() && args.pads.dtype() == DType::i32 && args.pads.numel() == dims.B,
           op, ": pads must be i32 [", dims.B, "], got ", args.pads.shape_str());
  const Tensor pads = args.pads.contiguous();
  for (std::int64_t b = 0; b < dims.B; ++b) {
    const std::int32_t p = pads.data<std::int32_t>()[b];
    PR_CHECK(p >= 0 && p <= dims.T, op, ": pads[", b, "] = ", p, " is not in [0, ", dims.T, "]");
  }
  Tensor gates;
  if (args.head_gates.defined()) {
    PR_CHECK(args.head_gates.numel() == dims.Hq && args.head_gates.dtype() == q.dtype(), op, ": head gates ",
             args.head_gates.shape_str(), " for ", dims.Hq, " heads of ", sh(q));
    gates = args.head_gates.contiguous();
  }
  return {dims, pads, gates};
}

}  // namespace

Var attention(const Var& q, const Var& k, const Var& v, const AttentionArgs& args) {
  // Named members, not a structured binding: Clang before 16 cannot capture bindings in
  // the lambda below.
  const Checked checked = check_args("attention", q, k, v, args, false);
  const kernels::AttentionDims& dims = checked.dims;
  const Tensor &pads = checked.pads, &gates = checked.gates;
  const std::int64_t dh = dims.dh;
  const Tensor qc = q.value().contiguous(), kc = k.value().contiguous(), vc = v.value().contiguous();
  Tensor out = Tensor::empty(q.shape(), q.dtype());
  Tensor lse = Tensor::empty({dims.B, dims.Hq, dims.T}, q.dtype());
  dispatch_floating(q.dtype(), "attention", [&](auto tag) {
    using T = decltype(tag);
    const auto& rope = kernels::cached_rope_table<T>(dims.T, dh, args.rope_theta);
    kernels::attention_forward<T>(dims, qc.data<T>(), kc.data<T>(), vc.data<T>(), pads.data<std::int32_t>(),
                                  args.kv_map.data(), gates.defined() ? gates.data<T>() : nullptr, rope,
                                  static_cast<T>(1.0 / std::sqrt(static_cast<double>(dh))), out.data<T>(),
                                  lse.data<T>());
  });
  std::shared_ptr<Node> node;
  if (any_requires_grad({&q, &k, &v})) {
    auto n = std::make_shared<AttentionNode>();
    n->inputs = {q, k, v};
    n->dims = dims;
    n->theta = args.rope_theta;
    n->kv_map = args.kv_map;
    n->pads = pads;
    n->gates = gates;
    n->out = out;
    n->lse = lse;
    node = n;
  }
  return make_result(std::move(out), std::move(node));
}

Var attention_last(const Var& q_last, const Var& k, const Var& v, const AttentionArgs& args) {
  PR_CHECK(!any_requires_grad({&q_last, &k, &v}),
           "attention_last: inference only (no backward); call it under a NoGradGuard");
  const Checked checked = check_args("attention_last", q_last, k, v, args, true);
  const kernels::AttentionDims& dims = checked.dims;
  const Tensor &pads = checked.pads, &gates = checked.gates;
  const Tensor qc = q_last.value().contiguous(), kc = k.value().contiguous(), vc = v.value().contiguous();
  Tensor out = Tensor::empty(q_last.shape(), q_last.dtype());
  dispatch_floating(q_last.dtype(), "attention_last", [&](auto tag) {
    using T = decltype(tag);
    const auto& rope = kernels::cached_rope_table<T>(dims.T, dims.dh, args.rope_theta);
    kernels::attention_forward_last<T>(dims, qc.data<T>(), kc.data<T>(), vc.data<T>(), pads.data<std::int32_t>(),
                                       args.kv_map.data(), gates.defined() ? gates.data<T>() : nullptr, rope,
                                       static_cast<T>(1.0 / std::sqrt(static_cast<double>(dims.dh))),
                                       out.data<T>());
  });
  return make_result(std::move(out), nullptr);
}

Var attention_cached(const Var& q_last, const Tensor& k_rot, const Tensor& v, const Tensor& rows, std::int64_t length,
                     const AttentionArgs& args) {
  PR_CHECK(!q_last.requires_grad(), "attention_cached: inference only (no backward); call it under a NoGradGuard");
  const std::int64_t dh = args.head_dim;
  PR_CHECK(q_last.dim() == 2 && k_rot.dim() == 3 && k_rot.shape() == v.shape() && k_rot.is_contiguous() &&
               v.is_contiguous() && k_rot.dtype() == q_last.dtype() && v.dtype() == q_last.dtype(),
           "attention_cached: q ", detail::sh(q_last), ", k ", k_rot.shape_str(), ", v ", v.shape_str(),
           " must be [B, heads*head_dim] and contiguous [P, C, kv_heads*head_dim] twice, of one dtype");
  const std::int64_t B = q_last.size(0), P = k_rot.size(0), C = k_rot.size(1);
  PR_CHECK(dh > 0 && dh % 2 == 0 && q_last.size(1) % dh == 0 && k_rot.size(2) % dh == 0, "attention_cached: widths of q ",
           detail::sh(q_last), " and k ", k_rot.shape_str(), " must be multiples of an even head_dim ", dh);
  PR_CHECK(length > 0 && length <= C, "attention_cached: length ", length, " is not in [1, ", C, "]");
  PR_CHECK(rows.dim() == 2 && rows.dtype() == DType::i32 && rows.size(0) == B && rows.size(1) >= length &&
               rows.stride(1) == 1,
           "attention_cached: rows ", rows.shape_str(), " must be i32 [", B, ", >= ", length, "], rows contiguous");
  kernels::AttentionDims dims{B, length, q_last.size(1) / dh, k_rot.size(2) / dh, dh};
  PR_CHECK(static_cast<std::int64_t>(args.kv_map.size()) == dims.Hq, "attention_cached: kv_map has ",
           args.kv_map.size(), " entries for ", dims.Hq, " query heads");
  for (std::int32_t g : args.kv_map)
    PR_CHECK(g >= 0 && g < dims.Hkv, "attention_cached: kv_map entry ", g, " out of range for ", dims.Hkv, " KV heads");
  PR_CHECK(args.pads.defined() && args.pads.dtype() == DType::i32 && args.pads.numel() == B,
           "attention_cached: pads must be i32 [", B, "], got ", args.pads.shape_str());
  const Tensor pads = args.pads.contiguous();
  for (std::int64_t b = 0; b < B; ++b) {
    const std::int32_t p = pads.data<std::int32_t>()[b];
    PR_CHECK(p >= 0 && p <= length, "attention_cached: pads[", b, "] = ", p, " is not in [0, ", length, "]");
    const std::int32_t* r = rows.data<std::int32_t>() + b * rows.stride(0);
    for (std::int64_t j = p; j < length; ++j)
      PR_CHECK(r[j] >= 0 && r[j] < P, "attention_cached: rows[", b, ", ", j, "] = ", r[j], " is not in [0, ", P, ")");
  }
  Tensor gates;
  if (args.head_gates.defined()) {
    PR_CHECK(args.head_gates.numel() == dims.Hq && args.head_gates.dtype() == q_last.dtype(),
             "attention_cached: head gates ", args.head_gates.shape_str(), " for ", dims.Hq, " heads of ",
             detail::sh(q_last));
    gates = args.head_gates.contiguous();
  }
  const Tensor qc = q_last.value().contiguous();
  Tensor out = Tensor::empty(q_last.shape(), q_last.dtype());
  dispatch_floating(q_last.dtype(), "attention_cached", [&](auto tag) {
    using T = decltype(tag);
    const auto& rope = kernels::cached_rope_table<T>(length, dh, args.rope_theta);
    kernels::attention_decode<T>(dims, qc.data<T>(), k_rot.data<T>(), v.data<T>(), C, rows.data<std::int32_t>(),
                                 rows.stride(0), pads.data<std::int32_t>(), args.kv_map.data(),
                                 gates.defined() ? gates.data<T>() : nullptr, rope,
                                 static_cast<T>(1.0 / std::sqrt(static_cast<double>(dh))), out.data<T>());
  });
  return make_result(std::move(out), nullptr);
}

}  // namespace prunerec::ag
