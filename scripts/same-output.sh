#!/usr/bin/env bash
# Shows that two builds of the tools produce the same results: every recipe on the bundled fixtures
# (and, with --model, the named recipes on a real model) is compressed by both builds, the .edge files
# are compared byte for byte, and `edge-run perplexity` of each file is compared as printed.
# Used to prove a refactor changes no result.
#
# Usage: scripts/same-output.sh BIN_A BIN_B WORK_DIR [--model FILE --model-recipes a,b] [--text FILE]
#   BIN_A, BIN_B: folders holding release builds of `compress` and `edge-run`.
#   Calibration-driven recipes get --data Fixtures/text/us-declaration.txt (the fixture's
#   perplexity text is the Constitution); outputs of A are kept in WORK_DIR/a (and reused
#   when present: delete them to rerun A), of B in WORK_DIR/b.
# Prints a Markdown table (recipe, input, bytes, identical?, perplexity A, perplexity B) and exits
# non-zero if any pair differs.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
[ $# -ge 3 ] || { echo "usage: scripts/same-output.sh BIN_A BIN_B WORK_DIR [--model FILE --model-recipes a,b] [--text FILE]" >&2; exit 1; }
a=$1; b=$2; work=$3; shift 3
model=""; model_recipes="int8,int4-g64"; text=$root/Fixtures/text/us-constitution.txt
while [ $# -gt 0 ]; do
  case $1 in
    --model) model=$2; shift 2 ;;
    --model-recipes) model_recipes=$2; shift 2 ;;
    --text) text=$2; shift 2 ;;
    *) echo "same-output: unknown option $1" >&2; exit 1 ;;
  esac
done
data=$root/Fixtures/text/us-declaration.txt
mkdir -p "$work/a" "$work/b"
fail=0
echo "| recipe | input | bytes | identical | ppl A | ppl B |"
echo "| --- | --- | ---: | --- | --- | --- |"
# one RECIPE INPUT LABEL [CTX]
one() {
  local r=$1 in=$2 label=$3 ctx=${4:-64}
  local args=(--recipe "$root/Recipes/$r.json")
  if grep -q '"calibration"\|"distill"\|wanda_prune\|sparsegpt' "$root/Recipes/$r.json"; then args+=(--data "$data"); fi
  for side in a b; do
    local bin=$a; [ $side = b ] && bin=$b
    # A's outputs are reused when present (run the baseline once, compare many times)
    [ $side = a ] && [ -f "$work/a/$label-$r.edge" ] && continue
    "$bin/compress" "${args[@]}" "$in" "$work/$side/$label-$r.edge" > /dev/null 2> "$work/$side/$label-$r.log"
  done
  local same="yes"
  if ! cmp -s "$work/a/$label-$r.edge" "$work/b/$label-$r.edge"; then
    # distillation records its wall time in provenance: same data area and the same header but
    # for those timing fields counts as "same data"
    if python3 - "$work/a/$label-$r.edge" "$work/b/$label-$r.edge" <<'PY'
import json, struct, sys
def load(p):
    b = open(p, "rb").read()
    off, n = struct.unpack_from("<QQ", b, 16)
    def strip(v):
        if isinstance(v, dict):
            return {k: strip(x) for k, x in v.items() if k not in ("seconds", "train_tokens_per_second")}
        if isinstance(v, list):
            return [strip(x) for x in v]
        return v
    return b[64:off], strip(json.loads(b[off:off + n]))
sys.exit(0 if load(sys.argv[1]) == load(sys.argv[2]) else 1)
PY
    then same="same data, timings differ"; else same="NO"; fail=1; fi
  fi
  local pa pb
  # the perplexity line without its speed ("..., N tokens/s, T s")
  pa=$("$a/edge-run" perplexity "$work/a/$label-$r.edge" --text "$text" --ctx "$ctx" 2>/dev/null | tail -n 1 | sed 's/), .*/)/')
  pb=$("$b/edge-run" perplexity "$work/b/$label-$r.edge" --text "$text" --ctx "$ctx" 2>/dev/null | tail -n 1 | sed 's/), .*/)/')
  [ "$pa" = "$pb" ] || { fail=1; }
  echo "| $r | $label | $(stat -c %s "$work/b/$label-$r.edge") | $same | $pa | $pb |"
}
for f in "$root"/Recipes/*.json; do
  r=$(basename "$f" .json)
  for fx in tiny-llama tiny-gpt2; do one "$r" "$root/Fixtures/$fx" "$fx"; done
done
if [ -n "$model" ]; then
  IFS=, read -ra rs <<< "$model_recipes"
  for r in "${rs[@]}"; do one "$r" "$model" "model" 512; done
fi
exit $fail
