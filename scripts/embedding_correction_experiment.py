#!/usr/bin/env python3
"""Can one affine map after pooling undo a pruned encoder's error? (docs/real-model.md, "A linear
correction of the pooled embeddings"; measured, not kept.)

Usage: python3 scripts/embedding_correction_experiment.py CALIB_FLOAT.npy CALIB_PRUNED.npy \\
           TEXT1_FLOAT.npy TEXT1_PRUNED.npy [TEXT2_FLOAT.npy TEXT2_PRUNED.npy ...]

Each .npy is `edge-run embed MODEL --text SENTENCES --out X.npy` ([sentences, hidden], float32) of
the float model or of the pruned one on the same sentence file. The map [e, 1] W (W: hidden+1 x
hidden, ridge-regularized least squares) is fitted on the calibration pair only, applied to each
held-out text's pruned embeddings (then L2-normalized), and each text's mean cosine and retrieval
agreement (is each sentence's nearest other sentence the same as under the float model) are
printed without and with it, for several ridge weights, and with a mean offset only. Needs numpy.
"""
import sys

import numpy as np


def load(path):
    e = np.load(path).astype(np.float64)
    return e / np.linalg.norm(e, axis=1, keepdims=True)


def metrics(ref, emb):
    cos = (ref * emb).sum(1)

    def nearest(e):
        s = e @ e.T
        np.fill_diagonal(s, -np.inf)
        return s.argmax(1)

    return cos.mean(), (nearest(ref) == nearest(emb)).mean()


def main():
    if len(sys.argv) < 5 or len(sys.argv) % 2 == 0:
        sys.exit(__doc__)
    calib_f, calib_p = load(sys.argv[1]), load(sys.argv[2])
    texts = [(sys.argv[i], load(sys.argv[i]), load(sys.argv[i + 1])) for i in range(3, len(sys.argv), 2)]
    x = np.hstack([calib_p, np.ones((len(calib_p), 1))])
    for ridge in [0.0, 1e-3, 1e-2, 1e-1, 1.0]:
        w = np.linalg.solve(x.T @ x + ridge * np.eye(x.shape[1]), x.T @ calib_f)
        cells = []
        for _, f, p in texts:
            y = np.hstack([p, np.ones((len(p), 1))]) @ w
            y /= np.linalg.norm(y, axis=1, keepdims=True)
            (c0, r0), (c1, r1) = metrics(f, p), metrics(f, y)
            cells.append("%.4f / %.1f%% -> %.4f / %.1f%%" % (c0, 100 * r0, c1, 100 * r1))
        print("ridge %g: %s" % (ridge, " | ".join(cells)))
    shift = calib_f.mean(0) - calib_p.mean(0)
    cells = []
    for _, f, p in texts:
        y = p + shift
        y /= np.linalg.norm(y, axis=1, keepdims=True)
        c, r = metrics(f, y)
        cells.append("%.4f / %.1f%%" % (c, 100 * r))
    print("mean offset only: " + " | ".join(cells))


if __name__ == "__main__":
    main()
