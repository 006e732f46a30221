"""``benchmarks/runs_table.py``: runs pair by (task, seed), so one table can pool tasks without pairing the wrong runs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).parent.parent / "benchmarks" / "runs_table.py"


def fake_run(root: Path, name: str, task: str, seed: int, test: float) -> None:
    """A run folder as `mept train` leaves it, reduced to what the table reads."""
    folder = root / name
    folder.mkdir()
    metrics = {"method": "mept", "model": "tiny", "tasks": {task: {}}, "seed": seed, "lr": 1e-2, "average": test,
               "test": {"average": test}, "history": [{"step": 10, "validation": test, "collapsed_layers": 0}],
               "trainable_params": 10, "parameters": {"head": 3}, "timing": {"train_seconds": 1.0}}
    (folder / "metrics.json").write_text(json.dumps(metrics))
    (folder / "run_config.json").write_text(json.dumps({"head": "linear", "epochs": 1}))


def table(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True,
                          cwd=SCRIPT.parent, timeout=120)


def test_pooled_pairs_match_task_and_seed(tmp_path):
    # same seeds on two tasks: pairing on the seed alone would overwrite one task's run with the other's
    for task, base in (("a", 50.0), ("b", 70.0)):
        for seed in (1, 2, 3):
            fake_run(tmp_path, f"{task}-ref-s{seed}", task, seed, base + seed)
            fake_run(tmp_path, f"{task}-new-s{seed}", task, seed, base + seed + (2.0 if task == "a" else 4.0))
    out = table("--variant", f"ref={tmp_path}/*-ref-s*", "--variant", f"new={tmp_path}/*-new-s*",
                "--records", str(tmp_path / "records"))
    assert out.returncode == 0, out.stderr
    new_row = next(line for line in out.stdout.splitlines() if line.startswith("| new |"))
    assert "a 1, a 2, a 3, b 1, b 2, b 3" in new_row
    assert "+3.00" in new_row and "n = 6" in new_row  # the mean of +2 (task a) and +4 (task b) over six pairs
    assert json.loads((tmp_path / "records" / "a-new-s1.json").read_text())["task"] == "a"


def test_a_label_given_twice_gathers_both_globs(tmp_path):
    for task in ("a", "b"):
        fake_run(tmp_path, f"{task}-ref-s1", task, 1, 50.0)
        fake_run(tmp_path, f"{task}-ref-s2", task, 2, 52.0)
    out = table("--variant", f"ref={tmp_path}/a-ref-s*", "--variant", f"ref={tmp_path}/b-ref-s*")
    assert out.returncode == 0, out.stderr
    assert "a 1, a 2, b 1, b 2" in out.stdout


def test_a_glob_catching_two_runs_of_one_task_and_seed_is_refused(tmp_path):
    fake_run(tmp_path, "a-mept-s1", "a", 1, 50.0)
    fake_run(tmp_path, "a-prompt_tuning-mept-s1", "a", 1, 40.0)  # another method's folder the glob also matches
    out = table("--variant", f"ref={tmp_path}/a-*mept-s1")
    assert out.returncode == 1
    assert out.stderr.startswith("error: --variant ref matches two runs of task a seed 1")
    assert "Traceback" not in out.stderr
