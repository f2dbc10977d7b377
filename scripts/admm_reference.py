#!/usr/bin/env python3
"""Reference outputs for the admm_prune pass (Sources/Compression/ADMMPrune.swift), in numpy float64.

ADMM pruning as Boza 2024 ("Fast and Effective Weight Update for Pruned Large Language Models")
describes it, written from the paper's equations: in coordinates where every input has unit scale
(W_ij * sqrt(H_jj), H_ij / sqrt(H_ii H_jj)), with H damped by `damp` x its mean diagonal,

    Z = mask(W + U);  U = U + W - Z;  W = (W0 H + rho (Z - U)) (H + rho I)^-1

for `iterations` rounds, the mask re-chosen from |W + U| during the first `gradual` rounds at the
cubic schedule s - s (1 - (i + 1) / gradual)^3, and the result Z (back in the original scale).

Writes Fixtures/admm-reference/admm-8x64.json: the weights, the inputs (input 5 never active), and
for three masks (per_row 50%, per_tensor 50%, 2:4) the pruning mask and the pruned weights.

    python3 scripts/admm_reference.py [OUT.json]
"""
import json
import os
import sys

import numpy as np

ROWS, COLS, TOKENS = 8, 64, 96
DAMP, RHO, ITERATIONS, GRADUAL = 0.1, 1.0, 20, 15


def mask_of(s, zero, sparsity, scope, pattern):
    """True = pruned. Smallest |s| first, ties to the lower index; positions in `zero` first."""
    rows, cols = s.shape
    key = np.where(zero, -1.0, np.abs(s))
    out = np.zeros_like(zero)
    if pattern is None and scope == "per_tensor":
        k = max(int(np.floor(rows * cols * sparsity)), int(zero.sum()))
        order = np.lexsort((np.arange(rows * cols), key.ravel()))
        out.ravel()[order[:k]] = True
        return out
    k = int(np.floor(cols * sparsity))
    for r in range(rows):
        if pattern is None:
            want = max(k, int(zero[r].sum()))
            order = np.lexsort((np.arange(cols), key[r]))
            out[r, order[:want]] = True
            continue
        n, m = pattern
        rejected = []
        for g in range(0, cols, m):
            idx = np.arange(g, min(g + m, cols))
            drop = max(len(idx) - n, int(zero[r, idx].sum()))
            order = idx[np.lexsort((idx, key[r, idx]))]
            rejected.extend(order[:drop])
        rejected = np.array(sorted(rejected))
        want = len(rejected) if sparsity >= 1 - n / m else min(len(rejected), k)
        order = rejected[np.lexsort((rejected, key[r, rejected]))]
        out[r, order[:want]] = True
    return out


def admm(w0, h, sparsity, scope, pattern):
    cols = w0.shape[1]
    d = np.diag(h).copy()
    dead = d == 0
    norm = np.where(dead, 1.0, np.sqrt(np.where(dead, 1.0, d)))
    w0 = np.where(dead[None, :], 0.0, w0)
    zero = w0 == 0
    hn = h / np.outer(norm, norm)
    hn[dead, :] = 0
    hn[:, dead] = 0
    hn += np.eye(cols) * DAMP * np.mean(np.diag(hn))
    inverse = np.linalg.inv(hn + RHO * np.eye(cols))
    w = w0 * norm[None, :]
    b = w @ hn
    u = np.zeros_like(w)
    s = 1 - pattern[0] / pattern[1] if pattern else sparsity
    pruned = None
    for it in range(ITERATIONS):
        if it < max(1, GRADUAL):
            grown = s - s * (1 - (it + 1) / GRADUAL) ** 3 if GRADUAL > 0 else s
            pruned = mask_of(w + u, zero, grown, scope, pattern)
        v = w + u
        z = np.where(pruned, 0.0, v)
        u = v - z
        w = (b + RHO * (z - u)) @ inverse
    out = np.where(pruned, 0.0, (w + u) / norm[None, :])
    return pruned, out


def rounded(a, digits):
    """Nested lists of `a` with `digits` significant digits (9 keep a float32 exactly)."""
    return [[float(f"{v:.{digits}g}") for v in row] for row in a]


def main():
    path = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "Fixtures", "admm-reference", "admm-8x64.json")
    rng = np.random.default_rng(31)
    base = rng.standard_normal((TOKENS, 16))
    x = base @ rng.standard_normal((16, COLS)) * 0.5 + rng.standard_normal((TOKENS, COLS)) * 0.3
    x[:, 7] *= 6.0  # an outlier input
    x[:, 5] = 0.0  # an input never active
    x = x.astype(np.float32).astype(np.float64)
    w = (rng.standard_normal((ROWS, COLS)) * 0.05).astype(np.float32).astype(np.float64)
    w[2, 11] = 0.0  # a weight already zero
    h = 2.0 / TOKENS * (x.T @ x)
    cases = []
    for sparsity, scope, pattern in [(0.5, "per_row", None), (0.5, "per_tensor", None), (None, None, (2, 4))]:
        pruned, out = admm(w, h, sparsity or 0.0, scope, pattern)
        c = {"mask": pruned.astype(int).tolist(), "expected": rounded(out, 12)}
        if pattern:
            c["pattern"] = f"{pattern[0]}:{pattern[1]}"
        else:
            c["sparsity"], c["scope"] = sparsity, scope
        cases.append(c)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as f:
        json.dump({"rows": ROWS, "cols": COLS, "tokens": TOKENS, "damp": DAMP, "rho": RHO, "iterations": ITERATIONS,
                   "gradual": GRADUAL, "weights": rounded(w, 9), "inputs": rounded(x, 9), "cases": cases}, f)
        f.write("\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
