"""Task metrics, reported on the 0..100 scale papers use, each with a headline ``score``.

``score`` is the one number a results table shows per task (SuperGLUE's
convention): accuracy; the mean of accuracy and macro-F1 for CB; F1a for
MultiRC; token F1 for SQuAD-style QA; normalised exact match for generated
answers. Every other key is reported beside it on the same scale.
"""

from __future__ import annotations

import re
import string
from collections import Counter, defaultdict
from typing import Callable, Sequence

from mept.errors import MeptError


def _accuracy(preds: Sequence, labels: Sequence, groups: Sequence | None) -> dict[str, float]:
    from sklearn.metrics import accuracy_score  # scikit-learn is imported where it is used: `import mept` stays light

    acc = 100.0 * accuracy_score(labels, preds)
    return {"accuracy": acc, "score": acc}


def _cb(preds: Sequence, labels: Sequence, groups: Sequence | None) -> dict[str, float]:
    """CB: macro-F1 over the classes seen in labels or predictions, averaged with accuracy."""
    from sklearn.metrics import accuracy_score, f1_score

    present = sorted(set(labels) | set(preds))
    acc = 100.0 * accuracy_score(labels, preds)
    f1 = 100.0 * f1_score(labels, preds, labels=present, average="macro", zero_division=0)
    return {"accuracy": acc, "f1": f1, "score": (acc + f1) / 2}


def _multirc(preds: Sequence, labels: Sequence, groups: Sequence | None) -> dict[str, float]:
    """MultiRC: F1 of the "true" class over all answer options (F1a) and exact match per question.

    F1a as MultiRC (Khashabi et al. 2018) and SuperGLUE define it: the F1 of the positive class over
    all answer options. The MEPT paper's Table 7 calls its MRC column "F1a" and defines F1a as "the
    macro F1 score", and the authors' code computes a macro-F1 over label strings. We keep the
    official F1a (ours), because that is the score the name means in MultiRC and SuperGLUE; our MultiRC
    scores are therefore not comparable cell for cell with the MEPT paper's.
    """
    if groups is None:
        raise MeptError("metric 'multirc' needs groups (the question id of every answer option)")
    if len(groups) != len(labels):
        raise MeptError(f"metric 'multirc': {len(groups)} groups for {len(labels)} labels")
    from sklearn.metrics import f1_score

    f1a = 100.0 * f1_score(labels, preds, pos_label=1, average="binary", zero_division=0)
    all_right: dict[object, bool] = defaultdict(lambda: True)
    for p, y, g in zip(preds, labels, groups):
        all_right[g] = all_right[g] and p == y
    em = 100.0 * sum(all_right.values()) / len(all_right)
    return {"f1a": f1a, "em": em, "score": f1a}


def squad_normalize(text: str) -> str:
    """SQuAD v1.1 answer normalisation: lowercase, drop punctuation and articles, squash spaces."""
    text = text.lower()
    text = "".join(ch for ch in text if ch not in set(string.punctuation))
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


def _token_f1(pred: str, gold: str) -> float:
    pred_tokens, gold_tokens = squad_normalize(pred).split(), squad_normalize(gold).split()
    common = sum((Counter(pred_tokens) & Counter(gold_tokens)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(pred_tokens), common / len(gold_tokens)
    return 2 * precision * recall / (precision + recall)


def _answers(answers: str | Sequence[str]) -> list[str]:
    return [answers] if isinstance(answers, str) else list(answers)


def squad_em(pred: str, answers: str | Sequence[str]) -> float:
    """1.0 if the normalised prediction equals any normalised gold answer, else 0.0."""
    return float(any(squad_normalize(pred) == squad_normalize(a) for a in _answers(answers)))


def squad_f1(pred: str, answers: str | Sequence[str]) -> float:
    """Best token-overlap F1 (0..1) between the prediction and any gold answer."""
    return max((_token_f1(pred, a) for a in _answers(answers)), default=0.0)


def _squad(preds: Sequence, labels: Sequence, groups: Sequence | None) -> dict[str, float]:
    em = 100.0 * sum(squad_em(p, a) for p, a in zip(preds, labels)) / len(preds)
    f1 = 100.0 * sum(squad_f1(p, a) for p, a in zip(preds, labels)) / len(preds)
    return {"exact_match": em, "f1": f1, "score": f1}


def answer_normalize(text: str) -> str:
    """Light normalisation for generated (math) answers: case, spaces, a trailing period, thousands commas.

    Unlike :func:`squad_normalize` it keeps ``-`` and ``.`` inside numbers, so
    ``-3.5`` never matches ``35``.
    """
    text = " ".join(str(text).lower().split()).rstrip(".")
    return re.sub(r"(?<=\d),(?=\d{3}\b)", "", text)


def _exact_match(preds: Sequence, labels: Sequence, groups: Sequence | None) -> dict[str, float]:
    hits = [any(answer_normalize(p) == answer_normalize(a) for a in _answers(y)) for p, y in zip(preds, labels)]
    em = 100.0 * sum(hits) / len(hits)
    return {"exact_match": em, "score": em}


METRICS: dict[str, Callable[[Sequence, Sequence, Sequence | None], dict[str, float]]] = {
    "accuracy": _accuracy,
    "cb": _cb,
    "multirc": _multirc,
    "squad": _squad,
    "exact_match": _exact_match,
}


# --metric: what picks the best checkpoint. "task" is each task's own headline score (above);
# the others are computed for every classification task and reported beside it.
CLASS_METRICS = ("accuracy", "macro_f1", "weighted_f1")
SELECTION_METRICS = ("task", *CLASS_METRICS)


def class_metrics(preds: Sequence[int], labels: Sequence[int]) -> dict[str, float]:
    """Accuracy, macro-F1 and support-weighted F1 (0..100) of label ids, as practitioners report them.

    F1 is averaged over the classes present in the gold labels or the predictions (scikit-learn's
    default): on imbalanced data (spam at 70/30) macro-F1 exposes a model that ignores the small
    class, which accuracy hides.
    """
    from sklearn.metrics import accuracy_score, f1_score

    return {"accuracy": 100.0 * float(accuracy_score(labels, preds)),
            "macro_f1": 100.0 * float(f1_score(labels, preds, average="macro", zero_division=0)),
            "weighted_f1": 100.0 * float(f1_score(labels, preds, average="weighted", zero_division=0))}


def class_report(preds: Sequence[int], labels: Sequence[int], names: Sequence[str]) -> dict[str, object]:
    """Per class precision, recall, F1 (0..100) and support, and the confusion matrix (rows gold, columns predicted).

    Every class of the task is listed, also one absent from this file (support 0); a prediction
    outside the classes (-1: a generated answer that is no label word) counts against recall.
    """
    from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

    ids = list(range(len(names)))
    precision, recall, f1, support = precision_recall_fscore_support(labels, preds, labels=ids, zero_division=0)
    matrix = confusion_matrix(labels, preds, labels=ids)
    return {
        "classes": {name: {"precision": 100.0 * float(precision[i]), "recall": 100.0 * float(recall[i]),
                           "f1": 100.0 * float(f1[i]), "support": int(support[i])} for i, name in enumerate(names)},
        "confusion_matrix": {"labels": list(names), "rows": "gold", "columns": "predicted",
                             "matrix": [[int(x) for x in row] for row in matrix]},
    }


def format_class_report(report: dict[str, object]) -> str:
    """The per-class table and the confusion matrix as text, for the terminal."""
    classes: dict = report["classes"]  # type: ignore[assignment]
    width = max(12, *(len(n) + 2 for n in classes))
    lines = [f"{'class':<{width}}{'precision':>10}{'recall':>10}{'f1':>10}{'support':>9}"]
    lines += [f"{name:<{width}}{c['precision']:10.2f}{c['recall']:10.2f}{c['f1']:10.2f}{c['support']:9d}"
              for name, c in classes.items()]
    cm: dict = report["confusion_matrix"]  # type: ignore[assignment]
    cell = max(9, *(len(n) + 1 for n in cm["labels"]))
    lines += ["confusion matrix (rows: gold, columns: predicted):",
              " " * width + "".join(f"{n:>{cell}}" for n in cm["labels"])]
    lines += [f"{name:<{width}}" + "".join(f"{x:>{cell}d}" for x in row) for name, row in zip(cm["labels"], cm["matrix"])]
    return "\n".join(lines)


def compute_metrics(
    metric: str, preds: Sequence, labels: Sequence, groups: Sequence | None = None
) -> dict[str, float]:
    """Score predictions with a task's metric; every result has ``score`` (0..100).

    ``preds``/``labels`` are label ids for ``accuracy``/``cb``/``multirc``; for
    ``squad``/``exact_match`` preds are strings and labels are a gold string or
    a list of acceptable answers. ``groups`` (question ids) is needed by ``multirc``.
    """
    if metric not in METRICS:
        raise MeptError(f"unknown metric {metric!r}; choose from {', '.join(METRICS)}")
    preds, labels = list(preds), list(labels)
    if len(preds) != len(labels):
        raise MeptError(f"metric {metric!r}: {len(preds)} predictions for {len(labels)} labels")
    if not labels:
        raise MeptError(f"metric {metric!r}: nothing to score (no predictions)")
    return {k: float(v) for k, v in METRICS[metric](preds, labels, groups).items()}
