"""MEPT cost as the number of router experts N_r grows (m = 10 prompt tokens per layer, MiniLM).

    python benchmarks/scaling.py                          # N_r = 1 4 10 20 50, batch 16, seq 128, 5 rounds
    python benchmarks/scaling.py --experts 1 10 100 --rounds 7
    python benchmarks/scaling.py --quick                  # batch 4, seq 32, 2 rounds

What top-1 routing should give (the paper: "memory overhead during training and
inference is solely dependent on the prompt length and irrelevant to the number
of experts", Sec. 5; here measured): one expert per layer, so compute and
activation memory do not grow with N_r; only the (tiny) parameter count and its
AdamW state do. Step = forward + backward + AdamW step, medians over
round-robin rounds; memory = torch allocation peak during one step (see
benchmarks/common.py), plus the bytes of trainable parameters + AdamW state
(3 copies: weight, exp_avg, exp_avg_sq; the gradient is counted in the step peak).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import torch  # noqa: E402
from common import median, peak_step_memory_mb, timed  # noqa: E402
from speed import build  # noqa: E402

from mept.cli.flags import ListFlag  # noqa: E402


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="minilm", choices=["minilm", "smollm2"])
    ap.add_argument("--experts", type=int, action=ListFlag, default=[1, 4, 10, 20, 50])
    ap.add_argument("--prompt-length", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--seq", type=int, default=128)
    ap.add_argument("--quick", action="store_true", help="batch 4, seq 32, 2 rounds")
    ap.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (1: CPU time = work done)")
    ap.add_argument("--json", help="also write raw numbers to this file")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.quick:
        args.batch, args.seq, args.rounds = 4, 32, 2
    torch.manual_seed(0)
    ids = torch.randint(100, 30000, (args.batch, args.seq))
    mask = torch.ones_like(ids)
    labels = torch.randint(0, 2, (args.batch,))
    benches = [build("bare + input grad", "bare_grad", {}, args.model, ids, mask, labels)]
    for n in args.experts:
        benches.append(build(f"N_r={n}", "mept", {"num_experts": n, "prompt_length": args.prompt_length},
                             args.model, ids, mask, labels))
    for b in benches:
        b.step()  # warm-up
        b.infer()
    for r in range(args.rounds):
        for b in benches:
            for times, cpu, fn in ((b.train_times, b.train_cpu, b.step), (b.infer_times, b.infer_cpu, b.infer)):
                w, c = timed(fn)
                times.append(w)
                cpu.append(c)
        print(f"round {r + 1}/{args.rounds} done", file=sys.stderr)
    ref = median(benches[0].train_cpu)
    print(f"\n#### MEPT scaling on {args.model}: m={args.prompt_length}, batch {args.batch}, seq {args.seq}, "
          f"{args.rounds} rounds, {torch.get_num_threads()} threads (medians)\n")
    print("| config | trainable params | params + AdamW state (MiB) | step wall (s) | step CPU (s) "
          "| CPU / bare+input-grad | inference CPU (s) | step peak mem (MiB) |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    out = {}
    for b in benches:
        b.memory_mb = peak_step_memory_mb(b.step)
        state_mb = 3 * 4 * b.trainable / 2**20  # fp32 weight + exp_avg + exp_avg_sq
        ts, cs, ci = median(b.train_times), median(b.train_cpu), median(b.infer_cpu)
        print(f"| {b.label} | {b.trainable:,} | {state_mb:.1f} | {ts:.3f} | {cs:.3f} | {cs / ref:.2f}x | {ci:.3f} "
              f"| {b.memory_mb:.0f} |", flush=True)
        out[b.label] = {"trainable": b.trainable, "state_mb": state_mb, "train_wall_s": ts, "train_cpu_s": cs,
                        "infer_cpu_s": ci, "train_times": b.train_times, "train_cpu": b.train_cpu,
                        "memory_mb": b.memory_mb}
    if args.json:
        Path(args.json).write_text(json.dumps({"args": vars(args), "results": out}, indent=2))


if __name__ == "__main__":
    from script import run  # benchmarks/script.py: a bad input is one error line, never a traceback

    run(main)
