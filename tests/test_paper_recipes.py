"""The paper recipes: every command they print parses as ``mept train`` and runs the paper's settings.

``benchmarks/paper_t5.py`` needs a GPU and the hub; its ``--dry-run`` is what can be checked offline.
``benchmarks/paper_tables.py``: every ablation row differs from its reference in exactly one setting.
"""

from __future__ import annotations

import argparse
import shlex
import statistics
import sys
from pathlib import Path

import pytest

import mept
from mept.cli import build_parser, train_config_from_args
from mept.methods.mept import MEPTConfig

sys.path.insert(0, str(Path(__file__).parent.parent / "benchmarks"))
import paper_numbers  # noqa: E402
import paper_t5  # noqa: E402
import paper_tables  # noqa: E402


def dry_run(capsys, *flags: str) -> list[list[str]]:
    paper_t5.main(["--dry-run", "--output", "/nonexistent/runs", *flags])
    lines = [line for line in capsys.readouterr().out.splitlines() if line.strip()]
    return [shlex.split(line) for line in lines]


@pytest.mark.parametrize("flags", [("--table", "1"), ("--table", "6"), ("--table", "1", "--backbone", "t5-large"),
                                   ("--table", "1", "--backbone", "llama-3.2-1b", "--seeds", "1", "2", "3", "4", "5")])
def test_every_recipe_command_parses_and_uses_the_papers_settings(capsys, flags):
    commands = dry_run(capsys, *flags)
    assert commands
    for argv in commands:
        assert argv[:2] == ["mept", "train"] and "--paper" in argv
        cfg = train_config_from_args(build_parser().parse_args(argv[1:]))
        assert cfg.paper and cfg.max_length == 512 and cfg.epochs == 70
        assert cfg.lr_grid == list(mept.make_config(cfg.method).paper_lr_grid)
        if cfg.method == "mept":
            method = mept.make_config("mept", **cfg.method_settings())
            assert method == MEPTConfig.paper()  # balance_loss 0, top-1, one shared expert, Xavier normal
            assert method.balance_loss == 0


def test_table1_runs_vfpt_and_table6_runs_all_four_mixture_methods(capsys):
    table1 = {argv[argv.index("--method") + 1] for argv in dry_run(capsys, "--table", "1")}
    assert table1 == {"prompt_tuning", "ptuning_v2", "smop", "vfpt", "mept"}
    table6 = dry_run(capsys, "--table", "6")
    assert {argv[argv.index("--method") + 1] for argv in table6} == {"prompt_tuning", "ptuning_v2", "smop", "mept"}
    assert all(argv[argv.index("--tasks") + 1:argv.index("--tasks") + 7] == list(paper_numbers.SUPERGLUE6)
               for argv in table6)


def test_paper_numbers_match_the_papers_averages():
    t1 = paper_numbers.TABLE1["t5-base"]
    assert statistics.fmean(t1["mept"][t] for t in paper_numbers.SUPERGLUE6) == pytest.approx(78.03, abs=0.01)
    assert statistics.fmean(t1["ptuning_v2"][t] for t in paper_numbers.SUPERGLUE6) == pytest.approx(76.94, abs=0.01)
    assert statistics.fmean(paper_numbers.TABLE6["mept"][t] for t in paper_numbers.SUPERGLUE6) == pytest.approx(75.8, abs=0.05)
    assert paper_t5.PAPER["1"]["t5-large"]["mept"]["cb"] == 97.61


def test_ablation_rows_change_exactly_one_setting_of_the_papers_mept():
    reference = mept.make_config("mept", **paper_tables.PAPER_MEPT).to_dict()
    assert mept.make_config("mept", **paper_tables.PAPER_MEPT) == MEPTConfig.paper()
    for name, change in paper_tables.ROUTING_ROWS.items():
        row = mept.make_config("mept", **{**paper_tables.PAPER_MEPT, **change}).to_dict()
        differ = {k for k in row if row[k] != reference[k]}
        assert len(differ) == (0 if name == "top1" else 1), (name, differ)
    extra = mept.make_config("mept", **{**paper_tables.PAPER_MEPT, "balance_loss": 0.01}).to_dict()
    assert {k for k in extra if extra[k] != reference[k]} == {"balance_loss"}  # Table 3's extra row: one change
    # the library default differs in our three router settings and two decoder settings; "auto" is the paper's 1
    # router lr scale on MiniLM, the tables' backbone, and the paper's Xavier init on any encoder
    default = mept.make_config("mept", **paper_tables.METHODS["mept"])
    assert {k for k, v in default.to_dict().items() if v != reference[k]} == {"balance_loss", "router_lr_scale",
                                                                              "router_input", "attention_sink", "init"}
    assert default.router_lr_scale_for(384) == 1.0


def test_every_paper_table_has_a_runner():
    bench = paper_tables.Bench(type("A", (), {"out": "x", "reference": "paper"})())
    assert all(callable(getattr(bench, f"table{t}")) for t in paper_tables.TABLES)
    assert {"2", "3", "4", "5", "10", "11", "13", "16"} <= set(paper_tables.TABLES)


@pytest.mark.parametrize("layers, expected", [
    (12, ["1", "1-3", "1-6", "1-9", "all", "7-12", "12"]),  # the paper's own depths
    (6, ["1", "1-2", "1-3", "1-5", "all", "4-6", "6"]),  # MiniLM: the same fractions of its stack
    (24, ["1-2", "1-6", "1-12", "1-18", "all", "13-24", "23-24"]),
])
def test_table2_depths_are_the_papers_fractions_of_the_stack(layers, expected):
    depths = ("1", "1-3", "1-6", "1-9", "1-12", "7-12", "12")
    assert [paper_tables._scaled_layers(d, layers) for d in depths] == expected
    config = mept.make_config("mept", layers=paper_tables._scaled_layers("7-12", layers))
    assert config.layers == expected[5]  # every mapped depth is a layer spec MEPTConfig takes


def test_skipped_rows_are_not_trained_but_the_reference_is(monkeypatch):
    args = argparse.Namespace(out="x", reference="paper", skip=["shared off", "top1"])
    bench, trained = paper_tables.Bench(args), []
    monkeypatch.setattr(bench, "train", lambda **spec: trained.append(spec["name"]) or {
        "summary": {"average": {"mean": 1.0, "std": 0.0}}, "seeds": [{"average": 1.0}]})
    monkeypatch.setattr(paper_tables, "describe", lambda *a: "")
    bench.ablation("3", "t", {"top1": {"name": "ref"}, "shared off": {"name": "off"}, "dense": {"name": "dense"}},
                   "top1", {}, ("CB",))
    assert trained == ["ref", "dense"]


def test_table16_pairs_mept_with_each_baseline_in_every_column(monkeypatch):
    args = argparse.Namespace(out="x", reference="paper", cross_target="t", cross_source="s", tasks=["s", "t"], steps=1)
    bench = paper_tables.Bench(args)
    score = {"prompt_tuning": 50.0, "ptuning_v2": 60.0}

    def fake_train(name, method, *rest, **kw):
        return {"seeds": [{"tasks": {"t": {"score": score.get(method, 55.0) + s}}} for s in (1.0, 2.0, 4.0)]}

    monkeypatch.setattr(bench, "train", fake_train)
    bench.table16()
    paired = bench.results["table16"]["paired"]
    assert len(paired) == 6  # 2 baselines x 3 columns
    assert paired["mept vs prompt_tuning (t -> t)"]["mean_diff"] == pytest.approx(5.0)
    assert paired["mept vs ptuning_v2 (all -> t)"]["mean_diff"] == pytest.approx(-5.0)


def test_paper_search_recipe_searches_mept_and_keeps_our_fixed_setting_apart(capsys):
    searched = dry_run(capsys, "--table", "1", "--methods", "mept", "ptuning_v2", "--paper-search")
    mept_runs = [argv for argv in searched if argv[argv.index("--method") + 1] == "mept"]
    for argv in mept_runs:
        cfg = train_config_from_args(build_parser().parse_args(argv[1:]))
        assert cfg.paper_search and cfg.prompt_length is None and "--prompt-length" not in argv
        assert "mept-paper-search" in argv[argv.index("--output") + 1]
    ptv2 = next(argv for argv in searched if argv[argv.index("--method") + 1] == "ptuning_v2")
    assert ptv2[ptv2.index("--prompt-length") + 1] == "100"  # the paper's (Appendix B.6)
    fixed = dry_run(capsys, "--table", "1", "--methods", "mept")
    assert all(argv[argv.index("--experts") + 1] == "10" and "--paper-search" not in argv for argv in fixed)


def test_recipe_prints_the_papers_averages_as_printed(capsys, tmp_path):
    paper_t5.main(["--collect", "--backbone", "llama-3.2-1b", "--methods", "prompt_tuning", "mept",
                   "--output", str(tmp_path)])
    out = capsys.readouterr().out
    assert "| 56.94 (printed; its cells average 58.103) |" in out and "| 63.00 |" in out
    paper_t5.main(["--collect", "--methods", "mept", "--tasks", "rte", "cb", "--output", str(tmp_path)])
    assert "87.2 (mean of these cells)" in capsys.readouterr().out  # (83.52 + 90.92) / 2 for a subset
