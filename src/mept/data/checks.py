"""Doubtful training data, caught before training rather than discovered in the scores.

A file can be well-formed and still make a meaningless run: one class only (every
prediction is right: 100.00), an empty label cell (which would become a class of its
own), a validation label the training rows never show, or empty input texts. The
first two are refused; the others are warned about, since they can be intended.
Labels are compared after the verbalizer maps them, so ``1`` and ``positive`` are
one class when the verbalizer says so.
"""

from __future__ import annotations

from collections import Counter

from mept.data.examples import Example
from mept.data.jsonl import Row
from mept.data.template import parse_template
from mept.errors import MeptError, warn


def _blank(value: object) -> bool:
    """No visible text: ``None``, or only spaces, control and format characters (zero-width, bidi controls)."""
    import unicodedata

    return value is None or (isinstance(value, str) and all(
        c.isspace() or unicodedata.category(c) in ("Cc", "Cf") for c in value))


def reads_field(name: str, other: str) -> bool:
    """Does reading field ``name`` read ``other`` too (the same field, or one nested in the other)?"""
    return name == other or name.startswith(other + ".") or other.startswith(name + ".")


def check_no_label_leak(label_field: str, text_field: str | None, text_pair_field: str | None,
                        template: str | None) -> None:
    """Refuse an input that reads the label: ``--template "{text} {label}"`` or ``--text-field label`` trains to
    100% on any data, because the answer is in the question."""
    if template is not None:
        read = [("--template", f) for f in parse_template(template).fields]
    else:
        read = [(flag, f) for flag, f in (("--text-field", text_field), ("--text-pair-field", text_pair_field)) if f]
    for flag, name in read:
        if reads_field(name, label_field):
            shown = f"{{{name}}}" if flag == "--template" else name
            raise MeptError(f"{flag} reads {shown}, which is the label field {label_field!r}: the model would see "
                            f"the answer in its input (scores of 100 that mean nothing); read only text fields")


def check_rows(rows: list[Row], label_field: str, text_fields: list[str]) -> None:
    """Refuse empty label cells and a text field empty in every row; warn about some empty texts."""
    for row in rows:
        if _blank(row.get(label_field)):
            raise row.fail(f"empty label in field {label_field!r}; fill it in or drop the row")
    for field in text_fields:
        empty = [r for r in rows if _blank(r.get(field))]
        if empty and len(empty) == len(rows):
            raise MeptError(f"{rows[0].where}: field {field!r} is empty in every row; is it the text column?")
    warn_empty_texts(rows, text_fields)


def warn_empty_texts(rows: list[Row], text_fields: list[str], use: str = "trained and scored") -> None:
    """One warning per text field that is empty (or only spaces, zero-width or bidi characters) in some rows."""
    for field in text_fields:
        empty = [r for r in rows if _blank(r.get(field))]
        if empty:
            warn(f"{len(empty)} row(s) have an empty {field!r} field (first at {empty[0].origin}); "
                 f"they are {use} on the prompt alone")


def check_labels(train: list[Example], validation: list[Example], verbalizer: tuple[str, ...], where: str) -> None:
    """Refuse one-class training data; warn about validation classes the training data never shows."""
    counts = Counter(e.label for e in train)
    if len(counts) < 2:
        only = verbalizer[next(iter(counts))]
        raise MeptError(f"{where}: every training row has the label {only!r}; a classifier needs at least two "
                        f"classes (accuracy would be 100% by construction)")
    unseen = sorted({e.label for e in validation} - set(counts))
    if unseen:
        n = sum(e.label in unseen for e in validation)
        names = ", ".join(repr(verbalizer[i]) for i in unseen)
        warn(f"{where}: validation label(s) {names} never occur in the training data ({n} validation row(s)); "
             f"the model cannot learn them")


MIN_VALIDATION = 10  # below this, one example moves the score by 10 points or more


def check_validation_size(validation: list[Example], where: str, held_out: bool) -> None:
    """Warn when the validation set is too small for its score (and the best checkpoint it picks) to mean much."""
    if len(validation) >= MIN_VALIDATION:
        return
    source = "held out of the training rows" if held_out else "in the file"
    warn(f"{where}: the validation set has only {len(validation)} example(s) ({source}); its score, and the "
         f"checkpoint picked as best by it, mean little below {MIN_VALIDATION} -- pass a --val-file with more rows")
