#!/usr/bin/env bash
# Perplexity throughput of .edge files against the first one (the baseline), one session:
# `edge-run perplexity FILE --text TEXT --ctx CTX --chunks CHUNKS --json` for every file, round-robin
# REPEATS times (so drift in the machine's speed hits every file alike); prints a Markdown table of
# the median evaluated tokens/s (the runtime's own figure: the evaluation loop, loading excluded),
# the ratio to the baseline's median, the perplexity and the kernel level it ran.
#
# Usage: scripts/bench-encodings.sh BASELINE.edge OTHER.edge [...]
# Environment: EDGE_BIN (release binaries; default .build/release), TEXT (default
#   Fixtures/text/eval-sqlite-atomic-commit.txt), CTX (512), CHUNKS (4), THREADS (2), REPEATS (3).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
[ $# -ge 2 ] || { sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
bin=${EDGE_BIN:-$root/.build/release}
[ -x "$bin/edge-run" ] || { echo "bench-encodings: no $bin/edge-run (swift build -c release, or set EDGE_BIN)" >&2; exit 2; }
text=${TEXT:-$root/Fixtures/text/eval-sqlite-atomic-commit.txt}
ctx=${CTX:-512}; chunks=${CHUNKS:-4}; threads=${THREADS:-2}; repeats=${REPEATS:-3}
for f in "$@"; do [ -f "$f" ] || { echo "bench-encodings: $f: no such file" >&2; exit 2; }; done
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
for r in $(seq "$repeats"); do
  i=0
  for f in "$@"; do
    "$bin/edge-run" perplexity "$f" --text "$text" --ctx "$ctx" --chunks "$chunks" --threads "$threads" --json \
      > "$tmp/$i.$r.json" || { echo "bench-encodings: edge-run failed on $f" >&2; exit 1; }
    i=$((i + 1))
  done
done
python3 - "$tmp" "$repeats" "$@" <<'PY'
import json, os, statistics, subprocess, sys
tmp, repeats, files = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
rows = []
for i, f in enumerate(files):
    runs = [json.load(open(f"{tmp}/{i}.{r}.json")) for r in range(1, repeats + 1)]
    tps = [x["tokens_per_second"] for x in runs]
    k = runs[0].get("kernels", {})
    kernels = f'{k.get("level", "?")}, activations {runs[0].get("activations", "?")}'
    rows.append((os.path.basename(f), statistics.median(tps), min(tps), max(tps), runs[0]["ppl"], kernels))
base = rows[0][1]
print(f"| file | median tokens/s | min..max | vs {rows[0][0]} | ppl | kernels |")
print("| --- | ---: | ---: | ---: | ---: | --- |")
for name, med, lo, hi, ppl, k in rows:
    print(f"| {name} | {med:.1f} | {lo:.1f}..{hi:.1f} | {med / base:.2f}x | {ppl:.3f} | {k} |")
PY
