"""Generation tasks from BIG-bench: QA answers, MathQA options, arithmetic targets, and the seeded split."""

from __future__ import annotations

import re
from collections import Counter

import pytest
from conftest import needs_bigbench

from mept.data import bigbench, generation
from mept.data.examples import Example
from mept.data.generation import (
    MATHQA_LETTERS,
    MAX_TRAIN,
    MAX_VALIDATION,
    load_arithmetic,
    load_disflqa,
    load_mathqa,
    load_quoref,
    split_train_validation,
)
from mept.data.registry import get_task, load_task

LOADERS = {
    "bb-disflqa": load_disflqa,
    "bb-quoref": load_quoref,
    "bb-mathqa": load_mathqa,
    "bb-arithmetic": load_arithmetic,
}


@pytest.fixture(scope="module")
def loaded() -> dict:
    if not bigbench.tarball_path().exists():
        pytest.skip("BIG-bench tarball not downloaded")
    return {name: load(seed=0) for name, load in LOADERS.items()}


def _key(example: Example) -> tuple[str, str]:
    return example.text, example.target


# ---------------------------------------------------------------- the split itself


def _toy(n: int, group_size: int = 1) -> list[Example]:
    return [
        Example(text=f"q{i}", label=-1, target=str(i), task="toy", group=f"g{i // group_size}", answers=[str(i)])
        for i in range(n)
    ]


def test_split_keeps_groups_together_and_holds_out_about_a_fifth():
    splits = split_train_validation(_toy(100, group_size=7), seed=0)
    assert 14 <= len(splits["validation"]) <= 21
    assert len(splits["train"]) + len(splits["validation"]) == 100
    assert not {e.group for e in splits["train"]} & {e.group for e in splits["validation"]}


def test_split_caps_both_sizes_and_is_seeded():
    splits = split_train_validation(_toy(10_000), seed=1)
    assert len(splits["validation"]) == MAX_VALIDATION and len(splits["train"]) == MAX_TRAIN
    same = split_train_validation(_toy(10_000), seed=1)
    other = split_train_validation(_toy(10_000), seed=2)
    assert [e.text for e in splits["validation"]] == [e.text for e in same["validation"]]
    assert [e.text for e in splits["validation"]] != [e.text for e in other["validation"]]


# ---------------------------------------------------------------- every task


@needs_bigbench
@pytest.mark.parametrize("name", sorted(LOADERS))
def test_task_loads_with_answers_and_bounded_sizes(loaded, name):
    splits = loaded[name]
    spec = get_task(name)
    assert set(splits) == {"train", "validation"}
    assert 0 < len(splits["validation"]) <= MAX_VALIDATION and 0 < len(splits["train"]) <= MAX_TRAIN
    for example in splits["train"] + splits["validation"]:
        assert example.task == name and example.text
        assert example.answers and all(a.strip() for a in example.answers)
        assert example.target == example.answers[0]
        if spec.kind == "generation":
            assert example.label == -1
        else:
            assert example.target == spec.verbalizer[example.label]


@needs_bigbench
@pytest.mark.parametrize("name", sorted(LOADERS))
def test_task_split_is_deterministic_per_seed(loaded, name):
    again = LOADERS[name](seed=0)
    other = LOADERS[name](seed=1)
    for split in ("train", "validation"):
        assert [_key(e) for e in again[split]] == [_key(e) for e in loaded[name][split]]
    assert [_key(e) for e in other["validation"]] != [_key(e) for e in again["validation"]]


@needs_bigbench
@pytest.mark.parametrize("name", sorted(LOADERS))
def test_train_and_validation_share_no_input(loaded, name):
    train = {e.text for e in loaded[name]["train"]}
    assert not train & {e.text for e in loaded[name]["validation"]}


@needs_bigbench
@pytest.mark.parametrize("name", ["bb-disflqa", "bb-quoref"])
def test_qa_answers_are_spans_of_a_context_never_seen_in_train(loaded, name):
    def context(e: Example) -> str:
        return e.text.split(" context: ", 1)[1]

    splits = loaded[name]
    for example in splits["validation"]:
        assert example.text.startswith("question: ")
        assert generation.DISFLQA_UNANSWERABLE not in example.answers, "unanswerable questions are dropped"
        assert any(answer in context(example) for answer in example.answers)
    assert not {context(e) for e in splits["train"]} & {context(e) for e in splits["validation"]}


@needs_bigbench
def test_quoref_answers_lose_the_trailing_period(loaded):
    assert not any(a.endswith(".") for e in loaded["bb-quoref"]["train"] for a in e.answers)


@needs_bigbench
def test_mathqa_renders_five_lettered_options_and_labels_the_correct_one(loaded):
    source = bigbench.read_task("elementary_math_qa/question_only")["examples"]
    correct = {}
    for item in source:
        scores = item["target_scores"]
        if len(scores) == 5:
            correct[item["input"].strip()] = max(scores, key=scores.get)
    splits = loaded["bb-mathqa"]
    for example in splits["validation"][:100]:
        question, options = re.fullmatch(r"question: (.*) options: (.*)", example.text).groups()
        parsed = dict(re.findall(r"\((\w)\) (.*?)(?= \(\w\) |$)", options))
        assert list(parsed) == list(MATHQA_LETTERS)
        assert parsed[example.target] == correct[question]
    assert len(Counter(e.label for e in splits["train"])) == 5


@needs_bigbench
def test_arithmetic_targets_are_the_right_numbers(loaded):
    ops = {"plus": lambda a, b: a + b, "minus": lambda a, b: a - b, "times": lambda a, b: a * b}
    seen_ops = set()
    for example in loaded["bb-arithmetic"]["train"] + loaded["bb-arithmetic"]["validation"]:
        a, op, b = re.fullmatch(r"What is (-?\d+) (plus|minus|times) (-?\d+)\?", example.text).groups()
        assert example.target == str(ops[op](int(a), int(b)))
        seen_ops.add(op)
    assert seen_ops == set(ops)


@needs_bigbench
def test_registered_tasks_load_through_the_registry():
    splits = load_task("bb-arithmetic", seed=0)
    assert [_key(e) for e in splits["validation"]] == [_key(e) for e in load_arithmetic(seed=0)["validation"]]
    assert get_task("bb-mathqa").verbalizer == ("a", "b", "c", "d", "e")
    assert get_task("bb-disflqa").metric == "squad" and get_task("bb-arithmetic").metric == "exact_match"
    assert generation.BB_QUOREF.kind == "generation"
