"""The run-folder tables of ``benchmarks/``: ``runs_table.py`` pairs runs by (task, seed), so one table can pool
tasks without pairing the wrong runs; ``learning_curves.py`` reads each run's curve at equal steps, equal train
time and its best point."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import needs_vader

BENCHMARKS = Path(__file__).parent.parent / "benchmarks"
SCRIPT = BENCHMARKS / "runs_table.py"


def fake_run(root: Path, name: str, task: str, seed: int, test: float,
             curve: list[tuple[int, float, float]] | None = None) -> None:
    """A run folder as `mept train` leaves it, reduced to what the tables read; ``curve``: (step, train s, val)."""
    folder = root / name
    folder.mkdir()
    curve = curve or [(10, 1.0, test)]
    metrics = {"method": "mept", "model": "tiny", "tasks": {task: {}}, "seed": seed, "lr": 1e-2, "average": test,
               "test": {"average": test}, "best_step": curve[-1][0], "trainable_params": 10,
               "history": [{"step": s, "validation": v, "collapsed_layers": 0} for s, _, v in curve],
               "parameters": {"head": 3},
               "timing": {"train_seconds": curve[-1][1], "train_seconds_at_eval": [[s, t] for s, t, _ in curve]}}
    (folder / "metrics.json").write_text(json.dumps(metrics))
    (folder / "run_config.json").write_text(json.dumps({"head": "linear", "epochs": 1}))


def table(*args: str, script: Path = SCRIPT, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Run a benchmark script as a user does, from benchmarks/."""
    return subprocess.run([sys.executable, str(script), *args], capture_output=True, text=True,
                          cwd=BENCHMARKS, timeout=120, env=env)


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
    assert "| -, -, -, -, -, - |" in new_row and "None" not in new_row  # no routing on test: a dash per run
    assert json.loads((tmp_path / "records" / "a-new-s1.json").read_text())["task"] == "a"


def test_a_label_given_twice_gathers_both_globs(tmp_path):
    for task in ("a", "b"):
        fake_run(tmp_path, f"{task}-ref-s1", task, 1, 50.0)
        fake_run(tmp_path, f"{task}-ref-s2", task, 2, 52.0)
    out = table("--variant", f"ref={tmp_path}/a-ref-s*", "--variant", f"ref={tmp_path}/b-ref-s*")
    assert out.returncode == 0, out.stderr
    assert "a 1, a 2, b 1, b 2" in out.stdout


@pytest.mark.parametrize("script", ["runs_table.py", "learning_curves.py"])
def test_a_label_may_hold_an_equals_sign(tmp_path, script):
    # "N_r=1" is a natural label; the glob starts after the "=" whose remainder matches runs
    fake_run(tmp_path, "a-ref-s1", "a", 1, 50.0)
    fake_run(tmp_path, "a-nr1-s1", "a", 1, 55.0)
    out = table("--variant" if script == "runs_table.py" else "--method", f"top-1={tmp_path}/a-ref-s*",
                "--variant" if script == "runs_table.py" else "--method", f"N_r=1={tmp_path}/a-nr1-s*",
                script=BENCHMARKS / script)
    assert out.returncode == 0, out.stderr
    assert "N_r=1" in out.stdout
    bad = table("--variant", f"N_r=1={tmp_path}/nothing-s*")  # nothing matches: the label up to the first "="
    assert bad.returncode == 2 and bad.stderr.startswith("error: --variant N_r: no ")


def test_a_glob_catching_two_runs_of_one_task_and_seed_is_refused(tmp_path):
    fake_run(tmp_path, "a-mept-s1", "a", 1, 50.0)
    fake_run(tmp_path, "a-prompt_tuning-mept-s1", "a", 1, 40.0)  # another method's folder the glob also matches
    out = table("--variant", f"ref={tmp_path}/a-*mept-s1")
    assert out.returncode == 2
    assert out.stderr.startswith("error: --variant ref matches two runs of task a seed 1")
    assert "Traceback" not in out.stderr


def test_learning_curves_at_equal_steps_time_and_best_point(tmp_path):
    # "slow" is better per step but takes 4x the train seconds; "fast" has plateaued, "slow" is still rising
    for seed in (1, 2):
        fake_run(tmp_path, f"fast-s{seed}", "a", seed, 60.0 + seed, [(10, 10.0, 55.0 + seed), (20, 20.0, 60.0 + seed),
                                                                     (30, 30.0, 59.0 + seed)])
        fake_run(tmp_path, f"slow-s{seed}", "a", seed, 64.0 + seed, [(10, 40.0, 58.0 + seed), (20, 80.0, 62.0 + seed),
                                                                     (30, 120.0, 66.0 + seed)])
    png = tmp_path / "curves.png"
    out = table("--method", f"fast={tmp_path}/fast-s*", "--method", f"slow={tmp_path}/slow-s*", "--png", str(png),
                script=BENCHMARKS / "learning_curves.py")
    assert out.returncode == 0, out.stderr
    text = out.stdout
    steps_table = text.split("At equal steps")[1].split("At equal train time")[0]
    assert "| 20 | 61.50 ± 0.71 | 63.50 ± 0.71 |" in steps_table
    time_table = text.split("At equal train time")[1].split("At each method's best point")[0]
    # the budgets are fractions of the fastest whole run (30 s): within 30 s "slow" has not evaluated once
    assert "| 30 | 60.50 ± 0.71 | no evaluation yet |" in time_table
    best_table = text.split("At each method's best point")[1]
    assert "| fast | 1, 2 | 61.50 | 20 | no |" in best_table
    assert "| slow | 1, 2 | 67.50 | 30 | yes: still rising |" in best_table
    assert "+4.00 (p < 0.001, n = 2)" in best_table  # constant differences: p is 0, shown as below 0.001
    assert png.stat().st_size > 10_000


def test_learning_curves_refuse_an_empty_glob(tmp_path):
    out = table("--method", f"mept={tmp_path}/nothing-*", script=BENCHMARKS / "learning_curves.py")
    assert out.returncode == 2 and out.stderr.startswith("error: --method mept: no finished run folder")


def test_train_loss_takes_the_last_fifth_of_the_logged_steps(tmp_path):
    log = tmp_path / "log-run-s1.txt"
    log.write_text("progress 30s: step 10/100  loss 0.9000  4.0 ex/s  ETA 5m\n"
                   "step  80/100  loss 0.7000  validation  60.00  best  60.00 (step 80)\n"  # 80%: not after it
                   "progress 9m: step 90/100  loss 0.5000  4.0 ex/s  ETA 1m\n"
                   "progress 9m: step 90/100  loss 0.3000  4.0 ex/s  ETA 1m  (evaluating)\n"  # the step's last line wins
                   "step 100/100  loss 0.2000  validation  61.00  best  61.00 (step 100)\n")
    (tmp_path / "log-empty-s1.txt").write_text("error: something\n")
    run = subprocess.run([sys.executable, str(BENCHMARKS / "train_loss.py"), "--variant", f"a={tmp_path}/log-run-*",
                          "--variant", f"b={tmp_path}/log-empty-*"], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert "| a | log-run-s1.txt | 0.25 (2) |" in run.stdout
    assert "| b | log-empty-s1.txt | no logged loss |" in run.stdout
    missing = subprocess.run([sys.executable, str(BENCHMARKS / "train_loss.py"), "--variant", f"c={tmp_path}/none*"],
                             capture_output=True, text=True)
    assert missing.returncode == 2 and missing.stderr.startswith("error:") and "Traceback" not in missing.stderr


@pytest.mark.parametrize("script, flag", [("runs_table.py", "--variant"), ("learning_curves.py", "--method"),
                                          ("train_loss.py", "--variant")])
def test_every_table_refuses_a_bad_label_glob_with_one_error_line(tmp_path, script, flag):
    # one rule for every LABEL=GLOB script (benchmarks/variant_globs.py): no label, or a label matching nothing
    fake_run(tmp_path, "a-ref-s1", "a", 1, 50.0)
    (tmp_path / "log-a-s1.txt").write_text("step 10/10  loss 0.5000  validation  50.00  best  50.00 (step 10)\n")
    good = f"ref={tmp_path}/a-ref-s1" if script != "train_loss.py" else f"ref={tmp_path}/log-a-*"
    for bad, says in ((f"{tmp_path}/a-ref-s1", "write LABEL=GLOB"), (f"new={tmp_path}/nothing-*", "new: no ")):
        out = table(flag, good, flag, bad, script=BENCHMARKS / script)
        assert out.returncode == 2, out.stdout
        assert out.stderr.startswith("error: ") and says in out.stderr and out.stderr.count("\n") == 1
        assert "Traceback" not in out.stderr


def test_runs_table_writes_no_record_when_a_later_variant_is_refused(tmp_path):
    fake_run(tmp_path, "a-ref-s1", "a", 1, 50.0)
    (tmp_path / "notes.json").write_text("[1, 2]")  # a JSON file that is not a record
    for bad in (f"new={tmp_path}/nothing-*", f"new={tmp_path}/notes.json"):
        out = table("--variant", f"ref={tmp_path}/a-ref-s1", "--variant", bad, "--records", str(tmp_path / "rec"))
        assert out.returncode == 2 and out.stderr.startswith("error: ") and "Traceback" not in out.stderr
        assert not (tmp_path / "rec").exists()
    fine = table("--variant", f"ref={tmp_path}/a-ref-s1", "--records", str(tmp_path / "rec"))
    assert fine.returncode == 0 and (tmp_path / "rec" / "a-ref-s1.json").exists()


def test_every_benchmark_script_ends_in_the_one_refusal():
    # the rule, not the instance: a script that ends in a bare main() shows a traceback for a MeptError
    scripts = [p for p in BENCHMARKS.glob("*.py") if p.name != "script.py" and '__name__ == "__main__"' in p.read_text()]
    assert len(scripts) > 10
    for path in scripts:
        tail = path.read_text().split('if __name__ == "__main__":')[-1]
        assert "from script import run" in tail and tail.rstrip().endswith("run(main)"), path.name


@pytest.mark.parametrize("script", ["head_input_scale.py", "init_routing.py", "decoder_prompts.py"])
def test_a_csv_without_the_text_column_is_one_error_line(tmp_path, script):
    bad = tmp_path / "rows.csv"
    bad.write_text("sentence,label\nhello,yes\n")
    out = table("--model", "minilm", "--data", str(bad), script=BENCHMARKS / script)
    assert out.returncode == 2 and out.stderr.startswith("error: ") and out.stderr.count("\n") == 1, out.stderr
    # mept's own reader words it (mept.data.jsonl.Row.get): the field, the file and line, the fields found
    assert f"{bad}:2: missing field 'text'" in out.stderr and "sentence, label" in out.stderr


def test_every_script_reads_a_users_csv_through_the_one_check():
    # the rule, not the instance: a script that indexes a row's "text" reads its rows with script.csv_rows
    readers = [p for p in BENCHMARKS.glob("*.py") if '["text"]' in p.read_text() and p.name != "script.py"]
    assert len(readers) >= 5
    for path in readers:
        assert "csv_rows(" in path.read_text() and "csv.DictReader" not in path.read_text(), path.name


def bigbench_csv(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "MEPT_CACHE": str(tmp_path / "cache"),
           "MEPT_BIGBENCH_TAR": str(tmp_path / "no-such.tar.gz")}
    return table(*args, script=BENCHMARKS / "bigbench_csv.py", env=env)


def test_bigbench_csv_refuses_with_one_error_line_and_writes_nothing(tmp_path):
    # a MeptError from deep inside mept.data (here: no tarball) is one error line, exit 2, not a traceback
    out = bigbench_csv(tmp_path, "winowhy", "--out", str(tmp_path / "csv"))
    assert out.returncode == 2 and out.stderr.startswith("error: BIG-bench data not found")
    assert out.stderr.count("\n") == 1 and "Traceback" not in out.stderr
    assert not (tmp_path / "csv").exists()
    bad = bigbench_csv(tmp_path, "winowhy", "--out", str(tmp_path / "csv"), "--sizes", "10", "0", "5")
    assert bad.returncode == 2 and "at least 1 example" in bad.stderr and not (tmp_path / "csv").exists()


def test_bigbench_csv_never_rewrites_csvs_it_did_not_write(tmp_path):
    theirs = tmp_path / "mine"
    theirs.mkdir()
    (theirs / "train.csv").write_text("text,label\nmy own data,yes\n")
    out = bigbench_csv(tmp_path, "winowhy", "--out", str(theirs))
    assert out.returncode == 2 and "already holds train.csv" in out.stderr and "Traceback" not in out.stderr
    assert (theirs / "train.csv").read_text() == "text,label\nmy own data,yes\n"
    (tmp_path / "afile").write_text("x")
    file_out = bigbench_csv(tmp_path, "winowhy", "--out", str(tmp_path / "afile"))
    assert file_out.returncode == 2 and "is a file" in file_out.stderr


def test_pick_chooses_each_task_and_seed_on_validation_never_on_test(tmp_path):
    # an m or lr grid: two candidates per (task, seed); the best validation stands for it, whatever its test
    fake_run(tmp_path, "a-ref-s1", "a", 1, 50.0)
    fake_run(tmp_path, "a-ref-s2", "a", 2, 52.0)
    for name, seed, val, test in (("a-m10-s1", 1, 60.0, 70.0), ("a-m20-s1", 1, 65.0, 55.0),
                                  ("a-m10-s2", 2, 66.0, 61.0), ("a-m20-s2", 2, 64.0, 80.0)):
        fake_run(tmp_path, name, "a", seed, test, curve=[(10, 100.0, val)])
        metrics = json.loads((tmp_path / name / "metrics.json").read_text())
        (tmp_path / name / "metrics.json").write_text(json.dumps({**metrics, "average": val}))
    grid = (f"tuned={tmp_path}/a-m10-s*", "--variant", f"tuned={tmp_path}/a-m20-s*")
    refused = table("--variant", f"ref={tmp_path}/a-ref-s*", "--variant", *grid)
    assert refused.returncode == 2 and "--pick tuned" in refused.stderr
    out = table("--variant", f"ref={tmp_path}/a-ref-s*", "--variant", *grid, "--pick", "tuned",
                "--records", str(tmp_path / "rec"))
    assert out.returncode == 0, out.stderr
    row = next(line for line in out.stdout.splitlines() if line.startswith("| tuned |"))
    assert "| 55.00, 61.00 |" in row and row.rstrip().endswith("| 200 |")  # both candidates' time counted
    assert "a-m20-s1 (65.00), a-m10-s2 (66.00)" in out.stdout
    assert len(list((tmp_path / "rec").glob("a-m*.json"))) == 4  # every candidate's record, not only the picks
    unknown = table("--variant", f"ref={tmp_path}/a-ref-s*", "--pick", "nope")
    assert unknown.returncode == 2 and unknown.stderr.startswith("error: --pick nope")


def test_prompt_movement_measures_each_layers_change_against_its_start(tmp_path):
    import torch
    from safetensors.torch import save_file

    start = torch.randn(3, 2, 4, 8) * torch.tensor([0.1, 1.0, 10.0]).view(3, 1, 1, 1)  # three layers, three scales
    save_file({"method.experts": start}, str(tmp_path / "start.safetensors"))
    save_file({"method.experts": start + 0.05}, str(tmp_path / "trained.safetensors"))  # the same step everywhere
    out = table("--start", str(tmp_path / "start.safetensors"), "--trained", str(tmp_path / "trained.safetensors"),
                script=BENCHMARKS / "prompt_movement.py")
    assert out.returncode == 0, out.stderr
    rows = [line.split() for line in out.stdout.splitlines()[1:]]
    assert [float(r[2]) for r in rows] == [0.05, 0.05, 0.05]
    relative = [float(r[3]) for r in rows]
    assert relative[0] > 5 * relative[1] > 25 * relative[2]  # the same step is a large move only on the small layer
    missing = table("--start", str(tmp_path / "none"), "--trained", str(tmp_path / "trained.safetensors"),
                    script=BENCHMARKS / "prompt_movement.py")
    assert missing.returncode == 2 and missing.stderr.startswith("error: --start: ") and "Traceback" not in missing.stderr


def test_a_failed_child_run_is_one_error_line_with_the_childs_own(tmp_path, monkeypatch, capsys):
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    from script import run_command

    child = [sys.executable, "-c", "import sys; print('progress 1/2'); sys.stderr.write('error: no such task\\n'); "
             "sys.exit(2)"]
    with pytest.raises(SystemExit) as ended:
        run_command(child, capture_output=True, text=True)
    assert ended.value.code == 2
    said = capsys.readouterr().err
    assert said.count("\n") == 1 and said.startswith("error: `") and "exit status 2 (error: no such task)" in said
    assert run_command([sys.executable, "-c", "print('fine')"], capture_output=True).stdout == b"fine\n"


def test_every_script_that_drives_a_run_ends_a_failed_one_through_the_one_function():
    # the rule, not the instance: check=True raised CalledProcessError into run() (an "internal error" line),
    # sys.exit(message) printed a multi-line stderr dump; both are gone, and a new driver gets run_command
    scripts = [p for p in BENCHMARKS.glob("*.py") if p.name != "script.py"]
    assert sum("run_command(" in p.read_text() for p in scripts) >= 4
    for path in scripts:
        text = path.read_text()
        assert "subprocess.run(" not in text and "check=True" not in text and "sys.exit(" not in text, path.name


def test_a_run_without_a_test_split_is_scored_on_validation_and_the_table_says_so(tmp_path):
    # bb-diverse and the other BIG-bench suites have train and validation only: mept train leaves "test": null
    mixture = "bb-intent,bb-shapes,bb-fever"
    for name, seed, val in (("m-ref-s1", 1, 40.0), ("m-ref-s2", 2, 44.0), ("m-new-s1", 1, 50.0), ("m-new-s2", 2, 51.0)):
        fake_run(tmp_path, name, mixture, seed, val)
        metrics = json.loads((tmp_path / name / "metrics.json").read_text())
        metrics["tasks"] = {task: {"score": val} for task in mixture.split(",")}
        metrics["routing"] = {"layers": [], "pathway_cosine": {"bb-intent|bb-shapes": 0.2, "bb-intent|bb-fever": 0.4,
                                                               "bb-shapes|bb-fever": 0.9}}
        (tmp_path / name / "metrics.json").write_text(json.dumps({**metrics, "test": None}))
    out = table("--variant", f"ref={tmp_path}/m-ref-s*", "--variant", f"new={tmp_path}/m-new-s*",
                "--records", str(tmp_path / "rec"))
    assert out.returncode == 0 and "Traceback" not in out.stderr, out.stderr
    row = next(line for line in out.stdout.splitlines() if line.startswith("| new |"))
    assert "| 3-task mixture 1, 3-task mixture 2 | 50.00, 51.00 |" in row and "+8.50" in row
    assert "No test split (bb-intent, bb-shapes, bb-fever)" in out.stdout
    record = json.loads((tmp_path / "rec" / "m-new-s1.json").read_text())
    assert record["scored_on"] == "validation (no test split)" and set(record["per_task"]) == set(mixture.split(","))
    assert record["mean_pathway_cosine"] == 0.5  # how alike the tasks' routes are, over the three pairs


def test_bigbench_csv_more_train_keeps_validation_and_test(tmp_path):
    # --more-train adds examples from beyond the test split: a run with more data scores on the same examples
    from mept.data.bigbench import tarball_path

    if not tarball_path().exists():
        pytest.skip(f"BIG-bench tarball not at {tarball_path()}")
    base, more = tmp_path / "base", tmp_path / "more"
    for out, extra in ((base, []), (more, ["--more-train", "15"])):
        done = table("winowhy", "--out", str(out), "--sizes", "20", "10", "10", *extra,
                     script=BENCHMARKS / "bigbench_csv.py")
        assert done.returncode == 0, done.stderr
    for split in ("val", "test"):
        assert (base / f"{split}.csv").read_text() == (more / f"{split}.csv").read_text()
    base_rows = (base / "train.csv").read_text().splitlines()
    more_rows = (more / "train.csv").read_text().splitlines()
    assert len(base_rows) == 21 and len(more_rows) == 36 and more_rows[:21] == base_rows
    assert not set(more_rows[21:]) & set((base / "test.csv").read_text().splitlines()[1:])
    bad = table("winowhy", "--out", str(tmp_path / "bad"), "--more-train", "-1", script=BENCHMARKS / "bigbench_csv.py")
    assert bad.returncode == 2 and "--more-train -1" in bad.stderr and not (tmp_path / "bad").exists()


@needs_vader
def test_head_input_probe_fits_a_probe_per_variant_on_the_heads_own_rows():
    # real MiniLM, real vader sentences; head_inputs checks that the captured rows give the model's own logits
    out = table("--model", "minilm", "--tasks", "vader-movies", "--train-per-task", "16", "--eval-per-task", "8",
                "--variants", "bare,mept", script=BENCHMARKS / "head_input_probe.py")
    assert out.returncode == 0, out.stderr
    rows = [line.split("|") for line in out.stdout.splitlines() if line.startswith(("| bare ", "| mept "))]
    assert [r[1].strip() for r in rows] == ["bare", "mept"]
    for r in rows:
        assert 0 <= float(r[2]) <= 100 and 0 <= float(r[3]) <= 100  # validation and test accuracy, in %
    assert rows[0][4].strip() == "-" and "p = " in rows[1][5]  # mept paired against bare on the same test examples


@pytest.mark.parametrize("args", [("--variants", "bare,nosuch"), ("--train-per-task", "0"), ("--tasks", "nosuch"),
                                  ("--tasks", "fashion-mnist")])  # images, not text: refused, not an internal error
def test_head_input_probe_refuses_bad_flags_with_one_error_line(args):
    out = table("--model", "minilm", *args, script=BENCHMARKS / "head_input_probe.py")
    assert out.returncode == 2 and out.stderr.startswith("error: ") and out.stderr.count("\n") == 1, out.stderr
