"""The reliability battery: what a careful or hostile user feeds the CLI and the API.

Each class of bad input must end in exit status 2 with one ``error:`` line and nothing
written; each doubtful one runs with a ``warning:`` line; no run is ever lost. Runs are
tiny (MiniLM, the RTE fixture, a few steps); a trained run is shared by the checkpoint
tests and copied before a test damages it.
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import cli, copy_run, csv_file, one_error, warned

import mept
from mept.cli import join_negative_numbers, main

FIXTURES = Path(__file__).parent / "fixtures"
RTE = ["--task", "rte", "--source", "jsonl", "--data-dir", str(FIXTURES / "superglue")]
TINY = ["--batch-size", "2", "--max-length", "64", "--no-progress", "--experts", "2", "--prompt-length", "4"]
BASE = [*RTE, *TINY]


GOOD = [("a great film", "pos"), ("a dull film", "neg"), ("loved it", "pos"), ("hated it", "neg")] * 3


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("battery") / "run"
    assert main(["train", *BASE, "--max-steps", "2", "--output", str(out)]) == 0
    return out


# --- settings: refused before anything is loaded or written -------------------------------------

@pytest.mark.parametrize("args, needle", [
    (["--method", "adapters"], "unknown method 'adapters'"),
    (["--task", "nosuchtask"], "unknown task 'nosuchtask'"),
    (["--model", "/no/such/model"], "model path /no/such/model does not exist"),
    (["--max-length", "600"], "exceeds minilm's 512 positions"),
    (["--format", "pixels"], "format must be one of"),
    (["--set", "routing=top3"], "MEPTConfig.routing must be one of"),
    (["--set", "experts_count=3"], "unknown mept setting"),
    (["--max-steps", "-5"], "max_steps must be a number >= 1"),
    (["--max-steps", "0"], "max_steps must be a number >= 1"),
    (["--eval-every", "0"], "eval_every must be a number >= 1"),
    (["--epochs", "nan"], "epochs must be"),
    (["--weight-decay", "nan"], "weight_decay must be"),
    (["--max-train-examples", "0"], "max_train_examples must be"),
    (["--seed", "-1"], "seed must be"),
    (["--lr", "-1e-2"], "lr must be a number > 0"),
    (["--lr", "0"], "lr must be a number > 0"),
    (["--warmup-ratio", "2"], "warmup_ratio must be a number >= 0 and <= 1"),
    (["--set", "router_dropout=6"], "router_dropout must be in [0, 1)"),
    (["--set", "routing=topk", "top_k=5"], "top_k (5) exceeds the 2 router experts"),
    (["--mixed-precision", "fp16"], "fp16 needs a CUDA GPU"),
])
def test_bad_settings_are_one_line_and_write_nothing(tmp_path, capsys, args, needle):
    out = tmp_path / "run"
    code, _, err = cli(["train", *BASE, "--output", str(out), *args], capsys)
    one_error(code, err, needle)
    assert not out.exists()


def test_negative_numbers_reach_validation_not_argparse():
    assert join_negative_numbers(["--lr", "-1e-2", "--seed", "-1", "--set", "a=1"]) == ["--lr=-1e-2", "--seed=-1", "--set", "a=1"]
    assert join_negative_numbers(["--tasks", "-x"]) == ["--tasks", "-x"]  # not a number: argparse says what it is


def test_output_that_is_a_file_is_refused_before_the_model_loads(tmp_path, capsys, monkeypatch):
    import mept.harness.prepare_run

    monkeypatch.setattr(mept.harness.prepare_run, "load_backbone", lambda *a, **k: pytest.fail("model loaded first"))
    target = tmp_path / "file"
    target.write_text("x")
    code, _, err = cli(["train", *BASE, "--output", str(target)], capsys)
    one_error(code, err, "is a file, not a folder")
    code, _, err = cli(["train", *BASE, "--output", str(target / "sub")], capsys)
    one_error(code, err, "which is a file")


# --- data files: tracebacks before, one line now --------------------------------------------------

@pytest.mark.parametrize("kind, needle", [
    ("latin1", "is not UTF-8 text"),
    ("binary", "is not UTF-8 text"),
    ("gzip", "is gzip-compressed"),
])
def test_unreadable_training_files(tmp_path, capsys, kind, needle):
    path = tmp_path / "train.csv"
    if kind == "latin1":
        path.write_bytes("text,label\ntrès bien,pos\nmauvais,neg\n".encode("latin-1"))
    elif kind == "binary":
        path.write_bytes(bytes(range(256)) * 4)
    else:
        path.write_bytes(gzip.compress(b"text,label\nhi,a\nbye,b\n"))
    code, _, err = cli(["train", "--train-file", str(path), "--output", str(tmp_path / "o"), *TINY], capsys)
    one_error(code, err, needle)
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("rows, needle", [
    ([("a", "pos"), ("b", "pos"), ("c", "pos")] * 2, "every training row has the label 'pos'"),
    ([("a", "pos"), ("b", ""), ("c", "neg")] * 2, "empty label in field 'label'"),
    ([("", "pos"), ("", "neg")] * 3, "field 'text' is empty in every row"),
])
def test_meaningless_training_data_is_refused(tmp_path, capsys, rows, needle):
    path = csv_file(tmp_path / "train.csv", rows)
    code, _, err = cli(["train", "--train-file", str(path), "--output", str(tmp_path / "o"), *TINY], capsys)
    one_error(code, err, needle)


def test_doubtful_data_is_warned_about_and_runs(tmp_path, capsys):
    train = csv_file(tmp_path / "train.csv", [*GOOD, ("", "neg")])
    val = csv_file(tmp_path / "val.csv", [("fine", "pos"), ("meh", "neutral"), ("bad", "neg")])
    code, _, err = cli(["train", "--train-file", str(train), "--val-file", str(val), "--max-steps", "1",
                        "--output", str(tmp_path / "o"), *TINY], capsys)
    assert code == 0, err
    warned(err, "'neutral'", "never occur in the training data")
    warned(err, "1 row(s) have an empty 'text' field")


def test_bom_and_semicolon_csv_files_are_read(tmp_path, capsys):
    bom = tmp_path / "bom.csv"
    bom.write_bytes(b"\xef\xbb\xbf" + csv_file(tmp_path / "plain.csv", GOOD).read_bytes())
    semi = tmp_path / "semi.csv"
    semi.write_text("text;label\n" + "\n".join(f"{t};{lab}" for t, lab in GOOD) + "\n")
    for path in (bom, semi):
        code, _, err = cli(["train", "--train-file", str(path), "--max-steps", "1", "--output", str(tmp_path / path.stem),
                            *TINY], capsys)
        assert code == 0, err
        assert json.loads((tmp_path / path.stem / "labels.json").read_text())["tasks"][path.stem]["verbalizer"] == ["neg", "pos"]


def test_missing_field_lists_the_columns_found(tmp_path, capsys):
    path = csv_file(tmp_path / "train.csv", GOOD, header="sentence,label")
    code, _, err = cli(["train", "--train-file", str(path), "--output", str(tmp_path / "o"), *TINY], capsys)
    one_error(code, err, "missing field 'text'", "fields found: sentence, label")


def test_config_file_yaml_strings_and_a_single_task_are_accepted(tmp_path):
    from mept.harness.train_config import TrainConfig

    cfg = tmp_path / "run.yaml"
    cfg.write_text("tasks: bb-rte\nlr: 1e-2\nepochs: 2\nseeds: [1, 2]\n")
    loaded = TrainConfig.from_file(cfg)
    assert loaded.tasks == ["bb-rte"] and loaded.lr == 0.01 and loaded.seeds == [1, 2]
    cfg.write_bytes(b"\xff\xfe lr: 1")
    with pytest.raises(mept.MeptError, match="not UTF-8"):
        TrainConfig.from_file(cfg)


def test_unknown_hub_model_fails_fast_offline(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    started = time.perf_counter()
    code, _, err = cli(["train", *BASE, "--model", "someone/no-such-model-xyz", "--output", str(tmp_path / "o")], capsys)
    one_error(code, err, "someone/no-such-model-xyz", "offline alias")
    assert time.perf_counter() - started < 10


# --- checkpoints: damaged, edited, foreign ----------------------------------------------------

def _damage(run: Path, how: str) -> None:
    weights = run / "best" / "adapter_model.safetensors"
    if how == "truncated":
        weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    elif how == "empty":
        weights.write_bytes(b"")
    elif how == "run_config":
        (run / "run_config.json").write_text('{"method": "mept", ')
    elif how == "shapes":
        from safetensors.torch import load_file, save_file

        state = load_file(str(weights))
        key = next(k for k in state if "router" in k and "weight" in k)
        state[key] = state[key][:1]
        save_file(state, str(weights))
    elif how == "no_head":  # a head tensor gone: the head would stay randomly initialised
        from safetensors.torch import load_file, save_file

        state = load_file(str(weights))
        del state[next(k for k in state if k.startswith("head.") and k.endswith("weight"))]
        save_file(state, str(weights))
    elif how == "nan":
        from safetensors.torch import load_file, save_file

        state = {k: v * float("nan") if v.is_floating_point() else v for k, v in load_file(str(weights)).items()}
        save_file(state, str(weights))
    elif how == "edited_config":
        cfg = json.loads((run / "best" / "adapter_config.json").read_text())
        cfg["config"]["prompt_length"] = 8
        (run / "best" / "adapter_config.json").write_text(json.dumps(cfg))


@pytest.mark.parametrize("how, needle", [
    ("truncated", "is not a readable safetensors file"),
    ("empty", "is not a readable safetensors file"),
    ("run_config", "is not readable JSON"),
    ("shapes", "in the file, but this model expects"),
    ("no_head", "missing 1 tensor(s), e.g. head.classifier.weight"),
    ("nan", "NaN or infinite values"),
    ("edited_config", "prompt_length (checkpoint 8, run 4)"),
])
@pytest.mark.parametrize("command", ["eval", "analyze"])
def test_damaged_checkpoints_are_one_line(trained, tmp_path, capsys, how, needle, command):
    run = copy_run(trained, tmp_path)
    _damage(run, how)
    extra = ["--no-baseline", "--max-per-task", "4"] if command == "analyze" else []
    code, _, err = cli([command, str(run), *extra], capsys)
    one_error(code, err, needle)
    assert not (run / "analysis").exists()


@pytest.mark.parametrize("how, needle", [("truncated", "is not a readable safetensors file"),
                                         ("shapes", "in the file, but this model expects"),
                                         ("no_head", "missing 1 tensor(s), e.g. head.classifier.weight")])
def test_api_load_of_a_damaged_adapter_is_a_mept_error_with_detail(trained, tmp_path, how, needle):
    from mept.model.backbones import load_backbone

    run = copy_run(trained, tmp_path)
    _damage(run, how)
    with pytest.raises(mept.MeptError, match="tensor method|readable safetensors|missing") as info:
        mept.load(load_backbone("minilm", "cls", num_labels=2).model, run / "best")
    assert needle in str(info.value)


def test_analyze_out_that_is_a_file(trained, tmp_path, capsys):
    target = tmp_path / "out.txt"
    target.write_text("x")
    code, _, err = cli(["analyze", str(trained), "--out", str(target)], capsys)
    one_error(code, err, "--out", "is a file")


def test_eval_of_an_unfinished_run_warns(trained, tmp_path, capsys):
    run = copy_run(trained, tmp_path)
    (run / ".incomplete").write_text("training in progress\n")
    code, _, err = cli(["eval", str(run)], capsys)
    assert code == 0
    warned(err, "unfinished run")


def test_eval_of_a_multi_seed_run_scores_every_seed(tmp_path, capsys):
    out = tmp_path / "seeds"
    assert main(["train", *BASE, "--max-steps", "1", "--seeds", "1", "2", "--output", str(out)]) == 0
    code, printed, err = cli(["eval", str(out)], capsys)
    assert code == 0, err
    for seed in (1, 2):
        assert json.loads((out / f"seed-{seed}" / "eval_validation_rte.json").read_text())["seed"] == seed
    summary = json.loads((out / "eval_validation_rte.json").read_text())
    assert [s["seed"] for s in summary["seeds"]] == [1, 2] and "mean over 2 seeds" in printed


# --- runs are never lost, never mixed -------------------------------------------------------------

def test_resume_writes_where_output_says(trained, tmp_path, capsys):
    """A copied run resumed from its new folder continues there; the original is not touched."""
    interrupted = tmp_path / "a"
    args = [*BASE, "--max-steps", "4", "--save-every", "2"]
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


def test_overwrite_validates_first_and_keeps_the_old_run_until_the_new_one_has_something(trained, tmp_path, capsys):
    run = copy_run(trained, tmp_path)
    before = (run / "metrics.json").read_text()
    code, _, err = cli(["train", *BASE, "--overwrite", "--lr", "nan", "--output", str(run)], capsys)
    one_error(code, err, "lr must be")
    assert (run / "metrics.json").read_text() == before
    # a new run that fails after the model loaded but before its first checkpoint: the old run comes back
    code, _, err = cli(["train", *BASE, "--overwrite", "--output", str(run), "--max-length", "600"], capsys)
    assert code == 2 and (run / "metrics.json").read_text() == before
    assert main(["train", *BASE, "--max-steps", "3", "--overwrite", "--output", str(run)]) == 0
    assert json.loads((run / "metrics.json").read_text())["steps"] == 3
    assert not list(tmp_path.glob(".copy.*"))  # neither the moved-aside run nor the lock is left behind


def test_failed_overwrite_mid_training_restores_the_old_run(trained, tmp_path, capsys, monkeypatch):
    import mept.harness.train_loop as loop

    run = copy_run(trained, tmp_path)
    before = (run / "metrics.json").read_text()
    monkeypatch.setattr(loop, "task_loss", lambda *a, **k: (_ for _ in ()).throw(mept.MeptError("boom")))
    code, _, err = cli(["train", *BASE, "--overwrite", "--output", str(run), "--max-steps", "2"], capsys)
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
        code, _, err = cli(["train", *BASE, "--max-steps", "1", "--output", str(out)], capsys)
        one_error(code, err, "is in use by another mept run", f"pid {holder.pid}")
        assert not (out / "metrics.json").exists()
    finally:
        holder.kill()
        holder.wait()
    code, _, err = cli(["train", *BASE, "--max-steps", "1", "--output", str(out)], capsys)  # the holder is gone
    assert code == 0, err
    assert not lock.exists() and (out / "metrics.json").exists()


def test_two_concurrent_trainings_into_one_folder(tmp_path):
    """The second writer is refused while the first runs; the first ends with its own metrics and weights."""
    out = tmp_path / "run"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, "-m", "mept.cli", "train", *BASE, "--max-steps", "150", "--output", str(out), "--overwrite"]
    first = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while not (tmp_path / ".run.lock").exists() and time.time() < deadline and first.poll() is None:
        time.sleep(0.05)
    second = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    first.wait(timeout=600)
    assert first.returncode == 0, first.stderr[-1000:]
    assert second.returncode == 2 and "in use by another mept run" in second.stderr
    assert json.loads((out / "metrics.json").read_text())["steps"] == 150


def test_os_errors_and_our_own_bugs_are_one_line(tmp_path, capsys, monkeypatch):
    import mept.cli

    def disk_full(args):
        raise OSError(28, "No space left on device", str(tmp_path / "run" / "metrics.json"))

    monkeypatch.setattr(mept.cli, "cmd_train", disk_full)
    code, _, err = cli(["train"], capsys)
    one_error(code, err, "No space left on device", "metrics.json")
    monkeypatch.setattr(mept.cli, "cmd_train", lambda args: {}["missing"])
    code, _, err = cli(["train"], capsys)
    assert code == 1 and err.startswith("error: internal error (KeyError") and err.count("\n") == 1
    monkeypatch.setenv("MEPT_DEBUG", "1")
    with pytest.raises(KeyError):
        main(["train"])


def test_resume_of_a_multi_seed_run_keeps_finished_seeds(tmp_path, capsys):
    out = tmp_path / "seeds"
    args = [*BASE, "--max-steps", "2", "--save-every", "1", "--seeds", "1", "2", "--output", str(out)]
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
