"""Peak memory (RSS) of ``mept train`` against Hugging Face's ``Trainer`` (``PromptTrainer``) on one long-text CSV.

Each measurement is one fresh process under ``/usr/bin/time -v`` (its "Maximum resident set
size"), so nothing of one run stays in the other's figure. Same model (MiniLM), method, batch
size, eval batch size, ``--max-length`` and steps on both sides; both evaluate the validation
split once at the end.

The CSV is built from a real long-text BIG-bench task (``play_dialog_same_or_different``:
Shakespeare dialogues, ~120 words each, "same" or "different" speaker) read from the cached
tarball; like every BIG-bench file it is kept in the cache, never in the repository (canary).

    OMP_NUM_THREADS=1 python benchmarks/memory.py                  # both, one after the other
    OMP_NUM_THREADS=1 python benchmarks/memory.py --only cli       # or --only trainer
"""

from __future__ import annotations

import argparse
import csv
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

TASK = "play_dialog_same_or_different"
SETTINGS = {"method": "prompt_tuning", "max_length": 256, "batch_size": 16, "eval_batch_size": 32, "max_steps": 30}


def build_csv(folder: Path, train_rows: int = 1000, val_rows: int = 200) -> tuple[Path, Path]:
    """train.csv / val.csv (``text,label``) from the BIG-bench task, first rows in file order (deterministic)."""
    from mept.data.bigbench import read_task

    folder.mkdir(parents=True, exist_ok=True)
    rows = [(e["input"], max(e["target_scores"], key=e["target_scores"].get)) for e in read_task(TASK)["examples"]]
    paths = folder / "train.csv", folder / "val.csv"
    for path, part in zip(paths, (rows[:train_rows], rows[train_rows : train_rows + val_rows])):
        with open(path, "w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f)
            writer.writerow(["text", "label"])
            writer.writerows(part)
    return paths


def peak_rss_mb(command: list[str]) -> float:
    """Run ``command`` under ``/usr/bin/time -v``; its peak resident set size in MiB."""
    done = subprocess.run(["/usr/bin/time", "-v", *command], capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"failed ({done.returncode}): {' '.join(command)}\n{done.stderr[-2000:]}")
    kib = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", done.stderr).group(1))
    return kib / 1024


def cli_command(train: Path, val: Path, out: Path) -> list[str]:
    s = SETTINGS
    return [sys.executable, "-m", "mept.cli", "train", "--train-file", str(train), "--val-file", str(val),
            "--method", s["method"], "--max-length", str(s["max_length"]), "--batch-size", str(s["batch_size"]),
            "--eval-batch-size", str(s["eval_batch_size"]), "--max-steps", str(s["max_steps"]),
            "--eval-every", str(s["max_steps"]), "--output", str(out), "--no-progress"]


def trainer_run(train: Path, val: Path, out: Path) -> None:
    """The same training through ``PromptTrainer``: the features mept would feed it, Trainer's loop."""
    import torch
    from transformers import TrainingArguments

    from mept.cli import build_parser, train_config_from_args
    from mept.prepare_run import prepare
    from mept.trainer import PromptTrainer

    args = build_parser().parse_args(cli_command(train, val, out)[3:])
    p = prepare(train_config_from_args(args))
    words = p.encoder.labels.task_words

    def rows(features):
        return [{"input_ids": f.input_ids, "labels": words[f.example.task][f.example.label]} for f in features]

    def collate(batch):
        width = max(len(r["input_ids"]) for r in batch)
        pad = p.encoder.pad_id
        return {"input_ids": torch.tensor([r["input_ids"] + [pad] * (width - len(r["input_ids"])) for r in batch]),
                "attention_mask": torch.tensor([[1] * len(r["input_ids"]) + [0] * (width - len(r["input_ids"]))
                                                for r in batch]),
                "labels": torch.tensor([r["labels"] for r in batch])}

    s = SETTINGS
    targs = TrainingArguments(str(out), max_steps=s["max_steps"], per_device_train_batch_size=s["batch_size"],
                              per_device_eval_batch_size=s["eval_batch_size"], learning_rate=1e-2,
                              eval_strategy="steps", eval_steps=s["max_steps"], save_strategy="no",
                              report_to=[], use_cpu=True, disable_tqdm=True, seed=42)
    trainer = PromptTrainer(model=p.model, args=targs, train_dataset=rows(p.train),
                            eval_dataset=rows(next(iter(p.eval_sets.values()))), data_collator=collate)
    trainer.train()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", choices=["cli", "trainer"])
    ap.add_argument("--data", type=Path, help="folder for train.csv/val.csv (default: the mept cache)")
    ap.add_argument("--trainer-run", nargs=3, type=Path, help=argparse.SUPPRESS)  # the child process
    args = ap.parse_args()
    if args.trainer_run:
        trainer_run(*args.trainer_run)
        return
    from mept.paths import cache_dir

    train, val = build_csv(args.data or cache_dir() / "memory-benchmark")
    print(f"data: {train} ({sum(1 for _ in open(train)) - 1} rows), {val}; settings {SETTINGS}; "
          f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}")
    with tempfile.TemporaryDirectory() as tmp:
        if args.only in (None, "cli"):
            print(f"mept train     peak RSS {peak_rss_mb(cli_command(train, val, Path(tmp) / 'cli')):8.0f} MiB")
        if args.only in (None, "trainer"):
            command = [sys.executable, __file__, "--trainer-run", str(train), str(val), str(Path(tmp) / "trainer")]
            print(f"PromptTrainer  peak RSS {peak_rss_mb(command):8.0f} MiB")


if __name__ == "__main__":
    main()
