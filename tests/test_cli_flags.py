"""A list flag given twice keeps both (``--set a=1 --set b=2``), a default list is replaced, never extended, and a
``--set`` key given twice with two values is one error line: the rule for every list flag of ``mept`` and of the
benchmark scripts (``mept.cli.flags.ListFlag``)."""

from __future__ import annotations

import argparse
import ast
import json
from pathlib import Path

import pytest
from conftest import cli, one_error

from mept.cli import build_parser
from mept.cli.flags import ListFlag

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def subparsers(parser: argparse.ArgumentParser):
    yield parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                yield from subparsers(child)


def test_every_optional_list_flag_of_mept_accumulates():
    lists = [(p.prog, a.option_strings[0], a) for p in subparsers(build_parser()) for a in p._actions
             if a.option_strings and a.nargs in ("+", "*")]
    assert len(lists) >= 7  # --set (train, params), --tasks (eval, analyze), --methods, --seeds, --lr-grid ...
    for prog, flag, action in lists:
        assert isinstance(action, ListFlag), f"{prog} {flag}"


def test_repeats_accumulate_and_a_default_is_replaced_not_extended():
    parser = build_parser()
    train = parser.parse_args(["train", "--set", "num_experts=4", "--set", "prompt_length=5", "shared=off"])
    assert train.method_args == ["num_experts=4", "prompt_length=5", "shared=off"]
    base = ["compare", "--train-file", "a.csv", "--test-file", "b.csv"]
    assert parser.parse_args(base).seeds == [1, 2, 3]
    assert parser.parse_args([*base, "--seeds", "4"]).seeds == [4]
    assert parser.parse_args([*base, "--seeds", "4", "--seeds", "5", "6"]).seeds == [4, 5, 6]
    assert parser.parse_args(base).seeds == [1, 2, 3]  # the default list itself is never extended
    grid = parser.parse_args(["train", "--lr-grid", "1e-3", "--lr-grid", "1e-2"])
    assert grid.lr_grid == ["1e-3", "1e-2"]  # numbers or keywords, read later


def test_two_set_flags_build_what_one_set_builds(capsys):
    # end to end: the parameter report counts the settings of both --set flags (the first used to be dropped)
    code, one, _ = cli(["params", "--set", "num_experts=4", "prompt_length=5"], capsys)
    assert code == 0
    code, two, _ = cli(["params", "--set", "num_experts=4", "--set", "prompt_length=5"], capsys)
    assert code == 0 and json.loads(two) == json.loads(one)
    code, default, _ = cli(["params"], capsys)
    assert json.loads(default)["prompt"] != json.loads(one)["prompt"]


def test_a_set_key_given_twice_with_two_values_is_one_error_line(capsys):
    code, _, err = cli(["params", "--set", "num_experts=4", "--set", "num_experts=6"], capsys)
    one_error(code, err, "--set num_experts is given twice", "give it once")
    code, out, _ = cli(["params", "--set", "num_experts=4", "num_experts=4"], capsys)
    assert code == 0 and json.loads(out)["method"] == "mept"


@pytest.mark.parametrize("script", sorted(BENCHMARKS.glob("*.py")), ids=lambda p: p.name)
def test_every_benchmark_list_flag_accumulates(script):
    for call in ast.walk(ast.parse(script.read_text())):
        if not (isinstance(call, ast.Call) and getattr(call.func, "attr", "") == "add_argument"):
            continue
        named = call.args and isinstance(call.args[0], ast.Constant) and str(call.args[0].value).startswith("-")
        keywords = {k.arg: k.value for k in call.keywords}
        nargs = keywords.get("nargs")
        if named and isinstance(nargs, ast.Constant) and nargs.value in ("+", "*"):
            action = keywords.get("action")
            assert isinstance(action, ast.Name) and action.id == "ListFlag", f"{script.name}:{call.lineno}"
