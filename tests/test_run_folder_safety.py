"""A run is never lost or overwritten by mistake: ``--overwrite`` replaces only a mept run, validates first and
puts the old run back when it fails or is interrupted; ``--resume`` writes where ``--output`` says and keeps
finished seeds; one writer holds a folder at a time. Every byte of the user's files is checked afterwards."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import GOOD, RTE_BASE, TINY, cli, copy_run, csv_file, one_error, reviews_run_files, snapshot, warned

import mept
from mept.cli import main


def test_resume_writes_where_output_says(rte_run, tmp_path, capsys):
    """A copied run resumed from its new folder continues there; the original is not touched."""
    interrupted = tmp_path / "a"
    args = [*RTE_BASE, "--max-steps", "4", "--save-every", "2"]
    assert main(["train", *args, "--output", str(interrupted)]) == 0
    (interrupted / "metrics.json").unlink()  # as if killed after the step-4 checkpoint's write
    before = {p: p.stat().st_mtime_ns for p in interrupted.rglob("*")}
    moved = tmp_path / "b"
    shutil.copytree(interrupted, moved)
    code, _, err = cli(["train", "--resume", "--output", str(moved), "--no-progress"], capsys)
    assert code == 0, err
    assert (moved / "metrics.json").exists() and not (interrupted / "metrics.json").exists()
    assert {p: p.stat().st_mtime_ns for p in interrupted.rglob("*")} == before
    assert json.loads((moved / "run_config.json").read_text())["output"] == str(moved)


def test_overwrite_validates_first_and_keeps_the_old_run_until_the_new_one_has_something(rte_run, tmp_path, capsys):
    run = copy_run(rte_run, tmp_path)
    before = (run / "metrics.json").read_text()
    code, _, err = cli(["train", *RTE_BASE, "--overwrite", "--lr", "nan", "--output", str(run)], capsys)
    one_error(code, err, "lr must be")
    assert (run / "metrics.json").read_text() == before
    # a new run that fails after the model loaded but before its first checkpoint: the old run comes back
    code, _, err = cli(["train", *RTE_BASE, "--overwrite", "--output", str(run), "--max-length", "600"], capsys)
    assert code == 2 and (run / "metrics.json").read_text() == before
    assert main(["train", *RTE_BASE, "--max-steps", "3", "--overwrite", "--output", str(run)]) == 0
    assert json.loads((run / "metrics.json").read_text())["steps"] == 3
    assert not list(tmp_path.glob(".copy.*"))  # neither the moved-aside run nor the lock is left behind


def test_failed_overwrite_mid_training_restores_the_old_run(rte_run, tmp_path, capsys, monkeypatch):
    import mept.harness.train_loop as loop

    run = copy_run(rte_run, tmp_path)
    before = (run / "metrics.json").read_text()
    monkeypatch.setattr(loop, "task_loss", lambda *a, **k: (_ for _ in ()).throw(mept.MeptError("boom")))
    code, _, err = cli(["train", *RTE_BASE, "--overwrite", "--output", str(run), "--max-steps", "2"], capsys)
    assert code == 2 and "error: boom" in err
    warned(err, "previous run", "was kept")
    assert (run / "metrics.json").read_text() == before


def test_a_second_writer_is_refused_and_a_stale_lock_taken_over(tmp_path, capsys):
    out = tmp_path / "run"
    lock = tmp_path / ".run.lock"
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        import socket

        lock.write_text(json.dumps({"pid": holder.pid, "host": socket.gethostname()}))
        code, _, err = cli(["train", *RTE_BASE, "--max-steps", "1", "--output", str(out)], capsys)
        one_error(code, err, "is in use by another mept run", f"pid {holder.pid}")
        assert not (out / "metrics.json").exists()
    finally:
        holder.kill()
        holder.wait()
    code, _, err = cli(["train", *RTE_BASE, "--max-steps", "1", "--output", str(out)], capsys)  # the holder is gone
    assert code == 0, err
    assert not lock.exists() and (out / "metrics.json").exists()


def test_two_concurrent_trainings_into_one_folder(tmp_path):
    """The second writer is refused while the first runs; the first ends with its own metrics and weights."""
    out = tmp_path / "run"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, "-m", "mept.cli", "train", *RTE_BASE, "--max-steps", "150", "--output", str(out), "--overwrite"]
    first = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while not (tmp_path / ".run.lock").exists() and time.time() < deadline and first.poll() is None:
        time.sleep(0.05)
    second = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    first.wait(timeout=600)
    assert first.returncode == 0, first.stderr[-1000:]
    assert second.returncode == 2 and "in use by another mept run" in second.stderr
    assert json.loads((out / "metrics.json").read_text())["steps"] == 150


def test_resume_of_a_multi_seed_run_keeps_finished_seeds(tmp_path, capsys):
    out = tmp_path / "seeds"
    args = [*RTE_BASE, "--max-steps", "2", "--save-every", "1", "--seeds", "1", "2", "--output", str(out)]
    assert main(["train", *args]) == 0
    reference = json.loads((out / "metrics.json").read_text())
    seed1 = (out / "seed-1" / "metrics.json").stat().st_mtime_ns
    (out / "metrics.json").unlink()  # as if killed while seed 2 was finishing
    (out / "seed-2" / "metrics.json").unlink()
    code, _, err = cli(["train", "--resume", "--output", str(out), "--no-progress"], capsys)
    assert code == 0, err
    assert (out / "seed-1" / "metrics.json").stat().st_mtime_ns == seed1  # read back, not retrained
    resumed = json.loads((out / "metrics.json").read_text())
    assert resumed["average"] == reference["average"] and resumed["seeds"] == [1, 2]


def test_overwrite_refuses_a_folder_that_is_not_a_run_and_keeps_every_byte(tmp_path, capsys):
    data = tmp_path / "D"
    data.mkdir()
    train = csv_file(data / "train.csv", GOOD)
    (data / "notes.txt").write_text("my notes\n")
    before = snapshot(data)
    code, _, err = cli(["train", "--train-file", str(train), "--output", str(data), "--overwrite", *TINY], capsys)
    one_error(code, err, "replaces only a mept run", "notes.txt", "train.csv")
    assert snapshot(data) == before


def test_overwrite_refuses_a_run_folder_holding_the_users_files(reviews_run, tmp_path, capsys):
    run = copy_run(reviews_run, tmp_path)
    (run / "my_notes.md").write_text("keep me\n")
    before = snapshot(run)
    code, _, err = cli(["train", *reviews_run_files(reviews_run), "--output", str(run),
                        "--overwrite", "--max-steps", "1", *TINY], capsys)
    one_error(code, err, "files mept did not write", "my_notes.md")
    assert snapshot(run) == before


def test_overwrite_onto_a_symlinked_run_is_refused_before_training(reviews_run, tmp_path, capsys, monkeypatch):
    import mept.harness.prepare_run

    run = copy_run(reviews_run, tmp_path)
    link = tmp_path / "link"
    link.symlink_to(run)
    before = snapshot(run)
    monkeypatch.setattr(mept.harness.prepare_run, "load_backbone", lambda *a, **k: pytest.fail("model loaded first"))
    code, _, err = cli(["train", *reviews_run_files(reviews_run), "--output", str(link),
                        "--overwrite", *TINY], capsys)
    one_error(code, err, "is a symbolic link")
    assert link.is_symlink() and snapshot(run) == before


def test_sigterm_during_overwrite_puts_the_old_run_back(reviews_run, tmp_path):
    run = copy_run(reviews_run, tmp_path)
    before = snapshot(run)
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "mept.cli", "train", *reviews_run_files(reviews_run),
           "--output", str(run), "--overwrite", "--max-steps", "100000", "--save-every", "100000",
           "--eval-every", "100000", *TINY]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    moved = tmp_path / ".copy.replaced"  # the old run moved aside: the handler is installed, the new run started
    while not (moved.exists() and (run / ".incomplete").exists()) and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    time.sleep(0.5)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err[-1000:]
    assert "terminated (SIGTERM)" in err and "Traceback" not in err
    warned(err, "previous run", "was kept")
    assert snapshot(run) == before
    assert not (tmp_path / ".copy.lock").exists() and not (tmp_path / ".copy.replaced").exists()


def test_sigterm_inside_a_finaliser_is_delivered_again():
    """Python swallows an exception raised in ``__del__``; the SIGTERM must not be lost with it."""
    from mept.harness.signals import Terminated, terminate_as_interrupt

    class Dying:
        def __del__(self):
            os.kill(os.getpid(), signal.SIGTERM)
            sum(range(10_000))  # the handler runs in here, and its exception is swallowed

    with pytest.raises(Terminated), terminate_as_interrupt():
        Dying()
        for _ in range(200):
            time.sleep(0.01)
    import mept.harness.signals

    assert signal.getsignal(signal.SIGTERM) is not mept.harness.signals._terminate  # the handler is put back


def _interrupted_overwrite(reviews_run: Path, tmp_path: Path) -> Path:
    """The state a kill during `--overwrite` before its first checkpoint leaves: old run hidden, new shell."""
    run = copy_run(reviews_run, tmp_path)
    run.rename(tmp_path / ".copy.replaced")
    run.mkdir()
    config = json.loads((tmp_path / ".copy.replaced" / "run_config.json").read_text())
    (run / "run_config.json").write_text(json.dumps({**config, "seed": 7}))
    return run


def test_readers_name_a_run_hidden_by_an_interrupted_overwrite(reviews_run, tmp_path, capsys):
    run = _interrupted_overwrite(reviews_run, tmp_path)
    for command in (["eval", str(run)], ["predict", str(run), "--file", str(reviews_run.parent / "reviews.csv"),
                                         "--output", str(tmp_path / "p.csv")]):
        code, _, err = cli(command, capsys)
        one_error(code, err, ".copy.replaced", "puts it back")


def test_resume_after_an_interrupted_overwrite_continues_the_old_run(reviews_run, tmp_path, capsys):
    run = _interrupted_overwrite(reviews_run, tmp_path)
    code, _, err = cli(["train", "--resume", "--output", str(run), "--no-progress"], capsys)
    assert code == 0, err
    warned(err, "restored the run")
    assert json.loads((run / "run_config.json").read_text())["seed"] != 7
