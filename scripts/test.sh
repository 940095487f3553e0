#!/usr/bin/env bash
# Builds llmsq and runs the whole test suite.
#  1. build/       release build (CUDA backend compiled when nvcc exists), runs a smoke check
#  2. build-asan/  AddressSanitizer + UBSan build (CPU only); every Check suite runs here, so
#                  the bad-input cases are exercised under the sanitizers.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
jobs=$(nproc 2>/dev/null || echo 2)

cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DLLMSQ_BUILD_TESTS=OFF >/dev/null
cmake --build build -j"$jobs"
build/llmsq --version

cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DLLMSQ_SANITIZE=ON -DLLMSQ_CUDA=OFF >/dev/null
cmake --build build-asan -j"$jobs"
# OpenBLAS and libgomp are not instrumented; their thread pools are reported as leaks.
export LSAN_OPTIONS="suppressions=$PWD/tests/lsan.supp:print_suppressions=0"
ctest --test-dir build-asan --output-on-failure -j"$jobs"
