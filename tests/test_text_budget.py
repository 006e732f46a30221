"""``--max-length`` is the number of *text* tokens, the same for every method; prompt slots come on top."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mept.cli import main
from mept.errors import MeptError
from mept.harness.prepare_run import prepare
from mept.harness.train_config import TrainConfig, migrate_run_config

FIXTURES = Path(__file__).parent / "fixtures" / "reviews"
LONG = " ".join(f"the plot of part {i} was slow but the acting stayed fine" for i in range(60))  # ~700 tokens


@pytest.fixture(scope="module")
def long_data(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("long")
    rows = [(LONG if i % 3 == 0 else f"short review number {i}", "positive" if i % 2 else "negative") for i in range(12)]
    (root / "long.csv").write_text("text,label\n" + "".join(f"{t},{lab}\n" for t, lab in rows))
    return root / "long.csv"


def test_every_method_sees_the_same_text_tokens_of_a_long_input(long_data):
    settings = {"prompt_tuning": {}, "ptuning_v2": {}, "mept": {"experts": 2}, "lora": {}}
    seen = {}
    for method, extra in settings.items():
        p = prepare(TrainConfig(method=method, train_file=str(long_data), max_length=40, progress=False, **extra))
        seen[method] = [f.input_ids for f in p.train]
        assert p.truncated["long/train"] > 0
    assert max(len(ids) for ids in seen["mept"]) == 40  # the text budget, whatever the slots
    assert seen["prompt_tuning"] == seen["ptuning_v2"] == seen["mept"] == seen["lora"]


def test_text_plus_slots_beyond_the_models_positions_is_one_clear_error(long_data):
    # P-Tuning v2's 100 slots + 512 text tokens do not fit MiniLM's 512 positions
    with pytest.raises(MeptError, match=r"need 612 positions, but minilm has 512; use --max-length 412"):
        prepare(TrainConfig(method="ptuning_v2", train_file=str(long_data), max_length=512, progress=False))
    prepare(TrainConfig(method="ptuning_v2", train_file=str(long_data), max_length=412, progress=False))


def test_runs_saved_before_the_change_keep_counting_the_slots(tmp_path, capsys):
    run = tmp_path / "old"
    assert main(["train", "--method", "prompt_tuning", "--prompt-length", "4", "--train-file",
                 str(FIXTURES / "train.csv"), "--max-steps", "1", "--batch-size", "8", "--max-length", "20",
                 "--no-progress", "--output", str(run)]) == 0
    config = json.loads((run / "run_config.json").read_text())
    assert config["max_length_counts_slots"] is False  # new runs say what their --max-length meant
    del config["max_length_counts_slots"]  # as a run written before the field existed
    (run / "run_config.json").write_text(json.dumps(config))
    assert migrate_run_config(config)["max_length_counts_slots"] is True
    from mept.harness.run_folder import load_trained

    assert load_trained(run).encoder.text_budget == 20 - 4  # the old meaning: slots counted in --max-length
    assert main(["eval", str(run)]) == 0
