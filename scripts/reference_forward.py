#!/usr/bin/env python3
"""Independent numpy reference forward pass for the runtime's correctness tests.

Reads a Hugging Face folder directly (config.json + model.safetensors, or sharded shards with
model.safetensors.index.json), parsing safetensors by hand (u64 LE header length, JSON header,
byte buffer; F32 / F16 / BF16), and computes the logits of a token-id sequence in float64 with
the Hugging Face formulas of GPT2LMHeadModel and LlamaForCausalLM (no KV cache, one causal
window from position 0). It shares no code with the Swift runtime.

    python3 scripts/reference_forward.py Fixtures/tiny-llama --tokens 5,17,300 [--out logits.json]

Output: JSON {"tokens": [...], "vocab_size": V, "logits": [[...V floats] per token]} on stdout
or in --out.
"""
import argparse
import json
import math
import os
import struct
import sys

import numpy as np


def read_safetensors(path):
    """Returns {name: float64 array} for one .safetensors file."""
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n].decode("utf-8"))
    buf = data[8 + n:]
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        start, end = info["data_offsets"]
        raw = buf[start:end]
        dtype = info["dtype"]
        if dtype == "F32":
            a = np.frombuffer(raw, dtype="<f4").astype(np.float64)
        elif dtype == "F16":
            a = np.frombuffer(raw, dtype="<f2").astype(np.float64)
        elif dtype == "BF16":
            bits = np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16
            a = bits.view(np.float32).astype(np.float64)
        else:
            raise SystemExit(f"{path}: tensor {name}: dtype {dtype} not supported by the reference")
        out[name] = a.reshape(info["shape"])
    return out


def read_folder(folder):
    index = os.path.join(folder, "model.safetensors.index.json")
    tensors = {}
    if os.path.exists(index):
        with open(index) as f:
            files = sorted(set(json.load(f)["weight_map"].values()))
        for name in files:
            tensors.update(read_safetensors(os.path.join(folder, name)))
    else:
        tensors = read_safetensors(os.path.join(folder, "model.safetensors"))
    with open(os.path.join(folder, "config.json")) as f:
        config = json.load(f)
    return config, tensors


def layer_norm(x, w, b, eps):
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * w + b


def rms_norm(x, w, eps):
    return x / np.sqrt((x * x).mean(-1, keepdims=True) + eps) * w


def softmax(x):
    x = x - x.max(-1, keepdims=True)
    e = np.exp(x)
    return e / e.sum(-1, keepdims=True)


def causal_attention(q, k, v):
    """q: (H, T, d), k, v: (H, T, d) -> (T, H*d)."""
    H, T, d = q.shape
    scores = q @ k.transpose(0, 2, 1) / math.sqrt(d)
    mask = np.triu(np.ones((T, T), dtype=bool), 1)
    scores = np.where(mask, -np.inf, scores)
    out = softmax(scores) @ v
    return out.transpose(1, 0, 2).reshape(T, H * d)


def gpt2_logits(cfg, w, ids):
    p = "transformer." if "transformer.wte.weight" in w else ""
    d, H, L = cfg["n_embd"], cfg["n_head"], cfg["n_layer"]
    eps = cfg.get("layer_norm_epsilon", 1e-5)
    hd = d // H
    T = len(ids)
    x = w[p + "wte.weight"][ids] + w[p + "wpe.weight"][np.arange(T)]
    for i in range(L):
        b = f"{p}h.{i}."
        a = layer_norm(x, w[b + "ln_1.weight"], w[b + "ln_1.bias"], eps)
        qkv = a @ w[b + "attn.c_attn.weight"] + w[b + "attn.c_attn.bias"]  # Conv1D: [in, out]
        q, k, v = np.split(qkv, 3, axis=-1)
        heads = lambda m: m.reshape(T, H, hd).transpose(1, 0, 2)
        o = causal_attention(heads(q), heads(k), heads(v))
        x = x + o @ w[b + "attn.c_proj.weight"] + w[b + "attn.c_proj.bias"]
        m = layer_norm(x, w[b + "ln_2.weight"], w[b + "ln_2.bias"], eps)
        u = m @ w[b + "mlp.c_fc.weight"] + w[b + "mlp.c_fc.bias"]
        u = 0.5 * u * (1 + np.tanh(math.sqrt(2 / math.pi) * (u + 0.044715 * u ** 3)))
        x = x + u @ w[b + "mlp.c_proj.weight"] + w[b + "mlp.c_proj.bias"]
    x = layer_norm(x, w[p + "ln_f.weight"], w[p + "ln_f.bias"], eps)
    head = w.get("lm_head.weight", w[p + "wte.weight"])
    return x @ head.T


def rope(x, theta):
    """x: (H, T, d), Hugging Face rotate_half: element i pairs with i + d/2."""
    H, T, d = x.shape
    inv = 1.0 / theta ** (np.arange(0, d, 2, dtype=np.float64) / d)
    ang = np.arange(T, dtype=np.float64)[:, None] * inv[None, :]
    cos = np.concatenate([np.cos(ang)] * 2, -1)
    sin = np.concatenate([np.sin(ang)] * 2, -1)
    rot = np.concatenate([-x[..., d // 2:], x[..., :d // 2]], -1)
    return x * cos + rot * sin


def llama_logits(cfg, w, ids):
    d, H, L = cfg["hidden_size"], cfg["num_attention_heads"], cfg["num_hidden_layers"]
    KV = cfg.get("num_key_value_heads", H)
    hd = cfg.get("head_dim") or d // H
    eps = cfg.get("rms_norm_eps", 1e-6)
    theta = cfg.get("rope_theta", 10000.0)
    T = len(ids)
    x = w["model.embed_tokens.weight"][ids]
    for i in range(L):
        b = f"model.layers.{i}."
        a = rms_norm(x, w[b + "input_layernorm.weight"], eps)
        q = (a @ w[b + "self_attn.q_proj.weight"].T).reshape(T, H, hd).transpose(1, 0, 2)
        k = (a @ w[b + "self_attn.k_proj.weight"].T).reshape(T, KV, hd).transpose(1, 0, 2)
        v = (a @ w[b + "self_attn.v_proj.weight"].T).reshape(T, KV, hd).transpose(1, 0, 2)
        q, k = rope(q, theta), rope(k, theta)
        k = np.repeat(k, H // KV, axis=0)
        v = np.repeat(v, H // KV, axis=0)
        o = causal_attention(q, k, v)
        x = x + o @ w[b + "self_attn.o_proj.weight"].T
        m = rms_norm(x, w[b + "post_attention_layernorm.weight"], eps)
        g = m @ w[b + "mlp.gate_proj.weight"].T
        u = m @ w[b + "mlp.up_proj.weight"].T
        x = x + (g / (1 + np.exp(-g)) * u) @ w[b + "mlp.down_proj.weight"].T
    x = rms_norm(x, w["model.norm.weight"], eps)
    tied = cfg.get("tie_word_embeddings", True)
    head = w["model.embed_tokens.weight"] if tied or "lm_head.weight" not in w else w["lm_head.weight"]
    return x @ head.T


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model", help="Hugging Face folder (config.json + safetensors)")
    ap.add_argument("--tokens", required=True, help="comma-separated token ids")
    ap.add_argument("--out", help="write the JSON here instead of stdout")
    args = ap.parse_args()
    cfg, w = read_folder(args.model)
    ids = [int(t) for t in args.tokens.split(",") if t.strip()]
    arch = cfg.get("model_type")
    if arch == "gpt2":
        logits = gpt2_logits(cfg, w, ids)
    elif arch == "llama":
        logits = llama_logits(cfg, w, ids)
    else:
        raise SystemExit(f"{args.model}: model_type {arch!r} is not supported by the reference")
    doc = {"tokens": ids, "vocab_size": int(logits.shape[-1]),
           "logits": [[float(v) for v in row] for row in logits]}
    text = json.dumps(doc)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text)
    else:
        sys.stdout.write(text + "\n")


if __name__ == "__main__":
    main()
