#!/usr/bin/env python3
"""Prompt-processing and generation throughput of .edge files against llama.cpp, back to back.

Each round runs, for every row (in reverse order every other round), `edge-run bench FILE -p P -n N
-r 1 --json --threads T` and then (when the row names a GGUF) `llama-bench -m GGUF -p P -n N -r 1 -t T
-o json`, alternating the two tools; rows whose `vs` names another row's label are compared with that
row's edge-run figures (sparse against dense). Both tools warm up before each measurement. The
medians over the rounds make the table, and beside them the median of each round's own ratio (less
moved by a machine whose speed drifts between rounds); markdown on stdout, everything as JSON with
--json-out.

    python3 scripts/bench-decode.py --edge-run .build-rel/release/edge-run \
        --llama-bench /path/llama.cpp/build/bin/llama-bench --rounds 3 \
        f32=out/f32.edge:llama/F32.gguf int8=out/int8.edge:llama/Q8_0.gguf \
        int4-g64=out/int4-g64.edge:llama/Q4_0.gguf int8-prune50=out/int8-prune50.edge@int8

A row is LABEL=EDGE[:GGUF][@DENSE_LABEL].
"""
import argparse
import json
import os
import platform
import statistics
import subprocess
import sys


def cpu_name():
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def cpu_flags():
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("flags"):
                f = set(line.split(":", 1)[1].split())
                return [x for x in ("avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512_vnni", "avx_vnni", "avx512_bf16") if x in f]
    except OSError:
        pass
    return []


def parse_row(text):
    label, _, rest = text.partition("=")
    if not label or not rest:
        sys.exit(f"bench-decode: row '{text}' is not LABEL=EDGE[:GGUF][@DENSE]")
    rest, _, dense = rest.partition("@")
    edge, _, gguf = rest.partition(":")
    for p in [edge] + ([gguf] if gguf else []):
        if not os.path.isfile(p):
            sys.exit(f"bench-decode: {p}: no such file (row {label})")
    return {"label": label, "edge": edge, "gguf": gguf or None, "dense": dense or None}


def run_json(cmd):
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        tail = (r.stderr.strip().splitlines() or ["(no message)"])[-1]
        sys.exit(f"bench-decode: {' '.join(cmd)} failed ({r.returncode}): {tail}")
    return json.loads(r.stdout)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--edge-run", required=True)
    ap.add_argument("--llama-bench")
    ap.add_argument("-p", type=int, default=512)
    ap.add_argument("-n", type=int, default=128)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--edge-args", default="", help="extra edge-run bench arguments, e.g. '--activations f32'")
    ap.add_argument("--json-out")
    ap.add_argument("rows", nargs="+")
    a = ap.parse_args()
    rows = [parse_row(r) for r in a.rows]
    labels = {r["label"] for r in rows}
    for r in rows:
        if r["dense"] and r["dense"] not in labels:
            sys.exit(f"bench-decode: row {r['label']} compares with '{r['dense']}', which is no row's label")
        if r["gguf"] and not a.llama_bench:
            sys.exit(f"bench-decode: row {r['label']} names a GGUF but --llama-bench is not given")
    samples = {r["label"]: {"ours_pp": [], "ours_tg": [], "llama_pp": [], "llama_tg": [], "rss": []} for r in rows}
    for rnd in range(a.rounds):
        for r in (rows if rnd % 2 == 0 else rows[::-1]):  # reversed every other round: drift hits rows alike
            s = samples[r["label"]]
            print(f"round {rnd + 1}/{a.rounds}: {r['label']}", file=sys.stderr, flush=True)
            o = run_json([a.edge_run, "bench", r["edge"], "-p", str(a.p), "-n", str(a.n), "-r", "1", "--json",
                          "--threads", str(a.threads)] + a.edge_args.split())
            if a.p:
                s["ours_pp"].append(o["pp"]["median"])
            if a.n:
                s["ours_tg"].append(o["tg"]["median"])
            s["rss"].append(o["peak_rss_bytes"])
            if r["gguf"]:
                out = run_json([a.llama_bench, "-m", r["gguf"], "-p", str(a.p), "-n", str(a.n), "-r", "1",
                                "-t", str(a.threads), "-o", "json"])
                for t in out:
                    if t["n_prompt"] > 0 and t["n_gen"] == 0:
                        s["llama_pp"].append(t["avg_ts"])
                    elif t["n_gen"] > 0 and t["n_prompt"] == 0:
                        s["llama_tg"].append(t["avg_ts"])
    med = lambda v: statistics.median(v) if v else None
    result = {"cpu": cpu_name(), "flags": cpu_flags(), "threads": a.threads, "p": a.p, "n": a.n, "rounds": a.rounds,
              "edge_args": a.edge_args, "rows": []}
    for r in rows:
        s = samples[r["label"]]
        row = {"label": r["label"], "edge": r["edge"], "edge_bytes": os.path.getsize(r["edge"]), "gguf": r["gguf"],
               "gguf_bytes": os.path.getsize(r["gguf"]) if r["gguf"] else None, "dense": r["dense"], "samples": s,
               "ours_pp": med(s["ours_pp"]), "ours_tg": med(s["ours_tg"]), "llama_pp": med(s["llama_pp"]),
               "llama_tg": med(s["llama_tg"]), "peak_rss": max(s["rss"])}
        result["rows"].append(row)
    by = {r["label"]: r for r in result["rows"]}
    fmt = lambda x: "" if x is None else f"{x:.1f}"
    ratio = lambda x, y: "" if x is None or y is None or y == 0 else f"{x / y:.2f}x"
    print(f"CPU: {result['cpu']} ({', '.join(result['flags'])}); {a.threads} threads; medians of {a.rounds} alternating "
          f"rounds; pp{a.p} / tg{a.n} (`edge-run bench -p {a.p} -n {a.n} -r 1`"
          + (f" `{a.edge_args}`" if a.edge_args else "") + f", `llama-bench -p {a.p} -n {a.n} -r 1 -t {a.threads}`).")
    print()
    print("| row | MB | pp ours | pp llama.cpp | pp ratio | tg ours | tg llama.cpp | tg ratio | vs dense pp / tg "
          "| per-round ratios pp / tg | peak RSS MB |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in result["rows"]:
        d = by.get(r["dense"]) if r["dense"] else None
        vs = f"{ratio(r['ours_pp'], d['ours_pp'])} / {ratio(r['ours_tg'], d['ours_tg'])}" if d else ""
        # The median of each round's own ratio (against llama.cpp, or the dense row): the two runs of a
        # round are minutes closer than the rounds' medians, so this follows the machine's drift less.
        s, ds = r["samples"], d["samples"] if d else None
        base = (ds["ours_pp"], ds["ours_tg"]) if d else (s["llama_pp"], s["llama_tg"])
        paired = [med([x / y for x, y in zip(ours, ref) if y]) if ours and len(ours) == len(ref) else None
                  for ours, ref in ((s["ours_pp"], base[0]), (s["ours_tg"], base[1]))]
        r["paired_pp"], r["paired_tg"] = paired
        pr = " / ".join("" if x is None else f"{x:.2f}x" for x in paired) if any(x is not None for x in paired) else ""
        print(f"| {r['label']} | {r['edge_bytes'] / 1e6:.1f} | {fmt(r['ours_pp'])} | {fmt(r['llama_pp'])} | "
              f"{ratio(r['ours_pp'], r['llama_pp'])} | {fmt(r['ours_tg'])} | {fmt(r['llama_tg'])} | "
              f"{ratio(r['ours_tg'], r['llama_tg'])} | {vs} | {pr} | {r['peak_rss'] / 1e6:.0f} |")
    if a.json_out:
        with open(a.json_out, "w") as f:
            json.dump(result, f, indent=1)


if __name__ == "__main__":
    main()
