"""Never lose work: a NaN loss stops with the last good checkpoint kept, a run killed mid-epoch resumes to the
same result, the same seed gives the same metrics, and a resume or a checkpoint that does not match is refused."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import cli

from mept.cli import main

FIXTURES = Path(__file__).parent / "fixtures" / "superglue"
BASE = ["--task", "rte", "--source", "jsonl", "--data-dir", str(FIXTURES), "--batch-size", "2", "--max-length", "96",
        "--no-progress", "--experts", "2", "--prompt-length", "4"]


def without_timing(metrics: dict) -> dict:
    return {k: v for k, v in metrics.items() if k != "timing"}


def test_output_folder_of_another_run_is_not_overwritten(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", *BASE, "--max-steps", "1", "--output", str(out)]) == 0
    before = (out / "metrics.json").read_text()
    code, _, err = cli(["train", *BASE, "--max-steps", "2", "--output", str(out)], capsys)
    assert code == 2 and "--overwrite" in err and (out / "metrics.json").read_text() == before
    code, _, err = cli(["train", *BASE, "--max-steps", "2", "--output", str(out), "--resume", "--method", "smop"], capsys)
    assert code == 2 and "method (saved 'mept', given 'smop')" in err
    assert main(["train", *BASE, "--max-steps", "2", "--output", str(out), "--overwrite"]) == 0


def test_checkpoint_on_another_backbone_is_refused(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", *BASE, "--max-steps", "1", "--output", str(out)]) == 0
    config = json.loads((out / "best" / "adapter_config.json").read_text())
    config["backbone"]["hidden_size"] = 768
    (out / "best" / "adapter_config.json").write_text(json.dumps(config))
    import mept
    from mept.model.backbones import load_backbone

    with pytest.raises(mept.MeptError, match="hidden_size=768"):
        mept.load(load_backbone("minilm", "cls", num_labels=2).model, out / "best")


def test_nan_loss_stops_with_a_message_and_keeps_the_last_good_checkpoint(tmp_path, capsys, monkeypatch):
    import torch

    import mept.harness.train_loop as train_mod  # where the loop's step pieces live

    real = train_mod.task_loss
    calls = {"n": 0}

    def poisoned(*args, **kwargs):
        calls["n"] += 1
        loss = real(*args, **kwargs)
        return loss * float("nan") if calls["n"] == 4 else loss

    monkeypatch.setattr(train_mod, "task_loss", poisoned)
    out = tmp_path / "run"
    code, _, err = cli(["train", *BASE, "--max-steps", "6", "--save-every", "2", "--output", str(out)], capsys)
    assert code == 2 and "loss became nan at step 4" in err and "last good checkpoint" in err
    state = json.loads((out / "checkpoint" / "trainer_state.json").read_text())
    assert state["step"] == 2
    assert not (out / "metrics.json").exists() and (out / ".incomplete").exists()
    assert torch.isfinite(torch.tensor(0.0))


def test_same_seed_gives_identical_metrics(tmp_path):
    runs = []
    for name in ("a", "b"):
        assert main(["train", *BASE, "--max-steps", "4", "--output", str(tmp_path / name)]) == 0
        runs.append(json.loads((tmp_path / name / "metrics.json").read_text()))
    assert without_timing(runs[0]) == without_timing(runs[1])


def _cli(args: list[str]) -> subprocess.Popen:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, "-m", "mept.cli", "train", *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def test_sigkill_mid_epoch_then_resume_ends_bit_identical(tmp_path):
    args = [*BASE, "--max-steps", "14", "--save-every", "3", "--eval-every", "5", "--method", "mept"]
    reference = tmp_path / "reference"
    assert main(["train", *args, "--output", str(reference)]) == 0

    killed = tmp_path / "killed"
    proc = _cli([*args, "--output", str(killed)])
    state_file = killed / "checkpoint" / "trainer_state.json"
    deadline = time.time() + 240
    while time.time() < deadline:
        if state_file.exists() and json.loads(state_file.read_text())["step"] >= 6:
            break
        if proc.poll() is not None:
            pytest.fail(f"training ended before it could be killed: {proc.stderr.read().decode()[-500:]}")
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (killed / "metrics.json").exists()
    step = json.loads(state_file.read_text())["step"]
    assert 6 <= step < 14  # killed mid-run (the fixture epoch is 2 steps, so also mid-epoch for odd steps)

    resumed = subprocess.run([sys.executable, "-m", "mept.cli", "train", "--resume", "--output", str(killed), "--no-progress"],
                             capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    a = json.loads((reference / "metrics.json").read_text())
    b = json.loads((killed / "metrics.json").read_text())
    assert without_timing(a) == without_timing(b)
