#!/usr/bin/env bash
# Compresses MODEL with each recipe, verifies every artifact against the float model, and writes
# into OUT_DIR: the .edge files, report.json, report.md, pareto.svg, and a release build of the
# runtime (edge-run) with its checksum. Exits non-zero if any recipe misses its budget (after the
# report is written) or anything fails. The report also gives the shipped runtime's prompt and
# generation throughput and peak memory on each decoder artifact (edge-run bench, on this machine).
# The runtime is linked statically (Swift standard library; no
# Foundation or FoundationEssentials) and stripped: about 10 MB; it needs glibc, libstdc++ and zlib.
#
# Usage: scripts/device-artifacts.sh MODEL OUT_DIR [--text FILE] [--data FILE] [--recipes a,b,c]
#                                    [--ctx N] [--chunks N] [--no-runtime] [--checkpoints DIR]
#   --checkpoints DIR: distillation checkpoints go to DIR/<recipe>/ (compress --checkpoint-dir), so an
#   interrupted run of the script resumes its distillation, and a finished one is not trained again.
#   MODEL: a Hugging Face folder, .safetensors, .gguf or .edge; recipes are names of files in
#   Recipes/ or paths to recipe .json files.
#   Defaults: --text Fixtures/text/us-constitution.txt, --recipes int8,int8-prune50,int4-g64
#   (those present in Recipes/), --ctx 512 (at most the model's context: the tiny fixtures need 128 or less), all chunks.
#   EDGE_BIN=folder with built release binaries skips the build.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
die() { echo "device-artifacts: $*" >&2; exit 1; }
[ $# -ge 2 ] || die "usage: scripts/device-artifacts.sh MODEL OUT_DIR [--text FILE] [--data FILE] [--recipes a,b,c] [--ctx N] [--chunks N] [--no-runtime] [--checkpoints DIR]"
model=$1; out=$2; shift 2
text=$root/Fixtures/text/us-constitution.txt; data=""; recipes=""; ctx=512; chunks=""; runtime=1; checkpoints=""
while [ $# -gt 0 ]; do
  case $1 in
    --text) text=$2; shift 2 ;;
    --data) data=$2; shift 2 ;;
    --recipes) recipes=$2; shift 2 ;;
    --ctx) ctx=$2; shift 2 ;;
    --chunks) chunks=$2; shift 2 ;;
    --no-runtime) runtime=0; shift ;;
    --checkpoints) checkpoints=$2; shift 2 ;;
    *) die "unknown option $1" ;;
  esac
done
[ -e "$model" ] || die "$model: no such file or folder"
[ -f "$text" ] || die "$text: no such file"
if [ -z "$recipes" ]; then
  recipes=$(for r in int8 int8-prune50 int4-g64; do if [ -f "$root/Recipes/$r.json" ]; then printf "%s," "$r"; fi; done)
  recipes=${recipes%,}
fi
mkdir -p "$out"

if [ -n "${EDGE_BIN:-}" ]; then bin=$EDGE_BIN; else
  (cd "$root" && swift build -c release --product compress >/dev/null)
  bin=$(cd "$root" && swift build -c release --show-bin-path)
fi

IFS=, read -ra rs <<< "$recipes"
for r in "${rs[@]}"; do
  # a recipe is a name in Recipes/ or a path to a .json file
  if [[ $r == *.json ]]; then recipe=$r; r=$(basename "$r" .json); else recipe=$root/Recipes/$r.json; fi
  [ -f "$recipe" ] || die "recipe $r: no file $recipe"
  echo "== $r" >&2
  args=(--recipe "$recipe" --json)
  [ -n "$data" ] && args+=(--data "$data")
  [ -n "$checkpoints" ] && args+=(--checkpoint-dir "$checkpoints/$r")
  "$bin/compress" "${args[@]}" "$model" "$out/$r.edge" > "$out/$r.compress.json"
  vargs=(verify "$model" "$out/$r.edge" --text "$text" --ctx "$ctx" --json)
  [ -n "$chunks" ] && vargs+=(--chunks "$chunks")
  set +e
  "$bin/compress" "${vargs[@]}" > "$out/$r.verify.json"
  code=$?
  set -e
  # 3 = budget exceeded: recorded in the verify JSON and failed by the report below.
  [ $code -eq 0 ] || [ $code -eq 3 ] || die "verify of $r failed (exit $code)"
done

if [ $runtime -eq 1 ]; then
  echo "== runtime" >&2
  (cd "$root" && swift build -c release --product edge-run --static-swift-stdlib >/dev/null 2>&1) \
    || (cd "$root" && swift build -c release --product edge-run >/dev/null)
  cp "$(cd "$root" && swift build -c release --show-bin-path)/edge-run" "$out/edge-run"
  # Symbols off: the static binary (Swift runtime and C library only) goes from 17 MB to 10 MB.
  if command -v strip >/dev/null; then strip "$out/edge-run"; fi
  (cd "$out" && sha256sum edge-run > edge-run.sha256)
  # The shipped runtime on each decoder artifact: prompt processing over the verify context and
  # generation of up to 128 tokens, medians of 3, and the run's peak RSS (the report's pp / tg /
  # peak MB columns; this machine's CPU, not the device's).
  tg=$(( ctx < 128 ? ctx : 128 ))
  for r in "${rs[@]}"; do
    [[ $r == *.json ]] && r=$(basename "$r" .json)
    grep -q '"kind" *: *"encoder"' "$out/$r.verify.json" && continue
    echo "== bench $r" >&2
    # Into a temporary file first, so that a failed run leaves no partial R.bench.json.
    "$out/edge-run" bench "$out/$r.edge" -p "$ctx" -n "$tg" -r 3 --json > "$out/$r.bench.json.part" \
      || { rm -f "$out/$r.bench.json.part"; die "edge-run bench of $r failed"; }
    mv "$out/$r.bench.json.part" "$out/$r.bench.json"
  done
fi

"$bin/compress" report "$out" --model "$(basename "$model")" --text "$(basename "$text")"
