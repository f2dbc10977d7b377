#!/usr/bin/env python3
"""Independent reference for the Hugging Face importer (Sources/Checkpoint/HFImporter.swift).

For each Hugging Face fixture folder, reads the safetensors files with plain numpy (8-byte
little-endian header length, JSON header, raw buffer; BF16 widened by hand), maps the tensors to
the canonical names/layout of ModelConfig.expectedTensors() the way the importer must (GPT-2:
Conv1D weights transposed to [out, in], c_attn split into Q/K/V, tied lm_head dropped; Llama:
renames), and writes Fixtures/safetensors-expected/<fixture>.json with, per canonical tensor in
canonical order: source name, storage dtype, stored bytes, shape, float64 sum and sum of |x|,
and sampled (flat index, value) pairs; plus the expected ModelConfig fields and the SHA-256 of
the weight files concatenated in shard order.

Where `safetensors.numpy` can read a file (F32/F16), its values are cross-checked against the
plain-numpy reader.

Usage: python3 scripts/expected_safetensors.py [--fixtures Fixtures]
"""
from __future__ import annotations

import argparse
import hashlib
import json
import struct
from pathlib import Path

import numpy as np

FIXTURES = ("tiny-gpt2", "tiny-llama", "tiny-llama-f16", "tiny-llama-untied-sharded")


def read_safetensors(path: Path) -> dict[str, tuple[str, np.ndarray, int]]:
    """name -> (dtype, float32 array in stored shape, stored byte count), plain numpy."""
    raw = path.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + n])
    header.pop("__metadata__", None)
    buf = raw[8 + n :]
    out = {}
    for name, info in header.items():
        b, e = info["data_offsets"]
        chunk = buf[b:e]
        shape = info["shape"]
        dt = info["dtype"]
        if dt == "F32":
            a = np.frombuffer(chunk, dtype="<f4")
        elif dt == "F16":
            a = np.frombuffer(chunk, dtype="<f2").astype(np.float32)
        elif dt == "BF16":
            a = (np.frombuffer(chunk, dtype="<u2").astype(np.uint32) << 16).view(np.float32)
        else:
            raise SystemExit(f"{path}: {name}: unexpected dtype {dt}")
        out[name] = (dt, a.reshape(shape).astype(np.float32), e - b)
    try:
        import safetensors.numpy as stnp

        ref = stnp.load_file(str(path))
        for name, arr in ref.items():
            assert np.array_equal(arr.astype(np.float32), out[name][1]), f"{path}: {name} differs from safetensors.numpy"
    except (ImportError, ValueError, TypeError):
        pass  # BF16 is not readable by safetensors.numpy; the plain reader is the reference then
    return out


def weight_files(folder: Path) -> list[Path]:
    index = folder / "model.safetensors.index.json"
    if index.exists():
        shards = sorted(set(json.loads(index.read_text())["weight_map"].values()))
        return [folder / s for s in shards]
    return [folder / "model.safetensors"]


def expected_config(cfg: dict) -> dict:
    arch = cfg["architectures"][0]
    if arch == "GPT2LMHeadModel":
        h, heads = cfg["n_embd"], cfg["n_head"]
        return dict(architecture="gpt2", vocab_size=cfg["vocab_size"], hidden_size=h, num_layers=cfg["n_layer"],
                    num_heads=heads, num_kv_heads=heads, head_dim=h // heads,
                    intermediate_size=cfg.get("n_inner") or 4 * h, max_positions=cfg["n_positions"],
                    norm_eps=cfg.get("layer_norm_epsilon", 1e-5), rope_theta=0.0,
                    tied_embeddings=cfg.get("tie_word_embeddings", True), activation="gelu_new",
                    bos_token_id=cfg.get("bos_token_id"), eos_token_id=cfg.get("eos_token_id"))
    assert arch == "LlamaForCausalLM", arch
    h, heads = cfg["hidden_size"], cfg["num_attention_heads"]
    return dict(architecture="llama", vocab_size=cfg["vocab_size"], hidden_size=h, num_layers=cfg["num_hidden_layers"],
                num_heads=heads, num_kv_heads=cfg.get("num_key_value_heads", heads),
                head_dim=cfg.get("head_dim", h // heads), intermediate_size=cfg["intermediate_size"],
                max_positions=cfg["max_position_embeddings"], norm_eps=cfg.get("rms_norm_eps", 1e-6),
                rope_theta=float(cfg.get("rope_theta", 10000.0)), tied_embeddings=cfg.get("tie_word_embeddings", False),
                activation="silu", bos_token_id=cfg.get("bos_token_id"), eos_token_id=cfg.get("eos_token_id"))


def canonical(cfg: dict, src: dict) -> list[tuple[str, str, str, int, np.ndarray]]:
    """(canonical name, source name, dtype, stored bytes, canonical array) in canonical order."""
    out = []

    def plain(name, source):
        dt, a, nb = src[source]
        out.append((name, source, dt, nb, a))

    def conv1d(name, source):  # stored [in, out] -> [out, in]
        dt, a, nb = src[source]
        out.append((name, source, dt, nb, a.T.copy()))

    if cfg["architecture"] == "gpt2":
        p = "transformer."
        plain("token_embd.weight", p + "wte.weight")
        plain("position_embd.weight", p + "wpe.weight")
        for i in range(cfg["num_layers"]):
            b, h = f"blk.{i}.", f"{p}h.{i}."
            plain(b + "attn_norm.weight", h + "ln_1.weight")
            plain(b + "attn_norm.bias", h + "ln_1.bias")
            dt, w, nb = src[h + "attn.c_attn.weight"]  # [in, 3*out]
            _, bias, bnb = src[h + "attn.c_attn.bias"]
            for j, part in enumerate(("attn_q", "attn_k", "attn_v")):
                q = w.shape[1] // 3
                out.append((b + part + ".weight", h + "attn.c_attn.weight", dt, nb // 3, w[:, j * q : (j + 1) * q].T.copy()))
                out.append((b + part + ".bias", h + "attn.c_attn.bias", dt, bnb // 3, bias[j * q : (j + 1) * q].copy()))
            conv1d(b + "attn_output.weight", h + "attn.c_proj.weight")
            plain(b + "attn_output.bias", h + "attn.c_proj.bias")
            plain(b + "ffn_norm.weight", h + "ln_2.weight")
            plain(b + "ffn_norm.bias", h + "ln_2.bias")
            conv1d(b + "ffn_up.weight", h + "mlp.c_fc.weight")
            plain(b + "ffn_up.bias", h + "mlp.c_fc.bias")
            conv1d(b + "ffn_down.weight", h + "mlp.c_proj.weight")
            plain(b + "ffn_down.bias", h + "mlp.c_proj.bias")
        plain("output_norm.weight", p + "ln_f.weight")
        plain("output_norm.bias", p + "ln_f.bias")
    else:
        plain("token_embd.weight", "model.embed_tokens.weight")
        for i in range(cfg["num_layers"]):
            b, h = f"blk.{i}.", f"model.layers.{i}."
            for name, source in (("attn_norm", "input_layernorm"), ("attn_q", "self_attn.q_proj"),
                                 ("attn_k", "self_attn.k_proj"), ("attn_v", "self_attn.v_proj"),
                                 ("attn_output", "self_attn.o_proj"), ("ffn_norm", "post_attention_layernorm"),
                                 ("ffn_gate", "mlp.gate_proj"), ("ffn_up", "mlp.up_proj"), ("ffn_down", "mlp.down_proj")):
                plain(b + name + ".weight", h + source + ".weight")
        plain("output_norm.weight", "model.norm.weight")
    if not cfg["tied_embeddings"]:
        plain("output.weight", "lm_head.weight")
    return out


def samples(a: np.ndarray) -> list[list[float]]:
    flat = a.reshape(-1)
    n = flat.size
    idx = sorted(set(list(range(min(8, n))) + [int(k) for k in np.linspace(0, n - 1, 9)] + [n - 1]))
    return [[i, float(flat[i])] for i in idx]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--fixtures", default=str(Path(__file__).resolve().parent.parent / "Fixtures"))
    args = ap.parse_args()
    root = Path(args.fixtures)
    (root / "safetensors-expected").mkdir(exist_ok=True)
    for fixture in FIXTURES:
        folder = root / fixture
        cfg = expected_config(json.loads((folder / "config.json").read_text()))
        files = weight_files(folder)
        src: dict = {}
        sha = hashlib.sha256()
        for f in files:
            src.update(read_safetensors(f))
            sha.update(f.read_bytes())
        tensors = []
        for name, source, dt, nb, a in canonical(cfg, src):
            a64 = a.astype(np.float64)
            tensors.append(dict(name=name, source=source, storage=dt, stored_bytes=nb, shape=list(a.shape),
                                sum=float(a64.sum()), abs_sum=float(np.abs(a64).sum()), samples=samples(a)))
        doc = dict(fixture=fixture, config=cfg, files=[f.name for f in files], sha256=sha.hexdigest(), tensors=tensors)
        out = root / "safetensors-expected" / f"{fixture}.json"
        # One tensor per line keeps the file short and diffs readable.
        body = json.dumps({k: v for k, v in doc.items() if k != "tensors"}, indent=1, sort_keys=True)[:-2]
        lines = ",\n  ".join(json.dumps(t, sort_keys=True) for t in tensors)
        out.write_text(body + ',\n "tensors": [\n  ' + lines + "\n ]\n}\n")
        print(f"wrote {out} ({len(tensors)} tensors)")


if __name__ == "__main__":
    main()
