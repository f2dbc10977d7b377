#!/usr/bin/env bash
# A/B throughput of edge-run builds on the same files, for a noisy machine: every round runs every
# (build, file) pair once (`edge-run bench FILE ... --json`), in reverse order every other round, so
# that drift hits the arms alike; prints each run, then the median per (build, file) over the rounds,
# and the median of each round's ratio against the first build (same file) and the first file (same
# build), with their range.
#
# Usage: scripts/bench-ab.sh ROUNDS tg|pp "EDGE_RUN_A EDGE_RUN_B ..." FILE.edge...
#   tg: `-p 0 -n 128 -r 3` (decoding), pp: `-p 512 -n 0 -r 2` (prompt processing).
#   EXTRA="--kernels avx2" in the environment adds arguments to every run.
# Example (docs/performance.md, "Prefetching into L2"):
#   scripts/bench-ab.sh 6 tg "/tmp/edge-run-before .build-rel/release/edge-run" int8.edge int8-prune50.edge
set -euo pipefail
if [ $# -lt 4 ]; then
  echo "usage: scripts/bench-ab.sh ROUNDS tg|pp \"EDGE_RUN...\" FILE.edge..." >&2
  exit 1
fi
rounds=$1 mode=$2
read -ra bins <<< "$3"
shift 3
case $mode in
  tg) args=(-p 0 -n 128 -r 3) ;;
  pp) args=(-p 512 -n 0 -r 2) ;;
  *) echo "bench-ab: mode must be tg or pp, not '$mode'" >&2; exit 1 ;;
esac
read -ra extra <<< "${EXTRA:-}"
pairs=()
for f in "$@"; do
  [ -f "$f" ] || { echo "bench-ab: no file $f" >&2; exit 1; }
  for b in "${bins[@]}"; do pairs+=("$b|$f"); done
done
log=$(mktemp)
trap 'rm -f "$log"' EXIT
lscpu | grep -m1 'Model name' || true
for ((i = 1; i <= rounds; i++)); do
  order=("${pairs[@]}")
  if ((i % 2 == 0)); then
    order=()
    for ((j = ${#pairs[@]} - 1; j >= 0; j--)); do order+=("${pairs[$j]}"); done
  fi
  for p in "${order[@]}"; do
    b=${p%%|*} f=${p#*|}
    v=$("$b" bench "$f" "${args[@]}" "${extra[@]}" --json | python3 -c "import json, sys; print(round(json.load(sys.stdin)['$mode']['median'], 1))")
    echo "round $i $b $(basename "$f") $v" | tee -a "$log"
  done
done
python3 - "$log" <<'EOF'
import collections, statistics, sys
runs = collections.defaultdict(list)
for line in open(sys.argv[1]):
    _, _, b, f, v = line.split()
    runs[(f, b)].append(float(v))
print("\n| file | build | median tokens/s | rounds |\n| --- | --- | ---: | --- |")
for (f, b), vs in sorted(runs.items()):
    print(f"| {f} | {b} | {statistics.median(vs):.1f} | {', '.join(f'{v:.1f}' for v in vs)} |")
# Each run against the first build on the same file, and against the first file with the same build,
# round by round: the runs of a round are seconds apart, so these ratios follow the machine's drift
# far less than a ratio of medians does.
files = list(dict.fromkeys(f for f, _ in runs))
builds = list(dict.fromkeys(b for _, b in runs))
def paired(a, b):
    r = [x / y for x, y in zip(runs[a], runs[b]) if y]
    return f"{statistics.median(r):.3f} ({min(r):.2f}-{max(r):.2f})" if r else ""
print("\n| file | build | paired vs first build | paired vs first file |\n| --- | --- | ---: | ---: |")
for (f, b) in sorted(runs):
    vb = paired((f, b), (f, builds[0])) if b != builds[0] else ""
    vf = paired((f, b), (files[0], b)) if f != files[0] else ""
    if vb or vf:
        print(f"| {f} | {b} | {vb} | {vf} |")
EOF
