"""Damaged, foreign or oversized files and a full disk: checkpoints, adapters, label maps, the BIG-bench cache,
offline weights and tokenizers each end in one ``error:`` line naming the file and the fix; the old run is kept."""

from __future__ import annotations

import gzip
import io
import json
import shutil
import tarfile
from pathlib import Path

import pytest
from conftest import GOOD, TINY, cli, copy_run, csv_file, one_error, reviews_run_files, snapshot, warned

import mept


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
def test_damaged_checkpoints_are_one_line(rte_run, tmp_path, capsys, how, needle, command):
    run = copy_run(rte_run, tmp_path)
    _damage(run, how)
    extra = ["--no-baseline", "--max-per-task", "4"] if command == "analyze" else []
    code, _, err = cli([command, str(run), *extra], capsys)
    one_error(code, err, needle)
    assert not (run / "analysis").exists()


@pytest.mark.parametrize("how, needle", [("truncated", "is not a readable safetensors file"),
                                         ("shapes", "in the file, but this model expects"),
                                         ("no_head", "missing 1 tensor(s), e.g. head.classifier.weight")])
def test_api_load_of_a_damaged_adapter_is_a_mept_error_with_detail(rte_run, tmp_path, how, needle):
    from mept.model.backbones import load_backbone

    run = copy_run(rte_run, tmp_path)
    _damage(run, how)
    with pytest.raises(mept.MeptError, match="tensor method|readable safetensors|missing") as info:
        mept.load(load_backbone("minilm", "cls", num_labels=2).model, run / "best")
    assert needle in str(info.value)


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
    one_error(code, err, str(tar), f"delete {tar}")


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


def test_truncated_offline_weights_are_one_line_with_the_fix(reviews_run, tmp_path, capsys, monkeypatch):
    import mept.model.backbones

    broken = tmp_path / "mpnet"
    broken.mkdir()
    for name in ("config.json", "tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json"):
        shutil.copy(_minilm_dir() / name, broken / name)
    (broken / "model.safetensors").write_bytes((_minilm_dir() / "model.safetensors").read_bytes()[: 1 << 20])
    monkeypatch.setattr(mept.model.backbones, "_mpnet_cache", lambda: broken)
    code, _, err = cli(["train", *reviews_run_files(reviews_run), "--model", "mpnet",
                        "--output", str(tmp_path / "o"), *TINY], capsys)
    one_error(code, err, str(broken), "rerun `bash scripts/setup.sh`")


def test_deleted_tokenizer_files_are_one_line(reviews_run, tmp_path, capsys):
    model = tmp_path / "model"
    model.mkdir()
    for p in _minilm_dir().iterdir():
        if p.is_file() and not any(k in p.name for k in ("tok", "vocab", "special")):
            (model / p.name).symlink_to(p)
    code, _, err = cli(["train", *reviews_run_files(reviews_run), "--model", str(model),
                        "--output", str(tmp_path / "o"), *TINY], capsys)
    one_error(code, err, "tokenizer", str(model))


def test_a_full_disk_is_one_line_naming_the_path_and_keeps_the_old_run(reviews_run, tmp_path, capsys, monkeypatch):
    import mept.model.prompted

    run = copy_run(reviews_run, tmp_path)
    before = snapshot(run)

    def full(*args, **kwargs):
        raise RuntimeError('Error while serializing: IoError(Os { code: 28, kind: StorageFull, '
                           'message: "No space left on device" })')

    monkeypatch.setattr(mept.model.prompted, "save_file", full)
    code, _, err = cli(["train", *reviews_run_files(reviews_run), "--output", str(run),
                        "--overwrite", "--max-steps", "1", *TINY], capsys)
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert code == 2 and len(errors) == 1 and "No space left on device" in errors[0]
    assert "adapter_model.safetensors" in errors[0]
    warned(err, "previous run", "was kept")
    assert snapshot(run) == before


def test_an_adapter_on_another_backbone_of_the_same_shape_is_refused(reviews_run, tmp_path, capsys):
    import torch

    from mept.model.backbones import load_backbone

    other = tmp_path / "other-bert"
    backbone = load_backbone("minilm", "cls", num_labels=2)
    with torch.no_grad():
        backbone.model.get_input_embeddings().weight.mul_(1.01)
    backbone.model.save_pretrained(other)
    backbone.processor.save_pretrained(other)
    run = copy_run(reviews_run, tmp_path)
    config = json.loads((run / "run_config.json").read_text())
    (run / "run_config.json").write_text(json.dumps({**config, "model": str(other)}))
    capsys.readouterr()  # save_pretrained's progress bar
    new = csv_file(tmp_path / "new.csv", GOOD[:2])
    code, _, err = cli(["predict", str(run), "--file", str(new), "--output", str(tmp_path / "p.csv")], capsys)
    one_error(code, err, "was trained on backbone", "other weights")
    code, _, err = cli(["eval", str(run)], capsys)
    one_error(code, err, "was trained on backbone")


def test_an_adapter_file_far_too_large_is_refused_before_it_is_read(reviews_run, tmp_path, capsys):
    run = copy_run(reviews_run, tmp_path)
    with open(run / "best" / "adapter_model.safetensors", "r+b") as f:
        f.truncate(5 << 30)  # sparse: 5 GiB by its size, nothing on disk
    new = csv_file(tmp_path / "new.csv", GOOD[:2])
    code, _, err = cli(["predict", str(run), "--file", str(new), "--output", str(tmp_path / "p.csv")], capsys)
    one_error(code, err, "adapter_model.safetensors is 5,368,709,120 bytes")


def test_a_huge_labels_json_is_refused_before_it_is_read(reviews_run, tmp_path, capsys):
    run = copy_run(reviews_run, tmp_path)
    with open(run / "labels.json", "r+b") as f:
        f.truncate(64 << 20)
    new = csv_file(tmp_path / "new.csv", GOOD[:2])
    code, _, err = cli(["predict", str(run), "--file", str(new), "--output", str(tmp_path / "p.csv")], capsys)
    one_error(code, err, "labels.json is 67,108,864 bytes")
