#!/usr/bin/env python3
"""Rebuilds the `model.edge` inputs of the saved fuzz cases in Fixtures/fuzz-regressions (.edge cases
and text cases that run a model).

The fuzzer saved these cases (their case.json, cmd.txt and stderr.txt) before `*.edge` files were
kept in git, so their inputs were lost; replaying them then tested nothing. Each input is rebuilt here
from its case's recorded mutation (`desc` in case.json), applied with scripts/fuzz.py's own helpers to
the seed file it names, made by `compress` from the bundled fixture as the fuzzer makes its seeds (a
text case's model is that seed, unmutated).

Usage: scripts/make_fuzz_regression_inputs.py --bin BIN_DIR   (BIN_DIR holds compress)
"""
import argparse
import json
import os
import struct
import sys
import tempfile
import zlib

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fuzz  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CASES = os.path.join(REPO, "Fixtures", "fuzz-regressions")


def set_scales(e, buf, name, values):
    """Writes float32 `values` (a list, or one value for every scale) into the q8 row scales of `name`."""
    t = next(t for t in e.header["tensors"] if t["name"] == name)
    _, so, w, count, _ = fuzz.q_layout(t)
    start = t["offset"] + so
    vals = values if isinstance(values, list) else [values] * count
    for i, v in enumerate(vals):
        buf[start + 4 * i: start + 4 * i + 4] = v
    t["crc32"] = zlib.crc32(bytes(buf[t["offset"]: t["offset"] + t["length"]]))


def flip_one(e, buf, name, at):
    t = next(t for t in e.header["tensors"] if t["name"] == name)
    buf[at] ^= 0xFF
    t["crc32"] = zlib.crc32(bytes(buf[t["offset"]: t["offset"] + t["length"]]))


def build(case, seeds):
    """The input of one saved case, from its recorded mutation."""
    desc = case["desc"]
    seed = desc[0].split()[1]
    with open(os.path.join(seeds, seed), "rb") as f:
        b = f.read()
    e = fuzz.Edge(b)
    buf = bytearray(b)
    what = desc[1]
    if what == "tensor blk.0.ffn_up.weight scales: 1 values := NaN/Inf/extreme":
        set_scales(e, buf, "blk.0.ffn_up.weight", [struct.pack("<f", float("nan"))])
    elif what == "tensor blk.0.attn_v.weight scales: every value := ffff7f7f":
        set_scales(e, buf, "blk.0.attn_v.weight", bytes.fromhex("ffff7f7f"))
    elif what.startswith("tensor blk.1.ffn_gate.weight: flip 1 bytes in [84800"):
        t = next(t for t in e.header["tensors"] if t["name"] == "blk.1.ffn_gate.weight")
        flip_one(e, buf, t["name"], t["offset"] + t["length"] // 2)
    elif what == "header.format := '\\x7f'":
        e.header["format"] = "\x7f"
        return fuzz.edge_assemble(e.version, e.header, bytes(buf[64: e.h_off]))
    else:
        sys.exit(f"make_fuzz_regression_inputs: no rebuild for mutation {what!r}")
    return fuzz.edge_assemble(e.version, e.header, bytes(buf[64: e.h_off]))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as work:
        seeds = fuzz.setup_seeds(work, os.path.abspath(args.bin))
        for root, _, files in sorted(os.walk(CASES)):
            if "case.json" not in files:
                continue
            with open(os.path.join(root, "case.json")) as f:
                case = json.load(f)
            out = os.path.join(root, "model.edge")
            if case["target"] == "edge":
                data, what = build(case, seeds), case["desc"][1]
            elif case["target"] == "text" and "model.edge" in case["argv"]:
                # The text cases run an unmutated seed model on the mutated text.
                what = next(d for d in case["desc"] if d.startswith("model "))
                with open(os.path.join(seeds, what.split()[1]), "rb") as f:
                    data = f.read()
            else:
                continue
            with open(out, "wb") as f:
                f.write(data)
            print(f"{os.path.relpath(out, REPO)}: {what}")


if __name__ == "__main__":
    main()
