#!/usr/bin/env bash
# Builds the tokenizer parsers' libFuzzer targets (not part of the normal build or tests):
#   bash tests/fuzz/build.sh [OUT_DIR]         (default: build-fuzz; needs clang and libomp-dev)
#   OUT_DIR/fuzz_tok_json -max_total_time=300 -dict=tests/fuzz/tokenizer_json.dict CORPUS_DIR
#   OUT_DIR/fuzz_tok_spm -max_total_time=300 -dict=tests/fuzz/spm_model.dict CORPUS_DIR SEEDS
#     (SEEDS: a folder with copies of tests/data/spm_*.model, unigram and charsmap models)
# Targets: fuzz_tok_json (tokenizer.json), fuzz_tok_spm (SentencePiece .model),
# fuzz_tok_gguf (GGUF tokenizer.ggml.*), fuzz_tok_gpt2 (vocab.json + "#MERGES" + merges.txt).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
out=$(realpath -m "${1:-$root/build-fuzz}")
flags="-fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer -g"
CC=clang cmake -S "$root" -B "$out/lib" -DLLMSQ_CUDA=OFF -DLLMSQ_BUILD_TESTS=OFF -DLLMSQ_BUILD_BENCH=OFF \
    -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_C_FLAGS="$flags" >/dev/null
cmake --build "$out/lib" --target llmsq_lib -j "$(nproc)" >/dev/null
libs=$(pkg-config --libs openblas lapacke libzstd jansson libpcre2-8 libutf8proc)
for t in json spm gguf gpt2; do
    # shellcheck disable=SC2086
    clang -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined -I"$root" -I"$root/include" \
        "$root/tests/fuzz/fuzz_tok_$t.c" "$out/lib/libllmsq.a" $libs -fopenmp -lm -o "$out/fuzz_tok_$t"
done
echo "fuzz targets in $out"
