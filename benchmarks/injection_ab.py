"""A/B test of a cheaper slot injection + routing pool (a proposed library change, applied here by monkeypatch).

    python benchmarks/injection_ab.py                   # MiniLM, batch 16, seq 128, 6 rounds
    python benchmarks/injection_ab.py --model smollm2 --batch 4 --rounds 3

Profiling a MEPT training step (``speed.py --profile``) shows, per prompted
layer, full-size (B, T, d) temporaries that the bare backbone does not have:

1. ``SlotInjector._before_layer`` writes the prompts with
   ``torch.cat([hidden[:, :o], prompts, hidden[:, o+m:]])``: two slices whose
   backward each allocate a zero (B, T, d) tensor and copy into it
   (``fill_`` + ``copy_``), then add the two (``add_``).
   ``hidden.slice_scatter(prompts, 1, o, o+m)`` gives the same values with one
   copy forward and one backward.
2. It pools ``hidden[:, :ctx.total_len]`` even when that slice is the whole
   tensor (always, in training): another zero + copy in backward.
3. ``routing.masked_mean`` computes ``(hidden * mask).sum(1)``: a (B, T, d)
   product forward and another in backward. ``bmm(mask (B,1,T), hidden)``
   gives the same (B, d) without the temporary.

This script times MEPT as shipped vs MEPT with the three changes (same
weights, same outputs -- checked), interleaved with the bare backbone (input
grad) and PEFT prompt tuning, and reports ratios. Both wall time and process
CPU time are recorded (CPU time is steadier on a shared machine).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import median, timed  # noqa: E402

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

import mept.inject.slots as slots  # noqa: E402

from speed import build  # noqa: E402


def masked_mean_bmm(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """hidden (B, T, d), mask (B, T) -> (B, d): mean over real tokens, no (B, T, d) temporary."""
    mask = mask.to(hidden.dtype)
    return torch.bmm(mask[:, None, :], hidden)[:, 0] / mask.sum(1, keepdim=True).clamp_min(1.0)


def before_layer_fast(self, position, module, args, kwargs):
    ctx = self.ctx
    if ctx is None:
        return None
    in_kwargs = not args
    hidden = kwargs["hidden_states"] if in_kwargs else args[0]  # (B, T, d)
    if hidden.shape[1] < ctx.total_len:
        return None
    pooled = None
    if self.method.routed:
        text = hidden if hidden.shape[1] == ctx.total_len else hidden[:, : ctx.total_len]
        pooled = masked_mean_bmm(text, ctx.pool_mask)  # (B, d)
        pooled = F.layer_norm(pooled.float(), pooled.shape[-1:])
    prompts = self.method.prompt(position, pooled, hidden.shape[0]).to(hidden.dtype)  # (B, m, d)
    o, m = self.offset, self.num_slots
    hidden = hidden.slice_scatter(prompts, dim=1, start=o, end=o + m)
    if in_kwargs:
        return args, {**kwargs, "hidden_states": hidden}
    return (hidden, *args[1:]), kwargs


class Patched:
    """Context manager: swap in the fast injection for calls made inside it."""

    def __enter__(self):
        self.saved = slots.SlotInjector._before_layer
        slots.SlotInjector._before_layer = before_layer_fast
        return self

    def __exit__(self, *exc):
        slots.SlotInjector._before_layer = self.saved


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="minilm", choices=["minilm", "smollm2"])
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--seq", type=int, default=128)
    ap.add_argument("--experts", type=int, default=10)
    ap.add_argument("--threads", type=int, default=None,
                    help="torch.set_num_threads; 1 makes CPU time a clean measure of work on a shared machine")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    ids = torch.randint(100, 30000, (args.batch, args.seq))
    mask = torch.ones_like(ids)
    labels = torch.randint(0, 2, (args.batch,))
    mept_cfg = {"num_experts": args.experts, "prompt_length": 10}
    bare = build("bare + input grad", "bare_grad", {}, args.model, ids, mask, labels)
    peft = build("PEFT PromptTuning 10", "peft_prompt", {"num_virtual_tokens": 10}, args.model, ids, mask, labels)
    pt = build("prompt_tuning m=10", "prompt_tuning", {"prompt_length": 10}, args.model, ids, mask, labels)
    torch.manual_seed(1)
    shipped = build("mept (shipped)", "mept", mept_cfg, args.model, ids, mask, labels)
    torch.manual_seed(1)
    fast = build("mept (patched injection)", "mept", mept_cfg, args.model, ids, mask, labels)

    # same outputs: eval mode, same weights, with and without the patch
    fast.model.load_state_dict(shipped.model.state_dict())
    shipped.model.eval(), fast.model.eval()
    with torch.no_grad():
        a = shipped.model(input_ids=ids, attention_mask=mask).logits
        with Patched():
            b = fast.model(input_ids=ids, attention_mask=mask).logits
    print(f"max |logits shipped - patched| = {(a - b).abs().max().item():.2e}", file=sys.stderr)

    def run_fast(fn):
        def inner():
            with Patched():
                fn()
        return inner

    configs = [(bare, bare.step), (peft, peft.step), (pt, pt.step), (shipped, shipped.step), (fast, run_fast(fast.step))]
    for _, step in configs:
        step()  # warm-up
    wall: dict[str, list[float]] = {b.label: [] for b, _ in configs}
    cpu: dict[str, list[float]] = {b.label: [] for b, _ in configs}
    for r in range(args.rounds):
        for b, step in configs:
            w, c = timed(step)
            wall[b.label].append(w)
            cpu[b.label].append(c)
        print(f"round {r + 1}/{args.rounds}", file=sys.stderr)
    ref_w, ref_c = median(wall[bare.label]), median(cpu[bare.label])
    peft_w, peft_c = median(wall[peft.label]), median(cpu[peft.label])
    print(f"\n#### Injection A/B on {args.model}: training step, batch {args.batch}, seq {args.seq}, "
          f"{args.rounds} rounds, {torch.get_num_threads()} threads (medians)\n")
    print("| config | wall (s) | / bare+input-grad | / PEFT PT | CPU time (s) | / bare+input-grad | / PEFT PT |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for b, _ in configs:
        w, c = median(wall[b.label]), median(cpu[b.label])
        print(f"| {b.label} | {w:.3f} | {w / ref_w:.2f}x | {w / peft_w:.2f}x | {c:.3f} | {c / ref_c:.2f}x "
              f"| {c / peft_c:.2f}x |")


if __name__ == "__main__":
    main()
