#!/usr/bin/env bash
# Training throughput (student forward + backward tokens per second) of `compress train`, with the
# packed GEMM (default) against the dot-product GEMM (`--gemm dot`, reported under "kernels" in the
# JSON summary) as the same-session baseline.
#
# Usage: scripts/bench-train.sh MODEL TEXT   (MODEL: any checkpoint compress reads, e.g. SmolLM2's GGUF)
# Environment: EDGE_BIN (default .build-rel/release), STEPS (default 2), BATCH (4), LENGTH (256),
#   REPEATS (default 3; runs alternate between the two kernels). Prints a Markdown table of medians.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
[ $# -eq 2 ] || { sed -n '2,8p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
model=$1; text=$2
bin=${EDGE_BIN:-$root/.build-rel/release}
steps=${STEPS:-2}; batch=${BATCH:-4}; length=${LENGTH:-256}; repeats=${REPEATS:-3}
[ -x "$bin/compress" ] || { echo "bench-train: no $bin/compress (swift build -c release --scratch-path .build-rel)" >&2; exit 1; }
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
for r in $(seq "$repeats"); do
  for kernel in packed dot; do
    gemm=auto; [ "$kernel" = dot ] && gemm=dot
    "$bin/compress" train "$model" "$tmp/out.edge" --gemm "$gemm" --data "$text" --steps "$steps" --batch "$batch" \
      --length "$length" --held-out 0.05 --json > "$tmp/$kernel-$r.json"
    python3 -c "import json; d=json.load(open('$tmp/$kernel-$r.json')); print('$kernel', d['tokens_per_second'])" >&2
  done
done
python3 - "$tmp" "$repeats" <<'PY'
import json, statistics, sys
tmp, n = sys.argv[1], int(sys.argv[2])
rows = {}
for k in ("packed", "dot"):
    rows[k] = [json.load(open(f"{tmp}/{k}-{r}.json"))["tokens_per_second"] for r in range(1, n + 1)]
base = statistics.median(rows["dot"])
print("| GEMM | tokens/s median [min-max] | vs dot |")
print("| --- | ---: | ---: |")
for k in ("packed", "dot"):
    v = rows[k]
    print(f"| {k} | {statistics.median(v):.1f} [{min(v):.1f}-{max(v):.1f}] | {statistics.median(v)/base:.2f}x |")
PY
