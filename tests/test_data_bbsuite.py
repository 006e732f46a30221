"""bb-superglue: every SuperGLUE family has a BIG-bench stand-in with sound, seeded splits."""

from __future__ import annotations

from collections import Counter

import pytest

import mept.data  # noqa: F401  (registers tasks)
from mept.data import BB_SUPERGLUE, get_task, load_task, suite_tasks
from mept.data.bbsuite import VALIDATION_CAP
from mept.data.bigbench import tarball_path
from mept.errors import MeptError

FAMILY = {"bb-rte": "rte", "bb-cb": "cb", "bb-wsc": "wsc", "bb-boolq": "boolq", "bb-copa": "copa",
          "bb-multirc": "multirc"}
# Examples per task in bigbench 1.0.0 (social_iqa loses its four two-choice items).
TOTAL = {"bb-rte": 2000, "bb-cb": 735, "bb-wsc": 2865, "bb-boolq": 2290, "bb-copa": 1950, "bb-multirc": 1818}


def test_suite_lists_one_task_per_superglue_family():
    assert BB_SUPERGLUE == list(FAMILY)
    assert suite_tasks("bb-superglue") == BB_SUPERGLUE == suite_tasks("all")
    assert suite_tasks("superglue") == ["boolq", "cb", "copa", "multirc", "rte", "wic", "wsc"]
    assert suite_tasks("bb-cb") == ["bb-cb"]
    assert get_task("bb-cb").metric == "cb" and get_task("bb-multirc").metric == "multirc"
    with pytest.raises(MeptError, match="unknown task"):
        suite_tasks("glue")


@pytest.fixture(scope="module")
def suite():
    if not tarball_path().exists():
        pytest.skip(f"BIG-bench tarball not at {tarball_path()}")
    return {name: load_task(name, seed=0) for name in BB_SUPERGLUE}


@pytest.mark.parametrize("name", BB_SUPERGLUE)
def test_every_label_appears_in_train_and_validation(suite, name):
    n_labels = len(get_task(name).verbalizer)
    for split in ("train", "validation"):
        assert set(Counter(e.label for e in suite[name][split])) == set(range(n_labels)), split


@pytest.mark.parametrize("name", BB_SUPERGLUE)
def test_sizes_are_plausible_and_validation_is_capped(suite, name):
    train, val = suite[name]["train"], suite[name]["validation"]
    assert len(train) + len(val) == TOTAL[name]
    assert len(val) <= VALIDATION_CAP
    assert len(val) == min(VALIDATION_CAP, round(0.2 * TOTAL[name])) or name == "bb-multirc"
    assert 0.1 * TOTAL[name] <= len(val)


@pytest.mark.parametrize("name", BB_SUPERGLUE)
def test_text_has_the_family_prefix_and_target_is_the_verbalized_label(suite, name):
    spec = get_task(name)
    for ex in suite[name]["train"][:50]:
        assert ex.text.startswith(FAMILY[name] + " ")
        assert ex.target == spec.verbalizer[ex.label] and ex.task == name


@pytest.mark.parametrize("name", BB_SUPERGLUE)
def test_splits_are_disjoint_and_deterministic_per_seed(suite, name):
    train, val = suite[name]["train"], suite[name]["validation"]
    # BIG-bench has a few duplicate inputs, so compare positions, not text.
    assert not {id(e) for e in train} & {id(e) for e in val}
    again = load_task(name, seed=0)
    assert [e.text for e in again["validation"]] == [e.text for e in val]
    assert [e.text for e in load_task(name, seed=1)["validation"]] != [e.text for e in val]


def test_validation_is_stratified(suite):
    for name in ("bb-rte", "bb-cb", "bb-wsc", "bb-boolq", "bb-copa"):
        train, val = suite[name]["train"], suite[name]["validation"]
        full = Counter(e.label for e in train + val)
        held = Counter(e.label for e in val)
        for label, n in full.items():
            assert abs(held[label] / len(val) - n / (len(train) + len(val))) < 0.01, (name, label)


def test_bb_cb_drops_the_answer_cue_and_bb_copa_renders_three_choices(suite):
    assert not any(e.text.endswith("The answer is:") for e in suite["bb-cb"]["train"])
    ex = suite["bb-copa"]["train"][0]
    assert " choice1: " in f" {ex.text}" and " choice3: " in ex.text and " premise: " in ex.text


def test_bb_multirc_groups_answer_options_of_one_question(suite):
    splits = suite["bb-multirc"]
    groups = Counter(e.group for e in splits["train"] + splits["validation"])
    assert max(groups.values()) > 1 and len(groups) < TOTAL["bb-multirc"]
    assert {e.group for e in splits["train"]}.isdisjoint(e.group for e in splits["validation"])


def test_bb_tasks_reject_other_sources():
    with pytest.raises(MeptError, match="source .hub. not supported"):
        load_task("bb-rte", source="hub")
