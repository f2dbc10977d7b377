#!/usr/bin/env python3
"""What the decoding kernels' activation quantization costs: perplexity through the decoding path.

For every file and text, `edge-run perplexity FILE --text TEXT --ctx C --chunks N --stepwise --json`
(each chunk fed one token at a time through the KV cache: the one-token kernels `generate` runs)
with `--activations f32` (weights' error only) and `--activations i16` (the default: int16
activations in the q8 / q4 / bitmask-q8 decoding kernels; `--modes i16 q8` adds int8 blocks of 32),
and the relative change between them.

    python3 scripts/decode-accuracy.py --edge-run .build-rel/release/edge-run --ctx 512 --chunks 2 \\
        --texts Fixtures/text/eval-moby-dick.txt Fixtures/text/eval-hamlet.txt -- int8.edge int4-g64.edge
"""
import argparse
import json
import os
import subprocess
import sys


def ppl(edge_run, model, text, ctx, chunks, activations):
    cmd = [edge_run, "perplexity", model, "--text", text, "--ctx", str(ctx), "--chunks", str(chunks),
           "--stepwise", "--json", "--activations", activations]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"decode-accuracy: {' '.join(cmd)} failed: {(r.stderr.strip().splitlines() or ['?'])[-1]}")
    return json.loads(r.stdout)["ppl"]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--edge-run", required=True)
    ap.add_argument("--ctx", type=int, default=512)
    ap.add_argument("--chunks", type=int, default=2)
    ap.add_argument("--texts", nargs="+", required=True)
    ap.add_argument("--modes", nargs="+", default=["i16"], choices=["i16", "q8"],
                    help="activation precisions compared with f32 (default: i16)")
    ap.add_argument("--json-out")
    ap.add_argument("files", nargs="+")
    a = ap.parse_args()
    rows = []
    names = [os.path.basename(t).rsplit(".", 1)[0] for t in a.texts]
    print(f"`edge-run perplexity FILE --text TEXT --ctx {a.ctx} --chunks {a.chunks} --stepwise --activations f32|{'|'.join(a.modes)}`;"
          f" Δ = {' / '.join(a.modes)} against f32 activations.")
    print()
    label = " / ".join(["f32 act."] + a.modes)
    print("| file | " + " | ".join(f"{n} ppl {label} (Δ)" for n in names) + " |")
    print("|---|" + "---:|" * len(names))
    for f in a.files:
        cells, row = [], {"file": f, "texts": {}}
        for t, n in zip(a.texts, names):
            print(f"{os.path.basename(f)} {n}", file=sys.stderr, flush=True)
            p32 = ppl(a.edge_run, f, t, a.ctx, a.chunks, "f32")
            entry, values, deltas = {"f32": p32}, [f"{p32:.4f}"], []
            for m in a.modes:
                p = ppl(a.edge_run, f, t, a.ctx, a.chunks, m)
                entry[m] = p
                entry[f"delta_percent_{m}"] = (p / p32 - 1) * 100
                values.append(f"{p:.4f}")
                deltas.append(f"{entry[f'delta_percent_{m}']:+.3f}%")
            if a.modes == ["i16"]:
                entry["delta_percent"] = entry["delta_percent_i16"]
            row["texts"][n] = entry
            cells.append(" / ".join(values) + f" ({', '.join(deltas)})")
        rows.append(row)
        print(f"| {os.path.basename(f)} | " + " | ".join(cells) + " |")
    if a.json_out:
        with open(a.json_out, "w") as fh:
            json.dump({"ctx": a.ctx, "chunks": a.chunks, "rows": rows}, fh, indent=1)


if __name__ == "__main__":
    main()
