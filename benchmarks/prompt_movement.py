"""How far did a run's prompts move in training? Per prompted layer: their scale at the start, and the change.

    python benchmarks/prompt_movement.py --start runs/hs/smollm2-winowhy-mept-frozen-s1 \
        --trained runs/hs/smollm2-winowhy-mept-def-s1

``--start`` is a run with the trained run's method, seed and data but ``--set train_prompts=false
train_router=false``: its saved prompts are the ones the trained run started from. ``--start`` may also be a
saved adapter of the untrained model. Prints, per layer of each prompt tensor (``experts``, ``shared``,
``prompts``), the rms at the start, the rms of the change and the change relative to the start.

Why: AdamW moves every entry by about the lr per step whatever its size, so prompts that start large hardly
move in relative terms (``benchmarks/studies/decoder_prompts.md``: on SmolLM2, rows drawn raw from the decoder's
residual stream moved 0.3-2.0% in an epoch past layer 1).
"""

from __future__ import annotations

import argparse

import torch

from mept.core.prompt_init import read_prompt_source
from mept.errors import MeptError


def movement(start: dict[str, torch.Tensor], trained: dict[str, torch.Tensor]) -> dict[str, list[tuple[float, float]]]:
    """Per layer-major prompt tensor both adapters hold: (rms at the start, rms of the change) per layer."""
    out = {}
    for name in sorted(set(start) & set(trained)):
        a, b = start[name].float(), trained[name].float()
        if a.ndim < 3 or "router" in name:
            continue
        if a.shape != b.shape:
            raise MeptError(f"{name}: {tuple(a.shape)} at the start, {tuple(b.shape)} trained; give two runs of one method")
        out[name] = [(a[j].pow(2).mean().sqrt().item(), (b[j] - a[j]).pow(2).mean().sqrt().item())
                     for j in range(a.shape[0])]
    if not out:
        raise MeptError("the two adapters share no prompt tensor; give two runs of one method")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--start", required=True, help="a run (or adapter) with the prompts the trained run started from")
    ap.add_argument("--trained", required=True, help="the trained run (or adapter)")
    args = ap.parse_args()
    start, trained = read_prompt_source(args.start, "--start"), read_prompt_source(args.trained, "--trained")
    for name, layers in movement(start, trained).items():
        print(f"{name}: layer, rms at the start, rms of the change, change / start")
        for j, (scale, moved) in enumerate(layers, 1):
            print(f"  {j:>3}  {scale:8.3f}  {moved:8.4f}  {moved / scale if scale else float('nan'):7.4f}")


if __name__ == "__main__":
    from script import run  # benchmarks/script.py: a bad input is one error line, never a traceback

    run(main)
