"""bb-diverse: the learnable offline mixture -- seven tasks of different kinds, sound seeded splits."""

from __future__ import annotations

from collections import Counter

import pytest

from mept.data import BB_DIVERSE, get_task, load_task, suite_tasks
from mept.data.bbsuite import VALIDATION_CAP
from mept.data.bigbench import tarball_path

PREFIX = {"bb-intent": "intent:", "bb-shapes": "shape:", "bb-navigate": "navigate:",
          "bb-implicatures": "implicature:", "bb-parens": "brackets:", "bb-sentiment": "sentiment:",
          "bb-fever": "claim:"}
# usable examples in bigbench 1.0.0 (sentiment and fever sampled to 1,000)
TOTAL = {"bb-intent": 693, "bb-shapes": 360, "bb-navigate": 1000, "bb-implicatures": 492, "bb-parens": 1000,
         "bb-sentiment": 1000, "bb-fever": 1000}


@pytest.fixture(scope="module")
def suite():
    if not tarball_path().exists():
        pytest.skip(f"BIG-bench tarball not at {tarball_path()}")
    return {name: load_task(name, seed=0) for name in BB_DIVERSE}


def test_suite_has_seven_tasks_with_their_own_answer_words():
    assert suite_tasks("bb-diverse") == BB_DIVERSE == list(PREFIX)
    assert get_task("bb-intent").verbalizer[1] == "book_restaurant"
    assert "bb-mnist" not in BB_DIVERSE and get_task("bb-mnist").verbalizer == tuple("0123456789")


@pytest.mark.parametrize("name", list(PREFIX))
def test_sizes_labels_prefix_and_targets(suite, name):
    train, val = suite[name]["train"], suite[name]["validation"]
    spec = get_task(name)
    assert len(train) + len(val) == TOTAL[name] and len(val) <= VALIDATION_CAP
    for split in (train, val):
        assert set(Counter(e.label for e in split)) == set(range(len(spec.verbalizer)))
    for ex in train[:50]:
        assert ex.text.startswith(PREFIX[name] + " ") and ex.target == spec.verbalizer[ex.label]
    assert not {id(e) for e in train} & {id(e) for e in val}
    assert [e.text for e in load_task(name, seed=0)["validation"]] == [e.text for e in val]


def test_cues_are_stripped(suite):
    assert not any("true or false" in e.text for e in suite["bb-fever"]["train"])
    assert not any(e.text.endswith("draws a") for e in suite["bb-shapes"]["train"])
    assert not any("Utterance:" in e.text for e in suite["bb-intent"]["train"])
