"""Progress in a log file: with stderr redirected, a plain line at a fixed interval, never a silent stretch."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mept.errors import MeptError
from mept.harness.progress import Progress, duration, interval_seconds, progress_lines

FIXTURES = Path(__file__).parent / "fixtures" / "reviews"
STAMP = re.compile(r"^progress (?:(\d+)h)?(?:(\d+)m)?(\d+)s: ")


def _seconds(line: str) -> int:
    h, m, s = STAMP.match(line).groups()
    return int(h or 0) * 3600 + int(m or 0) * 60 + int(s)


def test_redirected_training_writes_a_progress_line_every_interval(tmp_path):
    """The acceptance of issue 24 (a line per 30 s of a 3-minute run) at a 1-second interval."""
    log = tmp_path / "stderr.log"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), "MEPT_PROGRESS_SECONDS": "1"}
    started = time.monotonic()
    with open(log, "w") as err:
        done = subprocess.run([sys.executable, "-m", "mept.cli", "train", "--train-file", str(FIXTURES / "train.csv"),
                               "--max-steps", "40", "--eval-every", "20", "--batch-size", "8", "--max-length", "64",
                               "--experts", "2", "--prompt-length", "4", "--output", str(tmp_path / "run")],
                              stdout=subprocess.DEVNULL, stderr=err, env=env, timeout=600)
    elapsed = time.monotonic() - started
    assert done.returncode == 0
    lines = [line for line in log.read_text().splitlines() if line.startswith("progress ")]
    stamps = [_seconds(line) for line in lines]
    assert len(lines) >= 3 and stamps == sorted(stamps)
    # a line per interval from the start of training to its end (stamps are whole seconds; a loaded
    # machine may wake the writer late, never skip it)
    assert max(b - a for a, b in zip(stamps, stamps[1:])) <= 4
    assert stamps[-1] <= elapsed
    steps = [line for line in lines if " step " in line]
    assert steps and re.search(r"step \d+/40  loss \d\.\d{4}  \d+\.\d ex/s  ETA \d", steps[-1])


def test_no_lines_with_no_progress_and_a_bad_interval_is_one_error(tmp_path, monkeypatch):
    monkeypatch.setenv("MEPT_PROGRESS_SECONDS", "0")
    with pytest.raises(MeptError, match="MEPT_PROGRESS_SECONDS must be a number of seconds > 0, got '0'"):
        interval_seconds()
    monkeypatch.setenv("MEPT_PROGRESS_SECONDS", "")
    assert interval_seconds() == 30.0
    out = io.StringIO()
    with progress_lines(enabled=False, stream=out, interval=0.01) as progress:
        progress.begin(10, 0)
        time.sleep(0.1)
    assert out.getvalue() == ""


def test_line_says_step_speed_eta_and_what_a_long_pause_is():
    p = Progress(started=0.0)
    assert p.line(now=5.0) == "progress 5s: preparing"
    p.begin(total=100, step=20)  # a resumed run: the ETA counts this session's steps
    p.begun = 10.0
    p.update(step=30, loss=0.5, examples_per_second=12.34)
    p.phase = "evaluating"
    assert p.line(now=40.0) == "progress 40s: step 30/100  loss 0.5000  12.3 ex/s  ETA 3m30s  (evaluating)"
    assert duration(3725) == "1h02m05s"
