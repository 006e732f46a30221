"""Metrics agree with hand-computed values and report ``score`` on the 0..100 scale."""

from __future__ import annotations

import pytest

from mept.data import compute_metrics
from mept.data.metrics import squad_em, squad_f1, squad_normalize
from mept.errors import MeptError


def test_accuracy():
    assert compute_metrics("accuracy", [1, 0, 1, 1], [1, 1, 1, 0]) == {"accuracy": 50.0, "score": 50.0}


def test_cb_is_the_mean_of_accuracy_and_macro_f1():
    # labels 0 0 1 2 vs preds 0 1 1 2 -> acc 3/4; F1 per class: 0: 2/3, 1: 2/3, 2: 1 -> macro 7/9
    m = compute_metrics("cb", [0, 1, 1, 2], [0, 0, 1, 2])
    assert m["accuracy"] == pytest.approx(75.0)
    assert m["f1"] == pytest.approx(100 * 7 / 9)
    assert m["score"] == pytest.approx((75.0 + 100 * 7 / 9) / 2)


def test_cb_macro_f1_only_counts_classes_that_occur():
    # class 2 never appears in labels or preds, so it does not drag the mean to zero
    m = compute_metrics("cb", [0, 1], [0, 1])
    assert m["f1"] == 100.0 and m["score"] == 100.0


def test_multirc_f1a_over_options_and_em_per_question():
    labels = [1, 0, 1, 0, 1, 1]
    preds = [1, 0, 1, 1, 1, 0]
    groups = ["q1", "q1", "q2", "q2", "q3", "q3"]
    # positives: tp=3 (idx 0,2,4), fp=1 (idx 3), fn=1 (idx 5) -> P=R=3/4, F1=3/4; only q1 fully right
    m = compute_metrics("multirc", preds, labels, groups)
    assert m["f1a"] == pytest.approx(75.0) and m["score"] == pytest.approx(75.0)
    assert m["em"] == pytest.approx(100 / 3)
    with pytest.raises(MeptError, match="groups"):
        compute_metrics("multirc", preds, labels)


def test_squad_normalisation_matches_the_official_script():
    assert squad_normalize("The  Eiffel-Tower!") == "eiffeltower"
    assert squad_normalize("an apple, a pear and the plum") == "apple pear and plum"


def test_squad_em_and_f1_take_the_best_gold_answer():
    assert squad_em("the Eiffel Tower", ["Eiffel Tower", "tower"]) == 1.0
    assert squad_em("Eiffel", ["Eiffel Tower"]) == 0.0
    # pred "eiffel" vs gold "eiffel tower": P=1, R=1/2 -> F1 2/3
    assert squad_f1("Eiffel", ["Eiffel Tower"]) == pytest.approx(2 / 3)
    assert squad_f1("big red tower", ["red tower in paris", "tower"]) == pytest.approx(2 * (2 / 3) * (2 / 4) / (2 / 3 + 2 / 4))
    assert squad_f1("nothing", ["Eiffel Tower"]) == 0.0


def test_squad_metric_averages_over_questions():
    m = compute_metrics("squad", ["Paris", "Eiffel"], [["paris", "Paris, France"], ["Eiffel Tower"]])
    assert m["exact_match"] == pytest.approx(50.0)
    assert m["f1"] == pytest.approx(100 * (1 + 2 / 3) / 2) and m["score"] == m["f1"]


def test_exact_match_for_generated_answers_keeps_signs_and_decimals():
    m = compute_metrics("exact_match", ["42", " -3.5.", "1,000", "35"], ["42", "-3.5", ["1000"], "-3.5"])
    assert m == {"exact_match": 75.0, "score": 75.0}


def test_bad_inputs_are_user_errors():
    with pytest.raises(MeptError, match="unknown metric 'bleu'"):
        compute_metrics("bleu", [1], [1])
    with pytest.raises(MeptError, match="2 predictions for 1 labels"):
        compute_metrics("accuracy", [1, 0], [1])
