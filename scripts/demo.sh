#!/usr/bin/env bash
# Builds llmsq and runs the main job: the perplexity of the default model computed by
# llmsq's own forward pass. With ../shared beside the checkout that is the real
# stories260K on TinyStories (reference: ../shared/refs/stories260K.json); without it,
# a tiny synthetic model that llmsq writes itself, on this repository's README.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DLLMSQ_BUILD_TESTS=OFF >/dev/null
cmake --build build -j"$(nproc 2>/dev/null || echo 2)"

shared="${LLMSQ_SHARED:-../shared}"
if [ -d "$shared/models/stories260K/hf" ]; then
    build/llmsq eval --model "$shared/models/stories260K/hf" \
        --ppl "$shared/data/tinystories/valid_prefix.txt" --protocol gptq --seqlen 512
    build/llmsq generate --model "$shared/models/stories260K/hf" --max-tokens 64
else
    echo "demo: $shared not found; using a synthetic model (random weights: expect a high perplexity)" >&2
    rm -rf build/demo-tiny
    build/llmsq synth --shape tiny --out build/demo-tiny
    build/llmsq eval --model build/demo-tiny --ppl README.md --protocol gptq --seqlen 128
fi
