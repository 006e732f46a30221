"""How large is what the task head reads? The mean L1 and L2 norm of the head's input, per backbone.

    python benchmarks/head_input_scale.py --model smollm2 --data ~/.cache/mept/csv/winowhy/train.csv

Why it matters: AdamW's first steps move every head weight by about the lr, so one step can move a logit by up
to ``lr * ||h||_1`` (h the head's input). Our head lr (1e-2) was tuned on MiniLM; a backbone whose head input is
ten times larger takes ten times larger logit steps at the same lr. Builds an untrained MEPT (N_r = 10, m = 10,
seed 1) on the backbone with its classification head (two labels), runs the first ``--examples`` rows of a real
CSV (column ``text``) through it and prints the norms of the input of the head's last linear layer, per row (a
decoder's score head reads every position; the mean is over them all).
"""

from __future__ import annotations

from pathlib import Path

import torch
from init_routing import rows_of_a_csv, untrained_mept  # the same untrained MEPT and flags


def head_input_norms(model_name: str, texts: list[str], max_length: int) -> dict[str, float]:
    backbone, model, batch = untrained_mept(model_name, texts, max_length)
    seen: list[torch.Tensor] = []
    linears = [m for name in model.head_names for m in backbone.model.get_submodule(name).modules()
               if isinstance(m, torch.nn.Linear)]
    hook = linears[-1].register_forward_pre_hook(lambda module, args: seen.append(args[0].detach().float()))
    model.eval()
    with torch.no_grad():
        model(**batch)
    hook.remove()
    h = seen[0].reshape(-1, seen[0].shape[-1])
    return {"width": h.shape[-1], "rows": h.shape[0], "l1": h.abs().sum(-1).mean().item(),
            "l2": h.norm(dim=-1).mean().item(), "rms": h.pow(2).mean().sqrt().item()}


def main() -> None:
    args, texts = rows_of_a_csv(__doc__.splitlines()[0], examples=32, max_length=128)
    n = head_input_norms(args.model, texts, args.max_length)
    print(f"{args.model} {Path(args.data).parent.name}: head input width {n['width']}, {n['rows']} rows: "
          f"mean L1 {n['l1']:.1f}, mean L2 {n['l2']:.2f}, rms {n['rms']:.3f}; "
          f"a logit step at head lr 1e-2 up to {1e-2 * n['l1']:.2f}", flush=True)


if __name__ == "__main__":
    from script import run  # benchmarks/script.py: a bad input is one error line, never a traceback

    run(main)
