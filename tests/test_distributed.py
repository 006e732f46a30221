"""Multi-process training through Accelerate, on CPU (gloo): two processes learn what one does.

The trainer splits each global batch across processes (``plan[index][rank::world]``) and weights
each process's loss by its share of the batch (:func:`mept.harness.train.accumulate_gradients`), so DDP's gradient
average is the one-process gradient -- also when a batch does not split evenly, or when a process
gets no example at all.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from mept.cli import main
from tests.conftest import reviews, tiny_model_dir

ROOT = Path(__file__).resolve().parents[1]


def launch_two(args: list[str]) -> subprocess.CompletedProcess:
    """``accelerate launch`` two CPU processes of ``mept train`` (``--multi_gpu`` starts several; --cpu would start one)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")]),
           "OMP_NUM_THREADS": "1"}
    launch = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
              "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no", "-m", "mept.cli"]
    return subprocess.run([*launch, *args], env=env, cwd=ROOT, capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize(("family", "examples", "batch"), [("bert", 15, 4), ("bert", 9, 4), ("llama", 12, 3)],
                         ids=["uneven-split", "idle-process", "causal-lm-uneven-targets"])
def test_two_processes_train_the_same_adapter_as_one(tmp_path, family, examples, batch):
    # 15 examples, batch 4: the last batch of 3 splits 2 + 1; 9 examples: the last batch of 1 leaves a process
    # idle; causal LM, batch 3: targets "good" / "very negative opinion" (1 and 3 tokens), so the processes hold
    # token counts in other ratios than their example counts.
    model = tiny_model_dir(tmp_path / f"tiny-{family}", family)
    words = ("very negative opinion", "good") if family == "llama" else ("neg", "pos")
    form = ["--format", "causal_lm"] if family == "llama" else []
    args = [
        "train", "--model", str(model), "--train-file", str(reviews(tmp_path / "train.csv", examples, words)),
        "--val-file", str(reviews(tmp_path / "val.csv", 6, words)), "--verbalizer", *words, *form, "--method", "mept",
        "--experts", "2", "--prompt-length", "4", "--epochs", "1", "--batch-size", str(batch), "--lr", "0.05",
        "--head-lr", "0.05", "--max-length", "32", "--eval-batch-size", "8", "--no-progress", "--seed", "3",
        "--eval-every", "1",
        # the load-balancing loss and the centred router's running mean (MEPT's default input) are statistics
        # of the (micro-)batch each process sees, as in Switch and BatchNorm on every device: only without
        # them is a split batch exactly the whole batch
        "--set", "balance_loss=0", "router_input=layernorm",
    ]
    assert main([*args, "--output", str(tmp_path / "one")]) == 0
    done = launch_two([*args, "--output", str(tmp_path / "two")])
    assert done.returncode == 0, done.stderr[-3000:]
    one = load_file(str(tmp_path / "one" / "checkpoint" / "adapter_model.safetensors"))
    two = load_file(str(tmp_path / "two" / "checkpoint" / "adapter_model.safetensors"))
    assert set(one) == set(two)
    for key in one:
        assert torch.allclose(one[key], two[key], atol=1e-5, rtol=1e-4), f"{key} differs between 1 and 2 processes"
    history = [[h["loss"] for h in json.loads((tmp_path / name / "metrics.json").read_text())["history"]]
               for name in ("one", "two")]
    assert history[1] == pytest.approx(history[0], abs=1e-5)  # the logged loss is the global batch's mean


def test_a_diverging_multi_process_run_stops_every_process_with_one_error(tmp_path):
    model = tiny_model_dir(tmp_path / "tiny-bert")
    args = [
        "train", "--model", str(model), "--train-file", str(reviews(tmp_path / "train.csv", 12)),
        "--val-file", str(reviews(tmp_path / "val.csv", 6)), "--verbalizer", "neg", "pos", "--experts", "2",
        "--prompt-length", "4", "--max-steps", "3", "--batch-size", "4", "--lr", "1e30", "--head-lr", "1e30",
        "--max-length", "32", "--no-progress", "--output", str(tmp_path / "run"),
    ]
    done = launch_two(args)
    assert done.returncode != 0
    assert done.stderr.count("error: loss became nan") == 2  # both processes, none left waiting in DDP
