"""What a practitioner reports on their own CSV: the selection metric they chose, accuracy and
macro-F1 beside it, a per-class report and confusion matrix, and the classification head they chose.

Two small MiniLM runs on ``fixtures/reviews``: one selected by macro-F1 with the backbone's own
[CLS] pooler (``--head-pooling native``), one with the defaults. Every number is checked against
scikit-learn on the predictions ``mept predict`` writes with the same checkpoint.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import shutil
from pathlib import Path

import pytest
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, precision_recall_fscore_support

from mept.cli import build_parser, main
from mept.harness.run_folder import load_trained, read_config

FIXTURES = Path(__file__).parent / "fixtures" / "reviews"
RUN = ["--max-steps", "6", "--eval-every", "2", "--batch-size", "8", "--max-length", "64",
       "--experts", "2", "--prompt-length", "4", "--no-progress"]


def _train(out: Path, *extra: str) -> str:
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert main(["train", "--train-file", str(FIXTURES / "train.csv"), "--test-file", str(FIXTURES / "test.csv"),
                     "--output", str(out), *RUN, *extra]) == 0
    return printed.getvalue()


@pytest.fixture(scope="module")
def by_f1(tmp_path_factory):
    out = tmp_path_factory.mktemp("report") / "f1"
    return {"out": out, "printed": _train(out, "--metric", "macro_f1", "--head-pooling", "native")}


@pytest.fixture(scope="module")
def default(tmp_path_factory):
    out = tmp_path_factory.mktemp("report") / "default"
    return {"out": out, "printed": _train(out)}


def _json(path: Path) -> dict:
    return json.loads(path.read_text())


def _predicted(run: Path, file: Path, tmp_path: Path) -> tuple[list[str], list[str]]:
    """Gold and predicted label words of ``file``, from ``mept predict`` with the run's best checkpoint."""
    dest = tmp_path / "preds.csv"
    with contextlib.redirect_stdout(io.StringIO()):
        assert main(["predict", str(run), "--file", str(file), "--output", str(dest)]) == 0
    rows = list(csv.DictReader(open(dest, encoding="utf-8")))
    return [r["label"] for r in rows], [r["prediction"] for r in rows]


def test_metrics_json_has_accuracy_macro_f1_and_the_selection_metric_as_sklearn_computes_them(by_f1, tmp_path):
    m = _json(by_f1["out"] / "metrics.json")
    assert m["metric"] == "macro_f1"
    gold, pred = _predicted(by_f1["out"], FIXTURES / "test.csv", tmp_path)
    test = m["test"]["tasks"]["reviews"]
    assert test["accuracy"] == pytest.approx(100 * accuracy_score(gold, pred))
    assert test["macro_f1"] == pytest.approx(100 * f1_score(gold, pred, average="macro"))
    assert test["weighted_f1"] == pytest.approx(100 * f1_score(gold, pred, average="weighted"))
    assert m["test"]["average"] == pytest.approx(test["macro_f1"])  # the test average is of the chosen metric
    # the best checkpoint is the one with the best validation macro-F1
    val = m["tasks"]["reviews"]
    assert m["average"] == pytest.approx(val["macro_f1"]) and m["averages"]["accuracy"] == pytest.approx(val["accuracy"])
    assert m["best_step"] == max(m["history"], key=lambda h: h["validation"])["step"]
    assert _json(by_f1["out"] / "run_config.json")["metric"] == "macro_f1"


def test_summary_prints_accuracy_and_macro_f1_and_names_the_selection_metric(by_f1, default):
    m = _json(by_f1["out"] / "metrics.json")
    t = m["test"]["tasks"]["reviews"]
    printed = by_f1["printed"]
    assert f"accuracy {t['accuracy']:6.2f}  macro-F1 {t['macro_f1']:6.2f}" in printed
    assert "(first column: macro_f1, the metric that picks the best checkpoint)" in printed
    # the majority baseline is in the selection metric too: always "positive" has macro-F1 below 50
    assert m["majority"]["reviews"] < 50
    d = _json(default["out"] / "metrics.json")
    assert d["metric"] == "accuracy" and d["average"] == pytest.approx(d["tasks"]["reviews"]["accuracy"])
    assert "(first column: accuracy," in default["printed"]


def test_eval_file_writes_a_per_class_report_and_confusion_matrix_as_sklearn_computes_them(by_f1, tmp_path, capsys):
    assert main(["eval", str(by_f1["out"]), "--file", str(FIXTURES / "test.csv")]) == 0
    printed = capsys.readouterr().out
    result = _json(by_f1["out"] / "eval_file_test.json")
    report = result["reports"]["reviews"]
    assert result["tasks"]["reviews"] == _json(by_f1["out"] / "metrics.json")["test"]["tasks"]["reviews"]
    gold, pred = _predicted(by_f1["out"], FIXTURES / "test.csv", tmp_path)
    names = ["negative", "positive"]
    p, r, f, s = precision_recall_fscore_support(gold, pred, labels=names, zero_division=0)
    for i, name in enumerate(names):
        row = report["classes"][name]
        assert (row["precision"], row["recall"], row["f1"]) == pytest.approx((100 * p[i], 100 * r[i], 100 * f[i]))
        assert row["support"] == s[i]
    cm = report["confusion_matrix"]
    assert cm["labels"] == names and cm["matrix"] == confusion_matrix(gold, pred, labels=names).tolist()
    assert "confusion matrix (rows: gold, columns: predicted):" in printed and "precision" in printed
    # a test file is not validation data: the routing summary names the file
    assert "examples of test.csv" in printed and "validation" not in printed


def test_head_pooling_is_recorded_and_reloaded_by_eval_and_predict(by_f1, default, tmp_path):
    assert _json(by_f1["out"] / "run_config.json")["head_pooling"] == "native"
    assert _json(by_f1["out"] / "best" / "adapter_config.json")["head_pooling"] == "native"
    assert load_trained(by_f1["out"]).model.head_pooling == "native"
    assert _json(default["out"] / "run_config.json")["head_pooling"] == "mean"  # the default, written out
    # a run written before these settings existed reads as it trained: accuracy, mean pooling
    old = tmp_path / "old"
    shutil.copytree(default["out"], old)
    config = _json(old / "run_config.json")
    for key in ("metric", "head_pooling"):
        del config[key]
    (old / "run_config.json").write_text(json.dumps(config))
    assert read_config(old).metric == "accuracy"
    assert load_trained(old).model.head_pooling == "mean"
    with contextlib.redirect_stdout(io.StringIO()):  # and --resume accepts it: a setting it lacks cannot differ
        assert main(["train", "--resume", "--output", str(old)]) == 0


def test_help_explains_the_head_pooling_default():
    train = next(a for a in build_parser()._subparsers._group_actions[0].choices.values() if a.prog.endswith("train"))
    text = " ".join(train.format_help().split())  # argparse wraps lines
    assert "--head-pooling {mean,native}" in text and "MiniLM" in text and "mean pooling" in text


def test_metric_that_needs_classes_is_refused_for_generation_tasks(tmp_path, capsys):
    assert main(["train", "--task", "bb-arithmetic", "--format", "causal_lm", "--model", "smollm2", "--metric",
                 "macro_f1", "--output", str(tmp_path / "run"), "--max-steps", "1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: --metric macro_f1 scores classification tasks")


def test_params_with_num_labels_counts_what_the_run_trains(by_f1, capsys):
    assert main(["params", "--method", "mept", "--set", "num_experts=2", "prompt_length=4", "--num-labels", "2"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["trainable"] == _json(by_f1["out"] / "metrics.json")["trainable_params"]
    assert main(["params", "--method", "mept", "--set", "num_experts=2", "prompt_length=4"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["trainable"] < report["trainable"]  # no head
    assert "--num-labels" in captured.err
