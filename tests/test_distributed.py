"""Multi-process training through Accelerate, on CPU (gloo): two processes learn what one does.

The trainer splits each global batch across processes (``plan[index][rank::world]``) and weights
each process's loss by its share of the batch (:func:`mept.train.accumulate_gradients`), so DDP's gradient
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
import transformers
from safetensors.torch import load_file

from mept.backbones import resolve
from mept.cli import main

ROOT = Path(__file__).resolve().parents[1]
WORDS = ["great", "awful", "superb", "dull", "lovely", "boring", "moving", "tedious", "fine", "weak"]


def tiny_model_dir(path: Path) -> Path:
    """A 2-layer random BERT with MiniLM's tokenizer: real tokenisation, seconds to train."""
    tok = transformers.AutoTokenizer.from_pretrained(resolve("minilm"))
    torch.manual_seed(0)
    cfg = transformers.BertConfig(
        vocab_size=tok.vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
        max_position_embeddings=128, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
    )
    transformers.BertModel(cfg).save_pretrained(path)
    tok.save_pretrained(path)
    return path


def reviews(path: Path, n: int) -> Path:
    rows = ["text,label"] + [f"\"the film was {WORDS[i % 10]} and {WORDS[(3 * i) % 10]}\",{'pos' if i % 2 else 'neg'}"
                             for i in range(n)]
    path.write_text("\n".join(rows) + "\n")
    return path


def launch_two(args: list[str]) -> subprocess.CompletedProcess:
    """``accelerate launch`` two CPU processes of ``mept train`` (``--multi_gpu`` starts several; --cpu would start one)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")]),
           "OMP_NUM_THREADS": "1"}
    launch = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
              "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no", "-m", "mept.cli"]
    return subprocess.run([*launch, *args], env=env, cwd=ROOT, capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize(("examples", "batch"), [(15, 4), (9, 4)], ids=["uneven-split", "idle-process"])
def test_two_processes_train_the_same_adapter_as_one(tmp_path, examples, batch):
    # 15 examples, batch 4: the last batch of 3 splits 2 + 1; 9 examples: the last batch of 1 leaves a process idle.
    model = tiny_model_dir(tmp_path / "tiny-bert")
    args = [
        "train", "--model", str(model), "--train-file", str(reviews(tmp_path / "train.csv", examples)),
        "--val-file", str(reviews(tmp_path / "val.csv", 6)), "--verbalizer", "neg", "pos", "--method", "mept",
        "--experts", "2", "--prompt-length", "4", "--epochs", "1", "--batch-size", str(batch), "--lr", "0.05",
        "--head-lr", "0.05", "--max-length", "32", "--eval-batch-size", "8", "--no-progress", "--seed", "3",
        "--eval-every", "1",
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
