"""One validator for the whole resume state (``mept.harness.resume_state``), before any of it is used.

Issue 34: ``--resume`` on a checkpoint whose state has ``step: -5``, ``best_score: NaN``, a truncated
``trainer_state.safetensors`` or edited ``optimizer_groups`` was accepted, or crashed deep in torch.
Each is one ``error:`` line naming the file, and the checkpoint is left as it was.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import cli, copy_run, one_error, snapshot
from safetensors.torch import load_file, save_file

STATE = Path("checkpoint") / "trainer_state.json"
TENSORS = Path("checkpoint") / "trainer_state.safetensors"


def edit_state(run: Path, change) -> None:
    state = json.loads((run / STATE).read_text())
    change(state)
    (run / STATE).write_text(json.dumps(state))


def edit_tensors(run: Path, change) -> None:
    tensors = load_file(str(run / TENSORS))
    change(tensors)
    save_file(tensors, str(run / TENSORS))


def truncate(run: Path) -> None:
    data = (run / TENSORS).read_bytes()
    (run / TENSORS).write_bytes(data[: len(data) // 2])


def first_moment(tensors: dict) -> str:
    return next(k for k in sorted(tensors) if k.endswith(".exp_avg"))


CASES = {
    # the cases
    "negative step": (lambda run: edit_state(run, lambda s: s.update(step=-5)), STATE, "'step' must be a whole number"),
    "NaN best score": (lambda run: edit_state(run, lambda s: s.update(best_score=float("nan"))), STATE,
                       "'best_score' must be a finite number"),
    "truncated tensors": (truncate, TENSORS, "not a readable safetensors file"),
    "edited optimizer groups": (lambda run: edit_state(run, lambda s: s["optimizer_groups"].pop()), STATE,
                                "'optimizer_groups' has"),
    "parameters moved between groups": (
        lambda run: edit_state(run, lambda s: s["optimizer_groups"][0]["params"].reverse()), STATE, "lists parameters"),
    # members of the family the issue does not list
    "step beyond the run": (lambda run: edit_state(run, lambda s: s.update(step=10**9)), STATE, "at most the run's"),
    "a NaN learning rate": (lambda run: edit_state(run, lambda s: s["optimizer_groups"][0].update(lr=float("nan"))),
                            STATE, "has lr = nan"),
    "a NaN moment": (lambda run: edit_tensors(run, lambda t: t[first_moment(t)].fill_(float("nan"))), TENSORS,
                     "holds NaN or infinite values"),
    "a reshaped moment": (lambda run: edit_tensors(run, lambda t: t.update({first_moment(t): t[first_moment(t)][:1]})),
                          TENSORS, "has shape"),
    "a schedule out of step": (lambda run: edit_state(run, lambda s: s["scheduler"].update(last_epoch=7)), STATE,
                               "the schedule is at step 7"),
    "a missing RNG state": (lambda run: edit_tensors(run, lambda t: t.pop("rng.torch")), TENSORS, "rng.torch"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_a_damaged_or_edited_resume_state_is_one_error_naming_the_file(own_run, tmp_path, capsys, case):
    damage, file, needle = CASES[case]
    run = copy_run(own_run, tmp_path)
    damage(run)
    before = snapshot(run / "checkpoint"), snapshot(run / "best")
    code, _, err = cli(["train", "--resume", "--output", str(run), "--no-progress"], capsys)
    one_error(code, err, str(run / file), needle, "cannot continue from it")
    assert "--overwrite" not in err  # never suggested to someone who asked to resume
    assert (snapshot(run / "checkpoint"), snapshot(run / "best")) == before


def test_an_intact_state_resumes(own_run, tmp_path, capsys):
    run = copy_run(own_run, tmp_path)
    code, out, err = cli(["train", "--resume", "--output", str(run), "--no-progress"], capsys)
    assert code == 0, err
    assert "resumed from step 1" in out
