"""A changed default never changes what a saved run means: runs keep the defaults generation they trained with."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from conftest import interrupt_training_at_step, reviews, tiny_model_dir

import mept
from mept.baselines.lora import LoRAConfig
from mept.cli import build_parser, main, train_config_from_args
from mept.core.config import DEFAULTS_GENERATION, decoder_lr_of, defaults_of
from mept.core.registry import all_method_names
from mept.harness.run_folder import load_trained
from mept.harness.train_config import TrainConfig, migrate_run_config

FIXTURES = Path(__file__).parent / "fixtures" / "reviews"


def test_mept_default_lr_follows_the_backbone_width_from_generation_4():
    mept_cfg = TrainConfig(method="mept")
    assert mept_cfg.default_lr(384) == 1e-2 and mept_cfg.default_lr(768) == 5e-3  # MiniLM; MPNet and T5-Base
    assert mept_cfg.default_lr(576) == pytest.approx(1e-2 * 384 / 576)  # SmolLM2
    assert mept_cfg.default_lr(32) == 1e-2  # never faster than on the backbone the defaults were tuned on
    assert mept_cfg.default_lr() == 1e-2  # backbone not known yet: the unscaled value
    assert TrainConfig(method="mept", lr=3e-3).lr_for(768) == 3e-3  # a given --lr wins
    assert TrainConfig(method="ptuning_v2").lr_for(768) == 1e-2  # only MEPT was measured to need it
    assert TrainConfig(method="lora").lr_for(768) == LoRAConfig.default_lr
    old = migrate_run_config({k: v for k, v in mept_cfg.to_dict().items() if k != "method_defaults"})
    assert TrainConfig.from_dict(old).lr_for(768) == 1e-2  # a run saved before keeps the lr it trained with
    assert TrainConfig.from_dict({**mept_cfg.to_dict(), "method_defaults": 3}).lr_for(768) == 1e-2


def default_run(tmp_path: Path, model: Path, monkeypatch,
                method: str = "mept") -> tuple[Path, list[dict[str, float]]]:
    """Two steps of a default MEPT (or ``method``) run on ``model``; the lr of each parameter group AdamW was built
    with."""
    groups_seen: list[dict[str, float]] = []
    adamw = torch.optim.AdamW

    def spy(groups, **kwargs):
        groups_seen.append({g["name"]: g["lr"] for g in groups})
        return adamw(groups, **kwargs)

    monkeypatch.setattr(torch.optim, "AdamW", spy)
    run = tmp_path / "run"
    experts = ["--experts", "2"] if method == "mept" else []
    assert main(["train", "--method", method, "--model", str(model),
                 "--train-file", str(reviews(tmp_path / "r.csv", 24)),
                 *experts, "--prompt-length", "2", "--max-steps", "2", "--batch-size", "8", "--max-length", "16",
                 "--no-progress", "--output", str(run)]) == 0
    return run, groups_seen


def test_a_default_mept_run_on_a_wide_backbone_trains_and_reports_the_scaled_lr(tmp_path, capsys, monkeypatch):
    run, groups_seen = default_run(tmp_path, tiny_model_dir(tmp_path / "wide", hidden_size=768), monkeypatch)
    # prompts at 1e-2 * 384 / 768, routers at 384 / 768 of that (router_lr_scale=auto), the head at --head-lr
    assert groups_seen == [{"prompt": 5e-3, "router": 2.5e-3, "head": 1e-2}]
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["lr"] == 5e-3 and metrics["lr_rule"]["width"] == 768
    assert "lr: 0.005 (the mept default on a 768-wide backbone: 0.01 x min(1, 384 / width))" in capsys.readouterr().out


def test_mept_default_lr_on_a_text_decoder_is_1e_3_from_generation_7_and_a_saved_run_keeps_its_own():
    mept_cfg = TrainConfig(method="mept")
    assert mept_cfg.default_lr(576, text_decoder=True) == 1e-3  # SmolLM2
    assert mept_cfg.lr_rule(576, True)["rule"] == "0.001, in place of 0.01 x min(1, 384 / width)"
    assert mept_cfg.default_lr(576) == pytest.approx(1e-2 * 384 / 576)  # an encoder of that width: the width rule
    assert TrainConfig(method="mept", lr=3e-3).lr_for(576, text_decoder=True) == 3e-3  # a given --lr wins
    # a saved run keeps the lr it trained at, whichever generation it was saved under
    for generation, lr in ((4, 1e-2 * 384 / 576), (5, 1e-4), (6, 1e-4), (7, 1e-3)):
        saved = TrainConfig.from_dict({**mept_cfg.to_dict(), "method_defaults": generation})
        assert saved.lr_for(576, text_decoder=True) == pytest.approx(lr), generation
    saved = TrainConfig.from_dict({**mept_cfg.to_dict(), "method_defaults": 6})
    assert "the top of the paper's grid" in saved.lr_rule(576, True)["rule"]


def test_decoder_lr_of_reads_the_latest_value_at_or_before_a_generation():
    assert decoder_lr_of(mept.MEPTConfig, 4) is None and decoder_lr_of(mept.MEPTConfig, 5) == 1e-4
    assert decoder_lr_of(mept.MEPTConfig, 6) == 1e-4 and decoder_lr_of(mept.MEPTConfig, DEFAULTS_GENERATION) == 1e-3
    assert decoder_lr_of(mept.PromptTuningConfig, 5) is None and decoder_lr_of(mept.PromptTuningConfig, 6) == 1e-3
    assert decoder_lr_of(LoRAConfig, DEFAULTS_GENERATION) is None  # a baseline has no decoder rule


def test_the_other_prompt_methods_train_at_1e_3_on_a_text_decoder_from_generation_6():
    for method in ("prompt_tuning", "ptuning_v2", "smop", "vfpt", "ptmoe"):
        cfg = TrainConfig(method=method)
        assert cfg.lr_for(576, text_decoder=True) == 1e-3 and cfg.lr_for(576) == 1e-2, method  # encoders: 1e-2
        assert cfg.lr_rule(576, True)["rule"] == "0.001, in place of 0.01"
        saved = TrainConfig.from_dict({**cfg.to_dict(), "method_defaults": 5})
        assert saved.lr_for(576, text_decoder=True) == 1e-2  # a run saved before keeps the lr it trained at
    for method in ("lora", "probe", "full"):  # the baselines name their own defaults, on every backbone
        assert TrainConfig(method=method).lr_for(576, text_decoder=True) == TrainConfig(method=method).lr_for(384)


def test_a_default_prompt_tuning_run_on_a_decoder_trains_at_1e_3_and_says_so(tmp_path, capsys, monkeypatch):
    decoder = tiny_model_dir(tmp_path / "decoder", family="llama")
    run, groups_seen = default_run(tmp_path, decoder, monkeypatch, method="prompt_tuning")
    assert groups_seen[0]["prompt"] == 1e-3 and groups_seen[0]["head"] == 1e-2
    assert json.loads((run / "metrics.json").read_text())["lr_rule"]["backbone"] == "a text decoder"
    assert "lr: 0.001 (the prompt_tuning default on a text decoder: 0.001, in place of 0.01)" in capsys.readouterr().out


def test_a_default_mept_run_on_a_decoder_trains_at_the_decoder_lr_and_says_so(tmp_path, capsys, monkeypatch):
    run, groups_seen = default_run(tmp_path, tiny_model_dir(tmp_path / "decoder", family="llama"), monkeypatch)
    assert groups_seen[0]["prompt"] == 1e-3 and groups_seen[0]["head"] == 1e-2
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["lr"] == 1e-3 and metrics["lr_rule"]["backbone"] == "a text decoder"
    assert "lr: 0.001 (the mept default on a text decoder: 0.001, in place of 0.01 x min(1, 384 / width))" \
        in capsys.readouterr().out


def test_the_auto_lr_grid_holds_every_methods_default_on_every_kind_of_backbone():
    # `mept compare` searches it: a grid without the lr a default run trains at compares against a method that
    # was never tried as it ships (MEPT's fixed 3e-3..3e-2 was 30x above its 1e-4 decoder default of generation 5)
    for method in all_method_names():
        cfg = TrainConfig(method=method)
        for width, decoder in ((384, False), (768, False), (576, True)):
            grid = cfg.auto_lr_grid(width, decoder)
            assert cfg.default_lr(width, decoder) in grid and len(grid) == 3 and grid == sorted(grid), (method, width)
    mept_cfg = TrainConfig(method="mept")
    assert mept_cfg.auto_lr_grid(384) == [3e-3, 1e-2, 3e-2]  # MiniLM: the grid mept compare always searched
    assert mept_cfg.auto_lr_grid(768) == [1.5e-3, 5e-3, 1.5e-2]  # MPNet: the width rule's 5e-3 at the centre
    assert mept_cfg.auto_lr_grid(576, text_decoder=True) == [3e-4, 1e-3, 3e-3]  # SmolLM2: around 1e-3
    assert TrainConfig(method="lora").auto_lr_grid(576, text_decoder=True) == list(LoRAConfig.compare_lr_grid)


def test_lr_grid_auto_is_placed_from_the_backbone_a_run_names_and_recorded(tmp_path, capsys):
    decoder = tiny_model_dir(tmp_path / "decoder", family="llama")
    run = tmp_path / "run"
    assert main(["train", "--method", "mept", "--model", str(decoder), "--train-file", str(reviews(tmp_path / "r.csv", 24)),
                 "--experts", "2", "--prompt-length", "2", "--max-steps", "1", "--batch-size", "8", "--max-length", "16",
                 "--lr-grid", "auto", "--output", str(run)]) == 0
    assert "lr grid auto: 0.0003, 0.001, 0.003 (the method's small grid around its default lr on this backbone)" \
        in capsys.readouterr().err
    metrics = json.loads((run / "metrics.json").read_text())
    assert [point["lr"] for point in metrics["lr_grid"]] == [3e-4, 1e-3, 3e-3]
    assert sorted(p.name for p in run.glob("lr-*")) == ["lr-0.0003", "lr-0.001", "lr-0.003"]


def test_an_lr_grid_keyword_reads_the_method_of_a_config_file(tmp_path):
    # `--lr-grid paper` took the grid of the command line's --method (MEPT when none), not the run's: a config
    # file's method got MEPT's grid. Every keyword is now resolved from the finished settings.
    config = tmp_path / "run.json"
    config.write_text(json.dumps({"method": "lora"}))
    cfg = train_config_from_args(build_parser().parse_args(["train", "--config", str(config), "--lr-grid", "paper"]))
    assert cfg.method == "lora" and cfg.lr_grid == list(LoRAConfig.paper_lr_grid)
    args = build_parser().parse_args(["train", "--config", str(config), "--lr-grid", "auto"])  # minilm, 384 wide
    assert train_config_from_args(args).lr_grid == list(LoRAConfig.compare_lr_grid)


def test_each_generation_keeps_the_defaults_it_had():
    assert mept.MEPTConfig().router_input == "center"  # generation 2 (benchmarks/README.md section 9)
    generation_3 = {"attention_sink": False, "init": "xavier_normal"}  # the sink: every prompt method's
    assert defaults_of(mept.MEPTConfig, 1) == {"router_input": "layernorm", **generation_3}
    assert defaults_of(mept.MEPTConfig, 2) == generation_3
    assert defaults_of(mept.PTuningV2Config, 2) == generation_3
    assert defaults_of(mept.PromptTuningConfig, 2) == {"attention_sink": False}
    assert defaults_of(mept.MEPTConfig, DEFAULTS_GENERATION) == {}
    assert defaults_of(LoRAConfig, 1) == {}  # a baseline's config never changed a default
    assert TrainConfig(method="mept").method_defaults == DEFAULTS_GENERATION
    old = migrate_run_config({k: v for k, v in TrainConfig(method="mept").to_dict().items() if k != "method_defaults"})
    assert TrainConfig.from_dict(old).method_settings() == {"router_input": "layernorm", **generation_3}
    # what the old run set itself wins over the generation's default
    old["method_args"] = {"router_input": "standardize"}
    assert TrainConfig.from_dict(old).method_settings() == {"router_input": "standardize", **generation_3}


def test_a_run_saved_before_the_centred_router_resumes_and_evaluates_as_it_trained(tmp_path, capsys, monkeypatch):
    run = tmp_path / "old"
    args = ["train", "--method", "mept", "--experts", "2", "--prompt-length", "2", "--set", "router_input=layernorm",
            "--train-file", str(FIXTURES / "train.csv"), "--max-steps", "4", "--save-every", "1", "--batch-size", "8",
            "--max-length", "16", "--no-progress", "--output", str(run)]
    interrupt_training_at_step(monkeypatch, 3)
    assert main(args) == 130  # interrupted after two saved steps
    config = json.loads((run / "run_config.json").read_text())
    assert config["method_defaults"] == DEFAULTS_GENERATION
    del config["method_defaults"]  # as a run written before generation 2: it had no such key ...
    config["method_args"] = {}  # ... and trained the layer-normed router input as its default
    (run / "run_config.json").write_text(json.dumps(config))
    assert main(["train", "--resume", "--output", str(run), "--no-progress"]) == 0
    resumed = load_trained(run)
    assert resumed.model.prompt_config.router_input == "layernorm"
    assert main(["eval", str(run)]) == 0


def test_a_defaults_generation_this_mept_does_not_know_is_one_error_line_before_anything_is_written(
        tmp_path, capsys, monkeypatch):
    # a run saved by a newer mept (or a settings file with a made-up number) used to train with this version's
    # defaults while recording the other number; it is refused as an adapter of a newer format is
    for generation in (DEFAULTS_GENERATION + 1, 0):
        config = tmp_path / f"g{generation}.json"
        config.write_text(json.dumps({"method": "mept", "method_defaults": generation}))
        out = tmp_path / f"out{generation}"
        assert main(["train", "--config", str(config), "--max-steps", "1", "--output", str(out)]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith(f"error: {config}: method_defaults {generation} is not a defaults "
                                                   f"generation of this mept (1 to {DEFAULTS_GENERATION})"), err
        assert not out.exists()
    # a saved run whose run_config.json names a newer generation: eval and --resume refuse it, naming the file
    run, _ = default_run(tmp_path, tiny_model_dir(tmp_path / "decoder", family="llama"), monkeypatch)
    saved = json.loads((run / "run_config.json").read_text())
    (run / "run_config.json").write_text(json.dumps({**saved, "method_defaults": DEFAULTS_GENERATION + 1}))
    before = sorted(p.name for p in run.rglob("*"))
    capsys.readouterr()
    for argv in (["eval", str(run)], ["train", "--resume", "--output", str(run)]):
        assert main(argv) == 2, argv
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith(f"error: {run / 'run_config.json'}: method_defaults"), (argv, err)
    assert sorted(p.name for p in run.rglob("*")) == before
