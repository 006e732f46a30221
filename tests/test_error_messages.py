"""Errors that name the real cause (issue 34): one ``error:`` line saying what is wrong and a fix that works.

Each case below used to crash (an internal error), or name something else: model files "damaged"
when the format did not fit, a head-pooling error for another backbone, ``adapter_config.json`` for an
edited ``mept_config.json``, a flag for a value inside ``run_config.json``, "lower the --lr" for a
zero temperature, "interrupted" for a run being trained right now.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import socket

import pytest
from conftest import GOOD, TINY, cli, copy_run, csv_file, jsonl_file, one_error, own_files
from safetensors.torch import load_file, save_file

from mept.cli import main


def own(tmp_path, *extra: str) -> list[str]:
    return ["train", *own_files(tmp_path / "data"), "--max-steps", "1", "--output", str(tmp_path / "run"),
            *TINY, *extra]


# --- settings: the real cause, before anything is loaded or written --------------------------------

@pytest.mark.parametrize("extra, needles", [
    (["--format", "seq2seq"], ["--format seq2seq does not fit minilm", "it supports cls"]),
    (["--format", "causal_lm"], ["--format causal_lm does not fit minilm", "it supports cls"]),
    (["--set", "routing=gumbel", "gumbel_tau=0"], ["MEPTConfig.gumbel_tau must be a finite number > 0"]),
    (["--set", "router_temperature=1e999"], ["MEPTConfig.router_temperature must be a finite number > 0, got inf"]),
    (["--set", "init=previous_knowledge", "init_from=REVIEWS"], ["is not a mept adapter", "not a safetensors file"]),
])
def test_a_bad_setting_names_its_real_cause(tmp_path, capsys, extra, needles):
    # init_from: a text file (the training CSV), not an adapter
    extra = [f"init_from={tmp_path / 'data' / 'reviews.csv'}" if a == "init_from=REVIEWS" else a for a in extra]
    code, _, err = cli(own(tmp_path, *extra), capsys)
    one_error(code, err, *needles)
    assert "damaged" not in err and "--lr" not in err and "internal error" not in err
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("text, needle", [
    ("lr: 0.01\nmax_steps: 1\nlr: 0.1\n", "key 'lr' appears twice (lines 1 and 3)"),
    ('{"lr": 0.01, "lr": 0.1}', "key 'lr' appears twice"),  # JSON: the same family, not in the issue
])
def test_a_config_file_giving_a_setting_twice_is_refused(tmp_path, capsys, text, needle):
    config = tmp_path / ("c.yaml" if text.startswith("lr") else "c.json")
    config.write_text(text)
    code, _, err = cli(["train", "--config", str(config), "--output", str(tmp_path / "run")], capsys)
    one_error(code, err, str(config), needle)


def test_yaml_merge_keys_still_work():
    import yaml

    from mept.harness.train_config import UniqueKeyLoader

    text = "defaults: &d {lr: 0.01, epochs: 2}\nrun:\n  <<: *d\n  lr: 0.02\n"
    assert yaml.load(text, Loader=UniqueKeyLoader)["run"] == {"lr": 0.02, "epochs": 2}  # stated over merged


# --- a run folder: the file that is wrong, by name --------------------------------------------------

def test_a_bad_value_inside_run_config_names_the_file(own_run, tmp_path, capsys):
    run = copy_run(own_run, tmp_path)
    config = json.loads((run / "run_config.json").read_text())
    config["max_length"] = -5
    (run / "run_config.json").write_text(json.dumps(config))
    code, _, err = cli(["eval", str(run)], capsys)
    one_error(code, err, str(run / "run_config.json"), "max_length must be >= 1, got -5")


def test_a_run_config_naming_another_backbone_says_so_before_building_it(own_run, tmp_path, capsys):
    run = copy_run(own_run, tmp_path)
    config = json.loads((run / "run_config.json").read_text())
    config["model"] = "smollm2"
    (run / "run_config.json").write_text(json.dumps(config))
    code, _, err = cli(["eval", str(run)], capsys)
    one_error(code, err, "trained on a bert model, 384 wide, 6 layers", "names model 'smollm2' (a llama model")
    assert "head_pooling" not in err


def test_an_edited_baseline_config_is_named_as_itself(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--method", "probe", *own_files(tmp_path / "data"), "--max-steps", "1", "--output",
                 str(out), *TINY[:5]]) == 0
    meta = json.loads((out / "best" / "mept_config.json").read_text())
    capsys.readouterr()
    for edit in (lambda m: m.update(method="full"), lambda m: m["backbone"].update(hidden_size=768)):
        edited = json.loads(json.dumps(meta))
        edit(edited)
        (out / "best" / "mept_config.json").write_text(json.dumps(edited))
        code, _, err = cli(["eval", str(out)], capsys)
        assert code == 2 and "best/mept_config.json" in err and "adapter_config.json" not in err, err


def test_adapter_tensors_of_an_integer_type_are_refused(own_run, tmp_path, capsys):
    run = copy_run(own_run, tmp_path)
    weights = run / "best" / "adapter_model.safetensors"
    state = load_file(str(weights))
    key = next(k for k in sorted(state) if k.startswith("method."))
    state[key] = state[key].round().to(dtype=__import__("torch").int64)
    save_file(state, str(weights))
    code, _, err = cli(["eval", str(run)], capsys)
    one_error(code, err, key, "is int64 in the file", "floating point")


def test_eval_of_another_task_on_a_classification_run_is_refused_by_its_labels(own_run, capsys):
    """The README promises it; a run on one's own file crashed with a KeyError."""
    code, _, err = cli(["eval", str(own_run), "--task", "bb-rte"], capsys)
    one_error(code, err, "task 'bb-rte' needs label word(s)", "the trained head does not have")


# --- resume --------------------------------------------------------------------------------------

def test_resume_with_the_same_relative_paths_is_not_refused(own_run, tmp_path, capsys, monkeypatch):
    run = copy_run(own_run, tmp_path, "run")
    shutil.copytree(own_run.parent / "data", tmp_path / "data")
    config = json.loads((run / "run_config.json").read_text())
    for key in ("train_file", "val_file", "test_file"):
        config[key] = str(tmp_path / "data" / os.path.basename(config[key]))
    (run / "run_config.json").write_text(json.dumps(config))
    monkeypatch.chdir(tmp_path)
    relative = ["--train-file", "data/reviews.csv", "--val-file", "data/reviews_val.csv",
                "--test-file", "data/reviews_test.csv"]
    code, _, err = cli(["train", "--resume", "--output", "run", *relative, "--no-progress"], capsys)
    assert code == 0, err
    code, _, err = cli(["train", "--resume", "--output", "run", *relative, "--max-steps", "9"], capsys)
    one_error(code, err, "max_steps (saved 1, given 9)", "into another --output")
    assert "--overwrite" not in err


# --- analyze -------------------------------------------------------------------------------------

@pytest.mark.parametrize("count", ["0", "-3"])
def test_analyze_needs_at_least_one_example_per_task(own_run, tmp_path, capsys, count):
    code, _, err = cli(["analyze", str(own_run), "--max-per-task", count, "--out", str(tmp_path / "a")], capsys)
    one_error(code, err, f"--max-per-task must be >= 1, got {count}")
    assert not (tmp_path / "a").exists()


def test_analyze_refuses_a_t_sne_it_cannot_draw_before_writing_any_figure(own_run, tmp_path, capsys):
    code, _, err = cli(["analyze", str(own_run), "--max-per-task", "1", "--out", str(tmp_path / "a")], capsys)
    one_error(code, err, "a t-SNE needs at least 3 examples", "raise --max-per-task")
    assert not (tmp_path / "a").exists() or not any((tmp_path / "a").iterdir())


def test_analyze_of_a_file_does_not_need_the_runs_training_file(own_run, tmp_path, capsys):
    run = copy_run(own_run, tmp_path)
    config = json.loads((run / "run_config.json").read_text())
    config["train_file"] = str(tmp_path / "moved-away.csv")
    (run / "run_config.json").write_text(json.dumps(config))
    scored = csv_file(tmp_path / "scored.csv", GOOD)
    code, _, err = cli(["analyze", str(run), "--split", str(scored), "--no-baseline", "--out", str(tmp_path / "a")],
                       capsys)
    assert code == 0, err
    code, _, err = cli(["analyze", str(run), "--no-baseline", "--out", str(tmp_path / "b")], capsys)
    one_error(code, err, "training file", "moved-away.csv is gone", "rebuilt from the files it was trained with")


# --- a run being written right now is not "interrupted" -----------------------------------------------

def test_eval_during_a_running_overwrite_says_it_is_running(own_run, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(own_run, tmp_path / ".run.replaced")  # the old run, moved aside by --overwrite
    run.mkdir()
    shutil.copy(own_run / "run_config.json", run / "run_config.json")  # the new run's shell
    (run / ".incomplete").write_text("training in progress\n")
    (tmp_path / ".run.lock").write_text(json.dumps({"pid": os.getpid(), "host": socket.gethostname()}))
    code, _, err = cli(["eval", str(run)], capsys)
    one_error(code, err, "is writing", "now", ".run.replaced")
    assert "interrupted" not in err


# --- predictions for a spreadsheet -------------------------------------------------------------------

def test_cells_a_spreadsheet_would_run_are_escaped_in_csv_only(own_run, tmp_path, capsys):
    rows = [{"text": "=HYPERLINK(\"http://x\")", "note": "@SUM(A1)"}, {"text": "-2.5", "note": "+1"},
            {"text": "a good film", "note": "-bad"}]
    new = jsonl_file(tmp_path / "new.jsonl", rows)
    assert cli(["predict", str(own_run), "--file", str(new), "--output", str(tmp_path / "p.csv")], capsys)[0] == 0
    got = list(csv.DictReader(open(tmp_path / "p.csv", encoding="utf-8")))
    assert [r["text"] for r in got] == ["'=HYPERLINK(\"http://x\")", "-2.5", "a good film"]  # numbers stay numbers
    assert [r["note"] for r in got] == ["'@SUM(A1)", "+1", "'-bad"]
    assert cli(["predict", str(own_run), "--file", str(new), "--output", str(tmp_path / "raw.csv"),
                "--no-formula-escape"], capsys)[0] == 0
    assert next(csv.DictReader(open(tmp_path / "raw.csv", encoding="utf-8")))["text"] == "=HYPERLINK(\"http://x\")"
    assert cli(["predict", str(own_run), "--file", str(new), "--output", str(tmp_path / "p.jsonl")], capsys)[0] == 0
    assert json.loads((tmp_path / "p.jsonl").read_text().splitlines()[0])["text"] == rows[0]["text"]


# --- an exception quoted in our line: a message with nothing in it is still one real line ---------------

def test_exception_line_takes_the_first_line_with_text_or_the_class():
    from mept.errors import exception_line, first_line, internal_error_line

    assert exception_line(ValueError("\n  bad header  \nstack...")) == "bad header"
    assert exception_line(OSError()) == "OSError"
    assert exception_line(RuntimeError("   \n")) == "RuntimeError"
    assert first_line("") == ""
    assert internal_error_line(KeyError()).startswith("internal error (KeyError: )")


def test_a_model_config_that_fails_with_an_empty_message_is_one_error_line(tmp_path, capsys, monkeypatch):
    # `str(exc).splitlines()[0]` turned an empty OSError into an IndexError: an internal error hiding the cause
    import transformers

    def fail(*args, **kwargs):
        raise OSError()

    monkeypatch.setattr(transformers.AutoConfig, "from_pretrained", fail)
    code = main(own(tmp_path))
    one_error(code, capsys.readouterr().err, "cannot load model", "OSError")
    assert not (tmp_path / "run").exists()
