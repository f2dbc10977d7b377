#!/usr/bin/env bash
# Trains the tiny GPT-2 and Llama fixtures with the toolchain's own trainer and regenerates every
# fixture from the trained weights:
#   1. scripts/make_fixtures.py --untrained: the random starting weights, in a temporary folder;
#   2. compress train on Fixtures/text/us-constitution.txt (next-token cross-entropy, AdamW);
#   3. compress export: Hugging Face safetensors -> Fixtures/trained/<name>.safetensors;
#   4. scripts/make_fixtures.py: every fixture (F16, BF16 shards, GGUF, expectations) from them.
# Usage: scripts/train_fixtures.sh   (EDGE_BIN=<folder with compress>, default .build-rel/release)
# Results are reproducible on the same kernel variant (EDGE_KERNELS); the log goes to stderr.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bin=${EDGE_BIN:-$root/.build-rel/release}
[ -x "$bin/compress" ] || { echo "train_fixtures: no $bin/compress (swift build -c release --scratch-path .build-rel)" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/Fixtures/text" "$root/Fixtures/trained"
cp "$root"/Fixtures/text/*.txt "$tmp/Fixtures/text/"
python3 "$root/scripts/make_fixtures.py" --untrained --out "$tmp/Fixtures" >&2
for name in tiny-llama tiny-gpt2; do
  "$bin/compress" train "$tmp/Fixtures/$name" "$tmp/$name.edge" --data "$root/Fixtures/text/us-constitution.txt" \
    --steps 250 --batch 8 --length 128 --lr 3e-3 --weight-decay 0.1 --seed 0 >&2
  "$bin/compress" export "$tmp/$name.edge" "$tmp/$name-hf" >&2
  cp "$tmp/$name-hf/model.safetensors" "$root/Fixtures/trained/$name.safetensors"
done
python3 "$root/scripts/make_fixtures.py" >&2
