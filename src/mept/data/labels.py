"""One rule for reading a label cell, the same for train, validation, test, ``eval --file`` and ``predict``.

The rule (also in the README's safety section):

1. Spaces around a label are not part of it: ``"pos "`` is ``pos``.
2. A label that is a whole number is that number, however written: ``1``, ``01``, ``+1``, ``1.0``
   and the JSON number ``1`` are all class ``1`` (``true``/``false`` are ``1``/``0``).
3. Anything else is compared as text, case and inner spaces included (``Pos`` is not ``pos``).
4. A label must be one value: a list, an object or ``null`` is refused, naming the row.

When two different raw spellings in one file become one class, a warning names them, since a
user may have meant two classes. Before this rule, ``01`` merged into ``1`` in one file but not in
another, and ``pos `` was a class of its own while `` 1`` merged with ``1``.
"""

from __future__ import annotations

import math
import re
from collections import defaultdict

from mept.data.jsonl import Row
from mept.errors import MeptError, warn

_WHOLE = re.compile(r"[+-]?\d{1,30}(\.0*)?")  # longer digit runs stay text (int() refuses > 4300 digits)


def normalise_label(raw: object, row: Row, field: str = "label") -> str:
    """The class name a raw label cell stands for (see the module docstring for the rule)."""
    if isinstance(raw, bool):
        return str(int(raw))
    if isinstance(raw, int):
        return str(raw) if abs(raw) < 10**30 else f"{raw:.6e}"
    if isinstance(raw, float):
        if not math.isfinite(raw):
            raise row.fail(f"label {raw!r} in field {field!r} is not a class name; use text or a whole number")
        return str(int(raw)) if raw.is_integer() else repr(raw)
    if isinstance(raw, str):
        text = raw.strip()
        if _WHOLE.fullmatch(text):
            return str(int(text.split(".")[0]))
        return text
    kind = "null" if raw is None else ("a list" if isinstance(raw, list) else f"a {type(raw).__name__}")
    shown = repr(raw) if len(repr(raw)) <= 40 else repr(raw)[:37] + "..."
    raise row.fail(f"label in field {field!r} is {kind} ({shown}); a label must be one value, text or a whole number")


def check_verbalizer(words: list[str] | tuple[str, ...], where: str) -> None:
    """Refuse label words that name one class twice (``--verbalizer good good``: a one-class head).

    Words are compared as labels are read (spaces around dropped, whole numbers by value).
    """
    seen: dict[str, str] = {}
    for word in words:
        if not isinstance(word, str):
            raise MeptError(f"{where}: label word {word!r} is not text")
        name = normalise_label(word, None, "verbalizer")  # type: ignore[arg-type]  (text never fails)
        if not name:
            raise MeptError(f"{where}: a label word is empty")
        if name in seen:
            raise MeptError(f"{where}: {seen[name]!r} and {word!r} name the same class; each label word must be a "
                            f"class of its own")
        seen[name] = word


def is_number(label: str) -> bool:
    """Is a normalised label a whole number (so it may also be read as a label id)?"""
    return bool(re.fullmatch(r"-?\d{1,30}", label))


def sort_labels(labels: set[str]) -> tuple[str, ...]:
    """Class names in id order: numerically if all are whole numbers, else as text."""
    if labels and all(is_number(v) for v in labels):
        return tuple(sorted(labels, key=int))
    return tuple(sorted(labels))


class LabelReader:
    """Normalise a file's labels and remember the spellings each class had, to warn about merges."""

    def __init__(self, field: str) -> None:
        self.field = field
        self.spellings: dict[str, set[str]] = defaultdict(set)
        self.as_ids: set[int] = set()

    def read(self, row: Row) -> str:
        raw = row.get(self.field)
        label = normalise_label(raw, row, self.field)
        self.spellings[label].add(raw if isinstance(raw, str) else repr(raw))
        return label

    def warn_merged(self, where: str) -> None:
        """One warning line if two raw spellings became one class (``01`` and ``1``, ``pos`` and ``pos ``)."""
        merged = {label: sorted(raw) for label, raw in self.spellings.items() if len(raw) > 1}
        if not merged:
            return
        parts = [f"{' and '.join(repr(r) for r in raw)} as {label!r}" for label, raw in list(merged.items())[:3]]
        more = f" and {len(merged) - 3} more" if len(merged) > 3 else ""
        warn(f"{where}: labels spelled differently are read as one class: {'; '.join(parts)}{more} "
             f"(spaces around a label are dropped and whole numbers compared by value; see README, Safety)")

    def warn_ids(self, where: str, verbalizer: tuple[str, ...]) -> None:
        """One warning line when integer labels were taken as label ids rather than label words."""
        if not self.as_ids:
            return
        shown = ", ".join(f"{i} = {verbalizer[i]!r}" for i in sorted(self.as_ids)[:6])
        warn(f"{where}: integer labels were read as label ids of the run's classes: {shown}; "
             f"if the file numbers its classes in another order, the scores are wrong")
