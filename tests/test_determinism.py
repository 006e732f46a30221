"""Seeds make results repeatable: two processes, one seed, one thread count -> identical metrics.

A routed mixture run of a few hundred steps is long enough for a flipped top-1 decision or a
float-rounding difference to compound into different scores, so equality here is bit for bit
(adapter bytes and every recorded number but the timings).
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

RUN = ["--tasks", "vader", "--max-train-examples", "16", "--max-eval-examples", "8", "--max-steps", "200",
       "--eval-every", "100", "--batch-size", "2", "--max-length", "40", "--experts", "4", "--prompt-length", "4",
       "--no-progress"]


def train_in_new_process(out: Path, *extra: str) -> dict:
    env = {**os.environ, "PYTHONHASHSEED": str(abs(hash(str(out))) % 1000)}  # processes differ in hash seed too
    done = subprocess.run([sys.executable, "-m", "mept.cli", "train", *RUN, *extra, "--output", str(out)],
                          env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    metrics = json.loads((out / "metrics.json").read_text())
    metrics["adapter_sha256"] = hashlib.sha256((out / "best" / "adapter_model.safetensors").read_bytes()).hexdigest()
    return metrics


def test_two_processes_with_one_seed_give_identical_metrics(tmp_path):
    a, b = (train_in_new_process(tmp_path / name) for name in ("a", "b"))
    assert a["steps"] == 200 and len(a["history"]) == 2
    assert a["determinism"]["torch_threads"] >= 1 and a["determinism"]["versions"]["torch"]
    timing = {"timing"}
    assert {k: v for k, v in a.items() if k not in timing} == {k: v for k, v in b.items() if k not in timing}


def test_deterministic_flag_runs_on_cpu_and_is_recorded(tmp_path):
    m = train_in_new_process(tmp_path / "det", "--deterministic", "--max-steps", "3")
    assert m["determinism"]["deterministic_algorithms"] is True
