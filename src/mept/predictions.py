"""Write ``mept predict`` output: each input row, unchanged, plus the model's answer.

Columns added: ``prediction`` (the label word), ``probability`` (of that label),
and for routed methods ``experts`` (top-1 expert per prompted layer). JSONL
keeps ``experts`` as ``{"layer N": expert}`` and adds ``probabilities`` (every
label word's); CSV writes ``experts`` as space-separated ids in layer order, so
the file stays one flat table for a spreadsheet.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

from mept.data.registry import TaskSpec
from mept.errors import MeptError
from mept.evaluate import Prediction
from mept.model import atomic_write

ADDED = ("prediction", "probability", "experts")


def prediction_record(pred: Prediction, spec: TaskSpec, layers: list[int]) -> dict[str, Any]:
    """The fields ``mept predict`` adds to one row (``layers``: 1-based prompted layer numbers)."""
    record: dict[str, Any] = {
        "prediction": spec.verbalizer[pred.label] if pred.label >= 0 else None,
        "probability": round(pred.probability, 6) if pred.probability is not None else None,
    }
    if pred.probabilities is not None:
        record["probabilities"] = {w: round(p, 6) for w, p in zip(spec.verbalizer, pred.probabilities)}
    if layers:
        record["experts"] = {f"layer {n}": e for n, e in zip(layers, pred.experts)}
    return record


def write_predictions(
    path: Path, rows: list[dict[str, Any]], preds: list[Prediction], spec: TaskSpec, layers: list[int]
) -> None:
    """Write ``rows`` with their predictions to ``path`` (.csv or .jsonl), atomically."""
    if len(rows) != len(preds):
        raise MeptError(f"{len(rows)} rows but {len(preds)} predictions")
    clash = [name for name in ADDED if rows and name in rows[0]]
    if clash:
        raise MeptError(f"the input already has column(s) {', '.join(clash)}; rename them before predicting")
    records = [prediction_record(p, spec, layers) for p in preds]
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() == ".jsonl":
        text = "".join(json.dumps({**row, **rec}) + "\n" for row, rec in zip(rows, records))
        atomic_write(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))
        return
    header = list(rows[0]) + ["prediction", "probability"] + (["experts"] if layers else [])

    def write_csv(tmp: str) -> None:
        with open(tmp, "w", encoding="utf-8", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=header, extrasaction="ignore")
            writer.writeheader()
            for row, rec in zip(rows, records):
                flat = {**row, "prediction": rec["prediction"], "probability": rec["probability"]}
                if layers:
                    flat["experts"] = " ".join(str(e) for e in rec["experts"].values())
                writer.writerow(flat)

    atomic_write(path, write_csv)
