#!/bin/bash
# The README's "MEPT at scale" table, row by row, from the records committed beside this script (no run folders,
# no training: seconds). Each block prints runs_table.py's table for one backbone, data and budget, MEPT at its
# defaults first, so every "- MEPT (p)" cell is the paired test of that method against it; the README's cells
# are those differences with the sign turned (MEPT minus the method). From any folder:
#   bash benchmarks/results/scale_summary.sh
set -euo pipefail
cd "$(dirname "$0")/../.."  # the repository root: the paths below are relative to it
R=benchmarks/results
table() { echo; echo "## $1"; shift; python benchmarks/runs_table.py "$@"; }
# DIR LABEL=NAME...: one --variant per task that has records of NAME (the record name between task and seed);
# its output is word-split into flags (record paths hold no spaces)
per_task() {
  local dir=$1; shift
  for pair in "$@"; do
    for t in winowhy colorhex hotels; do
      local glob="$dir/*-$t-${pair#*=}-s*.json"
      if compgen -G "$glob" > /dev/null; then echo "--variant" "${pair%%=*}=$glob"; fi
    done
  done
}

table "MPNet, three tasks, 2 epochs (bf16)" $(per_task $R/table3_mpnet/bf16 MEPT=lr5 prompt_tuning=prompt_tuning-lin \
  P-Tuning_v2_m100=ptuning_v2-d100 LoRA=lora-def MEPT_paper_router=paperrouter MEPT_N_r_1=nr1)
table "MPNet, winowhy and color/hex, 10 epochs (bf16)" $(per_task $R/table3_mpnet/e10 MEPT=mept-e10 \
  prompt_tuning=prompt_tuning-e10 P-Tuning_v2_m100=ptuning_v2-e10 LoRA=lora-e10 full_fine-tuning=full-e10 \
  MEPT_paper_router=mept-e10lnnobal MEPT_N_r_1=mept-e10nr1)
M=$R/table3_mpnet/mixture
table "MPNet, bb-diverse, 300 steps of 16 (bf16)" --variant MEPT="$M/mpnet-bbdiverse-mept-def-s*.json" \
  --variant prompt_tuning="$M/mpnet-bbdiverse-prompt_tuning-def-s*.json" \
  --variant P-Tuning_v2_m100="$M/mpnet-bbdiverse-ptuning_v2-def-s*.json" \
  --variant LoRA="$M/mpnet-bbdiverse-lora-def-s*.json" \
  --variant MEPT_paper_router="$M/mpnet-bbdiverse-mept-paperrouter-s*.json" \
  --variant MEPT_N_r_1="$M/mpnet-bbdiverse-mept-nr1-s*.json"
table "SmolLM2, three tasks, 1 epoch (bf16)" $(per_task $R/decoder_prompts/tasks3 MEPT=mept-lr1e4 \
  prompt_tuning=prompt_tuning-lr1e3 P-Tuning_v2_m100=ptuning_v2-lr1e3 LoRA=lora-def probe=probe-def \
  MEPT_paper_router=mept-paperrouter MEPT_N_r_1=mept-nr1)
B=$R/decoder_prompts/bbdiverse
table "SmolLM2, bb-diverse, 300 steps of 8 (bf16)" --variant MEPT="$B/smollm2-bbdiverse-mept-lr1e4-s*.json" \
  --variant prompt_tuning="$B/smollm2-bbdiverse-prompt_tuning-lr1e3-s*.json" \
  --variant P-Tuning_v2_m100="$B/smollm2-bbdiverse-ptuning_v2-lr1e3-s*.json" \
  --variant LoRA="$B/smollm2-bbdiverse-lora-def-s*.json" --variant probe="$B/smollm2-bbdiverse-probe-def-s*.json"
