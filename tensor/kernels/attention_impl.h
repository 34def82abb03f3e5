// The kernels of tensor/kernels/attention.h, included twice by attention.cc: into namespace
// kernels::baseline and, compiled for AVX2 + FMA, into kernels::avx2 (Note [kernel
// dispatch] in tensor/kernels/isa.h). No include guard, no includes, no namespace of its own.

namespace {

// Per-task scratch, reused across calls (Note [caching allocator] applies to tensors;
// these small buffers live per thread).
template <class T>
struct Scratch {
  std::vector<T> qr, kr, s, dp, dog, dkr, dvv;
  void reserve(std::int64_t t, std::int64_t dh) {
    const auto td = static_cast<std::size_t>(t * dh), tt = static_cast<std::size_t>(t * t);
    if (qr.size() < td) { qr.resize(td); kr.resize(td); dog.resize(td); dkr.resize(td); dvv.resize(td); }
    if (s.size() < tt) { s.resize(tt); dp.resize(tt); }
  }
};
template <class T>
Scratch<T>& scratch() {
  thread_local Scratch<T> s;
  return s;
}

// dst[i,:] = rope(src[(pad+i)*ld, :]) at position i, for i < L (optionally scaled).
template <class T>
void rotate_rows(const RopeTable<T>& rope, const T* src, std::int64_t ld, std::int64_t L, std::int64_t dh, T mul,
                 T* dst) {
  for (std::int64_t i = 0; i < L; ++i) {
    rope_rotate(rope, i, src + i * ld, dst + i * dh, false);
    if (mul != T(1))
      for (std::int64_t c = 0; c < dh; ++c) dst[i * dh + c] *= mul;
  }
}

// Causal probabilities from scores s [L, L] in place, given each row's log-sum-exp.
template <class T>
void probs_from_lse(T* s, std::int64_t L, const T* lse) {
  for (std::int64_t i = 0; i < L; ++i) {
    T* row = s + i * L;
    for (std::int64_t j = 0; j <= i; ++j) row[j] = exp_fast(row[j] - lse[i]);
    std::fill(row + i + 1, row + L, T(0));
  }
}

// Note [attention parallelism]: one task per (batch row b, KV head g), run as
// fn(scratch, b, g, pads[b]) with the calling thread's scratch reserved for T and dh.
template <class T, class F>
void for_each_row_and_kv_head(const AttentionDims& d, const std::int32_t* pads, F&& fn) {
  parallel_for(0, d.B * d.Hkv, 1, [&](std::int64_t lo, std::int64_t hi) {
    Scratch<T>& sc = scratch<T>();
    sc.reserve(d.T, d.dh);
    for (std::int64_t task = lo; task < hi; ++task) fn(sc, task / d.Hkv, task % d.Hkv, std::int64_t{pads[task / d.Hkv]});
  });
}

}  // namespace

template <class T>
void attention_forward(const AttentionDims& d, const T* q, const T* k, const T* v, const std::int32_t* pads,
                       const std::int32_t* kv_map, const T* gates, const RopeTable<T>& rope, T scale, T* out, T* lse) {
  const std::int64_t ldq = d.Hq * d.dh, ldk = d.Hkv * d.dh;
  for_each_row_and_kv_head<T>(d, pads, [&](Scratch<T>& sc, std::int64_t b, std::int64_t g, std::int64_t pad) {
    const std::int64_t L = d.T - pad;
    const T* kb = k + (b * d.T + pad) * ldk + g * d.dh;
    const T* vb = v + (b * d.T + pad) * ldk + g * d.dh;
    rotate_rows(rope, kb, ldk, L, d.dh, T(1), sc.kr.data());
    for (std::int64_t h = 0; h < d.Hq; ++h) {
      if (kv_map[h] != g) continue;
      T* ob = out + b * d.T * ldq + h * d.dh;
      T* lb = lse + (b * d.Hq + h) * d.T;
      for (std::int64_t i = 0; i < pad; ++i) {
        std::fill(ob + i * ldq, ob + i * ldq + d.dh, T(0));
        lb[i] = 0;
      }
      if (L == 0) continue;
      rotate_rows(rope, q + (b * d.T + pad) * ldq + h * d.dh, ldq, L, d.dh, scale, sc.qr.data());
      T* s = sc.s.data();
      gemm_serial<T>(false, true, L, L, d.dh, T(1), sc.qr.data(), d.dh, sc.kr.data(), d.dh, T(0), s, L);
      for (std::int64_t i = 0; i < L; ++i) {  // causal softmax, row i sees keys 0..i
        T* row = s + i * L;
        T m = -std::numeric_limits<T>::infinity();
        for (std::int64_t j = 0; j <= i; ++j) m = std::max(m, row[j]);
        T z = 0;
        for (std::int64_t j = 0; j <= i; ++j) {
          row[j] = exp_fast(row[j] - m);
          z += row[j];
        }
        const T inv = T(1) / z;
        for (std::int64_t j = 0; j <= i; ++j) row[j] *= inv;
        std::fill(row + i + 1, row + L, T(0));
        lb[pad + i] = m + std::log(z);
      }
      const T gate = gates ? gates[h] : T(1);
      gemm_serial<T>(false, false, L, d.dh, L, gate, s, L, vb, ldk, T(0), ob + pad * ldq, ldq);
    }
  });
}

template <class T>
void attention_backward(const AttentionDims& d, const T* q, const T* k, const T* v, const std::int32_t* pads,
                        const std::int32_t* kv_map, const T* gates, const RopeTable<T>& rope, T scale, const T* out,
                        const T* lse, const T* dout, T* dq, T* dk, T* dv) {
  const std::int64_t ldq = d.Hq * d.dh, ldk = d.Hkv * d.dh;
  for_each_row_and_kv_head<T>(d, pads, [&](Scratch<T>& sc, std::int64_t b, std::int64_t g, std::int64_t pad) {
    const std::int64_t L = d.T - pad;
    const T* kb = k + (b * d.T + pad) * ldk + g * d.dh;
    const T* vb = v + (b * d.T + pad) * ldk + g * d.dh;
    T* dkb = dk + b * d.T * ldk + g * d.dh;
    T* dvb = dv + b * d.T * ldk + g * d.dh;
    for (std::int64_t i = 0; i < d.T; ++i) {  // padding rows stay zero; others are summed below
      std::fill(dkb + i * ldk, dkb + i * ldk + d.dh, T(0));
      std::fill(dvb + i * ldk, dvb + i * ldk + d.dh, T(0));
    }
    rotate_rows(rope, kb, ldk, L, d.dh, T(1), sc.kr.data());
    std::fill(sc.dkr.begin(), sc.dkr.begin() + L * d.dh, T(0));
    std::fill(sc.dvv.begin(), sc.dvv.begin() + L * d.dh, T(0));
    for (std::int64_t h = 0; h < d.Hq; ++h) {
      if (kv_map[h] != g) continue;
      T* dqb = dq + b * d.T * ldq + h * d.dh;
      for (std::int64_t i = 0; i < pad; ++i) std::fill(dqb + i * ldq, dqb + i * ldq + d.dh, T(0));
      if (L == 0) continue;
      const T gate = gates ? gates[h] : T(1);
      const T* ob = out + (b * d.T + pad) * ldq + h * d.dh;
      const T* dob = dout + (b * d.T + pad) * ldq + h * d.dh;
      const T* lb = lse + (b * d.Hq + h) * d.T + pad;
      rotate_rows(rope, q + (b * d.T + pad) * ldq + h * d.dh, ldq, L, d.dh, scale, sc.qr.data());
      // P from the saved log-sum-exp.
      T* p = sc.s.data();
      gemm_serial<T>(false, true, L, L, d.dh, T(1), sc.qr.data(), d.dh, sc.kr.data(), d.dh, T(0), p, L);
      probs_from_lse(p, L, lb);
      // dO = gate * dout; D_i = dout_i . out_i  (= dO_i . O_i, gate cancels).
      T* dog = sc.dog.data();
      std::vector<T> D(static_cast<std::size_t>(L));
      for (std::int64_t i = 0; i < L; ++i) {
        T acc = 0;
        for (std::int64_t c = 0; c < d.dh; ++c) {
          dog[i * d.dh + c] = gate * dob[i * ldq + c];
          acc += dob[i * ldq + c] * ob[i * ldq + c];
        }
        D[i] = acc;
      }
      // dV += P^T dO
      gemm_serial<T>(true, false, L, d.dh, L, T(1), p, L, dog, d.dh, T(1), sc.dvv.data(), d.dh);
      // dP = dO V^T;  dS = P o (dP - D)
      T* ds = sc.dp.data();
      gemm_serial<T>(false, true, L, L, d.dh, T(1), dog, d.dh, vb, ldk, T(0), ds, L);
      for (std::int64_t i = 0; i < L; ++i) {
        T* dsr = ds + i * L;
        const T* pr = p + i * L;
        for (std::int64_t j = 0; j <= i; ++j) dsr[j] = pr[j] * (dsr[j] - D[i]);
        std::fill(dsr + i + 1, dsr + L, T(0));
      }
      // dKr += dS^T (scale * Qr);  dQr = scale * dS Kr  (Qr in the scratch is already scaled)
      gemm_serial<T>(true, false, L, d.dh, L, T(1), ds, L, sc.qr.data(), d.dh, T(1), sc.dkr.data(), d.dh);
      gemm_serial<T>(false, false, L, d.dh, L, scale, ds, L, sc.kr.data(), d.dh, T(0), sc.qr.data(), d.dh);
      for (std::int64_t i = 0; i < L; ++i)
        rope_rotate(rope, i, sc.qr.data() + i * d.dh, dqb + (pad + i) * ldq, true);
    }
    for (std::int64_t i = 0; i < L; ++i) {
      rope_rotate(rope, i, sc.dkr.data() + i * d.dh, dkb + (pad + i) * ldk, true);
      std::copy(sc.dvv.data() + i * d.dh, sc.dvv.data() + (i + 1) * d.dh, dvb + (pad + i) * ldk);
    }
  });
}

// One query head at the newest position: out[0, dh) = gate * sum_j softmax_j(qr . key(j)) value(j)
// over L > 0 keys, qr already rotated and scaled; key(j) and value(j) return pointers to dh
// values. s is scratch for L scores. attention_forward_last and attention_decode both end
// here, so they give the same bits when their keys are the same.
template <class T, class KeyAt, class ValueAt>
void attend_newest(const T* qr, std::int64_t L, std::int64_t dh, KeyAt key, ValueAt value, T gate, T* s, T* ob) {
  T m = -std::numeric_limits<T>::infinity();
  for (std::int64_t j = 0; j < L; ++j) {
    const T* kr = key(j);
    T acc = 0;
    for (std::int64_t c = 0; c < dh; ++c) acc += qr[c] * kr[c];
    s[j] = acc;
    m = std::max(m, acc);
  }
  T z = 0;
  for (std::int64_t j = 0; j < L; ++j) {
    s[j] = exp_fast(s[j] - m);
    z += s[j];
  }
  const T w = gate / z;
  for (std::int64_t j = 0; j < L; ++j) {
    const T p = s[j] * w;
    const T* vr = value(j);
    for (std::int64_t c = 0; c < dh; ++c) ob[c] += p * vr[c];
  }
}

template <class T>
void attention_forward_last(const AttentionDims& d, const T* q_last, const T* k, const T* v,
                            const std::int32_t* pads, const std::int32_t* kv_map, const T* gates,
                            const RopeTable<T>& rope, T scale, T* out_last) {
  const std::int64_t ldq = d.Hq * d.dh, ldk = d.Hkv * d.dh;
  for_each_row_and_kv_head<T>(d, pads, [&](Scratch<T>& sc, std::int64_t b, std::int64_t g, std::int64_t pad) {
    const std::int64_t L = d.T - pad;
    const T* kb = k + (b * d.T + pad) * ldk + g * d.dh;
    const T* vb = v + (b * d.T + pad) * ldk + g * d.dh;
    if (L > 0) rotate_rows(rope, kb, ldk, L, d.dh, T(1), sc.kr.data());
    for (std::int64_t h = 0; h < d.Hq; ++h) {
      if (kv_map[h] != g) continue;
      T* ob = out_last + b * ldq + h * d.dh;
      std::fill(ob, ob + d.dh, T(0));
      if (L == 0) continue;
      T* qr = sc.qr.data();
      rope_rotate(rope, L - 1, q_last + b * ldq + h * d.dh, qr, false);
      for (std::int64_t c = 0; c < d.dh; ++c) qr[c] *= scale;
      attend_newest<T>(
          qr, L, d.dh, [&](std::int64_t j) { return sc.kr.data() + j * d.dh; },
          [&](std::int64_t j) { return vb + j * ldk; }, gates ? gates[h] : T(1), sc.s.data(), ob);
    }
  });
}

template <class T>
void attention_decode(const AttentionDims& d, const T* q_last, const T* k_rot, const T* v, std::int64_t capacity,
                      const std::int32_t* rows, std::int64_t rows_ld, const std::int32_t* pads,
                      const std::int32_t* kv_map, const T* gates, const RopeTable<T>& rope, T scale, T* out_last) {
  const std::int64_t ldq = d.Hq * d.dh, ldk = d.Hkv * d.dh;
  parallel_for(0, d.B * d.Hkv, 1, [&](std::int64_t lo, std::int64_t hi) {
    Scratch<T>& sc = scratch<T>();
    sc.reserve(1, d.dh);
    if (sc.s.size() < static_cast<std::size_t>(d.T)) sc.s.resize(static_cast<std::size_t>(d.T));
    for (std::int64_t task = lo; task < hi; ++task) {
      const std::int64_t b = task / d.Hkv, g = task % d.Hkv, pad = pads[b], L = d.T - pad;
      const std::int32_t* rb = rows + b * rows_ld + pad;  // physical row of each unpadded position
      // Offset of position pad + j of row b, head g, in the [P, capacity, Hkv*dh] buffers.
      const auto at = [&](std::int64_t j) { return (rb[j] * capacity + pad + j) * ldk + g * d.dh; };
      for (std::int64_t h = 0; h < d.Hq; ++h) {
        if (kv_map[h] != g) continue;
        T* ob = out_last + b * ldq + h * d.dh;
        std::fill(ob, ob + d.dh, T(0));
        if (L == 0) continue;
        T* qr = sc.qr.data();
        rope_rotate(rope, L - 1, q_last + b * ldq + h * d.dh, qr, false);
        for (std::int64_t c = 0; c < d.dh; ++c) qr[c] *= scale;
        attend_newest<T>(
            qr, L, d.dh, [&](std::int64_t j) { return k_rot + at(j); }, [&](std::int64_t j) { return v + at(j); },
            gates ? gates[h] : T(1), sc.s.data(), ob);
      }
    }
  });
}
