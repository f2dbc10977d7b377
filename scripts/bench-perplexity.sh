#!/usr/bin/env bash
# Perplexity throughput and agreement: edge-run against llama.cpp's llama-perplexity, one session.
#
# Usage: scripts/bench-perplexity.sh SOURCE.gguf [WORK_DIR]
#   SOURCE.gguf  a llama.cpp GGUF of the model (any type llama-quantize reads, e.g. SmolLM2-135M Q4_1)
#   WORK_DIR     where the derived models go (default /tmp/edge-bench); made once, reused after
# Environment:
#   LLAMA_CPP_BIN  folder with llama-perplexity, llama-quantize, llama-tokenize (default: on PATH)
#   EDGE_BIN       folder with release edge-run and compress (default .build/release)
#   TEXT           evaluation text (default Fixtures/text/us-constitution.txt)
#   CTX            context per chunk (default 512)    THREADS  threads for every tool (default 2)
#   REPEATS        timed runs per configuration, alternating between tools (default 3)
#
# Derived models: SOURCE -> F32 GGUF and Q8_0 GGUF (llama-quantize --allow-requantize), and
# F32 GGUF -> .edge with Recipes/f32.json and Recipes/int8.json (compress). Then every run of
# every configuration, round-robin REPEATS times, under /usr/bin/time -v (peak RSS). The table
# (median evaluated tokens/s of the evaluation loop, loading excluded) comes from scripts/bench_perplexity.py.
# Exits non-zero if a binary is missing (saying how to build it) or a run fails.
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
if [[ $# -lt 1 || $# -gt 2 ]]; then
    sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 2
fi
src=$1
work=${2:-/tmp/edge-bench}
text=${TEXT:-$here/Fixtures/text/us-constitution.txt}
ctx=${CTX:-512}
threads=${THREADS:-2}
repeats=${REPEATS:-3}
edge_bin=${EDGE_BIN:-$here/.build/release}

die() { echo "bench-perplexity: $*" >&2; exit 1; }

tool() {  # tool NAME -> path, or die with how to build it
    local name=$1 path
    if [[ $name == edge-run || $name == compress ]]; then
        path=$edge_bin/$name
        [[ -x $path ]] || die "$path not found: build it with 'swift build -c release' (or set EDGE_BIN to the folder holding it)"
    else
        if [[ -n ${LLAMA_CPP_BIN:-} ]]; then path=$LLAMA_CPP_BIN/$name; else path=$(command -v "$name" || true); fi
        [[ -n $path && -x $path ]] || die "$name not found: build llama.cpp (cmake -B build -DGGML_NATIVE=ON && cmake --build build -j --target llama-perplexity llama-quantize llama-tokenize) and set LLAMA_CPP_BIN=<llama.cpp>/build/bin"
    fi
    echo "$path"
}

[[ -f $src ]] || die "$src: no such GGUF file"
[[ -f $text ]] || die "$text: no such text file"
[[ -x /usr/bin/time ]] || die "/usr/bin/time not found (Debian: apt-get install time); it measures peak RSS"
edge_run=$(tool edge-run)
compress=$(tool compress)
perplexity=$(tool llama-perplexity)
quantize=$(tool llama-quantize)
tokenize=$(tool llama-tokenize)
mkdir -p "$work"

# Derived models (kept between sessions).
[[ -f $work/model-f32.gguf ]] || "$quantize" --allow-requantize "$src" "$work/model-f32.gguf" F32 >"$work/quantize-f32.log" 2>&1 \
    || die "llama-quantize to F32 failed (log: $work/quantize-f32.log)"
[[ -f $work/model-q8_0.gguf ]] || "$quantize" --allow-requantize "$work/model-f32.gguf" "$work/model-q8_0.gguf" Q8_0 >"$work/quantize-q8_0.log" 2>&1 \
    || die "llama-quantize to Q8_0 failed (log: $work/quantize-q8_0.log)"
for r in f32 int8; do
    [[ -f $work/model-$r.edge ]] || "$compress" --recipe "$here/Recipes/$r.json" "$work/model-f32.gguf" "$work/model-$r.edge" >"$work/compress-$r.log" 2>&1 \
        || die "compress --recipe Recipes/$r.json failed (log: $work/compress-$r.log)"
done

runs=$work/runs
rm -rf "$runs"
mkdir -p "$runs"
"$tokenize" -m "$work/model-f32.gguf" -f "$text" --show-count --log-disable >"$runs/llama-tokenize.out" 2>/dev/null \
    || die "llama-tokenize failed"

lscpu >"$runs/lscpu.txt" 2>/dev/null || true
uptime >"$runs/uptime-before.txt"
configs=(llama-f32 llama-q8_0 edge-f32 edge-int8)
for ((i = 1; i <= repeats; i++)); do
    for c in "${configs[@]}"; do
        out=$runs/$c.$i
        case $c in
        llama-*) cmd=("$perplexity" -m "$work/model-${c#llama-}.gguf" -f "$text" -c "$ctx" -b "$ctx" -t "$threads" -tb "$threads" -ngl 0) ;;
        edge-*) cmd=("$edge_run" perplexity "$work/model-${c#edge-}.edge" --text "$text" --ctx "$ctx" --threads "$threads" --json) ;;
        esac
        echo "run $i/$repeats: $c" >&2
        /usr/bin/time -v -o "$out.time" "${cmd[@]}" >"$out.stdout" 2>"$out.stderr" || die "$c run $i failed (see $out.stderr)"
    done
done
uptime >"$runs/uptime-after.txt"

python3 "$here/scripts/bench_perplexity.py" "$runs" --repeats "$repeats" --ctx "$ctx" --threads "$threads" \
    --edge-f32 "$work/model-f32.edge" --edge-int8 "$work/model-int8.edge"
