#!/usr/bin/env python3
"""Summarise the runs of scripts/bench-perplexity.sh: one table row per configuration.

Reads RUNS/<config>.<i>.{stdout,stderr,time} (config: llama-f32, llama-q8_0, edge-f32, edge-int8)
and RUNS/llama-tokenize.out; prints the table and the agreement checks, writes RUNS/summary.json.
Throughput is evaluated tokens (chunks x ctx) per second of the evaluation loop, forward passes plus
log-softmax, model loading excluded: for llama.cpp the time between its log lines "calculating
perplexity over N chunks" and "Final estimate" (the log prefix's timestamps), for edge-run its
"tokens_per_second"; median over the repeats; wall
time and peak RSS come from /usr/bin/time -v around the whole process (load included).
Exit status 1 when a run's output cannot be parsed.
"""
import argparse
import json
import os
import re
import statistics
import sys

CONFIGS = [("llama-f32", "llama.cpp", "F32 GGUF"), ("llama-q8_0", "llama.cpp", "Q8_0 GGUF"),
           ("edge-f32", "edge-run", "f32 .edge"), ("edge-int8", "edge-run", "int8 .edge")]


def fail(msg):
    print(f"bench_perplexity: {msg}", file=sys.stderr)
    sys.exit(1)


def read(path):
    with open(path, encoding="utf-8", errors="replace") as f:
        return f.read()


def parse_time(path):
    text = read(path)
    rss = re.search(r"Maximum resident set size \(kbytes\): (\d+)", text)
    wall = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): ([\d:.]+)", text)
    if not rss or not wall:
        fail(f"{path}: no RSS or wall time from /usr/bin/time -v")
    seconds = 0.0
    for part in wall.group(1).split(":"):
        seconds = seconds * 60 + float(part)
    return int(rss.group(1)) / 1024, seconds


def parse_llama(base, tokens):
    text = read(base + ".stdout") + read(base + ".stderr")
    stamp = r"(\d+)\.(\d+)\.(\d+)\.(\d+) I "
    ppl = re.search(stamp + r"Final estimate: PPL = ([\d.]+)", text)
    start = re.search(stamp + r"perplexity: calculating perplexity over (\d+) chunks, n_ctx=(\d+)", text)
    if not ppl or not start:
        fail(f"{base}: cannot find the PPL estimate or the chunk count in llama-perplexity's output")

    def seconds(m):  # log prefix minutes.seconds.milliseconds.microseconds
        return int(m.group(1)) * 60 + int(m.group(2)) + int(m.group(3)) / 1e3 + int(m.group(4)) / 1e6

    chunks, ctx = int(start.group(5)), int(start.group(6))
    elapsed = seconds(ppl) - seconds(start)
    return {"ppl": float(ppl.group(5)), "tokens_per_second": chunks * ctx / elapsed, "tokens": tokens,
            "chunks": chunks, "eval_tokens": chunks * ctx}


def parse_edge(base):
    try:
        r = json.loads(read(base + ".stdout"))
    except (OSError, ValueError) as e:
        fail(f"{base}.stdout: not edge-run's JSON ({e})")
    return {"ppl": r["ppl"], "tokens_per_second": r["tokens_per_second"], "tokens": r["tokens"],
            "chunks": r["chunks"], "eval_tokens": r["chunks"] * r["ctx"]}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs")
    ap.add_argument("--repeats", type=int, required=True)
    ap.add_argument("--ctx", type=int, required=True)
    ap.add_argument("--threads", type=int, required=True)
    ap.add_argument("--edge-f32")
    ap.add_argument("--edge-int8")
    a = ap.parse_args()

    count = re.search(r"Total number of tokens: (\d+)", read(os.path.join(a.runs, "llama-tokenize.out")))
    if not count:
        fail("llama-tokenize printed no token count")
    llama_tokens = int(count.group(1))

    rows = {}
    for key, tool, model in CONFIGS:
        runs = []
        for i in range(1, a.repeats + 1):
            base = os.path.join(a.runs, f"{key}.{i}")
            r = parse_llama(base, llama_tokens) if tool == "llama.cpp" else parse_edge(base)
            r["rss_mb"], r["wall_s"] = parse_time(base + ".time")
            runs.append(r)
        speeds = [r["tokens_per_second"] for r in runs]
        rows[key] = {"tool": tool, "model": model, "tokens": runs[0]["tokens"], "chunks": runs[0]["chunks"],
                     "ppl": runs[0]["ppl"], "ppl_all_runs": sorted({r["ppl"] for r in runs}),
                     "tokens_per_second_median": statistics.median(speeds),
                     "tokens_per_second_min": min(speeds), "tokens_per_second_max": max(speeds),
                     "wall_s_median": statistics.median(r["wall_s"] for r in runs),
                     "peak_rss_mb_max": max(r["rss_mb"] for r in runs)}
    base_speed = rows["llama-f32"]["tokens_per_second_median"]
    for r in rows.values():
        r["ratio_vs_llama_f32"] = r["tokens_per_second_median"] / base_speed

    print(f"ctx {a.ctx}, {a.threads} threads, {a.repeats} repeats (median tokens/s, [min-max])")
    head = f"{'tool':<10} {'model':<11} {'tokens':>6} {'chunks':>6} {'ppl':>9} {'tokens/s':>9} {'[min-max]':>15} {'vs llama f32':>12} {'wall s':>7} {'peak RSS MB':>11}"
    print(head)
    print("-" * len(head))
    for key, _, _ in CONFIGS:
        r = rows[key]
        span = f"[{r['tokens_per_second_min']:.0f}-{r['tokens_per_second_max']:.0f}]"
        print(f"{r['tool']:<10} {r['model']:<11} {r['tokens']:>6} {r['chunks']:>6} {r['ppl']:>9.4f} "
              f"{r['tokens_per_second_median']:>9.1f} {span:>15} {r['ratio_vs_llama_f32']:>11.2f}x "
              f"{r['wall_s_median']:>7.2f} {r['peak_rss_mb_max']:>11.0f}")

    ef, lf, ei, lq = rows["edge-f32"], rows["llama-f32"], rows["edge-int8"], rows["llama-q8_0"]
    checks = {
        "edge_f32_vs_llama_f32_ppl_pct": 100 * (ef["ppl"] / lf["ppl"] - 1),
        "same_token_count": ef["tokens"] == lf["tokens"],
        "edge_int8_vs_edge_f32_ppl_pct": 100 * (ei["ppl"] / ef["ppl"] - 1),
        "llama_q8_0_vs_llama_f32_ppl_pct": 100 * (lq["ppl"] / lf["ppl"] - 1),
        "edge_int8_vs_edge_f32_speed": ei["tokens_per_second_median"] / ef["tokens_per_second_median"],
    }
    print()
    print(f"ppl edge f32 vs llama.cpp f32: {checks['edge_f32_vs_llama_f32_ppl_pct']:+.3f}% (target within 0.3%), "
          f"tokens {ef['tokens']} vs {lf['tokens']} ({'same' if checks['same_token_count'] else 'DIFFERENT'})")
    print(f"ppl edge int8 vs edge f32: {checks['edge_int8_vs_edge_f32_ppl_pct']:+.3f}% (target <= +0.5%); "
          f"llama.cpp Q8_0 vs F32: {checks['llama_q8_0_vs_llama_f32_ppl_pct']:+.3f}%")
    print(f"throughput edge f32 / llama.cpp f32: {ef['ratio_vs_llama_f32']:.2f}x (target >= 0.5x); "
          f"edge int8 / edge f32: {checks['edge_int8_vs_edge_f32_speed']:.2f}x")
    sizes = {}
    for name, path in (("edge_f32", a.edge_f32), ("edge_int8", a.edge_int8)):
        if path and os.path.exists(path):
            sizes[name] = os.path.getsize(path) / 2**20
    if "edge_int8" in sizes:
        budget = 1.5 * sizes["edge_int8"] + 300
        print(f"peak RSS edge int8: {ei['peak_rss_mb_max']:.0f} MB, file {sizes['edge_int8']:.0f} MB, "
              f"budget 1.5 x file + 300 = {budget:.0f} MB")
    with open(os.path.join(a.runs, "summary.json"), "w") as f:
        json.dump({"ctx": a.ctx, "threads": a.threads, "repeats": a.repeats, "rows": rows, "checks": checks,
                   "file_mb": sizes}, f, indent=2)


if __name__ == "__main__":
    main()
