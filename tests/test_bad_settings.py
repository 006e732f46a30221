"""Bad settings end in one ``error:`` line (exit 2) before anything is loaded or written: flags and their
numbers, config files, output paths, unknown models, and faults of the OS or of mept itself."""

from __future__ import annotations

import time

import pytest
from conftest import RTE_BASE, cli, one_error

import mept
from mept.cli import join_negative_numbers, main


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
    code, _, err = cli(["train", *RTE_BASE, "--output", str(out), *args], capsys)
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
    code, _, err = cli(["train", *RTE_BASE, "--output", str(target)], capsys)
    one_error(code, err, "is a file, not a folder")
    code, _, err = cli(["train", *RTE_BASE, "--output", str(target / "sub")], capsys)
    one_error(code, err, "which is a file")


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
    code, _, err = cli(["train", *RTE_BASE, "--model", "someone/no-such-model-xyz", "--output", str(tmp_path / "o")], capsys)
    one_error(code, err, "someone/no-such-model-xyz", "offline alias")
    assert time.perf_counter() - started < 10


def test_analyze_out_that_is_a_file(rte_run, tmp_path, capsys):
    target = tmp_path / "out.txt"
    target.write_text("x")
    code, _, err = cli(["analyze", str(rte_run), "--out", str(target)], capsys)
    one_error(code, err, "--out", "is a file")


def test_os_errors_and_our_own_bugs_are_one_line(tmp_path, capsys, monkeypatch):
    import mept.cli

    def disk_full(args):
        raise OSError(28, "No space left on device", str(tmp_path / "run" / "metrics.json"))

    monkeypatch.setitem(mept.cli.COMMANDS, "train", disk_full)
    code, _, err = cli(["train"], capsys)
    one_error(code, err, "No space left on device", "metrics.json")
    monkeypatch.setitem(mept.cli.COMMANDS, "train", lambda args: {}["missing"])
    code, _, err = cli(["train"], capsys)
    assert code == 1 and err.startswith("error: internal error (KeyError") and err.count("\n") == 1
    monkeypatch.setenv("MEPT_DEBUG", "1")
    with pytest.raises(KeyError):
        main(["train"])


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


def test_config_file_with_unknown_keys_or_wrong_types(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("method: mept\nlearning_rate: 0.1\n")
    code, _, err = cli(["train", "--config", str(bad)], capsys)
    assert code == 2 and "unknown key(s) learning_rate" in err
    bad.write_text("batch_size: sixteen\n")
    code, _, err = cli(["train", "--config", str(bad)], capsys)
    assert code == 2 and "batch_size should be int" in err
