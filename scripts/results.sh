#!/usr/bin/env bash
# Every bundled recipe on one model, with llama.cpp's quant types beside them where comparable:
# prints the Markdown that docs/results.md holds.
#
# Usage: scripts/results.sh MODEL.gguf OUT_DIR --data CALIB.txt [--text EVAL.txt] [--chunks N] [--checkpoints DIR]
#   --checkpoints DIR: passed to device-artifacts.sh (distillation resumes from / skips to DIR/<recipe>/).
#   LLAMA_CPP_BIN=<llama.cpp>/build/bin adds llama.cpp rows (F32, Q8_0, Q4_0 made by llama-quantize
#   from MODEL, evaluated by llama-perplexity on the same chunks); EDGE_BIN as in device-artifacts.sh.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
die() { echo "results: $*" >&2; exit 1; }
[ $# -ge 2 ] || die "usage: scripts/results.sh MODEL.gguf OUT_DIR --data CALIB.txt [--text EVAL.txt] [--chunks N]"
model=$1; out=$2; shift 2
data=""; text=$root/Fixtures/text/us-constitution.txt; chunks=6; ckargs=()
while [ $# -gt 0 ]; do
  case $1 in
    --data) data=$2; shift 2 ;;
    --text) text=$2; shift 2 ;;
    --chunks) chunks=$2; shift 2 ;;
    --checkpoints) ckargs=(--checkpoints "$2"); shift 2 ;;
    *) die "unknown option $1" ;;
  esac
done
[ -n "$data" ] || die "--data CALIB.txt is required (wanda50-int8, gptq-int4-g64 and int8-structured25 need calibration text)"
recipes=$(cd "$root/Recipes" && ls *.json | sed 's/\.json$//' | grep -v '^f32$' | paste -sd, -)
mkdir -p "$out"
set +e
"$root/scripts/device-artifacts.sh" "$model" "$out/artifacts" --recipes "$recipes" --data "$data" --text "$text" \
  --chunks "$chunks" --no-runtime "${ckargs[@]}" >&2
code=$?
set -e
[ $code -eq 0 ] || [ $code -eq 3 ] || die "device-artifacts failed (exit $code)"

echo "Model: \`$(basename "$model")\`; evaluation text: \`$(basename "$text")\`, first $chunks chunks of 512 tokens;"
echo "calibration text (for wanda50-int8, gptq-int4-g64 and int8-structured25): \`$(basename "$data")\`."
echo
sed 1,2d "$out/artifacts/report.md"

if [ -n "${LLAMA_CPP_BIN:-}" ]; then
  q=$LLAMA_CPP_BIN/llama-quantize; p=$LLAMA_CPP_BIN/llama-perplexity
  [ -x "$q" ] && [ -x "$p" ] || die "LLAMA_CPP_BIN has no llama-quantize / llama-perplexity"
  echo
  echo "llama.cpp on the same model, text and chunks (\`llama-quantize --allow-requantize MODEL OUT TYPE\`, then"
  echo "\`llama-perplexity -m OUT -f TEXT -c 512 --chunks $chunks -t 2\`):"
  echo
  echo "| llama.cpp type | bytes | bits/weight | ppl |"
  echo "| --- | ---: | ---: | ---: |"
  params=$(python3 -c "import json,sys; r=json.load(open('$out/artifacts/report.json'))['rows'][0]; print(round(r['bytes']*8/r['bits_per_weight']))")
  for t in F32 Q8_0 Q4_0; do
    g=$out/llama-$t.gguf
    [ -f "$g" ] || "$q" --allow-requantize "$model" "$g" "$t" >/dev/null 2>&1 || die "llama-quantize $t failed"
    ppl=$("$p" -m "$g" -f "$text" -c 512 --chunks "$chunks" -t 2 2>&1 | sed -n 's/.*Final estimate: PPL = \([0-9.]*\).*/\1/p')
    b=$(stat -c %s "$g")
    echo "| $t | $b | $(python3 -c "print(f'{$b*8/$params:.2f}')") | $ppl |"
  done
fi
