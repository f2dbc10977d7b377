#!/usr/bin/env python3
"""Numpy reference for sentence-transformers BERT encoders (sentence embeddings), in float64.

Reads a Hugging Face / sentence-transformers folder:
  config.json                 BertConfig (hidden_size, num_attention_heads, layer_norm_eps, ...)
  model.safetensors           HF names (embeddings.*, encoder.layer.N.*, pooler.*; an optional
                              "bert." prefix is dropped); F32, F16, BF16 or F64 weights
  tokenizer.json              HF `tokenizers` file (WordPiece + [CLS] ... [SEP] template)
  modules.json                Transformer, Pooling[, Normalize] (other modules are refused)
  1_Pooling/config.json       pooling_mode_{cls_token,max_tokens,mean_tokens,mean_sqrt_len_tokens}
  sentence_bert_config.json   optional: max_seq_length

and computes, for each sentence separately (no padding, so no attention mask is needed):
  ids     = tokenizer.encode(text) with special tokens, truncated to
            min(max_seq_length, max_position_embeddings) tokens (special tokens included)
  x       = LN(word[ids] + pos[0..T) + type[type_ids])
  layer:  a = softmax(Q K^T / sqrt(hd)) V per head (bidirectional), Q/K/V = x W^T + b
          x = LN(x + a Wo^T + bo);  x = LN(x + gelu_erf(x W1^T + b1) W2^T + b2)
  pooled  = mean over the T tokens (or CLS / max / mean*sqrt(T), concatenated in
            sentence-transformers' order cls, max, mean, mean_sqrt_len when several are on)
  emb     = pooled / max(||pooled||, 1e-12) when modules.json has a Normalize module

Usage:
  python3 scripts/reference_bert.py MODEL_DIR --text FILE [--out out.json] [--limit N]
      one sentence per line (empty lines skipped); writes
      {"model", "max_seq_length", "sentences", "ids", "embeddings"} (floats at full precision)
  python3 scripts/reference_bert.py MODEL_DIR --check OTHER.json [--text FILE] [--tol 1e-5]
      compares OTHER.json's "embeddings" (e.g. from the Swift tool; sentences from its
      "sentences" key, else from --text) with the reference; prints max abs diff, max relative
      diff ||a-b||/||ref|| per sentence, mean cosine; exits 1 when max relative diff > --tol.
      MODEL_DIR may also be a reference JSON written by --out (e.g.
      Fixtures/tiny-bert-reference.json); its embeddings are then used as they are.

Requirements: Python 3.11, numpy, tokenizers. No torch.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import struct
import sys
import time
from pathlib import Path

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np  # noqa: E402
from tokenizers import Tokenizer  # noqa: E402

# ---------------------------------------------------------------------------------------------
# safetensors (read by hand: numpy only)
# ---------------------------------------------------------------------------------------------

_DTYPES = {"F64": np.float64, "F32": np.float32, "F16": np.float16, "I64": np.int64, "I32": np.int32,
           "I16": np.int16, "I8": np.int8, "U8": np.uint8, "BOOL": np.bool_}


def read_safetensors(path: Path) -> dict[str, np.ndarray]:
    data = path.read_bytes()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    base = 8 + n
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        a, b = info["data_offsets"]
        raw = data[base + a:base + b]
        dt, shape = info["dtype"], info["shape"]
        if dt == "BF16":
            bits = np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16
            arr = bits.view(np.float32)
        elif dt in _DTYPES:
            arr = np.frombuffer(raw, dtype=np.dtype(_DTYPES[dt]).newbyteorder("<"))
        else:
            raise SystemExit(f"{path}: tensor {name}: unsupported dtype {dt}")
        out[name] = arr.reshape(shape)
    return out


# ---------------------------------------------------------------------------------------------
# Model
# ---------------------------------------------------------------------------------------------

_erf = np.frompyfunc(math.erf, 1, 1)


def gelu_erf(x: np.ndarray) -> np.ndarray:
    """Exact GELU, x * Phi(x), with math.erf (correctly rounded to ~1 ulp in float64)."""
    return 0.5 * x * (1.0 + _erf(x / math.sqrt(2.0)).astype(np.float64))


def layer_norm(x: np.ndarray, w: np.ndarray, b: np.ndarray, eps: float) -> np.ndarray:
    mu = x.mean(axis=-1, keepdims=True)
    var = ((x - mu) ** 2).mean(axis=-1, keepdims=True)  # biased, as torch.nn.LayerNorm
    return (x - mu) / np.sqrt(var + eps) * w + b


def _load_json(path: Path, default=None):
    if not path.is_file():
        if default is not None:
            return default
        raise SystemExit(f"missing {path}")
    return json.loads(path.read_text(encoding="utf-8"))


class BertReference:
    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        cfg = _load_json(self.folder / "config.json")
        self.config = cfg
        if cfg.get("model_type", "bert") != "bert":
            raise SystemExit(f"config.json: model_type {cfg.get('model_type')!r} is not bert")
        act = cfg.get("hidden_act", "gelu")
        if act != "gelu":
            raise SystemExit(f"config.json: hidden_act {act!r} not supported (only exact 'gelu')")
        if cfg.get("position_embedding_type", "absolute") != "absolute":
            raise SystemExit("config.json: only absolute position embeddings are supported")
        self.hidden = int(cfg["hidden_size"])
        self.heads = int(cfg["num_attention_heads"])
        self.layers = int(cfg["num_hidden_layers"])
        self.eps = float(cfg.get("layer_norm_eps", 1e-12))
        self.max_pos = int(cfg["max_position_embeddings"])

        # sentence-transformers modules
        modules = _load_json(self.folder / "modules.json", default=[])
        pooling_dir = "1_Pooling"
        self.normalize = False
        for m in modules:
            kind = m.get("type", "").rsplit(".", 1)[-1]
            if kind == "Pooling":
                pooling_dir = m.get("path") or pooling_dir
            elif kind == "Normalize":
                self.normalize = True
            elif kind != "Transformer":
                raise SystemExit(f"modules.json: module {m.get('type')} is not supported")
        pool = _load_json(self.folder / pooling_dir / "config.json",
                          default={"pooling_mode_mean_tokens": True})
        self.pool_modes = [k for k in ("cls_token", "max_tokens", "mean_tokens", "mean_sqrt_len_tokens")
                           if pool.get(f"pooling_mode_{k}", False)]
        for k in ("weightedmean_tokens", "lasttoken"):
            if pool.get(f"pooling_mode_{k}", False):
                raise SystemExit(f"pooling mode {k} is not supported")
        if not self.pool_modes:
            raise SystemExit("pooling config enables no supported mode")

        sbert = _load_json(self.folder / "sentence_bert_config.json", default={})
        msl = sbert.get("max_seq_length")
        self.max_seq_length = min(int(msl), self.max_pos) if msl else self.max_pos

        self.tokenizer = Tokenizer.from_file(str(self.folder / "tokenizer.json"))
        self.tokenizer.no_padding()
        self.tokenizer.enable_truncation(self.max_seq_length)

        raw = read_safetensors(self.folder / "model.safetensors")
        self.w = {}
        for k, v in raw.items():
            if k.startswith("bert."):
                k = k[len("bert."):]
            if k.endswith("position_ids"):
                continue
            self.w[k] = np.asarray(v, dtype=np.float64)
        self._check_shapes()

    def _check_shapes(self) -> None:
        h, inter = self.hidden, int(self.config["intermediate_size"])
        need = {
            "embeddings.word_embeddings.weight": (int(self.config["vocab_size"]), h),
            "embeddings.position_embeddings.weight": (self.max_pos, h),
            "embeddings.token_type_embeddings.weight": (int(self.config.get("type_vocab_size", 2)), h),
            "embeddings.LayerNorm.weight": (h,), "embeddings.LayerNorm.bias": (h,),
        }
        for i in range(self.layers):
            p = f"encoder.layer.{i}."
            for n in ("attention.self.query", "attention.self.key", "attention.self.value",
                      "attention.output.dense"):
                need[p + n + ".weight"] = (h, h)
                need[p + n + ".bias"] = (h,)
            need[p + "intermediate.dense.weight"] = (inter, h)
            need[p + "intermediate.dense.bias"] = (inter,)
            need[p + "output.dense.weight"] = (h, inter)
            need[p + "output.dense.bias"] = (h,)
            for n in ("attention.output.LayerNorm", "output.LayerNorm"):
                need[p + n + ".weight"] = (h,)
                need[p + n + ".bias"] = (h,)
        for k, shape in need.items():
            if k not in self.w:
                raise SystemExit(f"model.safetensors: missing {k}")
            if tuple(self.w[k].shape) != shape:
                raise SystemExit(f"model.safetensors: {k} has shape {self.w[k].shape}, expected {shape}")

    # -- forward --------------------------------------------------------------------------

    def encode(self, text: str) -> tuple[list[int], list[int]]:
        enc = self.tokenizer.encode(text, add_special_tokens=True)
        return list(enc.ids), list(enc.type_ids)

    def hidden_states(self, ids: list[int], type_ids: list[int] | None = None) -> np.ndarray:
        w, eps = self.w, self.eps
        T = len(ids)
        if T > self.max_pos:
            raise ValueError(f"{T} tokens > max_position_embeddings {self.max_pos}")
        if type_ids is None:
            type_ids = [0] * T
        x = (w["embeddings.word_embeddings.weight"][ids]
             + w["embeddings.position_embeddings.weight"][:T]
             + w["embeddings.token_type_embeddings.weight"][type_ids])
        x = layer_norm(x, w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"], eps)
        nh, hd = self.heads, self.hidden // self.heads
        scale = 1.0 / math.sqrt(hd)
        for i in range(self.layers):
            p = f"encoder.layer.{i}."

            def lin(name, inp):
                return inp @ w[p + name + ".weight"].T + w[p + name + ".bias"]

            q = lin("attention.self.query", x).reshape(T, nh, hd).transpose(1, 0, 2)
            k = lin("attention.self.key", x).reshape(T, nh, hd).transpose(1, 0, 2)
            v = lin("attention.self.value", x).reshape(T, nh, hd).transpose(1, 0, 2)
            s = (q @ k.transpose(0, 2, 1)) * scale                       # [nh, T, T]
            s = s - s.max(axis=-1, keepdims=True)
            pr = np.exp(s)
            pr /= pr.sum(axis=-1, keepdims=True)
            a = (pr @ v).transpose(1, 0, 2).reshape(T, self.hidden)
            x = layer_norm(x + lin("attention.output.dense", a),
                           w[p + "attention.output.LayerNorm.weight"], w[p + "attention.output.LayerNorm.bias"], eps)
            hmid = gelu_erf(lin("intermediate.dense", x))
            x = layer_norm(x + lin("output.dense", hmid),
                           w[p + "output.LayerNorm.weight"], w[p + "output.LayerNorm.bias"], eps)
        return x

    def pool(self, hidden: np.ndarray) -> np.ndarray:
        parts = []
        for mode in self.pool_modes:
            if mode == "cls_token":
                parts.append(hidden[0])
            elif mode == "max_tokens":
                parts.append(hidden.max(axis=0))
            elif mode == "mean_tokens":
                parts.append(hidden.mean(axis=0))
            elif mode == "mean_sqrt_len_tokens":
                parts.append(hidden.sum(axis=0) / math.sqrt(hidden.shape[0]))
        return np.concatenate(parts)

    def finish(self, pooled: np.ndarray) -> np.ndarray:
        if not self.normalize:
            return pooled.copy()
        return pooled / max(float(np.linalg.norm(pooled)), 1e-12)  # torch F.normalize

    def embed(self, text: str) -> dict:
        ids, type_ids = self.encode(text)
        hidden = self.hidden_states(ids, type_ids)
        pooled = self.pool(hidden)
        return {"ids": ids, "hidden": hidden, "pooled": pooled, "embedding": self.finish(pooled)}


# ---------------------------------------------------------------------------------------------
# CLI
# ---------------------------------------------------------------------------------------------

def read_sentences(path: str | Path, limit: int | None = None) -> list[str]:
    lines = Path(path).read_text(encoding="utf-8").split("\n")
    out = [ln.rstrip("\r") for ln in lines if ln.strip()]
    return out[:limit] if limit is not None else out


def floats(a: np.ndarray) -> list:
    return np.asarray(a, dtype=np.float64).tolist()  # repr of a Python float round-trips exactly


def run_reference(model: BertReference, sentences: list[str], extra: bool = False) -> dict:
    out = {"model": str(model.folder), "max_seq_length": model.max_seq_length,
           "sentences": sentences, "ids": [], "embeddings": []}
    if extra:
        out["pooled"] = []
    for s in sentences:
        r = model.embed(s)
        out["ids"].append(r["ids"])
        out["embeddings"].append(floats(r["embedding"]))
        if extra:
            out["pooled"].append(floats(r["pooled"]))
            if "hidden_first" not in out:
                out["hidden_first"] = floats(r["hidden"])
    return out


def compare(ref: dict, other: dict, tol: float) -> int:
    a = np.asarray(other["embeddings"], dtype=np.float64)
    b = np.asarray(ref["embeddings"], dtype=np.float64)
    if a.shape != b.shape:
        print(f"shape mismatch: other {a.shape} vs reference {b.shape}")
        return 1
    bad_ids = 0
    if "ids" in other and "ids" in ref:
        for i, (x, y) in enumerate(zip(other["ids"], ref["ids"])):
            if list(x) != list(y):
                bad_ids += 1
                print(f"sentence {i}: token ids differ: other {list(x)[:12]}... ref {list(y)[:12]}...")
    diff = a - b
    rel = np.linalg.norm(diff, axis=1) / np.maximum(np.linalg.norm(b, axis=1), 1e-300)
    cos = (a * b).sum(axis=1) / np.maximum(np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1), 1e-300)
    worst = int(np.argmax(rel))
    print(f"sentences: {len(b)}, dim {b.shape[1]}")
    print(f"max abs diff: {np.abs(diff).max():.3e}")
    print(f"max relative diff: {rel.max():.3e} (sentence {worst})")
    print(f"mean cosine: {cos.mean():.9f} (min {cos.min():.9f})")
    ok = rel.max() <= tol and bad_ids == 0
    print(f"{'PASS' if ok else 'FAIL'} (tol {tol:g}{', token ids differ' if bad_ids else ''})")
    return 0 if ok else 1


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("model", help="sentence-transformers / HF BERT folder (or, with --check, a reference JSON)")
    ap.add_argument("--text", help="UTF-8 file, one sentence per line (empty lines skipped)")
    ap.add_argument("--out", help="write the reference JSON here (default: stdout unless --check)")
    ap.add_argument("--limit", type=int, help="only the first N sentences")
    ap.add_argument("--check", metavar="OTHER.json", help="compare OTHER.json's embeddings with the reference")
    ap.add_argument("--tol", type=float, default=1e-5, help="max relative diff accepted by --check (default 1e-5)")
    ap.add_argument("--extra", action="store_true", help="also write 'pooled' and 'hidden_first'")
    args = ap.parse_args()

    other = json.loads(Path(args.check).read_text(encoding="utf-8")) if args.check else None
    if other is not None and "sentences" in other:
        sentences = list(other["sentences"])
        if args.text and read_sentences(args.text) != sentences:
            print(f"warning: {args.check}'s sentences differ from {args.text}; using {args.check}'s", file=sys.stderr)
    elif args.text:
        sentences = read_sentences(args.text)
    elif other is not None and args.model.endswith(".json"):
        sentences = None  # compare with the reference JSON's sentences, in order
    else:
        ap.error("--text is required (or --check with a JSON that has 'sentences')")
    if sentences is not None and args.limit is not None:
        sentences = sentences[:args.limit]
    if other is not None:
        n = len(sentences) if sentences is not None else len(other["embeddings"])
        other = dict(other, embeddings=other["embeddings"][:n])
        if "ids" in other:
            other["ids"] = other["ids"][:n]

    t0 = time.perf_counter()
    if args.model.endswith(".json") and Path(args.model).is_file():
        ref = json.loads(Path(args.model).read_text(encoding="utf-8"))
        if sentences is not None:
            if ref["sentences"][:len(sentences)] != sentences:
                print(f"error: the sentences differ from those in {args.model}", file=sys.stderr)
                return 2
            n = len(sentences)
            ref = dict(ref, embeddings=ref["embeddings"][:n], ids=ref["ids"][:n])
        load_s = 0.0
    else:
        model = BertReference(args.model)
        load_s = time.perf_counter() - t0
        t1 = time.perf_counter()
        ref = run_reference(model, sentences, extra=args.extra)
        n_tok = sum(len(i) for i in ref["ids"])
        print(f"reference: {len(sentences)} sentences, {n_tok} tokens, load {load_s:.2f}s, "
              f"forward {time.perf_counter() - t1:.2f}s", file=sys.stderr)

    if args.out:
        Path(args.out).write_text(json.dumps(ref, ensure_ascii=False) + "\n", encoding="utf-8")
    elif other is None:
        json.dump(ref, sys.stdout, ensure_ascii=False)
        sys.stdout.write("\n")
    if other is not None:
        return compare(ref, other, args.tol)
    return 0


if __name__ == "__main__":
    sys.exit(main())
