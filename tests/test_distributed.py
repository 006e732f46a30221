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
import transformers
from safetensors.torch import load_file

from mept.cli import main
from mept.model.backbones import resolve

ROOT = Path(__file__).resolve().parents[1]
WORDS = ["great", "awful", "superb", "dull", "lovely", "boring", "moving", "tedious", "fine", "weak"]


def tiny_model_dir(path: Path, family: str = "bert") -> Path:
    """A 2-layer random BERT (or Llama) with MiniLM's tokenizer: real tokenisation, seconds to train."""
    tok = transformers.AutoTokenizer.from_pretrained(resolve("minilm"))
    torch.manual_seed(0)
    if family == "llama":
        cfg = transformers.LlamaConfig(
            vocab_size=tok.vocab_size, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
            num_key_value_heads=2, max_position_embeddings=128, pad_token_id=tok.pad_token_id,
            initializer_range=0.5,  # peaked predictions: token losses differ, so a wrong weighting would show
        )
        model = transformers.LlamaForCausalLM(cfg)
    else:
        cfg = transformers.BertConfig(
            vocab_size=tok.vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
            max_position_embeddings=128, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
        )
        model = transformers.BertModel(cfg)
    model.save_pretrained(path)
    tok.save_pretrained(path)
    return path


def reviews(path: Path, n: int, labels: tuple[str, str] = ("neg", "pos")) -> Path:
    # texts of 1 to 5 judgements, so length-grouped batches still mix both labels
    texts = ["the film was " + " and ".join(WORDS[(i + 3 * j) % 10] for j in range(1 + (7 * i) % 5)) for i in range(n)]
    rows = ["text,label"] + [f"\"{text}\",{labels[i % 2]}" for i, text in enumerate(texts)]
    path.write_text("\n".join(rows) + "\n")
    return path


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
        # the load-balancing loss is a statistic of the (micro-)batch each process sees, as in Switch on
        # every device: only without it is a split batch exactly the whole batch
        "--set", "balance_loss=0",
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
