#!/usr/bin/env bash
# Training throughput (student forward + backward + AdamW tokens per second) of `compress train`.
# Two modes, both alternating their two arms run by run and printing a Markdown table of medians:
# - default: the packed GEMM against the dot-product GEMM (`--gemm dot`) of one binary;
# - BASE_BIN set: this binary against the one in BASE_BIN (e.g. a build of the commit before a
#   change), both with the default GEMM, so "before" and "after" share the machine's load.
#
# Usage: scripts/bench-train.sh MODEL TEXT   (MODEL: any checkpoint compress reads, e.g. SmolLM2's GGUF)
# Environment: EDGE_BIN (folder of compress, default .build-rel/release), BASE_BIN (folder of the
#   baseline compress; switches to the before/after mode), STEPS (default 2), BATCH (4), LENGTH (256),
#   REPEATS (default 3), ARGS (extra `compress train` options for this binary's runs only, e.g.
#   ARGS="--matmul bf16"; the baseline's runs get none), BASE_ARGS (options for the baseline's runs
#   only, e.g. BASE_ARGS="--kernels avx2" with ARGS="--matmul bf16 --kernels avx2" to compare both
#   on the AVX2 kernels). Also prints load average and the runs' user/sys seconds (GNU time when present).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
[ $# -eq 2 ] || { sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
model=$1; text=$2
bin=${EDGE_BIN:-$root/.build-rel/release}
base=${BASE_BIN:-}
steps=${STEPS:-2}; batch=${BATCH:-4}; length=${LENGTH:-256}; repeats=${REPEATS:-3}
read -r -a extra <<< "${ARGS:-}"
read -r -a base_extra <<< "${BASE_ARGS:-}"
[ -x "$bin/compress" ] || { echo "bench-train: no $bin/compress (swift build -c release --scratch-path .build-rel)" >&2; exit 1; }
[ -z "$base" ] || [ -x "$base/compress" ] || { echo "bench-train: no $base/compress" >&2; exit 1; }
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
if [ -n "$base" ]; then arms="after before"; else arms="packed dot"; fi
timer=(); [ -x /usr/bin/time ] && timer=(/usr/bin/time -f "%U %S %M")
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
for r in $(seq "$repeats"); do
  for arm in $arms; do
    exe=$bin/compress; gemm=auto; args=("${extra[@]}")
    case $arm in dot) gemm=dot ;; before) exe=$base/compress; args=("${base_extra[@]}") ;; esac
    "${timer[@]}" "$exe" train "$model" "$tmp/out.edge" --gemm "$gemm" --data "$text" --steps "$steps" --batch "$batch" \
      --length "$length" --held-out 0.05 "${args[@]}" --json > "$tmp/$arm-$r.json" 2> "$tmp/$arm-$r.time"
    python3 -c "import json; d=json.load(open('$tmp/$arm-$r.json')); print('$arm', '$r', round(d['tokens_per_second'], 2), 'tokens/s;', 'user/sys/maxRSS(KB):', open('$tmp/$arm-$r.time').read().strip().splitlines()[-1:] )" >&2
  done
done
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
python3 - "$tmp" "$repeats" $arms <<'PY'
import json, statistics, sys
tmp, n, arms = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
rows = {k: [json.load(open(f"{tmp}/{k}-{r}.json"))["tokens_per_second"] for r in range(1, n + 1)] for k in arms}
ref = arms[1]
base = statistics.median(rows[ref])
label = "binary" if ref == "before" else "GEMM"
print(f"| {label} | tokens/s median [min-max] | vs {ref} |")
print("| --- | ---: | ---: |")
for k in arms:
    v = rows[k]
    print(f"| {k} | {statistics.median(v):.1f} [{min(v):.1f}-{max(v):.1f}] | {statistics.median(v)/base:.2f}x |")
PY
