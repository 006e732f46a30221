"""One ownership check for every command that writes where the user points it (``mept.files.ownership``).

A folder (or file) is replaced only if mept wrote it, only with ``--overwrite``, and nothing is opened
for writing before the check passes: ``train --output``, ``compare --output``, ``analyze --out``,
``predict --output`` and ``eval``'s result files. Every data-loss case checks every byte afterwards.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import GOOD, TINY, cli, copy_run, csv_file, one_error, own_files, snapshot, warned

# --- train ---------------------------------------------------------------------------------------

def test_a_folder_of_user_files_is_refused_without_suggesting_flags_that_would_be_refused(tmp_path, capsys,
                                                                                          monkeypatch):
    """``--output .`` used to suggest --overwrite or --resume, both then refused."""
    flags = own_files(tmp_path)
    (tmp_path / "notes.txt").write_text("mine\n")
    before = snapshot(tmp_path)
    monkeypatch.chdir(tmp_path)
    code, _, err = cli(["train", *flags, "--output", ".", "--max-steps", "1", *TINY], capsys)
    one_error(code, err, "must be a new or empty folder", "notes.txt", "pick another --output")
    assert "--overwrite" not in err and "--resume" not in err
    assert snapshot(tmp_path) == before


def test_an_earlier_run_is_named_with_both_ways_forward(own_run, tmp_path, capsys):
    run = copy_run(own_run, tmp_path)
    before = snapshot(run)
    code, _, err = cli(["train", *own_files(tmp_path / "d"), "--output", str(run), "--max-steps", "1", *TINY], capsys)
    one_error(code, err, "already holds a mept run", "--overwrite", "--resume")
    assert snapshot(run) == before


# --- compare -------------------------------------------------------------------------------------

def compare_args(folder: Path, out: Path, *extra: str) -> list[str]:
    """A cheap comparison: the probe only, one seed, its default lr, a 4-row validation file."""
    train = csv_file(folder / "train.csv", GOOD)
    val = csv_file(folder / "val.csv", GOOD[:4])
    test = csv_file(folder / "test.csv", GOOD[::-1])
    return ["compare", "--train-file", str(train), "--val-file", str(val), "--test-file", str(test),
            "--methods", "probe", "--seeds", "1", "--no-lr-grid", "--max-steps", "1", "--batch-size", "4",
            "--max-length", "32", "--output", str(out), *extra]


def test_compare_never_replaces_an_earlier_comparison_unasked(tmp_path, capsys):
    out = tmp_path / "c"
    code, printed, err = cli(compare_args(tmp_path, out, "--no-progress"), capsys)
    assert code == 0, err
    assert "| probe |" in printed and not any(line.startswith("compare:") for line in err.splitlines())
    warned(err, "validation set has only 4")  # the data's own warning, shown beside the table, not only in the log
    assert json.loads((out / "compare.json").read_text())["rows"][0]["method"] == "probe"
    before = snapshot(out)
    code, _, err = cli(compare_args(tmp_path, out), capsys)  # the issue: this replaced everything, exit 0
    one_error(code, err, "already holds a mept comparison", "--overwrite")
    assert snapshot(out) == before
    (out / "compare.json").write_text('{"title": "old", "rows": []}')  # to see it replaced
    code, _, err = cli(compare_args(tmp_path, out, "--overwrite"), capsys)
    assert code == 0, err
    assert json.loads((out / "compare.json").read_text())["rows"][0]["method"] == "probe"
    assert not (tmp_path / ".c.replaced").exists() and not (tmp_path / ".c.lock").exists()


@pytest.mark.parametrize("setup, needle", [
    # the issue: the user's own probe.log was emptied before the run was refused
    (lambda out: (out / "probe.log").write_text("my notes about the probe\n"), "probe.log"),
    # compare --output into a single run folder mixed files into it
    (lambda out: (out / "run_config.json").write_text("{}\n"), "run_config.json"),
])
def test_compare_refuses_a_folder_it_did_not_write_before_opening_anything(tmp_path, capsys, setup, needle):
    out = tmp_path / "c"
    out.mkdir()
    setup(out)
    before = snapshot(out)
    for extra in ([], ["--overwrite"]):
        code, _, err = cli(compare_args(tmp_path, out, *extra), capsys)
        one_error(code, err, "a mept comparison", needle)
        assert snapshot(out) == before


@pytest.mark.parametrize("extra, needle", [
    (["--seeds", "-1"], "seeds must be a number >= 0"),
    (["--seeds", "1", "1"], "seeds names 1 more than once"),
    (["--max-steps", "0"], "max_steps must be"),
    (["--task-name", "../x"], "cannot be part of a file name"),
])
def test_compare_checks_every_setting_before_it_creates_anything(tmp_path, capsys, extra, needle):
    out = tmp_path / "new" / "c"
    code, _, err = cli(compare_args(tmp_path, out, *extra), capsys)
    one_error(code, err, needle)
    assert not (tmp_path / "new").exists()


def test_sigterm_to_compare_reaches_the_running_method_which_unwinds_and_compare_says_what_exists(tmp_path):
    """The issue: SIGTERM said "nothing was changed" after runs were written, and the child was SIGKILLed
    (a stale lock). Now the child gets the signal, unwinds (its lock released), and compare lists what exists."""
    out = tmp_path / "c"
    args = compare_args(tmp_path, out, "--methods", "full", "--max-steps", "400")  # probe and full; 400 steps wins
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "mept.cli", *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    log = out / "probe.log"
    deadline = time.time() + 240
    while time.time() < deadline and "step " not in (log.read_text() if log.exists() else ""):
        time.sleep(0.5)
    assert log.exists() and proc.poll() is None, proc.communicate()
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=240)
    assert proc.returncode == 143, err
    last = [line for line in err.splitlines() if line.strip()][-1]
    assert last.startswith("terminated (SIGTERM); no method finished; stopped: probe"), err
    assert "not started: full" in last and "no table was written" in last
    assert "terminated (SIGTERM)" in log.read_text()  # the child got the signal and unwound, not SIGKILL
    assert not (out / ".probe.lock").exists() and not (tmp_path / ".c.lock").exists()


# --- analyze -------------------------------------------------------------------------------------

ANALYZE = ["--no-baseline", "--max-per-task", "6"]


def test_analyze_never_writes_into_a_folder_of_user_files(own_run, tmp_path, capsys):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "task_similarity.json").write_text('{"mine": true}\n')  # the issue: this was overwritten
    before = snapshot(out)
    for extra in ([], ["--overwrite"]):
        code, _, err = cli(["analyze", str(own_run), "--out", str(out), *ANALYZE, *extra], capsys)
        one_error(code, err, "a mept analysis", "task_similarity.json")
        assert snapshot(out) == before


def test_analyze_replaces_its_own_analysis_only_when_asked(own_run, tmp_path, capsys):
    run = copy_run(own_run, tmp_path)
    assert cli(["analyze", str(run), *ANALYZE], capsys)[0] == 0
    assert json.loads((run / "analysis" / "analysis.json").read_text())["complete"] is True
    before = snapshot(run / "analysis")
    code, _, err = cli(["analyze", str(run), *ANALYZE], capsys)
    one_error(code, err, "already holds a mept analysis", "--overwrite")
    assert snapshot(run / "analysis") == before
    assert cli(["analyze", str(run), *ANALYZE, "--overwrite"], capsys)[0] == 0
    # an analysis written before the marker existed (a run's own analysis/ folder, our files only) is ours too
    (run / "analysis" / "analysis.json").unlink()
    assert cli(["analyze", str(run), *ANALYZE, "--overwrite"], capsys)[0] == 0
    assert not (run / ".analysis.lock").exists() and not (run / ".analysis.replaced").exists()


# --- predict -------------------------------------------------------------------------------------

def test_predict_replaces_only_a_predictions_file_and_only_when_asked(own_run, tmp_path, capsys):
    new = csv_file(tmp_path / "new.csv", GOOD[:3])
    mine = csv_file(tmp_path / "mine.csv", [("keep", "me")])
    before = mine.read_bytes()
    for extra in ([], ["--overwrite"]):
        code, _, err = cli(["predict", str(own_run), "--file", str(new), "--output", str(mine), *extra], capsys)
        one_error(code, err, "is not a mept predictions file")
        assert mine.read_bytes() == before
    out = tmp_path / "p.csv"
    assert cli(["predict", str(own_run), "--file", str(new), "--output", str(out)], capsys)[0] == 0
    code, _, err = cli(["predict", str(own_run), "--file", str(new), "--output", str(out)], capsys)
    one_error(code, err, "already holds a mept predictions file", "--overwrite")
    assert cli(["predict", str(own_run), "--file", str(new), "--output", str(out), "--overwrite"], capsys)[0] == 0


def test_predict_never_writes_over_the_runs_own_data(own_run, tmp_path, capsys):
    config = json.loads((own_run / "run_config.json").read_text())
    test_file = Path(config["test_file"])
    before = test_file.read_bytes()
    new = csv_file(tmp_path / "new.csv", GOOD[:3])
    code, _, err = cli(["predict", str(own_run), "--file", str(new), "--output", str(test_file),
                        "--overwrite"], capsys)
    one_error(code, err, "is the run's test file")
    assert test_file.read_bytes() == before


def test_a_path_typed_with_a_tilde_is_in_the_home_folder_for_outputs_too(own_run, tmp_path, capsys, monkeypatch):
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(tmp_path)
    csv_file(home / "new.csv", GOOD[:3])
    assert cli(["predict", str(own_run), "--file", "~/new.csv", "--output", "~/preds/p.csv"], capsys)[0] == 0
    assert (home / "preds" / "p.csv").is_file() and not (tmp_path / "~").exists()


# --- eval: its result files, inside the run ------------------------------------------------------

def test_eval_never_writes_through_a_link_planted_in_a_shared_run(own_run, tmp_path, capsys):
    """A member of the family the issue does not list: ``eval_validation_TASK.json`` as a symbolic link to
    a file of the user's would have been written through."""
    run = copy_run(own_run, tmp_path)
    target = tmp_path / "bashrc"
    target.write_text("export PATH=...\n")
    (run / "eval_validation_reviews.json").symlink_to(target)
    code, _, err = cli(["eval", str(run)], capsys)
    assert code == 2 and "is a symbolic link" in err, err
    assert target.read_text() == "export PATH=...\n"


def test_eval_of_a_read_only_run_keeps_the_scores_and_says_they_were_not_saved(own_run, tmp_path, capsys):
    if os.geteuid() == 0:
        pytest.skip("root writes into read-only folders")
    run = copy_run(own_run, tmp_path)
    run.chmod(0o555)
    try:
        code, out, err = cli(["eval", str(run)], capsys)
    finally:
        run.chmod(0o755)
    assert code == 0 and "validation scores" in out
    warned(err, "could not write", "not saved")


def test_eval_on_a_read_only_file_system_keeps_the_scores_and_says_they_were_not_saved(own_run, tmp_path, capsys,
                                                                                         monkeypatch):
    import errno

    import mept.harness.eval_run

    def read_only(dest, write):
        raise OSError(errno.EROFS, "Read-only file system", str(dest))

    run = copy_run(own_run, tmp_path)
    monkeypatch.setattr(mept.harness.eval_run, "atomic_write", read_only)
    code, out, err = cli(["eval", str(run)], capsys)
    assert code == 0 and "validation scores" in out
    warned(err, "could not write", "Read-only file system", "not saved")
