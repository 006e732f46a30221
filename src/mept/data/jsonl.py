"""Read JSONL / CSV / TSV files into rows that remember where they came from.

Every data error a user can cause (a truncated file, a missing field, a label
the task does not know) should name the file and line so it can be fixed in an
editor, so rows carry their origin and :meth:`Row.get` raises a
:class:`MeptError` that says ``path:line`` instead of a bare ``KeyError``.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mept.errors import MeptError


@dataclass(frozen=True)
class Row:
    """One record and its origin (``where`` is a file path or e.g. ``hub:super_glue/rte/train``)."""

    data: dict[str, Any]
    where: str
    line: int

    @property
    def origin(self) -> str:
        return f"{self.where}:{self.line}"

    def get(self, field: str) -> Any:
        """The value at ``field``; dots walk nested objects (``target.span1_text``).

        A missing field raises a one-line error naming the field, file and line.
        """
        value: Any = self.data
        for part in field.split("."):
            if not isinstance(value, dict) or part not in value:
                found = ", ".join(map(str, value)) if isinstance(value, dict) and value else "none"
                raise MeptError(f"{self.origin}: missing field {field!r} (fields found: {found})")
            value = value[part]
        return value

    def fail(self, message: str) -> MeptError:
        """An error about this row, for the caller to raise."""
        return MeptError(f"{self.origin}: {message}")


GZIP_MAGIC = b"\x1f\x8b"


def _require(path: Path) -> None:
    """The file exists and is not compressed (a .csv that is really .csv.gz gets a clear message)."""
    if path.exists() and not path.is_file():
        kind = "a folder" if path.is_dir() else "not a regular file (a pipe, socket or device)"
        raise MeptError(f"data file {path} is {kind}; pass a CSV/TSV/JSONL file (save a stream to a file first)")
    if not path.is_file():
        raise MeptError(f"data file not found: {path}")
    with open(path, "rb") as f:
        head = f.read(2)
    if head == GZIP_MAGIC:
        raise MeptError(f"{path} is gzip-compressed; decompress it first (gunzip) and pass the plain file")


def _not_text(path: Path, exc: UnicodeDecodeError) -> MeptError:
    return MeptError(f"{path} is not UTF-8 text (byte 0x{exc.object[exc.start]:02x} at offset {exc.start}); "
                     f"save it as UTF-8 CSV/JSONL (binary or compressed files cannot be read)")


def sniff_delimiter(header: str, default: str) -> str:
    """A ``.csv`` whose header has no comma but semicolons (a European spreadsheet export) uses ``;``."""
    if default in header:
        return default
    for candidate in (";", "\t", "|"):
        if candidate in header:
            return candidate
    return default


def read_jsonl(path: str | Path) -> list[Row]:
    """One :class:`Row` per non-blank line; bad JSON (e.g. a truncated last line) names the line."""
    path = Path(path)
    _require(path)
    try:
        return _read_jsonl(path)
    except UnicodeDecodeError as exc:
        raise _not_text(path, exc) from None


def _read_jsonl(path: Path) -> list[Row]:
    rows = []
    with open(path, encoding="utf-8-sig") as f:  # -sig: a BOM is not part of the first key
        for number, text in enumerate(f, start=1):
            if not text.strip():
                continue
            try:
                data = json.loads(text)
            except json.JSONDecodeError as e:
                raise MeptError(f"{path}:{number}: malformed JSON ({e.msg}); is the file truncated?") from None
            if not isinstance(data, dict):
                raise MeptError(f"{path}:{number}: expected a JSON object per line, got {type(data).__name__}")
            rows.append(Row(data, str(path), number))
    return rows


def read_csv(path: str | Path, delimiter: str = ",") -> list[Row]:
    """Rows of a CSV/TSV file with a header line; ``line`` is the physical line the row ends on."""
    path = Path(path)
    _require(path)
    try:
        return _read_csv(path, delimiter)
    except UnicodeDecodeError as exc:
        raise _not_text(path, exc) from None


def _read_csv(path: Path, delimiter: str) -> list[Row]:
    # csv's default cell limit (128 KiB) refuses a valid file with one long document; no cell can be
    # longer than the file, so the file's size is the limit
    csv.field_size_limit(max(csv.field_size_limit(), min(path.stat().st_size + 1, 2**31 - 1)))
    rows = []
    with open(path, encoding="utf-8-sig", newline="") as f:  # -sig: a BOM is not part of the first column name
        delimiter = sniff_delimiter(f.readline(), delimiter)
        f.seek(0)
        reader = csv.DictReader(f, delimiter=delimiter)
        if not reader.fieldnames:
            raise MeptError(f"{path}:1: empty file or missing header line")
        try:
            for record in reader:
                if None in record:  # more cells than header names
                    raise MeptError(f"{path}:{reader.line_num}: more values than header columns")
                if any(v is None for v in record.values()):
                    raise MeptError(f"{path}:{reader.line_num}: fewer values than header columns")
                rows.append(Row(dict(record), str(path), reader.line_num))
        except csv.Error as e:
            raise MeptError(f"{path}:{reader.line_num}: malformed CSV ({e})") from None
    return rows


def read_table(path: str | Path) -> list[Row]:
    """Read by suffix: ``.jsonl``/``.json`` as JSON lines, ``.csv``, ``.tsv``."""
    suffix = Path(path).suffix.lower()
    if suffix in (".jsonl", ".json"):
        return read_jsonl(path)
    if suffix == ".csv":
        return read_csv(path)
    if suffix == ".tsv":
        return read_csv(path, delimiter="\t")
    raise MeptError(f"{path}: unsupported data file type {suffix!r}; use .jsonl, .csv or .tsv")
