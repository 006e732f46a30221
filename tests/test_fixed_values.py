"""Every method, tiny BERT and Llama, fixed seed: the same losses (to 1e-5) and the same chosen experts.

A failure here means routing, injection or initialisation changed numbers. If that was intended,
run ``python tests/regen_fixed_values.py`` and commit the new tests/fixtures/fixed_values.json.

These values are fp32 whatever the machine: the cases run the Python API (``tests/fixed_values.py``)
with no autocast, so ``--mixed-precision auto`` (bf16 on hardware that has it) never reaches them.
"""

from __future__ import annotations

import json

import pytest

from mept.core.registry import method_names
from tests.fixed_values import FIXTURE, SETTINGS, TOLERANCE, case_names, run_case

EXPECTED = json.loads(FIXTURE.read_text())
REGEN = "if intended, run `python tests/regen_fixed_values.py`"


def test_every_method_has_fixed_values():
    assert sorted(SETTINGS) == method_names()
    assert sorted(EXPECTED) == sorted(case_names()), REGEN


@pytest.mark.parametrize("name", case_names())
def test_losses_and_chosen_experts_match_the_recorded_values(name):
    expected, got = EXPECTED[name], run_case(name)
    assert got["settings"] == expected["settings"], f"{name}: settings changed; {REGEN}"
    assert got["train_losses"] == pytest.approx(expected["train_losses"], abs=TOLERANCE), f"{name}: {REGEN}"
    assert got["eval_loss"] == pytest.approx(expected["eval_loss"], abs=TOLERANCE), f"{name}: {REGEN}"
    assert got["chosen"] == expected["chosen"], f"{name}: chosen experts changed; {REGEN}"
