#!/usr/bin/env python3
"""Reference SparseGPT (optimal-brain-surgeon pruning) in numpy, float64, for the Swift tests.

Writes Fixtures/sparsegpt-reference/obs-8x64.json: a small weight matrix W [8, 64], calibration
inputs X [80, 64] (correlated, a few dominant channels, input 5 never active), and for each case
(unstructured per_row at 0.5, unstructured per_tensor at 0.4, N:M 2:4; block 16, damp 0.01) the
mask (1 = pruned) and the pruned, error-compensated weights. `Tests/CompressionTests/SparseGPTTests.swift`
compares `SparseGPT.prune` with them: the mask exactly, the weights within a tolerance.

`fasterprune` below is IST-DASLab/sparsegpt's `SparseGPT.fasterprune` (sparsegpt.py) transcribed
from torch to numpy line by line, with two changes that the Swift pass makes too:
  * mask counts: the reference prunes `tmp <= sorted(tmp)[int(numel * sparsity)]` of each block over
    all rows; here each block prunes what keeps the running total at floor(sparsity * columns so
    far) (per row for `per_row`, over all rows for `per_tensor`), so sparsity is exact;
  * weights already zero (here: the dead input's column, which the reference zeroes) score -1 and
    are pruned first, and N:M prunes M - N per group (the reference's `prunen` counts pruned
    weights; for 2:4 the same).
Ties: unstructured, the lower column (row-major position) is pruned first; N:M, the lower
column is kept (as `NMPattern.apply`).

All inputs are dyadic rationals (X multiples of 1/64, W of 1/4096), exact in float32 and in the
JSON's decimal form, so both sides start from identical numbers. H = (2/n) X^T X in float64 (as
`GPTQ.Hessian`). Run: `python3 scripts/sparsegpt_reference.py [--out DIR]` (numpy >= 1.24;
committed output made with numpy 2.4.6); `--check` regenerates and compares with the committed file.
"""
import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROWS, COLS, TOKENS, BLOCK, DAMP, DEAD = 8, 64, 80, 16, 0.01, 5


def inputs(rng: np.random.Generator) -> np.ndarray:
    mix = rng.uniform(-1, 1, (COLS, 4))
    z = rng.uniform(-1, 1, (TOKENS, 4))
    x = z @ mix.T + rng.uniform(-1, 1, (TOKENS, COLS)) * 0.3
    x[:, ::7] *= 4
    x[:, DEAD] = 0
    return np.round(x * 64) / 64


def upper_cholesky_of_inverse(h: np.ndarray) -> np.ndarray:
    """U upper with U^T U = h^-1 (torch: cholesky -> cholesky_inverse -> cholesky(upper=True))."""
    l = np.linalg.cholesky(h)
    linv = np.linalg.inv(l)
    return np.linalg.cholesky(linv.T @ linv).T


def fasterprune(W, H, sparsity, prunen=0, prunem=0, blocksize=128, percdamp=.01, scope="per_row"):
    """Returns (pruned weights, mask, smallest relative gap between a pruned and a kept score)."""
    W = W.astype(np.float64).copy()
    H = H.copy()
    rows, columns = W.shape
    dead = np.diag(H) == 0
    H[dead, dead] = 1
    W[:, dead] = 0
    zero = W == 0

    damp = percdamp * np.mean(np.diag(H))
    H[np.arange(columns), np.arange(columns)] += damp
    Hinv = upper_cholesky_of_inverse(H)

    mask = np.zeros_like(W, dtype=bool)
    pruned_in_row = np.zeros(rows, dtype=int)
    pruned = 0
    margin = np.inf

    def gap(scores, order, k):
        if 0 < k < len(order):
            a, b = scores[order[k - 1]], scores[order[k]]
            if a >= 0:
                return (b - a) / max(b, 1e-300)
        return np.inf

    for i1 in range(0, columns, blocksize):
        i2 = min(i1 + blocksize, columns)
        count = i2 - i1

        W1 = W[:, i1:i2].copy()
        Q1 = np.zeros_like(W1)
        Err1 = np.zeros_like(W1)
        Hinv1 = Hinv[i1:i2, i1:i2]

        mask1 = np.zeros_like(W1, dtype=bool)
        if prunen == 0:
            tmp = W1 ** 2 / (np.diag(Hinv1).reshape((1, -1))) ** 2
            tmp[zero[:, i1:i2]] = -1
            if scope == "per_row":
                target = int(np.floor(i2 * sparsity))
                for r in range(rows):
                    k = min(count, max(target - pruned_in_row[r], int(zero[r, i1:i2].sum())))
                    order = np.argsort(tmp[r], kind="stable")
                    mask1[r, order[:k]] = True
                    pruned_in_row[r] += k
                    margin = min(margin, gap(tmp[r], order, k))
            else:
                target = int(np.floor(rows * i2 * sparsity))
                flat = tmp.flatten()
                k = min(flat.size, max(target - pruned, int(zero[:, i1:i2].sum())))
                order = np.argsort(flat, kind="stable")
                mask1.flat[order[:k]] = True
                pruned += k
                margin = min(margin, gap(flat, order, k))

        for i in range(count):
            w = W1[:, i]
            d = Hinv1[i, i]

            if prunen != 0 and i % prunem == 0:
                tmp = W1[:, i:(i + prunem)] ** 2 / (np.diag(Hinv1)[i:(i + prunem)].reshape((1, -1))) ** 2
                tmp[zero[:, i1 + i:i1 + i + prunem]] = -1
                length = tmp.shape[1]
                for r in range(rows):
                    drop = max(prunem - prunen, int((tmp[r] < 0).sum()))
                    order = np.lexsort((-np.arange(length), tmp[r]))  # ascending; ties: higher column first
                    mask1[r, i + order[:drop]] = True
                    margin = min(margin, gap(tmp[r], order, drop))

            q = w.copy()
            q[mask1[:, i]] = 0

            Q1[:, i] = q

            err1 = (w - q) / d
            W1[:, i:] -= np.outer(err1, Hinv1[i, i:])
            Err1[:, i] = err1

        W[:, i1:i2] = Q1
        mask[:, i1:i2] = mask1

        W[:, i2:] -= Err1 @ Hinv[i1:i2, i2:]

    return W, mask, margin


def build() -> str:
    rng = np.random.default_rng(20250611)
    x = inputs(rng)
    w = np.round(rng.uniform(-1, 1, (ROWS, COLS)) * 0.05 * 4096) / 4096
    assert (w != 0).all()
    h = 2 / TOKENS * (x.T @ x)
    cases = []
    for name, kw in [("per_row", dict(sparsity=0.5, scope="per_row")),
                     ("per_tensor", dict(sparsity=0.4, scope="per_tensor")),
                     ("2:4", dict(sparsity=0.5, prunen=2, prunem=4))]:
        out, mask, margin = fasterprune(w, h, blocksize=BLOCK, percdamp=DAMP, **kw)
        assert margin > 1e-4, f"{name}: a mask decision is a near tie ({margin})"
        cases.append((name, kw, out, mask, margin))

    def exact(v: float) -> str:
        return repr(float(v)).removesuffix(".0")

    def num(v: float) -> str:
        return "0" if v == 0 else f"{v:.10g}"

    def matrix(m, f) -> str:
        return "[\n" + ",\n".join("    [" + ", ".join(f(v) for v in row) + "]" for row in m) + "\n  ]"

    parts = [
        "{",
        f'  "rows": {ROWS}, "cols": {COLS}, "tokens": {TOKENS}, "block_size": {BLOCK}, "damp": {DAMP},',
        f'  "weights": {matrix(w, exact)},',
        f'  "inputs": {matrix(x, exact)},',
        '  "cases": [',
    ]
    for n, (name, kw, out, mask, margin) in enumerate(cases):
        spec = {"sparsity": kw["sparsity"]}
        if "prunen" in kw:
            spec = {"pattern": f"{kw['prunem'] - kw['prunen']}:{kw['prunem']}"}
        else:
            spec["scope"] = kw["scope"]
        parts.append("  {" + json.dumps(spec)[1:-1] + f', "min_relative_margin": {margin:.3g},')
        parts.append(f'  "mask": {matrix(mask.astype(int), str)},')
        parts.append(f'  "expected": {matrix(out, num)}')
        parts.append("  }" + ("," if n + 1 < len(cases) else ""))
    parts += ["  ]", "}"]
    text = "\n".join(parts) + "\n"
    json.loads(text)
    return text


def main() -> None:
    root = Path(__file__).resolve().parent.parent
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=root / "Fixtures" / "sparsegpt-reference")
    ap.add_argument("--check", action="store_true", help="compare with the committed file instead of writing")
    a = ap.parse_args()
    text = build()
    path = a.out / "obs-8x64.json"
    if a.check:
        same = path.is_file() and path.read_text() == text
        print(f"{path}: {'same' if same else 'DIFFERS'}")
        sys.exit(0 if same else 1)
    a.out.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    print(f"wrote {path} ({len(text)} bytes)")


if __name__ == "__main__":
    main()
