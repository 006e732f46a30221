"""The paired test: Student-t tail probabilities against published values, and the verdict it prints."""

from __future__ import annotations

import math

import pytest

from mept.harness.stats import adjust_family, betainc, describe, holm, paired_test, t_ppf_two_sided, t_sf_two_sided


@pytest.mark.parametrize("t, df, p", [
    (12.706, 1, 0.05), (4.303, 2, 0.05), (9.925, 2, 0.01), (2.776, 4, 0.05), (2.228, 10, 0.05),
    (2.045, 29, 0.05), (1.96, 10_000, 0.05), (0.0, 5, 1.0),
])
def test_two_sided_t_tail_matches_the_tables(t, df, p):
    assert t_sf_two_sided(t, df) == pytest.approx(p, abs=2e-4)


def test_incomplete_beta_known_values():
    assert betainc(1, 1, 0.3) == pytest.approx(0.3)  # uniform
    assert betainc(1, 2, 0.3) == pytest.approx(1 - 0.7 ** 2)
    assert betainc(0.5, 0.5, 0.5) == pytest.approx(0.5)  # symmetric
    assert betainc(2, 3, 0.4) == pytest.approx(0.5248)  # scipy.special.betainc(2, 3, 0.4)


def test_critical_value_inverts_the_tail():
    assert t_ppf_two_sided(0.05, 2) == pytest.approx(4.3027, abs=1e-3)
    assert t_sf_two_sided(t_ppf_two_sided(0.01, 7), 7) == pytest.approx(0.01, rel=1e-6)


def test_paired_test_of_three_seeds():
    r = paired_test([70.1, 71.2, 69.8], [68.0, 70.5, 69.9])
    assert r["n"] == 3 and r["diffs"] == pytest.approx([2.1, 0.7, -0.1])
    assert r["mean_diff"] == pytest.approx(0.9)
    assert r["t"] == pytest.approx(1.39988, abs=1e-4)  # scipy.stats.ttest_rel: 1.39988, p 0.29650
    assert r["p_two_sided"] == pytest.approx(0.29650, abs=1e-4)
    assert r["ci_low"] < 0 < r["ci_high"] and not r["decided"]
    assert r["boot_low"] >= -0.1 - 1e-9 and r["boot_high"] <= 2.1 + 1e-9
    assert "3 seeds cannot decide" in describe(r, "MEPT", "P-Tuning v2")


def test_a_consistent_gain_over_many_seeds_is_decided():
    a = [80 + 0.1 * i for i in range(10)]
    b = [x - 2 - 0.05 * (-1) ** i for i, x in enumerate(a)]
    r = paired_test(a, b)
    assert r["decided"] and r["p_two_sided"] < 1e-6 and r["ci_low"] > 1.9
    assert "significant" in describe(r)


def test_edge_cases():
    assert math.isnan(paired_test([1.0], [0.0])["p_two_sided"])
    assert paired_test([2.0, 3.0], [1.0, 2.0])["p_two_sided"] == 0.0  # identical differences
    assert paired_test([1.0, 2.0], [1.0, 2.0])["p_two_sided"] == 1.0
    with pytest.raises(ValueError):
        paired_test([1.0], [1.0, 2.0])


def test_holm_matches_the_step_down_formula_by_hand():
    # statsmodels.stats.multitest.multipletests(p, method="holm")[1], worked by hand: sorted 0.005, 0.01,
    # 0.03, 0.04 times 4, 3, 2, 1 = 0.02, 0.03, 0.06, 0.04, then running maximum: 0.02, 0.03, 0.06, 0.06
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    # a table of five rows against one reference: the one raw p below 0.05 is not decided after Holm
    assert holm([0.023, 0.16, 0.34, 0.48, 0.87]) == pytest.approx([0.115, 0.64, 1.0, 1.0, 1.0])
    assert holm([0.2]) == [0.2] and holm([]) == []  # one test: nothing to adjust
    adjusted = holm([0.5, float("nan"), 0.01])  # a one-seed test is not counted in the family
    assert adjusted[0] == pytest.approx(0.5) and math.isnan(adjusted[1]) and adjusted[2] == pytest.approx(0.02)


def test_a_family_decides_on_the_adjusted_p():
    ref = [60.0, 61.0, 62.0]
    rows = {"a": ([61.0, 62.1, 62.6], ref), "b": ([59.0, 61.5, 62.2], ref), "c": ([60.2, 61.1, 61.8], ref)}
    tests = adjust_family({name: paired_test(a, b) for name, (a, b) in rows.items()})
    raw = paired_test(*rows["a"])
    assert raw["decided"] and raw["p_two_sided"] < 0.05  # alone, a looks decided
    assert tests["a"]["p_two_sided"] == raw["p_two_sided"]
    assert tests["a"]["p_holm"] == pytest.approx(min(1.0, 3 * raw["p_two_sided"]))
    assert tests["a"]["decided_raw"] and not tests["a"]["decided"] and tests["a"]["family_size"] == 3
    text = describe(tests["a"], "a", "ref")
    assert "Holm-adjusted p" in text and "cannot decide" in text
    assert adjust_family({"x": paired_test([1.0], [0.0])})["x"]["family_size"] == 0  # untestable: no family
