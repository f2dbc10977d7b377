#!/usr/bin/env bash
# Evaluates recipes on several held-out texts: compresses MODEL with each recipe (calibration
# passes use the bundled calibration set unless --data is given), runs `edge-run perplexity` of the
# float model (recipe f32) and of each output on every text, and prints a Markdown table: perplexity
# per text, its change against the float model, the mean change, bytes and bits per weight.
#
# Usage: scripts/eval-recipes.sh MODEL WORK_DIR RECIPES [--texts a.txt,b.txt] [--data FILE] [--ctx N] [--chunks N]
#                                [--json FILE]
#   RECIPES: comma-separated names in Recipes/ (f32 is added as the reference; RECIPES "f32" = only it).
#   --texts: default the four held-out texts of Fixtures/text (eval-sqlite-atomic-commit is the
#   tuning text; eval-moby-dick, eval-hamlet and eval-speeches are report-only: see Fixtures/README.md).
#   --ctx (default 512) and --chunks (default all) as for edge-run perplexity.
#   --json FILE: also writes the table as JSON (texts, ctx, chunks, calibration, and per recipe: bytes,
#   bits_per_weight, parameters, ppl and delta per text, mean_delta, compress_s, peak_mb).
#   WORK_DIR keeps <recipe>.edge and <recipe>.<text>.json: a rerun reuses them (a perplexity JSON
#   whose ctx or chunk count differs from the request is recomputed).
#   EDGE_BIN=folder of built release binaries skips the build.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
die() { echo "eval-recipes: $*" >&2; exit 1; }
[ $# -ge 3 ] || die "usage: scripts/eval-recipes.sh MODEL WORK_DIR RECIPES [--texts a,b] [--data FILE] [--ctx N] [--chunks N] [--json FILE]"
model=$1; work=$2; recipes=$3; shift 3
texts=$root/Fixtures/text/eval-sqlite-atomic-commit.txt,$root/Fixtures/text/eval-moby-dick.txt,$root/Fixtures/text/eval-hamlet.txt,$root/Fixtures/text/eval-speeches.txt
data=""; ctx=512; chunks=""; json=""
while [ $# -gt 0 ]; do
  case $1 in
    --texts) texts=$2; shift 2 ;;
    --data) data=$2; shift 2 ;;
    --ctx) ctx=$2; shift 2 ;;
    --chunks) chunks=$2; shift 2 ;;
    --json) json=$2; shift 2 ;;
    *) die "unknown option $1" ;;
  esac
done
if [ -n "${EDGE_BIN:-}" ]; then bin=$EDGE_BIN; else
  (cd "$root" && swift build -c release >/dev/null)
  bin=$(cd "$root" && swift build -c release --show-bin-path)
fi
mkdir -p "$work"
# f32 first, once; empty names dropped
recipes=$(printf '%s\n' f32 ${recipes//,/ } | awk 'NF && !seen[$0]++' | paste -sd, -)
IFS=, read -ra rs <<< "$recipes"
IFS=, read -ra ts <<< "$texts"
for r in "${rs[@]}"; do
  out=$work/$r.edge
  if [ ! -f "$out" ]; then
    args=(--recipe "$root/Recipes/$r.json" --json)
    [ -n "$data" ] && args+=(--data "$data")
    echo "== compress $r" >&2
    /usr/bin/time -f "%e %M" -o "$work/$r.time" "$bin/compress" "${args[@]}" "$model" "$out" > "$work/$r.compress.json"
  fi
  for t in "${ts[@]}"; do
    name=$(basename "$t" .txt)
    j=$work/$r.$name.json
    # reuse a result only if it was made with this ctx (and chunk count, when one is asked for)
    if [ -f "$j" ] && ! python3 -c "import json,sys; d=json.load(open(sys.argv[1])); n=d['tokens']//d['ctx']; sys.exit(d['ctx']!=int(sys.argv[2]) or d['chunks']!=(min(n,int(sys.argv[3])) if sys.argv[3] else n))" "$j" "$ctx" "$chunks" 2>/dev/null; then
      rm -f "$j"
    fi
    if [ ! -f "$j" ]; then
      pargs=(perplexity "$out" --text "$t" --ctx "$ctx" --json)
      [ -n "$chunks" ] && pargs+=(--chunks "$chunks")
      "$bin/edge-run" "${pargs[@]}" > "$j" 2> /dev/null
    fi
  done
done
python3 - "$work" "$texts" "$recipes" "$ctx" "$chunks" "$data" "$json" <<'PY'
import json, os, sys
work, texts, recipes = sys.argv[1], sys.argv[2].split(","), sys.argv[3].split(",")
ctx, chunks, data, out_json = int(sys.argv[4]), sys.argv[5], sys.argv[6], sys.argv[7]
names = [os.path.basename(t)[:-4] for t in texts]
runs = {(r, n): json.load(open(f"{work}/{r}.{n}.json")) for r in recipes for n in names}
ppl = {k: v["ppl"] for k, v in runs.items()}
rows = []
head = "| recipe | " + " | ".join(f"{n} ppl (Δ)" for n in names) + " | mean Δ | bytes | bits/weight | compress s | peak MB |"
print(head)
print("| --- |" + " ---: |" * (len(names) + 5))
for r in recipes:
    c = json.load(open(f"{work}/{r}.compress.json"))
    d = [ppl[(r, n)] / ppl[("f32", n)] - 1 for n in names]
    secs, rss = open(f"{work}/{r}.time").read().split()[-2:] if os.path.exists(f"{work}/{r}.time") else ("?", "0")
    cells = " | ".join(f"{ppl[(r, n)]:.3f} ({x * 100:+.1f}%)" for n, x in zip(names, d))
    print(f"| {r} | {cells} | {sum(d) / len(d) * 100:+.1f}% | {c['bytes']} | {c['bits_per_weight']:.3f} | {secs} | {int(rss) // 1024} |")
    rows.append({"recipe": r, "bytes": c["bytes"], "bits_per_weight": c["bits_per_weight"],
                 "parameters": c.get("parameters"),
                 "ppl": {n: ppl[(r, n)] for n in names}, "delta": dict(zip(names, d)),
                 "mean_delta": sum(d) / len(d),
                 "scored_tokens": {n: runs[(r, n)].get("scored_tokens") for n in names},
                 "chunks": {n: runs[(r, n)].get("chunks") for n in names},
                 "compress_s": None if secs == "?" else float(secs),
                 "peak_mb": None if secs == "?" else int(rss) // 1024})
if out_json:
    with open(out_json, "w") as f:
        json.dump({"texts": names, "ctx": ctx, "chunks": int(chunks) if chunks else None,
                   "calibration": os.path.abspath(data) if data else "bundled",
                   "reference": "f32", "rows": rows}, f, indent=2)
        f.write("\n")
PY
