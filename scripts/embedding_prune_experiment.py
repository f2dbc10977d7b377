#!/usr/bin/env python3
"""How much retrieval agreement an encoder keeps when only its word embeddings are pruned (numpy).

A measurement for issue 12's retrieval line (docs/real-model.md, "Frequency-weighted embedding
pruning"), not a recipe: the float model of scripts/reference_bert.py with its word embedding
matrix pruned one of two ways, every other weight exact, in float64 (no int8):
  - magnitude: the smallest |w| of each token row (what `magnitude_prune` per row does);
  - frequency: Wanda's score for a matrix whose inputs are one-hot tokens, |w| x sqrt(count + 1)
    with count = the token's occurrences in the calibration text, one threshold over the whole
    matrix, optionally keeping at least a fraction `floor` of each row's largest |w|.
For each sentence file: mean and minimum cosine between the float and pruned embeddings, and
retrieval agreement (is each sentence's nearest neighbour among the others the same), as
`compress verify` computes them.

Usage: scripts/embedding_prune_experiment.py MODEL_DIR CALIBRATION.txt SENTENCES.txt [SENTENCES.txt ...]
Requirements: numpy, tokenizers (as scripts/reference_bert.py).
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from reference_bert import BertReference, read_sentences  # noqa: E402

EMB = "embeddings.word_embeddings.weight"


def metrics(a: np.ndarray, b: np.ndarray) -> tuple[float, float, float]:
    cos = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)

    def nearest(e: np.ndarray) -> np.ndarray:
        e = e / np.linalg.norm(e, axis=1, keepdims=True)
        s = e @ e.T
        np.fill_diagonal(s, -np.inf)
        return s.argmax(1)

    return float(cos.mean()), float(cos.min()), float((nearest(a) == nearest(b)).mean())


def magnitude_rows(w: np.ndarray, keep: float) -> np.ndarray:
    k = int(round(keep * w.shape[1]))
    drop = np.argsort(np.abs(w), axis=1)[:, : w.shape[1] - k]
    out = w.copy()
    np.put_along_axis(out, drop, 0.0, axis=1)
    return out


def frequency_weighted(w: np.ndarray, counts: np.ndarray, sparsity: float, floor: float) -> np.ndarray:
    score = np.abs(w) * np.sqrt(counts + 1.0)[:, None]
    keep = score > np.quantile(score, sparsity)
    kf = int(floor * w.shape[1])
    if kf > 0:
        top = np.argsort(-np.abs(w), axis=1)[:, :kf]
        np.put_along_axis(keep, top, True, axis=1)
    return np.where(keep, w, 0.0)


def main() -> int:
    if len(sys.argv) < 4:
        print(__doc__, file=sys.stderr)
        return 2
    model = BertReference(sys.argv[1])
    files = sys.argv[3:]
    sentences = {f: read_sentences(f) for f in files}
    w0 = model.w[EMB].copy()
    counts = np.zeros(w0.shape[0])
    for line in Path(sys.argv[2]).read_text(encoding="utf-8").split("\n"):
        if line.strip():
            for i in model.tokenizer.encode(line).ids:
                counts[i] += 1
    print(f"calibration: {int(counts.sum())} tokens, {int((counts > 0).sum())} distinct of {w0.shape[0]}")
    for f in files:
        ids = [i for s in sentences[f] for i in model.encode(s)[0]]
        print(f"{Path(f).name}: {len(ids)} tokens, {np.mean([counts[i] == 0 for i in ids]) * 100:.1f}% not in the calibration text")

    def embed(f: str) -> np.ndarray:
        return np.array([model.embed(s)["embedding"] for s in sentences[f]])

    reference = {f: embed(f) for f in files}
    print("| word embedding pruned | sparsity | " + " | ".join(Path(f).stem for f in files) + " |")
    print("| --- | ---: | " + " | ".join("---" for _ in files) + " |")
    variants = [("magnitude, 50% of each row", lambda: magnitude_rows(w0, 0.5))]
    for sparsity in (0.5, 0.7):
        for floor in (0.0, 0.25):
            variants.append((f"frequency-weighted {sparsity:.0%}, floor {floor}",
                             lambda s=sparsity, f=floor: frequency_weighted(w0, counts, s, f)))
    for name, make in variants:  # each pruned matrix made when its turn comes (94 MB apiece)
        w = make()
        model.w[EMB] = w
        cells = [metrics(reference[f], embed(f)) for f in files]
        print(f"| {name} | {(w == 0).mean():.3f} | " + " | ".join(f"{a:.4f} / {b:.4f} / {c * 100:.1f}%" for a, b, c in cells) + " |",
              flush=True)
    model.w[EMB] = w0
    return 0


if __name__ == "__main__":
    sys.exit(main())
