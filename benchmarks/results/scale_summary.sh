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
# DIR TASKS LABEL=NAME...: the --variant flags of each label, one per task of TASKS that has records of NAME (the
# record name between task and seed; a task a budget did not run is left out). A label with no record on any task
# keeps its first glob, so that runs_table.py refuses it with one error line instead of the row going missing.
# The output is word-split into flags (record paths hold no spaces).
variants() {
  local dir=$1 tasks=$2; shift 2
  for pair in "$@"; do
    local label=${pair%%=*} name=${pair#*=} found=""
    for t in $tasks; do
      local glob="$dir/*-$t-$name-s*.json"
      if compgen -G "$glob" > /dev/null; then echo "--variant" "$label=$glob"; found=1; fi
    done
    if [ -z "$found" ]; then echo "--variant" "$label=$dir/*-${tasks%% *}-$name-s*.json"; fi
  done
}
THREE="winowhy colorhex hotels"

table "MPNet, three tasks, 2 epochs (bf16)" $(variants $R/table3_mpnet/bf16 "$THREE" MEPT=lr5 \
  prompt_tuning=prompt_tuning-lin P-Tuning_v2_m100=ptuning_v2-d100 LoRA=lora-def MEPT_paper_router=paperrouter \
  MEPT_N_r_1=nr1)
table "MPNet, winowhy and color/hex, 10 epochs (bf16)" $(variants $R/table3_mpnet/e10 "$THREE" MEPT=mept-e10 \
  prompt_tuning=prompt_tuning-e10 P-Tuning_v2_m100=ptuning_v2-e10 LoRA=lora-e10 full_fine-tuning=full-e10 \
  MEPT_paper_router=mept-e10lnnobal MEPT_N_r_1=mept-e10nr1)
table "MPNet, bb-diverse, 300 steps of 16 (bf16)" $(variants $R/table3_mpnet/mixture bbdiverse MEPT=mept-def \
  prompt_tuning=prompt_tuning-def P-Tuning_v2_m100=ptuning_v2-def LoRA=lora-def MEPT_paper_router=mept-paperrouter \
  MEPT_N_r_1=mept-nr1)
table "MPNet, vader, 1 epoch (fp32)" $(variants $R/table3_mpnet/vader vader MEPT=mept prompt_tuning=prompt_tuning \
  P-Tuning_v2_m100=ptuning_v2 LoRA=lora MEPT_paper_router=mept-paperrouter)
table "SmolLM2, three tasks, 1 epoch (bf16; MEPT at 1e-4)" $(variants $R/decoder_prompts/tasks3 "$THREE" MEPT=mept-lr1e4 \
  prompt_tuning=prompt_tuning-lr1e3 P-Tuning_v2_m100=ptuning_v2-lr1e3 LoRA=lora-def probe=probe-def \
  MEPT_paper_router=mept-paperrouter MEPT_N_r_1=mept-nr1)
table "SmolLM2, bb-diverse, 300 steps of 8 (bf16; MEPT at 1e-4)" $(variants $R/decoder_prompts/bbdiverse bbdiverse MEPT=mept-lr1e4 \
  prompt_tuning=prompt_tuning-lr1e3 P-Tuning_v2_m100=ptuning_v2-lr1e3 LoRA=lora-def probe=probe-def)
table "SmolLM2, vader, 200 steps of 8 (fp32; MEPT at its decoder default then, 1e-4)" $(variants $R/decoder_prompts/vader vader MEPT=mept \
  prompt_tuning=prompt_tuning P-Tuning_v2_m100=ptuning_v2 LoRA=lora probe=probe MEPT_lr_1e-3=mept-lr1e3)
table "SmolLM2, vader, 800 steps of 8 (fp32; MEPT at lr 1e-3, its decoder default since generation 7, first; 1e-4 last)" \
  $(variants $R/decoder_prompts/vader800 vader800 MEPT_lr_1e-3=mept-lr1e3 prompt_tuning=prompt_tuning LoRA=lora \
  probe=probe MEPT_lr_1e-4=mept)
