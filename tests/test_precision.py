"""``--mixed-precision``: auto picks bf16 only where it is native; a bf16 run is consistent end to end.

The project's machines differ: on an AVX2-only CPU bf16 is emulated and ~14x slower than fp32, so the runs
here use tiny budgets; the hardware is faked where a test needs "native bf16" or its absence (``cpu_flags``).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from conftest import interrupt_training_at_step

import mept.harness.precision as precision
from mept.cli import main
from mept.core.routing import Router
from mept.errors import MeptError
from mept.harness.train_config import TrainConfig, migrate_run_config

FIXTURES = Path(__file__).parent / "fixtures" / "reviews"
TINY = ["--train-file", str(FIXTURES / "train.csv"), "--test-file", str(FIXTURES / "test.csv"), "--batch-size", "4",
        "--max-length", "24", "--experts", "2", "--prompt-length", "2", "--eval-every", "2", "--save-every", "1",
        "--no-progress"]


@pytest.fixture
def native_cpu_bf16(monkeypatch):
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)
    monkeypatch.delenv("DNNL_MAX_CPU_ISA", raising=False)
    monkeypatch.setattr(precision, "cpu_flags", lambda: {"avx2", "avx512f", "avx512_bf16"})


def test_auto_is_bf16_only_where_the_cpu_computes_it_natively(monkeypatch, native_cpu_bf16):
    assert precision.resolve_precision("auto", "cpu")[0] == "bf16"
    monkeypatch.setattr(precision, "cpu_flags", lambda: {"avx2", "amx_bf16"})
    assert precision.resolve_precision("auto", "cpu")[0] == "bf16"
    monkeypatch.setattr(precision, "cpu_flags", lambda: {"avx", "avx2", "avx512f"})  # bf16 would be emulated
    ran, why = precision.resolve_precision("auto", "cpu")
    assert ran == "no" and "emulated" in why


def test_onednn_isa_cap_forces_the_fp32_fallback(monkeypatch, native_cpu_bf16):
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX512_CORE")
    ran, why = precision.resolve_precision("auto", "cpu")
    assert ran == "no" and "ONEDNN_MAX_CPU_ISA" in why
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX512_CORE_AMX")
    assert precision.resolve_precision("auto", "cpu")[0] == "bf16"


def test_explicit_settings_keep_their_meaning_and_fp16_needs_cuda():
    assert precision.resolve_precision("no", "cpu")[0] == "no"
    assert precision.resolve_precision("bf16", "cpu")[0] == "bf16"
    with pytest.raises(MeptError, match="fp16 needs a CUDA GPU"):
        precision.resolve_precision("fp16", "cpu")
    with pytest.raises(MeptError, match="mixed_precision must be one of auto"):
        TrainConfig(mixed_precision="half")
    assert TrainConfig().mixed_precision == "auto"


def test_router_decides_in_fp32_inside_bf16_autocast():
    torch.manual_seed(0)
    router = Router(384, 10)
    x = torch.randn(64, 384)
    plain = router(x)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        cast = router(x)
    assert cast.logits.dtype == torch.float32 and cast.probs.dtype == torch.float32
    assert torch.equal(cast.chosen, plain.chosen) and torch.equal(cast.logits, plain.logits)


def test_runs_saved_before_auto_ran_in_what_they_asked_for():
    assert migrate_run_config({"mixed_precision": "bf16"})["mixed_precision_ran"] == "bf16"
    old = migrate_run_config({})  # older than the flag's default change: fp32 was the default
    assert old["mixed_precision"] == "no" and old["mixed_precision_ran"] == "no"
    assert "mixed_precision_ran" not in migrate_run_config({"mixed_precision": "auto"})


def test_auto_records_what_was_asked_and_what_ran(tmp_path, native_cpu_bf16, capsys):
    out = tmp_path / "run"
    assert main(["train", *TINY, "--max-steps", "2", "--output", str(out)]) == 0
    config = json.loads((out / "run_config.json").read_text())
    assert config["mixed_precision"] == "auto" and config["mixed_precision_ran"] == "bf16"
    record = json.loads((out / "metrics.json").read_text())["precision"]
    assert record["asked"] == "auto" and record["ran"] == "bf16" and "avx512_bf16" in record["why"]
    assert "precision: bf16 autocast" in capsys.readouterr().out


@pytest.fixture(scope="module")
def bf16_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("bf16") / "run"
    assert main(["train", *TINY, "--max-steps", "4", "--mixed-precision", "bf16", "--output", str(out)]) == 0
    return out


def test_eval_and_predict_of_a_bf16_run_reproduce_its_own_test_score(bf16_run, tmp_path):
    reported = json.loads((bf16_run / "metrics.json").read_text())
    assert reported["precision"]["ran"] == "bf16"
    assert main(["eval", str(bf16_run), "--split", "test"]) == 0
    again = json.loads((bf16_run / "eval_test_reviews.json").read_text())
    assert again["tasks"] == reported["test"]["tasks"]
    preds = tmp_path / "preds.jsonl"
    assert main(["predict", str(bf16_run), "--file", str(FIXTURES / "test.csv"), "--output", str(preds)]) == 0
    rows = [json.loads(line) for line in preds.read_text().splitlines()]
    gold = [line.rsplit(",", 1)[1].strip() for line in (FIXTURES / "test.csv").read_text().splitlines()[1:]]
    accuracy = 100 * sum(r["prediction"] == g for r, g in zip(rows, gold)) / len(gold)
    assert accuracy == pytest.approx(reported["test"]["tasks"]["reviews"]["accuracy"])


def test_resumed_bf16_run_is_bit_identical_to_an_uninterrupted_one(bf16_run, tmp_path, monkeypatch):
    run = tmp_path / "run"
    interrupt_training_at_step(monkeypatch, 3)
    assert main(["train", *TINY, "--max-steps", "4", "--mixed-precision", "bf16", "--output", str(run)]) == 130
    assert main(["train", "--resume", "--output", str(run), "--no-progress"]) == 0
    resumed, straight = (json.loads((r / "metrics.json").read_text()) for r in (run, bf16_run))
    assert resumed["history"] == straight["history"] and resumed["test"] == straight["test"]
    assert json.loads((run / "run_config.json").read_text())["mixed_precision_ran"] == "bf16"


def test_adapters_move_between_precisions_with_fp32_weights(bf16_run):
    from safetensors.torch import load_file

    import mept
    from mept.model.backbones import load_backbone

    saved = load_file(str(bf16_run / "best" / "adapter_model.safetensors"))
    # master weights and the centred router's running statistics, never bf16 copies (its update count is an integer)
    assert saved and all(t.dtype == torch.float32 for t in saved.values() if t.is_floating_point())
    model = mept.load(load_backbone("minilm", "cls", num_labels=2).model, bf16_run / "best")  # into an fp32 model
    loaded = model.adapter_state_dict()
    assert loaded.keys() == saved.keys()
    assert all(loaded[k].dtype == saved[k].dtype and torch.equal(loaded[k], saved[k]) for k in saved)


def test_prompt_trainer_turns_bf16_on_under_auto_and_leaves_explicit_arguments(tmp_path, minilm, native_cpu_bf16):
    from transformers import TrainingArguments

    import mept
    from mept.harness.trainer import PromptTrainer

    model = mept.get_model(minilm.model, mept.make_config("prompt_tuning", prompt_length=2))
    try:
        args = TrainingArguments(output_dir=str(tmp_path / "a"), use_cpu=True, report_to=[])
        PromptTrainer(model=model, args=args)
        assert args.bf16
        fp32 = TrainingArguments(output_dir=str(tmp_path / "b"), use_cpu=True, report_to=[])
        PromptTrainer(model=model, args=fp32, mixed_precision="no")
        assert not fp32.bf16
    finally:
        model.unload()  # the session's MiniLM stays bare for the tests after this one (test_prompted_model)
