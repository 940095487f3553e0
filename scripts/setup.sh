#!/usr/bin/env bash
# Installs the Debian packages llmsq needs to build and test. Safe to re-run:
# it only calls apt-get when a package is missing.
set -euo pipefail
pkgs=(build-essential cmake pkg-config libopenblas-openmp-dev liblapacke-dev
      libzstd-dev check libsubunit-dev libjansson-dev libpcre2-dev libutf8proc-dev)
missing=()
for p in "${pkgs[@]}"; do
    dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
    exit 0
fi
echo "setup: installing ${missing[*]}" >&2
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
