#!/usr/bin/env python3
"""What 3-bit weights would lose if q3's binary16 group scales were stored as small integer codes under
one binary16 super-scale per row (as q4k stores its scales), the codes and zero points unchanged.

Reads a Llama-family .edge file whose linear weights are q3 (asymmetric), exports it as an f32 Hugging
Face folder with `compress export`, replaces every q3 matrix by w = D * sc * (u - z), where per row
D = binary16(max group scale / (2^bits - 1)) and sc = round(scale / D) clamped to 0 ... 2^bits - 1,
and compresses the folder back with Recipes/f32.json, so `edge-run perplexity` can score it. The cost
being simulated: 3 + (bits + 3) / group_size bits a weight (a 3-bit zero code) against q3's
3 + 24 / group_size (docs/results.md, "A 3-bit k-quant").

Usage: scripts/simulate_q3_subcoded_scales.py --bin BIN_DIR IN.edge OUT.edge [--bits 6]
Needs numpy; reads the .edge with scripts/edge_read.py.
"""
import argparse
import json
import os
import re
import struct
import subprocess
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import edge_read as er  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HF = {"attn_q": "self_attn.q_proj", "attn_k": "self_attn.k_proj", "attn_v": "self_attn.v_proj",
      "attn_output": "self_attn.o_proj", "ffn_gate": "mlp.gate_proj", "ffn_up": "mlp.up_proj", "ffn_down": "mlp.down_proj"}


def subcoded(t, p, bits):
    """The float32 weights of q3 tensor t (payload p) with its scales sub-coded."""
    rows, cols = t["shape"]
    g = t["params"]["group_size"]
    groups, row_bytes = (cols + g - 1) // g, (3 * cols + 7) // 8
    packed = np.frombuffer(p, dtype=np.uint8, count=rows * row_bytes).reshape(rows, row_bytes)
    b = np.unpackbits(packed, axis=1, bitorder="little")
    u = (b[:, : 3 * cols].reshape(rows, cols, 3).astype(np.int64) << np.arange(3)).sum(axis=2)
    so = er.align64(rows * row_bytes)
    s = np.frombuffer(p, dtype="<f2", count=rows * groups, offset=so).astype(np.float32).reshape(rows, groups)
    if t["params"]["symmetric"]:
        z = np.full((rows, groups), 4, dtype=np.int64)
    else:
        z = np.frombuffer(p, dtype=np.uint8, count=rows * groups, offset=er.align64(so + 2 * rows * groups))
        z = z.astype(np.int64).reshape(rows, groups)
    top = (1 << bits) - 1
    D = (s.max(axis=1) / top).astype(np.float16).astype(np.float32)[:, None]
    sc = np.clip(np.rint(np.divide(s, D, out=np.zeros_like(s), where=D > 0)), 0, top)
    gi = np.arange(cols) // g
    return ((D * sc).astype(np.float32)[:, gi] * (u - z[:, gi]).astype(np.float32)).astype(np.float32)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--bits", type=int, default=6)
    ap.add_argument("input")
    ap.add_argument("output")
    a = ap.parse_args()
    src = er.EdgeReader(a.input)
    with tempfile.TemporaryDirectory() as tmp:
        folder = os.path.join(tmp, "hf")
        subprocess.run([os.path.join(a.bin, "compress"), "export", a.input, folder], check=True, stdout=subprocess.DEVNULL)
        path = os.path.join(folder, "model.safetensors")
        with open(path, "rb") as f:
            data = bytearray(f.read())
        n = struct.unpack("<Q", data[:8])[0]
        header, base = json.loads(data[8: 8 + n]), 8 + n
        changed = 0
        for t in src.tensors:
            if t["encoding"] != "q3":
                continue
            m = re.fullmatch(r"blk\.(\d+)\.(\w+)\.weight", t["name"])
            e = header[f"model.layers.{m.group(1)}.{HF[m.group(2)]}.weight"]
            o0, o1 = e["data_offsets"]
            w = subcoded(t, src.stored(t), a.bits)
            assert e["dtype"] == "F32" and o1 - o0 == w.size * 4, t["name"]
            data[base + o0: base + o1] = w.astype("<f4").tobytes()
            changed += 1
        with open(path, "wb") as f:
            f.write(data)
        subprocess.run([os.path.join(a.bin, "compress"), "--recipe", os.path.join(ROOT, "Recipes", "f32.json"), folder, a.output],
                       check=True, stdout=subprocess.DEVNULL)
    print(f"{a.output}: {changed} q3 matrices with {a.bits}-bit scale codes under per-row binary16 super-scales")


if __name__ == "__main__":
    main()
