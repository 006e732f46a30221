"""Gradient accumulation gives the same adapter with less memory; gradient clipping bounds each step."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file

from mept.cli import main
from mept.errors import MeptError
from mept.harness.train_config import TrainConfig
from tests.conftest import reviews, tiny_model_dir


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("optim")
    model = tiny_model_dir(root / "tiny-bert")
    base = [
        "train", "--model", str(model), "--train-file", str(reviews(root / "train.csv", 15)),
        "--val-file", str(reviews(root / "val.csv", 6)), "--verbalizer", "neg", "pos", "--method", "mept",
        "--experts", "2", "--prompt-length", "4", "--epochs", "1", "--batch-size", "6", "--lr", "0.05",
        "--head-lr", "0.05", "--weight-decay", "0", "--max-length", "32", "--eval-batch-size", "8", "--no-progress",
        # the load-balancing loss and the centred router's running mean (MEPT's default input) are statistics
        # of the (micro-)batch each process sees, as in Switch and BatchNorm on every device: only without
        # them is a split batch exactly the whole batch
        "--set", "balance_loss=0", "router_input=layernorm",
    ]
    return root, base


def adapter(root, name, base, *extra):
    assert main([*base, *extra, "--output", str(root / name)]) == 0
    return load_file(str(root / name / "checkpoint" / "adapter_model.safetensors"))


def test_gradient_accumulation_trains_the_same_adapter(setup):
    root, base = setup
    whole = adapter(root, "whole", base, "--batch-size", "5")
    # batches of 5 in 2 passes: parts of 3 and 2, so the parts' mean losses must be weighted 3:2
    split = adapter(root, "split", base, "--batch-size", "5", "--gradient-accumulation-steps", "2")
    # Equal to float rounding: padding and summation order differ, and Adam magnifies tiny gradients.
    for key in whole:
        assert torch.allclose(whole[key], split[key], atol=1e-5, rtol=1e-4), f"{key} differs with accumulation"


def test_gradient_clipping_bounds_the_update(setup):
    root, base = setup
    start = adapter(root, "start", [*base, "--lr", "1e-30", "--head-lr", "1e-30"])  # the initial adapter (lr 0 is refused)
    free = adapter(root, "free", base)
    clipped = adapter(root, "clipped", base, "--max-grad-norm", "1e-12")
    moved = {k: (free[k] - start[k]).abs().max().item() for k in start}
    moved_clipped = {k: (clipped[k] - start[k]).abs().max().item() for k in start}
    # AdamW's update is g / (|g| + eps): a gradient clipped far below eps barely moves the weights.
    assert all(moved[k] > 1e-3 for k in start)
    assert all(moved_clipped[k] < 1e-2 * moved[k] for k in start)


def test_bad_accumulation_and_clipping_values_are_clear_errors():
    with pytest.raises(MeptError, match="gradient_accumulation_steps must be >= 1"):
        TrainConfig(gradient_accumulation_steps=0)
    with pytest.raises(MeptError, match="max_grad_norm must be > 0"):
        TrainConfig(max_grad_norm=0.0)
