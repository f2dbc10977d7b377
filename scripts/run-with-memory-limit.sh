#!/usr/bin/env bash
# Runs a command under a hard memory limit (a memory cgroup: cgroup v2, cgroup v1, or systemd-run),
# and reports its wall time, peak memory charged to the cgroup (page cache included) and peak RSS.
#
#   scripts/run-with-memory-limit.sh 2G compress --recipe Recipes/int8.json big/ big.edge
#
# Exit status: the command's. Needs permission to create a cgroup (root in a container usually has it).
set -euo pipefail
limit=${1:?usage: run-with-memory-limit.sh LIMIT(e.g. 2G) COMMAND...}; shift
bytes=$(numfmt --from=iec "$limit")
name="edge-limit-$$"
v1=/sys/fs/cgroup/memory
if [ -d "$v1" ] && [ -w "$v1" ]; then
  cg="$v1/$name"; mkdir "$cg"
  echo "$bytes" > "$cg/memory.limit_in_bytes"
  [ -f "$cg/memory.memsw.limit_in_bytes" ] && echo "$bytes" > "$cg/memory.memsw.limit_in_bytes" 2>/dev/null || true
  peakfile="$cg/memory.max_usage_in_bytes"
elif [ -f /sys/fs/cgroup/cgroup.controllers ] && [ -w /sys/fs/cgroup ]; then
  cg="/sys/fs/cgroup/$name"; mkdir "$cg"
  echo "$bytes" > "$cg/memory.max"; echo 0 > "$cg/memory.swap.max" 2>/dev/null || true
  peakfile="$cg/memory.peak"
elif command -v systemd-run >/dev/null; then
  exec systemd-run --scope -q -p MemoryMax="$limit" -p MemorySwapMax=0 /usr/bin/time -v "$@"
else
  echo "run-with-memory-limit.sh: cannot create a memory cgroup here" >&2; exit 2
fi
cleanup() { rmdir "$cg" 2>/dev/null || true; }
trap cleanup EXIT
start=$(date +%s.%N)
set +e
( echo $BASHPID > "$cg/cgroup.procs"; exec /usr/bin/time -f "peak RSS %M kB" "$@" )
rc=$?
set -e
end=$(date +%s.%N)
peak=$(cat "$peakfile" 2>/dev/null || echo 0)
echo "limit $limit: exit $rc, wall $(echo "$end - $start" | bc) s, peak cgroup memory $((peak / 1048576)) MiB (page cache included)" >&2
exit $rc
