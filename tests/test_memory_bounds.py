"""One memory estimate before allocation (``mept.harness.memory.footprint`` / ``check_fits``, via ``check_plan``).

Issue 34: ``--experts 100000`` and ``mept params --num-labels 100000000`` allocated ~21 GB until the
kernel killed them (exit 137, a lock and a half-written run left), and ``--prompt-length 100000`` was
refused only after 48 s, suggesting ``--max-length -99488``. The model is now counted on torch's meta
device (no memory) and refused, with the figure, before anything is allocated or written.
"""

from __future__ import annotations

import json
import time

import pytest
from conftest import TINY, cli, copy_run, one_error, own_files

import mept.harness.memory
from mept.core.registry import make_config
from mept.harness.memory import available_bytes, footprint
from mept.model.backbones import backbone_config, load_backbone
from mept.model.prompted import get_model

GIB = 2**30


def refused_fast(args: list[str], capsys, *needles: str) -> float:
    start = time.perf_counter()
    code, _, err = cli(args, capsys)
    took = time.perf_counter() - start
    one_error(code, err, *needles)
    return took


def skip_if_it_would_fit(need_gib: float) -> None:
    if available_bytes().get("cpu", 0) > need_gib * GIB:
        pytest.skip(f"this machine has more than {need_gib} GiB available: it would fit")


def test_a_run_with_100000_experts_is_refused_with_the_figure_before_anything_is_written(tmp_path, capsys):
    skip_if_it_would_fit(38)
    out = tmp_path / "run"
    took = refused_fast(["train", *own_files(tmp_path / "d"), "--experts", "100000", "--max-steps", "1",
                         "--output", str(out), "--no-progress"], capsys,
                        "needs about 37.9 GiB of CPU memory", "2,534,423,810 trained", "is available")
    assert took < 10 and not out.exists() and not (tmp_path / ".run.lock").exists()


def test_params_with_a_hundred_million_classes_is_refused_with_the_figure(capsys):
    skip_if_it_would_fit(574)
    took = refused_fast(["params", "--num-labels", "100000000"], capsys, "needs about 573.8 GiB",
                        "38,500,276,480 trained")
    assert took < 10


def test_more_prompt_tokens_than_positions_is_refused_at_once_with_a_usable_suggestion(tmp_path, capsys):
    took = refused_fast(["train", *own_files(tmp_path / "d"), "--prompt-length", "100000", "--max-steps", "1",
                         "--output", str(tmp_path / "run"), *TINY[:4]], capsys,
                        "100000 prompt slots leave no room for text in minilm's 512 positions",
                        "--prompt-length 480 or less keeps --max-length 32")
    assert took < 10 and "--max-length -" not in capsys.readouterr().err


def test_a_lora_rank_of_a_million_is_refused_the_same_way(capsys):
    """A member of the family the issue does not list: a baseline, counted by the same estimate."""
    skip_if_it_would_fit(138)
    refused_fast(["params", "--method", "lora", "--set", "r=1000000"], capsys, "lora on minilm needs about 137.4 GiB")


def test_a_shared_run_asking_for_a_million_experts_is_refused_before_eval_allocates(own_run, tmp_path, capsys):
    """Another member: the settings come from a run folder, not from a flag."""
    skip_if_it_would_fit(400)
    run = copy_run(own_run, tmp_path)
    config = json.loads((run / "run_config.json").read_text())
    config["experts"] = 1_000_000
    (run / "run_config.json").write_text(json.dumps(config))
    refused_fast(["eval", str(run)], capsys, "mept on minilm needs about")


def test_what_cannot_fit_is_refused_whatever_the_machine(tmp_path, capsys, monkeypatch):
    """The refusal, pinned: with 100 MiB available, full fine-tuning of MiniLM (22.7M parameters, each with
    a gradient and two AdamW moments: 347 MiB) is refused; the probe (its head only) fits."""
    monkeypatch.setattr(mept.harness.memory, "available_bytes", lambda: {"cpu": 100 * 2**20})
    refused_fast(["params", "--method", "full", "--num-labels", "2"], capsys, "needs about 0.3 GiB",
                 "22,713,986 parameters", "0.1 GiB is available")
    assert cli(["params", "--method", "probe", "--num-labels", "2"], capsys)[0] == 0


@pytest.mark.parametrize("method, settings", [("mept", {"num_experts": 3}), ("ptuning_v2", {}), ("lora", {}),
                                              ("probe", {})])
def test_the_estimate_counts_exactly_what_is_built(method, settings):
    cfg = make_config(method, **settings)
    fp = footprint(backbone_config("minilm"), "cls", cfg, num_labels=5)
    model = get_model(load_backbone("minilm", "cls", num_labels=5).model, cfg)
    params = list(model.parameters())
    assert fp.params == sum(p.numel() for p in params)
    assert fp.trainable == sum(p.numel() for p in params if p.requires_grad)
    assert fp.slots == getattr(model, "num_slots", 0) and fp.max_positions == 512
