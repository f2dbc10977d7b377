#!/usr/bin/env bash
# Every bundled recipe on one model, evaluated on the held-out texts, with llama.cpp's quant types
# beside them: prints the Markdown that docs/results.md holds (also written to OUT_DIR/results.md)
# and writes the same results as JSON to OUT_DIR/results.json.
#
# Usage: scripts/results.sh MODEL.gguf OUT_DIR [--data CALIB.txt] [--texts a.txt,b.txt] [--chunks N] [--recipes a,b,c]
#   Runs scripts/eval-recipes.sh (work files in OUT_DIR/edge/): compresses MODEL with each recipe and
#   runs `edge-run perplexity` of the float model (recipe f32) and of each output on every text,
#   ctx 512, the first N chunks (--chunks, default 8).
#   --data: calibration text for the calibration-driven recipes; absent: the bundled calibration set.
#   --texts: default the four held-out texts Fixtures/text/eval-*.txt (eval-sqlite-atomic-commit is
#   the tuning text, eval-moby-dick, eval-hamlet and eval-speeches are report-only: Fixtures/README.md;
#   tables in docs/results.md before 2026-12-07 used the first three).
#   --recipes: default every recipe in Recipes/; "f32" = only the float reference (with
#   LLAMA_CPP_BIN: the llama.cpp rows and the reference they are checked against).
#   LLAMA_CPP_BIN=<llama.cpp>/build/bin adds llama.cpp rows on the same texts and chunks: F32, Q8_0,
#   Q4_0, Q4_K_M, Q3_K_S made by `llama-quantize --allow-requantize MODEL OUT TYPE` (OUT_DIR/llama/),
#   evaluated by `llama-perplexity -m OUT -f TEXT -c 512 --chunks N -t 2`; Δ against llama.cpp's own
#   F32 on each text, and our f32 row against it (a warning when they differ by more than 0.1%).
#   EDGE_BIN as in eval-recipes.sh.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
die() { echo "results: $*" >&2; exit 1; }
usage="usage: scripts/results.sh MODEL.gguf OUT_DIR [--data CALIB.txt] [--texts a.txt,b.txt] [--chunks N] [--recipes a,b,c]"
[ $# -ge 2 ] || die "$usage"
model=$1; out=$2; shift 2
data=""; chunks=8; ctx=512; recipes=""
texts=$root/Fixtures/text/eval-sqlite-atomic-commit.txt,$root/Fixtures/text/eval-moby-dick.txt,$root/Fixtures/text/eval-hamlet.txt,$root/Fixtures/text/eval-speeches.txt
while [ $# -gt 0 ]; do
  case $1 in
    --data) data=$2; shift 2 ;;
    --texts) texts=$2; shift 2 ;;
    --chunks) chunks=$2; shift 2 ;;
    --recipes) recipes=$2; shift 2 ;;
    *) die "unknown option $1 ($usage)" ;;
  esac
done
[ -e "$model" ] || die "$model: no such file"
[ -z "$data" ] || [ -f "$data" ] || die "$data: no such file"
IFS=, read -ra ts <<< "$texts"
for t in "${ts[@]}"; do [ -f "$t" ] || die "$t: no such file"; done
[ -n "$recipes" ] || recipes=$(cd "$root/Recipes" && ls *.json | sed 's/\.json$//' | grep -v '^f32$' | paste -sd, -)
IFS=, read -ra rs <<< "$recipes"
for r in "${rs[@]}"; do [ -f "$root/Recipes/$r.json" ] || die "recipe $r: no file Recipes/$r.json"; done
llama_types=(F32 Q8_0 Q4_0 Q4_K_M Q3_K_S)
if [ -n "${LLAMA_CPP_BIN:-}" ]; then
  q=$LLAMA_CPP_BIN/llama-quantize; p=$LLAMA_CPP_BIN/llama-perplexity
  [ -x "$q" ] && [ -x "$p" ] || die "LLAMA_CPP_BIN has no llama-quantize / llama-perplexity"
fi
mkdir -p "$out"

eargs=(--texts "$texts" --ctx "$ctx" --chunks "$chunks" --json "$out/edge.json")
[ -n "$data" ] && eargs+=(--data "$data")
"$root/scripts/eval-recipes.sh" "$model" "$out/edge" "$recipes" "${eargs[@]}" > "$out/edge.md" \
  || die "eval-recipes.sh failed"

if [ -n "${LLAMA_CPP_BIN:-}" ]; then
  mkdir -p "$out/llama"
  for ty in "${llama_types[@]}"; do
    g=$out/llama/$ty.gguf
    if [ ! -f "$g" ]; then
      echo "== llama-quantize $ty" >&2
      "$q" --allow-requantize "$model" "$g.tmp" "$ty" > "$out/llama/$ty.quantize.log" 2>&1 \
        || die "llama-quantize $ty failed (see $out/llama/$ty.quantize.log)"
      mv "$g.tmp" "$g"
    fi
    for t in "${ts[@]}"; do
      log=$out/llama/$ty.$(basename "$t" .txt).c$ctx.n$chunks.log
      if ! grep -q 'Final estimate: PPL' "$log" 2>/dev/null; then
        echo "== llama-perplexity $ty $(basename "$t")" >&2
        "$p" -m "$g" -f "$t" -c "$ctx" --chunks "$chunks" -t 2 > "$log" 2>&1 \
          || die "llama-perplexity $ty on $t failed (see $log)"
      fi
    done
  done
fi

{
echo "Model: \`$(basename "$model")\`; evaluation texts: $(for t in "${ts[@]}"; do printf '`%s`\n' "$(basename "$t")"; done | paste -sd, - | sed 's/,/, /g')"
echo "(ctx $ctx, the first $chunks chunks of each); calibration (for the calibration-driven recipes):"
if [ -n "$data" ]; then echo "\`$(basename "$data")\` (--data)."; else echo "the bundled calibration set (no --data)."; fi
echo "Δ: perplexity change against the float model (f32) on the same text; mean Δ over the texts."
echo
cat "$out/edge.md"
python3 - "$out" "$model" "$texts" "$ctx" "$chunks" "${LLAMA_CPP_BIN:-}" "${llama_types[*]}" <<'PY'
import json, os, re, sys
out, model, texts, ctx, chunks, llama_bin, types = sys.argv[1:8]
ctx, chunks, types = int(ctx), int(chunks), types.split()
edge = json.load(open(f"{out}/edge.json"))
names = edge["texts"]
f32 = next(r for r in edge["rows"] if r["recipe"] == "f32")
params = f32["parameters"]
result = {"model": os.path.basename(model), "ctx": ctx, "chunks": chunks, "texts": names,
          "calibration": edge["calibration"], "parameters": params, "edgecompress": edge["rows"]}
if llama_bin:
    rows, ppl = [], {}
    for ty in types:
        for n in names:
            log = open(f"{out}/llama/{ty}.{n}.c{ctx}.n{chunks}.log", errors="replace").read()
            m = re.search(r"Final estimate: PPL = ([0-9.]+) \+/- ([0-9.]+)", log)
            c = re.search(r"calculating perplexity over (\d+) chunks", log)
            ppl[(ty, n)] = (float(m.group(1)), float(m.group(2)), int(c.group(1)) if c else None)
    ref = types[0]
    for ty in types:
        b = os.path.getsize(f"{out}/llama/{ty}.gguf")
        d = {n: ppl[(ty, n)][0] / ppl[(ref, n)][0] - 1 for n in names}
        rows.append({"type": ty, "bytes": b, "bits_per_weight": b * 8 / params,
                     "ppl": {n: ppl[(ty, n)][0] for n in names},
                     "ppl_stderr": {n: ppl[(ty, n)][1] for n in names},
                     "chunks": {n: ppl[(ty, n)][2] for n in names},
                     "delta": d, "mean_delta": sum(d.values()) / len(d)})
    ours = {n: f32["ppl"][n] / ppl[(ref, n)][0] - 1 for n in names}
    result["llama_cpp"] = {"bin": os.path.abspath(llama_bin), "reference": ref,
                           "quantize": "llama-quantize --allow-requantize MODEL OUT TYPE",
                           "perplexity": f"llama-perplexity -m OUT -f TEXT -c {ctx} --chunks {chunks} -t 2",
                           "rows": rows, "edgecompress_f32_vs_reference": ours}
    print()
    print(f"llama.cpp on the same model, texts and chunks (`llama-quantize --allow-requantize MODEL OUT TYPE`, then")
    print(f"`llama-perplexity -m OUT -f TEXT -c {ctx} --chunks {chunks} -t 2`); Δ against llama.cpp's {ref} on the same")
    print(f"text; bits/weight = file bytes x 8 / {params} parameters. Last row: our float model (recipe f32,")
    print(f"edge-run) against llama.cpp's {ref}.")
    print()
    print("| llama.cpp type | bytes | bits/weight | " + " | ".join(f"{n} ppl (Δ)" for n in names) + " | mean Δ |")
    print("| --- | ---: | ---: |" + " ---: |" * (len(names) + 1))
    for r in rows:
        cells = " | ".join(f"{r['ppl'][n]:.4f} ({r['delta'][n] * 100:+.1f}%)" for n in names)
        print(f"| {r['type']} | {r['bytes']} | {r['bits_per_weight']:.2f} | {cells} | {r['mean_delta'] * 100:+.1f}% |")
    cells = " | ".join(f"{f32['ppl'][n]:.4f} ({ours[n] * 100:+.2f}%)" for n in names)
    print(f"| ours: f32 | {f32['bytes']} | {f32['bits_per_weight']:.2f} | {cells} | {sum(ours.values()) / len(ours) * 100:+.2f}% |")
    bad = {n: x for n, x in ours.items() if abs(x) > 0.001}
    result["llama_cpp"]["f32_agrees"] = not bad
    if bad:
        print("results: WARNING: our f32 perplexity differs from llama.cpp's " + ref + " by more than 0.1% on "
              + ", ".join(f"{n} ({x * 100:+.2f}%)" for n, x in bad.items()), file=sys.stderr)
with open(f"{out}/results.json", "w") as f:
    json.dump(result, f, indent=2)
    f.write("\n")
PY
} | tee "$out/results.md"
