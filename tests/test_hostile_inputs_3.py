"""The reliability battery, third pass (issue 22): never delete what is not ours, keep the user's
data in predictions, read labels as the user meant, and turn environment faults into one line.

Same contract as ``test_hostile_inputs.py``: exit 2 and one ``error:`` line, or a ``warning:``
line, or the right result; for every data-loss case, every byte of the user's files is checked
afterwards. One tiny run (MiniLM, 12 rows, one step) is shared and copied before a test edits it.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest
from conftest import GOOD, TINY, cli, copy_run, csv_file, jsonl_file, one_error, snapshot, warned

import mept
from mept.cli import main


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("battery3")
    train = csv_file(root / "reviews.csv", GOOD)
    val = csv_file(root / "reviews_val.csv", GOOD[::-1])  # the same rows in another order: not the training file
    out = root / "run"
    assert main(["train", "--train-file", str(train), "--val-file", str(val), "--max-steps", "1",
                 "--output", str(out), *TINY]) == 0
    return out


def own_data(trained: Path) -> list[str]:
    """The shared run's data files (a --val-file, so no tiny-validation warning joins the error line)."""
    return ["--train-file", str(trained.parent / "reviews.csv"), "--val-file", str(trained.parent / "reviews_val.csv")]


# --- data loss: --overwrite replaces only a mept run ----------------------------------------------

def test_overwrite_refuses_a_folder_that_is_not_a_run_and_keeps_every_byte(tmp_path, capsys):
    data = tmp_path / "D"
    data.mkdir()
    train = csv_file(data / "train.csv", GOOD)
    (data / "notes.txt").write_text("my notes\n")
    before = snapshot(data)
    code, _, err = cli(["train", "--train-file", str(train), "--output", str(data), "--overwrite", *TINY], capsys)
    one_error(code, err, "replaces only a mept run", "notes.txt", "train.csv")
    assert snapshot(data) == before


def test_overwrite_refuses_a_run_folder_holding_the_users_files(trained, tmp_path, capsys):
    run = copy_run(trained, tmp_path)
    (run / "my_notes.md").write_text("keep me\n")
    before = snapshot(run)
    code, _, err = cli(["train", *own_data(trained), "--output", str(run),
                        "--overwrite", "--max-steps", "1", *TINY], capsys)
    one_error(code, err, "files mept did not write", "my_notes.md")
    assert snapshot(run) == before


def test_overwrite_onto_a_symlinked_run_is_refused_before_training(trained, tmp_path, capsys, monkeypatch):
    import mept.harness.prepare_run

    run = copy_run(trained, tmp_path)
    link = tmp_path / "link"
    link.symlink_to(run)
    before = snapshot(run)
    monkeypatch.setattr(mept.harness.prepare_run, "load_backbone", lambda *a, **k: pytest.fail("model loaded first"))
    code, _, err = cli(["train", *own_data(trained), "--output", str(link),
                        "--overwrite", *TINY], capsys)
    one_error(code, err, "is a symbolic link")
    assert link.is_symlink() and snapshot(run) == before


def test_predict_output_that_is_the_input_is_refused(trained, tmp_path, capsys):
    new = csv_file(tmp_path / "x.csv", GOOD[:3])
    before = new.read_bytes()
    code, _, err = cli(["predict", str(trained), "--file", str(new), "--output", str(new)], capsys)
    one_error(code, err, "is the input file")
    assert new.read_bytes() == before and stat.S_IMODE(new.stat().st_mode) != 0o600


@pytest.mark.parametrize("rows", [
    [{"text": "fine"}, {"text": "bad", "prediction": "mine"}],  # only a later row has it
    [{"text": "fine", "probabilities": [0.1]}],  # a name the clash check did not know
])
def test_predict_refuses_rows_with_fields_it_would_overwrite(trained, tmp_path, capsys, rows):
    new = jsonl_file(tmp_path / "new.jsonl", rows)
    before = new.read_bytes()
    out = tmp_path / "preds.jsonl"
    code, _, err = cli(["predict", str(trained), "--file", str(new), "--output", str(out)], capsys)
    one_error(code, err, "which mept predict writes")
    assert new.read_bytes() == before and not out.exists()


def test_predict_csv_keeps_every_field_of_a_ragged_jsonl(trained, tmp_path, capsys):
    new = jsonl_file(tmp_path / "new.jsonl", [{"text": "fine", "id": 1}, {"text": "bad", "source": "web"}])
    out = tmp_path / "preds.csv"
    code, _, err = cli(["predict", str(trained), "--file", str(new), "--output", str(out)], capsys)
    assert code == 0, err
    import csv

    rows = list(csv.DictReader(out.open()))
    assert rows[0]["id"] == "1" and rows[1]["source"] == "web" and rows[1]["prediction"] in ("neg", "pos")


def test_eval_files_with_the_same_stem_do_not_overwrite_each_other(trained, tmp_path, capsys):
    run = copy_run(trained, tmp_path)
    for sub in ("a", "b"):
        (tmp_path / sub).mkdir()
        csv_file(tmp_path / sub / "test.csv", GOOD[: 4 if sub == "a" else 8])
        code, _, err = cli(["eval", str(run), "--file", str(tmp_path / sub / "test.csv")], capsys)
        assert code == 0, err
    written = sorted(run.glob("eval_file_test*.json"))
    assert len(written) == 2
    assert {json.loads(p.read_text())["examples"] for p in written} == {4, 8}


def test_predict_keeps_the_mode_of_a_replaced_file_and_the_umask_for_a_new_one(trained, tmp_path, capsys):
    new = csv_file(tmp_path / "new.csv", GOOD[:2])
    out = tmp_path / "preds.csv"
    assert cli(["predict", str(trained), "--file", str(new), "--output", str(out)], capsys)[0] == 0
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(out.stat().st_mode) == 0o666 & ~umask
    out.chmod(0o640)
    assert cli(["predict", str(trained), "--file", str(new), "--output", str(out), "--overwrite"], capsys)[0] == 0
    assert stat.S_IMODE(out.stat().st_mode) == 0o640


# --- hang: a YAML bomb ------------------------------------------------------------------------

def test_yaml_billion_laughs_is_refused_at_once(tmp_path, capsys):
    levels = ["&a0 [" + ", ".join(["lol"] * 10) + "]"]
    levels += [f"&a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 9)]
    cfg = tmp_path / "bomb.yaml"
    cfg.write_text("tasks:\n" + "".join(f"  - {level}\n" for level in levels))  # 10^9 strings once expanded
    started = time.perf_counter()
    code, _, err = cli(["train", "--config", str(cfg), "--output", str(tmp_path / "o")], capsys)
    assert time.perf_counter() - started < 10
    one_error(code, err, "bomb.yaml")
    assert len(err) < 500


# --- environment faults: one line naming the file and the fix ---------------------------------------

def _bigbench_cache(tmp_path: Path, monkeypatch) -> Path:
    cache = tmp_path / "cache"
    (cache / "bigbench").mkdir(parents=True)
    monkeypatch.setenv("MEPT_CACHE", str(cache))
    monkeypatch.delenv("MEPT_BIGBENCH_TAR", raising=False)
    return cache / "bigbench" / "bigbench-1.0.0.tar.gz"


def _tar_bytes() -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        data = b'{"examples": []}' * 4000
        info = tarfile.TarInfo("bigbench-1.0.0/bigbench/benchmark_tasks/other/task.json")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


@pytest.mark.parametrize("damage", ["truncated", "corrupt", "incomplete"])
def test_a_damaged_bigbench_tarball_is_one_line_with_the_fix(tmp_path, capsys, monkeypatch, damage):
    tar = _bigbench_cache(tmp_path, monkeypatch)
    whole = _tar_bytes()
    tar.write_bytes({"truncated": whole[: len(whole) // 3], "corrupt": gzip.compress(b"\x00garbage" * 200)[:-8] + b"x" * 8,
                     "incomplete": whole}[damage])
    code, _, err = cli(["train", "--task", "bb-rte", "--output", str(tmp_path / "o"), *TINY], capsys)
    one_error(code, err, str(tar), "rerun `bash scripts/setup.sh`")


def test_a_truncated_cached_task_file_is_one_line(tmp_path, capsys, monkeypatch):
    _bigbench_cache(tmp_path, monkeypatch)
    task = tmp_path / "cache" / "bigbench" / "tasks" / "epistemic_reasoning" / "task.json"
    task.parent.mkdir(parents=True)
    task.write_text('{"examples": [{"input": "a", "targ')
    code, _, err = cli(["train", "--task", "bb-rte", "--output", str(tmp_path / "o"), *TINY], capsys)
    one_error(code, err, str(task), "delete it")


def _minilm_dir() -> Path:
    from mept.model.backbones import resolve

    return Path(resolve("minilm"))


def test_truncated_offline_weights_are_one_line_with_the_fix(trained, tmp_path, capsys, monkeypatch):
    import mept.model.backbones

    broken = tmp_path / "mpnet"
    broken.mkdir()
    for name in ("config.json", "tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json"):
        shutil.copy(_minilm_dir() / name, broken / name)
    (broken / "model.safetensors").write_bytes((_minilm_dir() / "model.safetensors").read_bytes()[: 1 << 20])
    monkeypatch.setattr(mept.model.backbones, "_mpnet_cache", lambda: broken)
    code, _, err = cli(["train", *own_data(trained), "--model", "mpnet",
                        "--output", str(tmp_path / "o"), *TINY], capsys)
    one_error(code, err, str(broken), "rerun `bash scripts/setup.sh`")


def test_deleted_tokenizer_files_are_one_line(trained, tmp_path, capsys):
    model = tmp_path / "model"
    model.mkdir()
    for p in _minilm_dir().iterdir():
        if p.is_file() and not any(k in p.name for k in ("tok", "vocab", "special")):
            (model / p.name).symlink_to(p)
    code, _, err = cli(["train", *own_data(trained), "--model", str(model),
                        "--output", str(tmp_path / "o"), *TINY], capsys)
    one_error(code, err, "tokenizer", str(model))


def test_a_full_disk_is_one_line_naming_the_path_and_keeps_the_old_run(trained, tmp_path, capsys, monkeypatch):
    import mept.model.prompted

    run = copy_run(trained, tmp_path)
    before = snapshot(run)

    def full(*args, **kwargs):
        raise RuntimeError('Error while serializing: IoError(Os { code: 28, kind: StorageFull, '
                           'message: "No space left on device" })')

    monkeypatch.setattr(mept.model.prompted, "save_file", full)
    code, _, err = cli(["train", *own_data(trained), "--output", str(run),
                        "--overwrite", "--max-steps", "1", *TINY], capsys)
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert code == 2 and len(errors) == 1 and "No space left on device" in errors[0]
    assert "adapter_model.safetensors" in errors[0]
    warned(err, "previous run", "was kept")
    assert snapshot(run) == before


# --- templates: field names only ------------------------------------------------------------------

def test_a_dotted_text_field_reads_the_nested_value(tmp_path, capsys):
    rows = [{"doc": {"body": t}, "label": lab} for t, lab in GOOD]
    train = jsonl_file(tmp_path / "nested.jsonl", rows)
    out = tmp_path / "o"
    code, _, err = cli(["train", "--train-file", str(train), "--text-field", "doc.body", "--max-steps", "1",
                        "--output", str(out), *TINY], capsys)
    assert code == 0, err
    code, _, err = cli(["predict", str(out), "--file", str(train), "--output", str(tmp_path / "p.jsonl")], capsys)
    assert code == 0, err


@pytest.mark.parametrize("template, needle", [
    ("{text.__class__}", "name fields only"),  # a dotted name is a nested field, and text holds no fields
    ("{text[0]}", "indexes a value"),
    ("{text:>300000000}", "format spec"),
    ("{text!r}", "format spec or conversion"),
    ("{0}", "positional"),
])
def test_templates_take_field_names_only(tmp_path, capsys, template, needle):
    train = csv_file(tmp_path / "t.csv", GOOD)
    code, _, err = cli(["train", "--train-file", str(train), "--template", template, "--output", str(tmp_path / "o"),
                        *TINY], capsys)
    if needle == "name fields only":
        one_error(code, err, "missing field 'text.__class__'")
    else:
        one_error(code, err, needle)


def test_a_format_spec_in_a_saved_run_config_is_refused_before_predicting(trained, tmp_path, capsys):
    run = copy_run(trained, tmp_path)
    config = json.loads((run / "run_config.json").read_text())
    (run / "run_config.json").write_text(json.dumps({**config, "template": "{text:>300000000}"}))
    new = csv_file(tmp_path / "new.csv", GOOD[:2])
    code, _, err = cli(["predict", str(run), "--file", str(new), "--output", str(tmp_path / "p.csv")], capsys)
    one_error(code, err, "format spec")


def test_a_list_label_is_one_line_naming_the_row(tmp_path, capsys):
    rows = [{"text": t, "label": lab} for t, lab in GOOD] + [{"text": "odd", "label": ["pos", "neg"]}]
    train = jsonl_file(tmp_path / "t.jsonl", rows)
    code, _, err = cli(["train", "--train-file", str(train), "--output", str(tmp_path / "o"), *TINY], capsys)
    one_error(code, err, f"{train}:13", "is a list")


def test_object_text_is_refused_and_null_text_is_read_as_empty(tmp_path, capsys):
    rows = [{"text": t, "label": lab} for t, lab in GOOD]
    train = jsonl_file(tmp_path / "t.jsonl", rows + [{"text": {"body": "x"}, "label": "pos"}])
    code, _, err = cli(["train", "--train-file", str(train), "--output", str(tmp_path / "o"), *TINY], capsys)
    one_error(code, err, "holds a JSON object, not text", "text.body")
    train = jsonl_file(tmp_path / "t.jsonl", rows + [{"text": None, "label": "pos"}])
    code, _, err = cli(["train", "--train-file", str(train), "--max-steps", "1", "--output", str(tmp_path / "o2"),
                        *TINY], capsys)
    assert code == 0, err
    warned(err, "1 row(s) have an empty 'text' field")


# --- labels: one rule, everywhere ------------------------------------------------------------------

def test_label_spellings_of_one_class_merge_with_a_warning(tmp_path, capsys):
    rows = [("a", "1"), ("b", "01"), ("c", "1.0"), ("d", " 1"), ("e", "0"), ("f", "0"), ("g", "0"), ("h", "1")] * 2
    train = csv_file(tmp_path / "nums.csv", rows)
    out = tmp_path / "o"
    code, _, err = cli(["train", "--train-file", str(train), "--val-file", str(train), "--max-steps", "1",
                        "--output", str(out), *TINY], capsys)
    assert code == 0, err
    assert json.loads((out / "labels.json").read_text())["tasks"]["nums"]["verbalizer"] == ["0", "1"]
    warned(err, "read as one class", "'01'", "'1.0'", "' 1'")


def test_trailing_spaces_are_not_a_class_of_their_own_in_train_and_eval(trained, tmp_path, capsys):
    rows = [(t, lab + " " if i % 3 else lab) for i, (t, lab) in enumerate(GOOD)]
    train = csv_file(tmp_path / "spaces.csv", rows)
    out = tmp_path / "o"
    code, _, err = cli(["train", "--train-file", str(train), "--max-steps", "1", "--output", str(out), *TINY], capsys)
    assert code == 0, err
    assert json.loads((out / "labels.json").read_text())["tasks"]["spaces"]["verbalizer"] == ["neg", "pos"]
    warned(err, "read as one class", "'pos '")
    code, _, err = cli(["eval", str(trained), "--file", str(train)], capsys)  # the same rule for eval files
    assert code == 0, err
    warned(err, "read as one class")


def test_integer_labels_read_as_ids_are_named(trained, tmp_path, capsys):
    scored = csv_file(tmp_path / "ids.csv", [("a great film", "1"), ("a dull film", "0")])
    code, _, err = cli(["eval", str(trained), "--file", str(scored)], capsys)
    assert code == 0, err
    warned(err, "read as label ids", "0 = 'neg'", "1 = 'pos'")


# --- validation split ---------------------------------------------------------------------------

def test_a_tiny_validation_split_is_warned_about(tmp_path, capsys):
    train = csv_file(tmp_path / "small.csv", GOOD[:4])
    code, _, err = cli(["train", "--train-file", str(train), "--max-steps", "1", "--output", str(tmp_path / "o"),
                        *TINY], capsys)
    assert code == 0, err
    warned(err, "validation set has only", "mean little")


def test_held_out_validation_is_capped_when_labels_are_many(tmp_path):
    from mept.data.custom import MAX_HELD_OUT, load_custom
    from mept.errors import MeptWarning

    train = csv_file(tmp_path / "many.csv", [(f"row {i}", f"c{i // 2}") for i in range(1000)])
    with pytest.warns(MeptWarning, match="too few rows to hold one out"):
        _, splits = load_custom(train, task_name="many")
    assert len(splits["validation"]) <= MAX_HELD_OUT * 1000 and len(splits["train"]) >= 800


# --- what a loaded adapter is checked against ---------------------------------------------------

def test_an_edited_label_map_is_refused(trained, tmp_path, capsys):
    run = copy_run(trained, tmp_path)
    info = json.loads((run / "labels.json").read_text())
    for task in info["tasks"].values():
        task["verbalizer"] = task["verbalizer"][::-1]
    info["words"] = info["words"][::-1]
    (run / "labels.json").write_text(json.dumps(info))
    new = csv_file(tmp_path / "new.csv", GOOD[:2])
    code, _, err = cli(["predict", str(run), "--file", str(new), "--output", str(tmp_path / "p.csv")], capsys)
    one_error(code, err, "labels.json was changed after training")


def test_an_adapter_on_another_backbone_of_the_same_shape_is_refused(trained, tmp_path, capsys):
    import torch

    from mept.model.backbones import load_backbone

    other = tmp_path / "other-bert"
    backbone = load_backbone("minilm", "cls", num_labels=2)
    with torch.no_grad():
        backbone.model.get_input_embeddings().weight.mul_(1.01)
    backbone.model.save_pretrained(other)
    backbone.processor.save_pretrained(other)
    run = copy_run(trained, tmp_path)
    config = json.loads((run / "run_config.json").read_text())
    (run / "run_config.json").write_text(json.dumps({**config, "model": str(other)}))
    capsys.readouterr()  # save_pretrained's progress bar
    new = csv_file(tmp_path / "new.csv", GOOD[:2])
    code, _, err = cli(["predict", str(run), "--file", str(new), "--output", str(tmp_path / "p.csv")], capsys)
    one_error(code, err, "was trained on backbone", "other weights")
    code, _, err = cli(["eval", str(run)], capsys)
    one_error(code, err, "was trained on backbone")


def test_an_adapter_file_far_too_large_is_refused_before_it_is_read(trained, tmp_path, capsys):
    run = copy_run(trained, tmp_path)
    with open(run / "best" / "adapter_model.safetensors", "r+b") as f:
        f.truncate(5 << 30)  # sparse: 5 GiB by its size, nothing on disk
    new = csv_file(tmp_path / "new.csv", GOOD[:2])
    code, _, err = cli(["predict", str(run), "--file", str(new), "--output", str(tmp_path / "p.csv")], capsys)
    one_error(code, err, "adapter_model.safetensors is 5,368,709,120 bytes")


def test_a_huge_labels_json_is_refused_before_it_is_read(trained, tmp_path, capsys):
    run = copy_run(trained, tmp_path)
    with open(run / "labels.json", "r+b") as f:
        f.truncate(64 << 20)
    new = csv_file(tmp_path / "new.csv", GOOD[:2])
    code, _, err = cli(["predict", str(run), "--file", str(new), "--output", str(tmp_path / "p.csv")], capsys)
    one_error(code, err, "labels.json is 67,108,864 bytes")


# --- pairs, unload --------------------------------------------------------------------------------

def test_pairs_use_the_tokenizers_own_pair_encoding(minilm):
    from mept.data.encode import Encoder
    from mept.data.examples import Example

    encoder = Encoder("cls", minilm.processor, num_slots=4, max_length=64, labels=None)
    (feature,), _ = encoder.featurize([Example("a cat sat", 0, "x", "t", text_pair="it sat")])
    assert feature.input_ids == minilm.processor("a cat sat", "it sat")["input_ids"]
    assert feature.input_ids.count(minilm.processor.sep_token_id) == 2
    (cut,), truncated = Encoder("cls", minilm.processor, 4, 10, None).featurize(
        [Example("one two three four five six", 0, "x", "t", text_pair="seven eight nine ten")])
    assert truncated == 1 and len(cut.input_ids) == 6 and cut.input_ids.count(minilm.processor.sep_token_id) == 2


def test_forward_after_unload_is_refused():
    import torch
    import transformers

    cfg = transformers.BertConfig(vocab_size=64, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                                  intermediate_size=32, num_labels=2)
    model = mept.get_model(transformers.BertForSequenceClassification(cfg).eval(), mept.make_config("mept", num_experts=2, prompt_length=2))
    model.unload()
    with pytest.raises(mept.MeptError, match="unload"):
        model(input_ids=torch.tensor([[1, 2, 3]]))


# --- interrupted and hidden runs ------------------------------------------------------------------

def test_sigterm_during_overwrite_puts_the_old_run_back(trained, tmp_path):
    run = copy_run(trained, tmp_path)
    before = snapshot(run)
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "mept.cli", "train", *own_data(trained),
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


def _interrupted_overwrite(trained: Path, tmp_path: Path) -> Path:
    """The state a kill during `--overwrite` before its first checkpoint leaves: old run hidden, new shell."""
    run = copy_run(trained, tmp_path)
    run.rename(tmp_path / ".copy.replaced")
    run.mkdir()
    config = json.loads((tmp_path / ".copy.replaced" / "run_config.json").read_text())
    (run / "run_config.json").write_text(json.dumps({**config, "seed": 7}))
    return run


def test_readers_name_a_run_hidden_by_an_interrupted_overwrite(trained, tmp_path, capsys):
    run = _interrupted_overwrite(trained, tmp_path)
    for command in (["eval", str(run)], ["predict", str(run), "--file", str(trained.parent / "reviews.csv"),
                                         "--output", str(tmp_path / "p.csv")]):
        code, _, err = cli(command, capsys)
        one_error(code, err, ".copy.replaced", "puts it back")


def test_resume_after_an_interrupted_overwrite_continues_the_old_run(trained, tmp_path, capsys):
    run = _interrupted_overwrite(trained, tmp_path)
    code, _, err = cli(["train", "--resume", "--output", str(run), "--no-progress"], capsys)
    assert code == 0, err
    warned(err, "restored the run")
    assert json.loads((run / "run_config.json").read_text())["seed"] != 7


def test_the_interrupt_hint_of_predict_is_about_predict(trained, tmp_path, capsys, monkeypatch):
    import mept.harness.eval_run

    monkeypatch.setattr(mept.harness.eval_run, "predict_details", lambda *a, **k: (_ for _ in ()).throw(KeyboardInterrupt()))
    new = csv_file(tmp_path / "new.csv", GOOD[:2])
    code, _, err = cli(["predict", str(trained), "--file", str(new), "--output", str(tmp_path / "p.csv")], capsys)
    assert code == 130 and "mept predict" in err and "--resume" not in err


# --- misleading errors --------------------------------------------------------------------------

def test_a_csv_with_a_one_megabyte_cell_is_read(tmp_path):
    from mept.data.jsonl import read_table

    path = csv_file(tmp_path / "long.csv", [("x" * (1 << 20), "pos"), ("short", "neg")])
    rows = read_table(path)
    assert len(rows[0].data["text"]) == 1 << 20 and rows[1].line == 3


def test_a_pipe_is_not_reported_missing(tmp_path, capsys):
    fifo = tmp_path / "train.csv"
    os.mkfifo(fifo)
    code, _, err = cli(["train", "--train-file", str(fifo), "--output", str(tmp_path / "o"), *TINY], capsys)
    one_error(code, err, "not a regular file")


def test_predict_output_problems_come_before_the_model_loads(trained, tmp_path, capsys, monkeypatch):
    import mept.harness.eval_run

    monkeypatch.setattr(mept.harness.eval_run, "load_trained", lambda *a, **k: pytest.fail("model loaded first"))
    new = csv_file(tmp_path / "new.csv", GOOD[:2])
    folder = tmp_path / "out.csv"
    folder.mkdir()
    code, _, err = cli(["predict", str(trained), "--file", str(new), "--output", str(folder)], capsys)
    one_error(code, err, "is a folder")
    blocker = tmp_path / "file"
    blocker.write_text("x")
    code, _, err = cli(["predict", str(trained), "--file", str(new), "--output", str(blocker / "p.csv")], capsys)
    one_error(code, err, "which is a file")


def test_routing_entropy_never_prints_minus_zero():
    from mept.core.routing_health import format_health

    health = {"experts": 2, "examples": 4, "layers": [{"layer": 1, "experts_in_use": 1, "entropy": -0.0,
                                                       "mean_top1_prob": 1.0, "share": [1.0, 0.0], "collapsed": True}]}
    assert "entropy 0.00" in format_health(health) and "-0.00" not in format_health(health)


# --- new cases tried beside the issue's ---------------------------------------------------------

def test_predict_output_that_links_to_the_input_is_refused(trained, tmp_path, capsys):
    new = csv_file(tmp_path / "x.csv", GOOD[:3])
    before = new.read_bytes()
    link = tmp_path / "y.csv"
    link.symlink_to(new)
    code, _, err = cli(["predict", str(trained), "--file", str(new), "--output", str(link)], capsys)
    one_error(code, err, "is the input file")
    assert new.read_bytes() == before and link.is_symlink()


def test_scoring_the_same_file_twice_keeps_one_result_file(trained, tmp_path, capsys):
    run = copy_run(trained, tmp_path)
    scored = csv_file(tmp_path / "test.csv", GOOD[:4])
    for _ in range(2):
        assert cli(["eval", str(run), "--file", str(scored)], capsys)[0] == 0
    assert [p.name for p in run.glob("eval_file_test*.json")] == ["eval_file_test.json"]


def test_literal_braces_and_json_booleans_follow_the_documented_rules(tmp_path):
    from mept.data.custom import load_custom

    rows = [{"text": f"row {i}", "label": i % 2 == 0} for i in range(100)]
    spec, splits = load_custom(jsonl_file(tmp_path / "b.jsonl", rows), template="{{{text}}}", task_name="bools")
    assert spec.verbalizer == ("0", "1")
    assert splits["train"][0].text.startswith("{row ") and splits["train"][0].text.endswith("}")


def test_a_non_finite_label_is_refused(tmp_path, capsys):
    train = tmp_path / "t.jsonl"
    train.write_text("".join(json.dumps({"text": t, "label": lab}) + "\n" for t, lab in GOOD) + '{"text": "x", "label": NaN}\n')
    code, _, err = cli(["train", "--train-file", str(train), "--output", str(tmp_path / "o"), *TINY], capsys)
    one_error(code, err, f"{train}:13", "not a class name")


@pytest.mark.parametrize("template", ["{text}", "review: {text}", "{{{text}}} [{label}]", "{text}{label} end", "plain"])
def test_plain_templates_render_as_str_format_did(template):
    from mept.data.jsonl import Row
    from mept.data.template import parse_template

    row = Row({"text": "a film", "label": 1}, "f.jsonl", 1)
    assert parse_template(template).render(row) == template.format(**row.data)


def test_label_normalisation_rule_table():
    from mept.data.jsonl import Row
    from mept.data.labels import normalise_label

    row = Row({}, "f.csv", 2)
    cases = [("1", "1"), ("01", "1"), ("+1", "1"), ("1.0", "1"), (" 1 ", "1"), (1, "1"), (1.0, "1"), (True, "1"),
             (False, "0"), ("-0", "0"), ("pos ", "pos"), ("Pos", "Pos"), ("0.5", "0.5"), (0.5, "0.5"),
             ("9" * 5000, "9" * 5000)]  # a list: 1, 1.0 and True are one dict key
    assert [normalise_label(raw, row) for raw, _ in cases] == [want for _, want in cases]
    for bad in (None, ["a"], {"a": 1}, float("inf")):
        with pytest.raises(mept.MeptError, match="f.csv:2"):
            normalise_label(bad, row)
