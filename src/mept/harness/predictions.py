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
import os
from pathlib import Path
from typing import Any

from mept.data.jsonl import Row
from mept.data.registry import TaskSpec
from mept.errors import MeptError
from mept.files.atomic_file import atomic_write
from mept.files.ownership import OutputKind, claim_output
from mept.harness.evaluate import Prediction

ADDED = ("prediction", "probability", "probabilities", "experts")  # every name a prediction record may add


def _is_predictions(path: Path) -> bool:
    """Does ``path`` start as a file ``mept predict`` writes (a CSV header or first JSONL record with its fields)?"""
    try:
        with open(path, encoding="utf-8-sig", errors="replace") as f:
            first = f.readline(1 << 20)
    except OSError:
        return False
    if path.suffix.lower() == ".jsonl":
        try:
            record = json.loads(first)
        except ValueError:
            return False
        return isinstance(record, dict) and "prediction" in record and "probability" in record
    header = next(csv.reader([first]), [])
    return "prediction" in header and "probability" in header


# What `mept predict --output` writes, for the one ownership check (mept.files.ownership.claim_output)
PREDICTIONS = OutputKind("a mept predictions file", owns_file=_is_predictions)


def check_output(out: Path, sources: dict[str, Path], overwrite: bool = False) -> None:
    """Refuse an ``--output`` that is one of ``sources`` (the input file, the run's data files: role -> path), a
    folder, not writable, or an existing file mept did not write (or, without ``overwrite``, one it did) -- before
    predicting."""
    if out.suffix.lower() not in (".csv", ".jsonl"):
        raise MeptError(f"--output must end in .csv or .jsonl, got {out.name}")
    for role, source in sources.items():
        if out.exists() and source.exists() and os.path.samefile(out, source):
            raise MeptError(f"--output {out} is {role} {source}; write the predictions to another file")
    if out.is_dir():
        raise MeptError(f"--output {out} is a folder; name a .csv or .jsonl file")
    claim_output(out, PREDICTIONS, overwrite=overwrite)


FORMULA_START = ("=", "+", "-", "@", "\t", "\r")  # what a spreadsheet reads as the start of a formula


def escape_formula(value: Any) -> Any:
    """A text cell a spreadsheet would run as a formula (``=HYPERLINK(...)``), prefixed with ``'`` so it shows as
    text; numbers (``-1.5``) and everything else are left as they are."""
    if not isinstance(value, str) or not value.startswith(FORMULA_START):
        return value
    try:
        float(value)
        return value
    except ValueError:
        return "'" + value


def check_clashes(rows: list[Row]) -> None:
    """Refuse input rows that already have a field we would write: the user's values must not be overwritten.

    Every row is checked (JSONL rows may each have other keys), and every name a record can add.
    """
    for row in rows:
        clash = [name for name in ADDED if name in row.data]
        if clash:
            raise row.fail(f"the input already has field(s) {', '.join(clash)}, which mept predict writes; "
                           f"rename them before predicting")


def _columns(rows: list[dict[str, Any]]) -> list[str]:
    """Every key of every row, in order of first appearance: a CSV keeps all fields of a ragged JSONL."""
    seen: dict[str, None] = {}
    for row in rows:
        seen.update(dict.fromkeys(row))
    return list(seen)


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
    path: Path, rows: list[dict[str, Any]], preds: list[Prediction], spec: TaskSpec, layers: list[int],
    escape_formulas: bool = True,
) -> None:
    """Write ``rows`` with their predictions to ``path`` (.csv or .jsonl), atomically.

    In a CSV, ``escape_formulas`` writes a cell that a spreadsheet would run as a formula with a leading
    ``'`` (:func:`escape_formula`); JSONL is never changed.
    """
    if len(rows) != len(preds):
        raise MeptError(f"{len(rows)} rows but {len(preds)} predictions")
    clash = sorted({name for row in rows for name in ADDED if name in row})
    if clash:
        raise MeptError(f"the input already has field(s) {', '.join(clash)}; rename them before predicting")
    records = [prediction_record(p, spec, layers) for p in preds]
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() == ".jsonl":
        text = "".join(json.dumps({**row, **rec}) + "\n" for row, rec in zip(rows, records))
        atomic_write(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))
        return
    header = _columns(rows) + ["prediction", "probability"] + (["experts"] if layers else [])

    def write_csv(tmp: str) -> None:
        with open(tmp, "w", encoding="utf-8", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=header, extrasaction="ignore")
            writer.writeheader()
            for row, rec in zip(rows, records):
                flat = {**row, "prediction": rec["prediction"], "probability": rec["probability"]}
                if layers:
                    flat["experts"] = " ".join(str(e) for e in rec["experts"].values())
                writer.writerow({k: escape_formula(v) for k, v in flat.items()} if escape_formulas else flat)

    atomic_write(path, write_csv)
