#!/usr/bin/env bash
# The encoder figures of docs/real-model.md ("Encoders: all-MiniLM-L6-v2"), end to end:
#  1. fetches sentence-transformers/all-MiniLM-L6-v2 (scripts/fetch-minilm.sh);
#  2. cuts the evaluation texts into sentences (scripts/sentences.py, 400 per text): the tuning text
#     Fixtures/text/eval-sqlite-atomic-commit.txt and the report-only texts eval-moby-dick.txt and
#     eval-hamlet.txt (none of them in the calibration set; see Fixtures/README.md);
#  3. compresses the model with each recipe (calibration-driven ones use the bundled set);
#  4. checks the f32 file against the numpy reference (scripts/reference_bert.py --check, 1e-5
#     relative on the pooled embeddings, 200 sentences);
#  5. runs `compress verify` of every file on every text and prints one Markdown table.
#
# Usage: scripts/encoder-eval.sh [WORK_DIR] [--recipes f32,int8,bert-int8-prune50]
#   WORK_DIR defaults to /tmp/encoder-eval. EDGE_BIN=folder with release binaries skips the build.
# Requirements: python3 with numpy and tokenizers (for the reference), pip (for the download).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
work=/tmp/encoder-eval; recipes=""
while [ $# -gt 0 ]; do
  case $1 in
    --recipes) recipes=$2; shift 2 ;;
    -*) echo "encoder-eval: unknown option $1" >&2; exit 1 ;;
    *) work=$1; shift ;;
  esac
done
if [ -z "$recipes" ]; then
  recipes="f32,int8,bert-int8-prune50"
  [ -f "$root/Recipes/bert-distill-prune50-int8.json" ] && recipes+=",bert-distill-prune50-int8"
fi
mkdir -p "$work"
if [ -n "${EDGE_BIN:-}" ]; then bin=$EDGE_BIN; else
  (cd "$root" && swift build -c release --product compress >/dev/null && swift build -c release --product edge-run >/dev/null)
  bin=$(cd "$root" && swift build -c release --show-bin-path)
fi
model=$("$root/scripts/fetch-minilm.sh" "$work/minilm")
texts=(sqlite-atomic-commit moby-dick hamlet)
for t in "${texts[@]}"; do
  python3 "$root/scripts/sentences.py" "$root/Fixtures/text/eval-$t.txt" --max 400 > "$work/$t.txt"
done
lscpu | grep -m1 'Model name' >&2 || true

IFS=, read -ra rs <<< "$recipes"
for r in "${rs[@]}"; do
  echo "== compress $r" >&2
  /usr/bin/time -f "%e" -o "$work/$r.seconds" "$bin/compress" --recipe "$root/Recipes/$r.json" "$model" "$work/$r.edge" >&2
done
if [[ ",$recipes," == *",f32,"* ]]; then
  echo "== numpy reference" >&2
  head -200 "$work/moby-dick.txt" > "$work/reference-sentences.txt"
  "$bin/edge-run" embed "$work/f32.edge" --text "$work/reference-sentences.txt" --out "$work/f32-embeddings.json"
  python3 "$root/scripts/reference_bert.py" "$model" --check "$work/f32-embeddings.json"
fi

echo
echo "| recipe | bytes | x f32 | compress s | text | mean cosine | min cosine | retrieval |"
echo "| --- | ---: | ---: | ---: | --- | ---: | ---: | ---: |"
f32bytes=$(stat -c %s "$model/model.safetensors")
for r in "${rs[@]}"; do
  for t in "${texts[@]}"; do
    "$bin/compress" verify "$model" "$work/$r.edge" --text "$work/$t.txt" --json > "$work/$r.$t.verify.json" 2>/dev/null || [ $? -eq 3 ]
    python3 - "$work/$r.$t.verify.json" "$r" "$t" "$f32bytes" "$(cat "$work/$r.seconds")" <<'EOF'
import json, sys
d = json.load(open(sys.argv[1])); r, t, f32, secs = sys.argv[2], sys.argv[3], int(sys.argv[4]), float(sys.argv[5])
b = d["after"]["bytes"]
print(f"| {r} | {b} | {b / f32:.3f} | {secs:.1f} | {t} | {d['mean_cosine']:.4f} | {d['min_cosine']:.4f} | {d['retrieval_agreement'] * 100:.1f}% |")
EOF
  done
done
