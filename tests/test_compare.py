"""``mept compare``: every method through the same harness, one table, JSON / CSV / plot."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from mept.cli import main
from mept.errors import MeptError
from mept.harness.compare import CompareConfig, format_table, paired, summarise, train_command

FIXTURES = Path(__file__).parent / "fixtures" / "reviews"


def test_paired_difference_and_t_test():
    assert paired([50.0, 60.0], [50.0, 60.0])["p"] == 1.0
    # one seed: nothing to test
    assert paired([50.0], [55.0]) == {"difference": 5.0, "p": None, "ci_low": None, "ci_high": None}
    got = paired([50.0, 60.0, 70.0], [52.0, 61.0, 75.0])
    assert got["difference"] == pytest.approx(8 / 3)
    assert got["p"] == pytest.approx(0.156726, abs=1e-5)  # scipy.stats.ttest_rel([52, 61, 75], [50, 60, 70])
    assert got["ci_low"] < 0 < got["ci_high"]


def test_the_tables_tests_are_one_family_and_decided_uses_the_holm_adjusted_p():
    def row(method, test):
        return {"method": method, "validation": test, "test": test, "train_seconds": [1.0] * len(test),
                "trainable": 1, "activated": 1, "activated_prompt_tokens": 0, "lr": 0.01, "peak_memory_mb": 1.0}

    rows = summarise([row("mept", [60.0, 61.0, 62.0]), row("lora", [61.0, 62.1, 62.6]),
                      row("full", [59.0, 61.5, 62.2]), row("probe", [60.2, 61.1, 61.8])])
    lora = rows[1]
    assert lora["vs_reference_p"] < 0.05  # alone it would look decided
    assert lora["vs_reference_p_holm"] == pytest.approx(3 * lora["vs_reference_p"])  # smallest of 3 tests
    assert not lora["vs_reference_decided"] and rows[0]["vs_reference_p_holm"] is None
    assert f"Holm {lora['vs_reference_p_holm']:.3f})" in format_table(rows)


def test_each_method_gets_its_own_family_lr_grid_and_the_same_budget(tmp_path):
    cfg = CompareConfig(train_file=str(FIXTURES / "train.csv"), test_file=str(FIXTURES / "test.csv"),
                        output=str(tmp_path), methods=["mept", "lora", "full"], train_args=["--max-length", "64"])
    grids = {m: train_command(cfg, m) for m in cfg.methods}
    for method, cmd in grids.items():
        assert cmd[cmd.index("--max-length") + 1] == "64"
    # each run places its own family's grid around its default on the backbone (`--lr-grid auto`, resolved by
    # `mept train`: tests/test_method_defaults.py has the grids on each kind of backbone)
    assert all(cmd[cmd.index("--lr-grid") + 1 : cmd.index("--seed")] == ["auto"] for cmd in grids.values())


def test_a_plan_a_method_cannot_run_is_one_error_before_anything_is_written(tmp_path, capsys):
    # --format reaches every method's `mept train` (as --head does); a form the backbone cannot take is refused
    # by the plan check of every method before the comparison folder exists, not by a failed method inside it
    out = tmp_path / "cmp"
    assert main(["compare", "--train-file", str(FIXTURES / "train.csv"), "--test-file", str(FIXTURES / "test.csv"),
                 "--methods", "mept", "lora", "--format", "causal_lm", "--max-steps", "1", "--output", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --format causal_lm does not fit minilm") and err.count("\n") == 1
    assert not out.exists()


def test_head_and_output_form_reach_every_methods_run(tmp_path):
    from mept.cli import COMPARE_FORWARDED

    assert {"--head", "--head-pooling", "--format", "--mixed-precision"} <= set(COMPARE_FORWARDED)
    cfg = CompareConfig(train_file=str(FIXTURES / "train.csv"), test_file=str(FIXTURES / "test.csv"),
                        output=str(tmp_path), methods=["mept", "lora"], train_args=["--head", "linear"])
    assert all(train_command(cfg, m)[train_command(cfg, m).index("--head") + 1] == "linear" for m in cfg.methods)


def test_unknown_method_is_one_error():
    with pytest.raises(MeptError, match="unknown method\\(s\\) adapters"):
        CompareConfig(train_file=str(FIXTURES / "train.csv"), test_file=str(FIXTURES / "test.csv"), output="x",
                      methods=["mept", "adapters"])


def test_compare_end_to_end_writes_the_table_json_csv_and_plot(tmp_path, capsys):
    out = tmp_path / "cmp"
    assert main(["compare", "--train-file", str(FIXTURES / "train.csv"), "--test-file", str(FIXTURES / "test.csv"),
                 "--methods", "mept", "probe", "--seeds", "1", "2", "--max-steps", "2", "--eval-every", "1",
                 "--batch-size", "8", "--max-length", "32", "--output", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "| mept | 277,250 | 69,890 | 60 |" in printed and "| probe | 770 | 770 | 0 |" in printed and "(p=" in printed
    assert "; Holm " in printed
    rows = json.loads((out / "compare.json").read_text())["rows"]
    assert [r["method"] for r in rows] == ["mept", "probe"]
    assert all(len(r["test"]) == 2 and r["peak_memory_mb"] > 0 for r in rows)
    # the trained router's health is reported for the routed method only, per seed
    health = rows[0]["routing"]
    assert health["layers"] == 6 and len(health["collapsed_layers"]) == 2 and rows[1]["routing"] is None
    mept_line = next(line for line in printed.splitlines() if line.startswith("| mept |"))
    assert mept_line.endswith(" of 6 |") and next(
        line for line in printed.splitlines() if line.startswith("| probe |")).endswith("| - |")
    table = list(csv.DictReader((out / "compare.csv").open()))
    assert len(table) == 2 and table[0]["routed_layers"] == "6" and table[1]["routed_layers"] == ""
    assert (out / "compare.png").stat().st_size > 1000
    # two evaluations per run: each method's learning curve, printed, in compare.json and drawn
    assert "learning curves (validation, mean over seeds):" in printed and "mept: best mean validation" in printed
    curve = rows[0]["curve"]
    assert [p["step"] for p in curve["points"]] == [1, 2] and sorted(curve["per_seed"]) == ["1", "2"]
    assert all(p["train_seconds_mean"] > 0 for p in curve["points"])
    assert curve["best_step"] in (1, 2) and curve["still_rising"] == (curve["best_step"] == 2)
    assert table[0]["best_step"] == str(curve["best_step"])
    assert (out / "curves.png").stat().st_size > 10_000
