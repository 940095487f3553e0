#!/usr/bin/env bash
# Builds llmsq and runs the whole test suite.
#  1. build/       release build (CUDA backend compiled when nvcc exists); runs the suites
#                  labelled "quality" (full perplexity runs of quantized models)
#  2. build-asan/  AddressSanitizer + UBSan build (CPU only); runs every other suite, so the
#                  bad-input cases are exercised under the sanitizers.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
jobs=$(nproc 2>/dev/null || echo 2)

cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DLLMSQ_BUILD_TESTS=ON >/dev/null
cmake --build build -j"$jobs"
build/llmsq --version
ctest --test-dir build --output-on-failure -L quality

cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DLLMSQ_SANITIZE=ON -DLLMSQ_CUDA=OFF >/dev/null
cmake --build build-asan -j"$jobs"
# OpenBLAS and libgomp are not instrumented; their thread pools are reported as leaks.
export LSAN_OPTIONS="suppressions=$PWD/tests/lsan.supp:print_suppressions=0"
ctest --test-dir build-asan --output-on-failure -j"$jobs" -LE quality
