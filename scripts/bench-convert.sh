#!/usr/bin/env bash
# Conversion time of an f32 GGUF to int8 against llama.cpp's Q8_0, run back to back, alternating.
# Usage: scripts/bench-convert.sh COMPRESS LLAMA_QUANTIZE F32_GGUF [ROUNDS]   (ROUNDS default 5)
#   COMPRESS: a release `compress` binary; LLAMA_QUANTIZE: llama.cpp's `llama-quantize`.
# Prints each round's wall seconds (`/usr/bin/time -f %e`) and the medians and their ratio, as a
# Markdown table row; outputs go to a temporary folder that is removed afterwards.
set -euo pipefail
[ $# -ge 3 ] || { sed -n '2,5p' "$0" >&2; exit 2; }
compress=$1 quantize=$2 gguf=$3 rounds=${4:-5}
root=$(cd "$(dirname "$0")/.." && pwd)
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
ours=() theirs=()
for ((i = 1; i <= rounds; i++)); do
  /usr/bin/time -f %e -o "$tmp/t" "$compress" --recipe "$root/Recipes/int8.json" "$gguf" "$tmp/out.edge" >/dev/null 2>&1
  ours+=("$(cat "$tmp/t")"); rm -f "$tmp/out.edge"
  /usr/bin/time -f %e -o "$tmp/t" "$quantize" "$gguf" "$tmp/out.gguf" Q8_0 >/dev/null 2>&1
  theirs+=("$(cat "$tmp/t")"); rm -f "$tmp/out.gguf"
done
python3 - "${ours[*]}" "${theirs[*]}" <<'PY'
import statistics, sys
a = [float(v) for v in sys.argv[1].split()]
b = [float(v) for v in sys.argv[2].split()]
ma, mb = statistics.median(a), statistics.median(b)
print("| compress int8 (s) | llama-quantize Q8_0 (s) | median ratio |")
print("|---|---|---:|")
print(f"| {', '.join(f'{v:.2f}' for v in a)} (median {ma:.2f}) | {', '.join(f'{v:.2f}' for v in b)} (median {mb:.2f}) | {ma / mb:.2f}x |")
PY
