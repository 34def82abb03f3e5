#!/usr/bin/env python3
"""Writes the small Hugging Face checkpoints the import tests read (tests/fixtures/hf/), and
expected logits from a plain-PyTorch forward of each architecture written here from the
published definitions (transformers' modeling_qwen2.py / modeling_llama.py: pre-norm
blocks, RMSNorm in float32, rotate-half RoPE with inv_freq = 1 / theta^(arange(0, dh, 2) / dh)
in float32, repeat_kv grouping, causal softmax attention scaled by 1/sqrt(head_dim),
SwiGLU MLP, final norm, tied or untied lm_head).

    /usr/bin/python3 tools/make_hf_fixtures.py                  # rewrites tests/fixtures/hf/
    /usr/bin/python3 tools/make_hf_fixtures.py --big /tmp/q05   # a random Qwen2-0.5B-shaped
                                                                # checkpoint (bf16, ~1 GB), for
                                                                # the import benchmark; never committed

Folders written (weights random, seed fixed; every folder's config.json is the model's):
    qwen2/        Qwen2ForCausalLM, F32: q/k/v biases, tied head, GQA 4/2, head_dim 16 != 32/4
    qwen2-bf16/   the same weights rounded to BF16
    llama/        LlamaForCausalLM, F32, no biases, untied head, GQA 6/2, no head_dim field,
                  sharded: model.safetensors.index.json + two shards
    llama-bf16/   the same weights rounded to BF16, one file
    expected.json per architecture folder: {"sequences": [[ids]], "logits": [[[V floats] per
                  position] per sequence]} from the f32 weights (computed in float64 from
                  float32 inputs, then rounded to float32).
Needs Debian's python3-torch; CI never runs this (the outputs are committed).
"""
import argparse
import json
import math
import os
import struct

import torch

DTYPES = {torch.float32: "F32", torch.bfloat16: "BF16", torch.float16: "F16"}


def write_safetensors(path, tensors, metadata=None):
    """tensors: list of (name, tensor); written in the given order, 8-byte aligned header."""
    header = {}
    if metadata:
        header["__metadata__"] = metadata
    offset = 0
    blobs = []
    for name, t in tensors:
        t = t.contiguous()
        if t.dtype in (torch.bfloat16, torch.float16):
            raw = t.view(torch.int16).numpy().tobytes()
        else:
            raw = t.numpy().tobytes()
        header[name] = {"dtype": DTYPES[t.dtype], "shape": list(t.shape), "data_offsets": [offset, offset + len(raw)]}
        offset += len(raw)
        blobs.append(raw)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - (8 + len(h)) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def make_weights(cfg, gen, std=0.15):
    """HF-named float32 tensors for cfg (a config.json dict)."""
    d, L, V = cfg["hidden_size"], cfg["num_hidden_layers"], cfg["vocab_size"]
    hq, hkv = cfg["num_attention_heads"], cfg["num_key_value_heads"]
    dh = cfg.get("head_dim", d // hq)
    F = cfg["intermediate_size"]
    bias = cfg["model_type"] == "qwen2"

    def rnd(*shape, scale=std):
        return (torch.randn(*shape, generator=gen, dtype=torch.float64) * scale).float()

    w = [("model.embed_tokens.weight", rnd(V, d, scale=1.0))]
    for l in range(L):
        p = f"model.layers.{l}."
        w.append((p + "input_layernorm.weight", (1 + rnd(d, scale=0.2))))
        for n, rows in (("q_proj", hq * dh), ("k_proj", hkv * dh), ("v_proj", hkv * dh)):
            w.append((p + f"self_attn.{n}.weight", rnd(rows, d)))
            if bias:
                w.append((p + f"self_attn.{n}.bias", rnd(rows, scale=0.3)))
        w.append((p + "self_attn.o_proj.weight", rnd(d, hq * dh)))
        w.append((p + "post_attention_layernorm.weight", (1 + rnd(d, scale=0.2))))
        w.append((p + "mlp.gate_proj.weight", rnd(F, d)))
        w.append((p + "mlp.up_proj.weight", rnd(F, d)))
        w.append((p + "mlp.down_proj.weight", rnd(d, F)))
    w.append(("model.norm.weight", (1 + rnd(d, scale=0.2))))
    if not cfg["tie_word_embeddings"]:
        w.append(("lm_head.weight", rnd(V, d)))
    return w


def rms_norm(x, weight, eps):
    # Qwen2RMSNorm / LlamaRMSNorm: variance in float32, x * rsqrt(var + eps), times weight.
    var = x.pow(2).mean(-1, keepdim=True)
    return weight * (x * torch.rsqrt(var + eps))


def rotate_half(x):
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


def reference_logits(cfg, weights, ids):
    """Logits [T, V] for one unpadded sequence, every position (float64 arithmetic on the
    float32 weights; RoPE tables as transformers builds them, in float32)."""
    W = {k: v.double() for k, v in weights}
    d, L = cfg["hidden_size"], cfg["num_hidden_layers"]
    hq, hkv = cfg["num_attention_heads"], cfg["num_key_value_heads"]
    dh = cfg.get("head_dim", d // hq)
    eps, theta = cfg["rms_norm_eps"], cfg.get("rope_theta", 10000.0)
    T = len(ids)
    inv_freq = 1.0 / (theta ** (torch.arange(0, dh, 2, dtype=torch.int64).float() / dh))
    freqs = torch.outer(torch.arange(T).float(), inv_freq)
    emb = torch.cat((freqs, freqs), dim=-1)
    cos, sin = emb.cos().double(), emb.sin().double()  # [T, dh]
    x = W["model.embed_tokens.weight"][torch.tensor(ids)]
    mask = torch.full((T, T), float("-inf"), dtype=torch.float64).triu(1)
    for l in range(L):
        p = f"model.layers.{l}."
        h = rms_norm(x, W[p + "input_layernorm.weight"], eps)

        def proj(n):
            y = h @ W[p + f"self_attn.{n}.weight"].T
            b = W.get(p + f"self_attn.{n}.bias")
            return y + b if b is not None else y

        q = proj("q_proj").view(T, hq, dh).transpose(0, 1)
        k = proj("k_proj").view(T, hkv, dh).transpose(0, 1)
        v = proj("v_proj").view(T, hkv, dh).transpose(0, 1)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        k = k.repeat_interleave(hq // hkv, dim=0)  # repeat_kv
        v = v.repeat_interleave(hq // hkv, dim=0)
        att = torch.softmax(q @ k.transpose(1, 2) / math.sqrt(dh) + mask, dim=-1)
        o = (att @ v).transpose(0, 1).reshape(T, hq * dh)
        x = x + o @ W[p + "self_attn.o_proj.weight"].T
        h = rms_norm(x, W[p + "post_attention_layernorm.weight"], eps)
        g = h @ W[p + "mlp.gate_proj.weight"].T
        u = h @ W[p + "mlp.up_proj.weight"].T
        x = x + (torch.nn.functional.silu(g) * u) @ W[p + "mlp.down_proj.weight"].T
    x = rms_norm(x, W["model.norm.weight"], eps)
    head = W.get("lm_head.weight", W["model.embed_tokens.weight"])
    return (x @ head.T).float()


def write_model(folder, cfg, weights, dtype=torch.float32, shards=1):
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
        f.write("\n")
    ws = [(n, t.to(dtype)) for n, t in weights]
    for stale in ("model.safetensors", "model.safetensors.index.json"):
        if os.path.exists(os.path.join(folder, stale)):
            os.remove(os.path.join(folder, stale))
    if shards == 1:
        write_safetensors(os.path.join(folder, "model.safetensors"), ws, {"format": "pt"})
        return
    per = (len(ws) + shards - 1) // shards
    weight_map = {}
    for s in range(shards):
        name = f"model-{s + 1:05d}-of-{shards:05d}.safetensors"
        part = ws[s * per:(s + 1) * per]
        write_safetensors(os.path.join(folder, name), part, {"format": "pt"})
        weight_map.update({n: name for n, _ in part})
    total = sum(t.numel() * t.element_size() for _, t in ws)
    with open(os.path.join(folder, "model.safetensors.index.json"), "w") as f:
        json.dump({"metadata": {"total_size": total}, "weight_map": weight_map}, f, indent=2)
        f.write("\n")


QWEN2 = {
    "architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2", "hidden_size": 32, "num_hidden_layers": 2,
    "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 16, "intermediate_size": 48,
    "rms_norm_eps": 1e-6, "rope_theta": 1000000.0, "vocab_size": 96, "tie_word_embeddings": True,
    "max_position_embeddings": 128, "hidden_act": "silu", "use_sliding_window": False, "sliding_window": 64,
    "max_window_layers": 2, "rope_scaling": None, "bos_token_id": 90, "eos_token_id": 91, "torch_dtype": "float32",
    "attention_dropout": 0.0, "initializer_range": 0.02, "use_cache": True,
}
LLAMA = {
    "architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 24, "num_hidden_layers": 3,
    "num_attention_heads": 6, "num_key_value_heads": 2, "intermediate_size": 40, "rms_norm_eps": 1e-5,
    "rope_theta": 10000.0, "vocab_size": 80, "tie_word_embeddings": False, "max_position_embeddings": 64,
    "hidden_act": "silu", "attention_bias": False, "mlp_bias": False, "rope_scaling": None, "bos_token_id": 1,
    "eos_token_id": 2, "pretraining_tp": 1, "torch_dtype": "float32", "initializer_range": 0.02,
}


def small_fixtures(root):
    for name, cfg, seed, shards in (("qwen2", QWEN2, 1, 1), ("llama", LLAMA, 2, 2)):
        gen = torch.Generator().manual_seed(seed)
        weights = make_weights(cfg, gen)
        V = cfg["vocab_size"]
        seqs = [[1, 2, 3, 4, 5], [7], torch.randint(0, V, (13,), generator=gen).tolist()]
        write_model(os.path.join(root, name), cfg, weights, torch.float32, shards)
        bcfg = dict(cfg, torch_dtype="bfloat16")
        write_model(os.path.join(root, name + "-bf16"), bcfg, weights, torch.bfloat16, 1)
        expected = {"sequences": seqs,
                    "logits": [reference_logits(cfg, weights, s).tolist() for s in seqs]}
        with open(os.path.join(root, name, "expected.json"), "w") as f:
            json.dump(expected, f, separators=(",", ":"))
            f.write("\n")


def big_fixture(folder):
    """Qwen2-0.5B's shapes (paper-spec 2.1), random BF16 weights: only for the benchmark."""
    cfg = dict(QWEN2, hidden_size=896, num_hidden_layers=24, num_attention_heads=14, num_key_value_heads=2,
               intermediate_size=4864, vocab_size=151936, max_position_embeddings=32768, torch_dtype="bfloat16")
    del cfg["head_dim"]
    gen = torch.Generator().manual_seed(3)
    weights = make_weights(cfg, gen, std=0.02)
    write_model(folder, cfg, weights, torch.bfloat16, 1)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures", "hf"))
    ap.add_argument("--big", help="write a Qwen2-0.5B-shaped random checkpoint into this folder instead")
    args = ap.parse_args()
    if args.big:
        big_fixture(args.big)
    else:
        small_fixtures(args.out)


if __name__ == "__main__":
    main()
