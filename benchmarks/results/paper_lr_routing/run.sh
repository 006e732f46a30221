#!/bin/bash
# Issue 31: does the paper's MEPT router (--paper: top-1, no balance loss) collapse at the paper's
# learning rates (1e-4, 5e-5; its grid is 1e-5, 5e-5, 1e-4) as it does at our 1e-2?
# MiniLM, default bb-diverse mixture, the default run's budget (3 epochs = 834 steps of batch 16,
# text length 384, validation after each epoch), AdamW (ours), head lr 1e-2 (ours), fp32, one thread.
set -e
export OMP_NUM_THREADS=1
cd "$(dirname "$0")/../../.."
export PYTHONPATH=$PWD/src
for lr in 1e-4 1e-2 5e-5; do
  python -m mept.cli train --paper --lr $lr --epochs 3 --batch-size 16 --max-length 384 \
      --seeds 1 2 --no-progress --output runs/paper-lr-routing/lr-$lr --overwrite \
      > benchmarks/results/paper_lr_routing/lr-$lr.log 2>&1
done
