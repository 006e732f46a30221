"""Peak memory (RSS) of ``mept train`` against Hugging Face's ``Trainer`` (``PromptTrainer``) on one long-text CSV.

Each measurement is one fresh process under ``/usr/bin/time -v`` (its "Maximum resident set
size"), so nothing of one run stays in the other's figure. Same model (MiniLM), method, batch
size, eval batch size, ``--max-length`` and steps on both sides; both evaluate the validation
split once at the end and then score the test file. The Trainer side tokenises as a Hugging Face
user would (the tokenizer truncates), which is the reference the CLI must not exceed.

The CSVs are built from a real long-text BIG-bench task (natural_instructions' MultiRC answer
check: a paragraph, a question and an answer, ~330 words, label yes/no at 73/27 -- longer than
``--max-length 256`` and as imbalanced as the spam CSV of issue 24), 1,000 train / 200 validation
/ 500 test rows, read from the cached tarball; like every BIG-bench file they stay in the cache,
never in the repository (canary).

    OMP_NUM_THREADS=1 python benchmarks/memory.py                  # both, one after the other
    OMP_NUM_THREADS=1 python benchmarks/memory.py --only cli       # or --only trainer
    OMP_NUM_THREADS=1 python benchmarks/memory.py --batch-size 8 --eval-batch-size 8   # Trainer's defaults
"""

from __future__ import annotations

import argparse
import csv
import os
import re
import sys
import tempfile
from pathlib import Path

from script import run_command  # benchmarks/script.py: a failed child run is one error line

TASK = "natural_instructions/subtask056_multirc_classify_correct_answer"
SETTINGS = {"method": "prompt_tuning", "max_length": 256, "batch_size": 16, "eval_batch_size": 32, "max_steps": 20}
SPLITS = {"train": 1000, "val": 200, "test": 500}


def build_csv(folder: Path) -> dict[str, Path]:
    """train/val/test.csv (``text,label``) from the BIG-bench task, rows in file order (deterministic)."""
    from mept.data.bigbench import read_task

    folder.mkdir(parents=True, exist_ok=True)
    rows = [(e["input"], e["target"][0].rstrip(".").lower()) for e in read_task(TASK)["examples"]]
    paths, start = {}, 0
    for split, n in SPLITS.items():
        paths[split] = folder / f"{split}.csv"
        with open(paths[split], "w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f)
            writer.writerow(["text", "label"])
            writer.writerows(rows[start : start + n])
        start += n
    return paths


def peak_rss_mb(command: list[str]) -> float:
    """Run ``command`` under ``/usr/bin/time -v``; its peak resident set size in MiB."""
    done = run_command(["/usr/bin/time", "-v", *command], capture_output=True, text=True)
    kib = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", done.stderr).group(1))
    return kib / 1024


def cli_command(data: dict[str, Path], out: Path) -> list[str]:
    s = SETTINGS
    return [sys.executable, "-m", "mept.cli", "train", "--train-file", str(data["train"]),
            "--val-file", str(data["val"]), "--test-file", str(data["test"]),
            "--method", s["method"], "--max-length", str(s["max_length"]), "--batch-size", str(s["batch_size"]),
            "--eval-batch-size", str(s["eval_batch_size"]), "--max-steps", str(s["max_steps"]),
            "--eval-every", str(s["max_steps"]), "--output", str(out), "--no-progress"]


def trainer_run(folder: Path, out: Path) -> None:
    """The same training as a Hugging Face user writes it: the tokenizer truncates, ``PromptTrainer``
    trains (same model, method, batch sizes, steps, lr), then ``trainer.predict`` scores the test file."""
    import torch
    from transformers import TrainingArguments

    import mept
    from mept.harness.trainer import PromptTrainer
    from mept.model.backbones import load_backbone

    torch.manual_seed(42)
    s = SETTINGS
    backbone = load_backbone("minilm", "cls", num_labels=2)
    model = mept.get_model(backbone.model, mept.make_config(s["method"]))
    budget = s["max_length"] - model.num_slots  # prompt slots count against --max-length, as in mept

    def rows(split: str) -> list[dict]:
        from script import csv_rows  # benchmarks/script.py: a CSV without the columns is one error line

        table = csv_rows(folder / f"{split}.csv", ("text", "label"))
        ids = backbone.processor([r["text"] for r in table], truncation=True, max_length=budget)["input_ids"]
        return [{"input_ids": x, "labels": ["no", "yes"].index(r["label"])} for x, r in zip(ids, table)]

    def collate(batch: list[dict]) -> dict[str, torch.Tensor]:
        width = max(len(r["input_ids"]) for r in batch)
        pad = backbone.processor.pad_token_id
        return {"input_ids": torch.tensor([r["input_ids"] + [pad] * (width - len(r["input_ids"])) for r in batch]),
                "attention_mask": torch.tensor([[1] * len(r["input_ids"]) + [0] * (width - len(r["input_ids"]))
                                                for r in batch]),
                "labels": torch.tensor([r["labels"] for r in batch])}

    targs = TrainingArguments(str(out), max_steps=s["max_steps"], per_device_train_batch_size=s["batch_size"],
                              per_device_eval_batch_size=s["eval_batch_size"], learning_rate=1e-2,
                              eval_strategy="steps", eval_steps=s["max_steps"], save_strategy="no",
                              report_to=[], use_cpu=True, disable_tqdm=True, seed=42)
    trainer = PromptTrainer(model=model, args=targs, train_dataset=rows("train"), eval_dataset=rows("val"),
                            data_collator=collate)
    trainer.train()
    trainer.predict(rows("test"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", choices=["cli", "trainer"])
    ap.add_argument("--data", type=Path, help="folder for train.csv/val.csv (default: the mept cache)")
    ap.add_argument("--batch-size", type=int, default=SETTINGS["batch_size"], help="both sides (mept's default 16)")
    ap.add_argument("--eval-batch-size", type=int, default=SETTINGS["eval_batch_size"], help="both sides (mept's 32)")
    ap.add_argument("--trainer-run", nargs=2, type=Path, help=argparse.SUPPRESS)  # the child process
    args = ap.parse_args()
    SETTINGS.update(batch_size=args.batch_size, eval_batch_size=args.eval_batch_size)
    if args.trainer_run:
        trainer_run(*args.trainer_run)
        return
    from mept.files.paths import cache_dir

    folder = args.data or cache_dir() / "memory-benchmark"
    data = build_csv(folder)
    print(f"data: {folder} ({', '.join(f'{k} {v}' for k, v in SPLITS.items())} rows); settings {SETTINGS}; "
          f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}")
    with tempfile.TemporaryDirectory() as tmp:
        if args.only in (None, "cli"):
            print(f"mept train     peak RSS {peak_rss_mb(cli_command(data, Path(tmp) / 'cli')):8.0f} MiB", flush=True)
        if args.only in (None, "trainer"):
            command = [sys.executable, __file__, "--trainer-run", str(folder), str(Path(tmp) / "trainer"),
                       "--batch-size", str(args.batch_size), "--eval-batch-size", str(args.eval_batch_size)]
            print(f"PromptTrainer  peak RSS {peak_rss_mb(command):8.0f} MiB", flush=True)


if __name__ == "__main__":
    from script import run  # benchmarks/script.py: a bad input is one error line, never a traceback

    run(main)
