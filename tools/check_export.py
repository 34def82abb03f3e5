#!/usr/bin/python3
"""Load a `prunerec export` folder in plain PyTorch and check it against prunerec.

The export (docs/export.md) is model.safetensors (Qwen2 tensor names), config.json (Qwen2
fields plus per-layer lists for uneven, pruned models) and items.tsv. Stock transformers
Qwen2 builds every layer alike, so it cannot hold a pruned model; this file is the loader
for any export, uneven or not, and needs nothing but PyTorch (the safetensors file is
parsed by hand with struct + json).

Check an export against prunerec (CI does not run this; it needs Debian's python3-torch):

    # export with check.json (prunerec's logits for 8 random histories), then compare:
    /usr/bin/python3 tools/check_export.py --model runs/ml1m/teacher.prc --prunerec build/apps/prunerec
    # or check a folder that already holds check.json
    #   (prunerec export ... --check-random 8, or --check-histories FILE):
    /usr/bin/python3 tools/check_export.py out/ml1m-hf

It prints the largest absolute logit difference, the tolerance, the top-10 agreement and
PASS or FAIL (exit code 0 or 1).

Use as a library:

    import sys; sys.path.insert(0, "tools")
    from check_export import load_export, build_model
    config, tensors, items = load_export("out/ml1m-hf")
    model = build_model(config, tensors)            # a torch.nn.Module, float32
    ids = torch.tensor([[-1, -1, 17, 4, 99]])       # item indices (items.tsv), left-padded with -1
    logits = model(ids)                             # [1, 5, num_items]; logits[:, -1] scores the next item
    best = logits[0, -1].topk(10).indices           # -> items[i] = (item_id, title)

Semantics (the same as the reference model of tools/make_golden.py, which the C++ engine is
tested against):
  * histories are left-padded with -1; padded positions embed to 0, are never attended to,
    and their outputs are exactly 0;
  * the RoPE position of step t in row b is t - pad_b (counted from the first real item);
    RoPE rotates halves (rotate_half), as Qwen2;
  * query head h of layer l reads KV head layer_kv_map[l][h] (grouped-query attention with
    an explicit map); every layer has its own head and MLP widths; a layer with 0 heads
    or 0 MLP channels skips that sub-block;
  * x += o_proj(attn(input_layernorm(x))); x += down(silu(gate(h)) * up(h)) with
    h = post_attention_layernorm(x); logits = norm(x) @ W^T, W = lm_head.weight or,
    tied, model.embed_tokens.weight.
"""

import argparse
import json
import math
import os
import shutil
import struct
import subprocess
import sys
import tempfile

import torch

# ---- reading an export -------------------------------------------------------------------

DTYPES = {"F32": (torch.float32, 4), "F64": (torch.float64, 8), "F16": (torch.float16, 2), "BF16": (torch.bfloat16, 2)}


def read_safetensors(path):
    """name -> tensor, checking the layout rules (offsets contiguous, in range, no gap)."""
    with open(path, "rb") as f:
        blob = f.read()
    if len(blob) < 8:
        raise ValueError(f"{path}: shorter than the 8-byte header length")
    (n,) = struct.unpack("<Q", blob[:8])
    if 8 + n > len(blob):
        raise ValueError(f"{path}: header length {n} runs past the end of the file")
    header = json.loads(blob[8:8 + n].decode("utf-8"))
    data = memoryview(blob)[8 + n:]
    entries = sorted(((v["data_offsets"][0], v["data_offsets"][1], k, v)
                      for k, v in header.items() if k != "__metadata__"))
    tensors, expect = {}, 0
    for begin, end, name, v in entries:
        dtype, size = DTYPES[v["dtype"]]
        shape = [int(d) for d in v["shape"]]
        numel = math.prod(shape)
        if begin != expect or end - begin != numel * size or end > len(data):
            raise ValueError(f"{path}: tensor {name}: bad data_offsets [{begin}, {end}] for {v['dtype']}{shape}")
        expect = end
        if numel == 0:
            tensors[name] = torch.zeros(shape, dtype=dtype)
        else:
            tensors[name] = torch.frombuffer(bytearray(data[begin:end]), dtype=dtype).reshape(shape)
    if expect != len(data):
        raise ValueError(f"{path}: {len(data) - expect} bytes after the last tensor")
    return tensors


def unescape_tsv(s):
    out, i = [], 0
    while i < len(s):
        if s[i] == "\\" and i + 1 < len(s):
            out.append({"t": "\t", "n": "\n", "r": "\r", "\\": "\\"}.get(s[i + 1], s[i + 1]))
            i += 2
        else:
            out.append(s[i])
            i += 1
    return "".join(out)


def load_export(folder):
    """(config dict, name -> tensor, [(item_id, title)] indexed by logit column)."""
    with open(os.path.join(folder, "config.json"), encoding="utf-8") as f:
        config = json.load(f)
    tensors = read_safetensors(os.path.join(folder, "model.safetensors"))
    items = []
    items_path = os.path.join(folder, "items.tsv")
    if os.path.exists(items_path):
        with open(items_path, encoding="utf-8") as f:
            next(f)  # header
            for line in f:
                index, item_id, title = line.rstrip("\n").split("\t")
                assert int(index) == len(items), f"items.tsv: index {index} out of order"
                items.append((unescape_tsv(item_id), unescape_tsv(title)))
    return config, tensors, items


def layer_widths(config):
    """Per-layer (heads, kv_heads, mlp_width, kv_map): the per-layer lists when present (any
    prunerec export), else the uniform Qwen2 fields with contiguous KV groups."""
    L = config["num_hidden_layers"]
    heads = config.get("layer_num_attention_heads", [config["num_attention_heads"]] * L)
    kv_heads = config.get("layer_num_key_value_heads", [config["num_key_value_heads"]] * L)
    widths = config.get("layer_intermediate_size", [config["intermediate_size"]] * L)
    kv_maps = config.get("layer_kv_map")
    if kv_maps is None:
        kv_maps = [[h // (hq // hkv) for h in range(hq)] if hkv else [] for hq, hkv in zip(heads, kv_heads)]
    return list(zip(heads, kv_heads, widths, kv_maps))


# ---- the model -------------------------------------------------------------------------------

def rmsnorm(x, weight, eps):
    return x / torch.sqrt(x.pow(2).mean(dim=-1, keepdim=True) + eps) * weight


def rotate_half(x):
    half = x.shape[-1] // 2
    return torch.cat([-x[..., half:], x[..., :half]], dim=-1)


def leading_pads(ids):
    """ids [B,T], left-padded with -1 -> pads [B]."""
    real = ids >= 0
    pads = (~real).long().cumprod(dim=1).sum(dim=1)
    steps = torch.arange(ids.shape[1])[None, :]
    if bool(((steps >= pads[:, None]) & ~real).any()):
        raise ValueError("ids must be left-padded: -1 after a real item")
    return pads


class ExportedRecommender(torch.nn.Module):
    """The exported transformer: forward(ids [B,T] int64, left-padded with -1) -> logits [B,T,V]."""

    def __init__(self, config, tensors, dtype=torch.float32):
        super().__init__()
        self.config = config
        self.head_dim = config["head_dim"]
        self.theta = float(config["rope_theta"])
        self.eps = float(config["rms_norm_eps"])
        self.layers = layer_widths(config)
        self.params = torch.nn.ParameterDict()
        for name, t in tensors.items():
            self.params[name.replace(".", "/")] = torch.nn.Parameter(t.to(dtype).clone(), requires_grad=False)
        self.tied = bool(config.get("tie_word_embeddings", True)) or "lm_head.weight" not in tensors

    def p(self, name):
        return self.params[name.replace(".", "/")]

    def attention(self, q, k, v, pads, kv_map):
        B, T, _ = q.shape
        dh, num_heads = self.head_dim, len(kv_map)
        qh = q.reshape(B, T, num_heads, dh).transpose(1, 2)     # [B,Hq,T,dh]
        kh = k.reshape(B, T, -1, dh).transpose(1, 2)            # [B,Hkv,T,dh]
        vh = v.reshape(B, T, -1, dh).transpose(1, 2)
        inv_freq = self.theta ** (-torch.arange(0, dh // 2, dtype=torch.float64) * 2.0 / dh)
        positions = torch.arange(T, dtype=torch.float64)[None, :] - pads[:, None].to(torch.float64)  # [B,T]
        angle = positions[:, :, None] * inv_freq[None, None, :]
        cos = torch.cat([torch.cos(angle)] * 2, dim=-1)[:, None].to(q.dtype)  # [B,1,T,dh]
        sin = torch.cat([torch.sin(angle)] * 2, dim=-1)[:, None].to(q.dtype)
        qh = qh * cos + rotate_half(qh) * sin
        kh = kh * cos + rotate_half(kh) * sin
        index = torch.tensor(kv_map, dtype=torch.int64)
        kh, vh = kh[:, index], vh[:, index]                     # [B,Hq,T,dh]
        steps = torch.arange(T)
        i, j = steps[:, None], steps[None, :]
        visible = (j >= pads[:, None, None]) & (j <= i)         # [B,T,T]
        query_valid = steps[None, :] >= pads[:, None]           # [B,T]
        allowed = visible | ~query_valid[:, :, None]            # padded rows: finite softmax, zeroed below
        scores = qh @ kh.transpose(-1, -2) / math.sqrt(dh)
        scores = scores.masked_fill(~allowed[:, None], float("-inf"))
        probs = torch.softmax(scores, dim=-1) * query_valid[:, None, :, None].to(q.dtype)
        return (probs @ vh).transpose(1, 2).reshape(B, T, num_heads * dh)

    def forward(self, ids):
        ids = torch.as_tensor(ids, dtype=torch.int64)
        pads = leading_pads(ids)
        embed = self.p("model.embed_tokens.weight")
        x = embed[ids.clamp(min=0)] * (ids >= 0).to(embed.dtype)[:, :, None]
        for l, (heads, kv_heads, width, kv_map) in enumerate(self.layers):
            pre = f"model.layers.{l}."
            if heads > 0:
                h = rmsnorm(x, self.p(pre + "input_layernorm.weight"), self.eps)
                q = h @ self.p(pre + "self_attn.q_proj.weight").T + self.p(pre + "self_attn.q_proj.bias")
                k = h @ self.p(pre + "self_attn.k_proj.weight").T + self.p(pre + "self_attn.k_proj.bias")
                v = h @ self.p(pre + "self_attn.v_proj.weight").T + self.p(pre + "self_attn.v_proj.bias")
                x = x + self.attention(q, k, v, pads, kv_map) @ self.p(pre + "self_attn.o_proj.weight").T
            if width > 0:
                h = rmsnorm(x, self.p(pre + "post_attention_layernorm.weight"), self.eps)
                act = torch.nn.functional.silu(h @ self.p(pre + "mlp.gate_proj.weight").T) * (h @ self.p(pre + "mlp.up_proj.weight").T)
                x = x + act @ self.p(pre + "mlp.down_proj.weight").T
        h = rmsnorm(x, self.p("model.norm.weight"), self.eps)
        head = embed if self.tied else self.p("lm_head.weight")
        return h @ head.T


def build_model(config, tensors, dtype=torch.float32):
    """The model of an export; checks that every tensor has the shape config.json implies."""
    d, dh, V = config["hidden_size"], config["head_dim"], config["vocab_size"]
    want = {"model.embed_tokens.weight": [V, d], "model.norm.weight": [d]}
    if not config.get("tie_word_embeddings", True):
        want["lm_head.weight"] = [V, d]
    for l, (hq, hkv, f, kv_map) in enumerate(layer_widths(config)):
        if len(kv_map) != hq or any(not 0 <= g < hkv for g in kv_map):
            raise ValueError(f"layer {l}: kv map {kv_map} does not fit {hq} heads and {hkv} KV heads")
        p = f"model.layers.{l}."
        want.update({
            p + "input_layernorm.weight": [d], p + "post_attention_layernorm.weight": [d],
            p + "self_attn.q_proj.weight": [hq * dh, d], p + "self_attn.q_proj.bias": [hq * dh],
            p + "self_attn.k_proj.weight": [hkv * dh, d], p + "self_attn.k_proj.bias": [hkv * dh],
            p + "self_attn.v_proj.weight": [hkv * dh, d], p + "self_attn.v_proj.bias": [hkv * dh],
            p + "self_attn.o_proj.weight": [d, hq * dh],
            p + "mlp.gate_proj.weight": [f, d], p + "mlp.up_proj.weight": [f, d], p + "mlp.down_proj.weight": [d, f],
        })
    have = {k: list(v.shape) for k, v in tensors.items()}
    if have != want:
        missing = sorted(set(want) - set(have))
        extra = sorted(set(have) - set(want))
        wrong = sorted(k for k in set(want) & set(have) if want[k] != have[k])
        raise ValueError(f"export does not match config.json: missing {missing[:5]}, unexpected {extra[:5]}, "
                         f"wrong shapes {[(k, have[k], want[k]) for k in wrong[:5]]}")
    return ExportedRecommender(config, tensors, dtype)


# ---- the check ---------------------------------------------------------------------------------

# prunerec computes in float32; the reference runs in float64 on the same float32 weights. The
# difference is float32 rounding accumulated over the layers, a few 1e-6 relative to the
# logits' scale on the models tried (docs/export.md); the tolerance leaves a wide margin
# while staying far below any real mistake (a wrong RoPE position, mask or head map
# moves logits by 1e-2 or more).
RELATIVE_TOLERANCE = 1e-4


def check(folder):
    config, tensors, items = load_export(folder)
    with open(os.path.join(folder, "check.json"), encoding="utf-8") as f:
        ref = json.load(f)
    model = build_model(config, tensors, dtype=torch.float64)
    histories = ref["histories"]
    T = max(len(h) for h in histories)
    ids = torch.full((len(histories), T), -1, dtype=torch.int64)
    for b, h in enumerate(histories):
        ids[b, T - len(h):] = torch.tensor(h, dtype=torch.int64)
    with torch.no_grad():
        ours = model(ids)[:, -1]                                   # [N, V]
    theirs = torch.tensor(ref["logits"], dtype=torch.float64)
    if ours.shape != theirs.shape:
        print(f"FAIL: logits shape {list(ours.shape)} != prunerec's {list(theirs.shape)}")
        return False
    diff = (ours - theirs).abs().max().item()
    scale = max(1.0, theirs.abs().max().item())
    tolerance = RELATIVE_TOLERANCE * scale
    k = min(10, theirs.shape[1])
    agree = sum(len(set(ours[b].topk(k).indices.tolist()) & set(theirs[b].topk(k).indices.tolist()))
                for b in range(len(histories))) / (k * len(histories))
    layers = layer_widths(config)
    print(f"export: {folder}: {config['num_hidden_layers']} layers, hidden {config['hidden_size']}, "
          f"heads {[l[0] for l in layers]}, kv heads {[l[1] for l in layers]}, mlp {[l[2] for l in layers]}, "
          f"{config['vocab_size']} items, uniform_layers {config.get('uniform_layers')}")
    print(f"histories: {len(histories)} (lengths {[len(h) for h in histories]}), one left-padded batch")
    print(f"max |logit diff| = {diff:.3e}; max |logit| = {scale:.3f}; tolerance = {RELATIVE_TOLERANCE:g} x "
          f"max(1, max |logit|) = {tolerance:.3e}; top-{k} agreement {agree:.3f}")
    ok = diff <= tolerance
    print("PASS" if ok else "FAIL")
    return ok


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("folder", nargs="?", help="an export folder holding check.json")
    ap.add_argument("--model", help="a prunerec model file: export it (with check.json), then check")
    ap.add_argument("--prunerec", default=None, help="the prunerec binary (default: build/apps/prunerec)")
    ap.add_argument("--histories", type=int, default=8, help="random histories for check.json (with --model)")
    ap.add_argument("--out", help="export folder for --model (default: a temporary folder, removed after)")
    args = ap.parse_args()
    if bool(args.folder) == bool(args.model):
        ap.error("give an export folder or --model, not both")
    torch.set_num_threads(1)
    if args.folder:
        return 0 if check(args.folder) else 1
    binary = args.prunerec or os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                           "build", "apps", "prunerec")
    tmp = None if args.out else tempfile.mkdtemp(prefix="prunerec_check_")
    out = args.out or os.path.join(tmp, "export")
    try:
        cmd = [binary, "export", "--model", args.model, "--format", "safetensors", "--out", out,
               "--check-random", str(args.histories)]
        print("$ " + " ".join(cmd))
        subprocess.run(cmd, check=True)
        return 0 if check(out) else 1
    finally:
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
