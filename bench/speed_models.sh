#!/usr/bin/env bash
# Model-level speed of every compressed form of one synthetic shape, in one run:
#
#   bash bench/speed_models.sh [SHAPE] [WORKDIR] [bench_speed_table flags...]
#
# SHAPE: a `llmsq synth` shape (default smollm2-135m; llama-3.2-1b needs ~12 GB of disk and
# RAM for its f32 reference row). Writes, under WORKDIR (default /tmp/llmsq-speed-SHAPE), the
# bf16 model, RTN W4A16 (group 64, f16-exact scales), dynamic W8A8, magnitude 2:4, and 2:4 then
# RTN W4A16, and times them with build/bench/bench_speed_table against the f32 reference
# forward (OpenBLAS over dequantized weights). Weight values do not change the speed, so
# random weights and the calibration-free methods give the same timings as real ones.
set -euo pipefail
cd "$(dirname "$0")/.."
shape="${1:-smollm2-135m}"
work="${2:-/tmp/llmsq-speed-$shape}"
shift $(( $# > 2 ? 2 : $# ))
bin=build/llmsq
[ -x "$bin" ] && [ -x build/bench/bench_speed_table ] || { echo "build first (cmake --build build)" >&2; exit 1; }
mkdir -p "$work"
make_model() { # DIR COMMAND...: runs the command unless DIR already exists
    local dir="$1"; shift
    [ -d "$dir" ] || "$@" --out "$dir"
}
make_model "$work/bf16" "$bin" synth --shape "$shape" --dtype bf16
make_model "$work/w4" "$bin" quantize --quiet --model "$work/bf16" --method rtn --bits 4 --group-size 64
make_model "$work/w8a8" "$bin" quantize --quiet --model "$work/bf16" --method w8a8
make_model "$work/s24" "$bin" prune --quiet --model "$work/bf16" --method magnitude --nm 2:4
make_model "$work/s24w4" "$bin" quantize --quiet --model "$work/s24" --method rtn --bits 4 --group-size 64
build/bench/bench_speed_table "$@" \
    "f32-ref=$work/bf16@ref" "f32=$work/bf16@f32" "f16=$work/bf16@f16" "bf16=$work/bf16" \
    "w4a16=$work/w4" "w8a8=$work/w8a8" "2:4=$work/s24@f16" "2:4+w4=$work/s24w4"
