"""Peak memory (RSS) of rank classification on a decoder: the causal-LM form of SmolLM2 on a many-label task.

Rank classification scores every verbalizer word in a pass of its own, each pass's logits (rows x positions x
SmolLM2's 49,152-word vocabulary). A MEPT run in the causal-LM form on ``bb-diverse`` was killed by the kernel
at its first evaluation (12.5 GB resident, two such runs on a 24 GB machine): every pass's output was kept
for its routes. This script measures one fresh ``mept train`` process (one step, then the evaluation of
``--examples`` validation rows of a task at ``--eval-batch-size``) under ``/usr/bin/time -v``; ``--src`` runs
another source tree (a checkout before a change) the same way.

    OMP_NUM_THREADS=1 python benchmarks/rank_memory.py                       # bb-shapes: 10 label words
    OMP_NUM_THREADS=1 python benchmarks/rank_memory.py --src /path/to/old/src
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

from memory import peak_rss_mb  # benchmarks/memory.py: one process under /usr/bin/time -v

from mept.errors import MeptError


def command(task: str, examples: int, eval_batch_size: int, out: Path) -> list[str]:
    return [sys.executable, "-m", "mept.cli", "train", "--method", "mept", "--model", "smollm2", "--task", task,
            "--format", "causal_lm", "--lr", "1e-4", "--max-steps", "1", "--batch-size", "2", "--max-length", "128",
            "--max-eval-examples", str(examples), "--eval-batch-size", str(eval_batch_size), "--no-progress",
            "--output", str(out)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--task", default="bb-shapes", help="a task with many label words (bb-shapes: 10)")
    ap.add_argument("--examples", type=int, default=64)
    ap.add_argument("--eval-batch-size", type=int, default=32)
    ap.add_argument("--src", help="a source tree to run instead of the installed mept (PYTHONPATH)")
    args = ap.parse_args()
    if args.src:
        if not (Path(args.src) / "mept").is_dir():
            raise MeptError(f"--src {args.src} holds no mept package; give the folder that contains mept/")
        os.environ["PYTHONPATH"] = os.pathsep.join([str(Path(args.src).resolve()), os.environ.get("PYTHONPATH", "")])
    with tempfile.TemporaryDirectory() as tmp:
        mb = peak_rss_mb(command(args.task, args.examples, args.eval_batch_size, Path(tmp) / "run"))
    print(f"{args.task}, causal LM, {args.examples} rows at eval batch {args.eval_batch_size}: "
          f"peak RSS {mb:,.0f} MiB ({args.src or 'installed mept'})")


if __name__ == "__main__":
    from script import run

    run(main)
