"""Input templates such as ``"review: {text}"``: field names and nothing else.

``str.format`` would also do attribute and index access (``{text.__class__}``, ``{doc[0]}``) and
width or format specs (``{text:>300000000}`` builds a 300 MB string per row: a ``run_config.json``
holding one aborted ``mept predict`` at 9.5 GB). A template comes from a flag, a YAML file or a
saved run folder, so it is parsed here and only ``{field}`` is allowed, where a dotted name walks
nested JSON objects exactly like ``--text-field`` does (``{doc.body}``).

What a field may hold: text, a number or a boolean (written as ``str()`` does), or ``null``
(empty text: the row is trained and scored on the prompt and the template's words, with the empty-
text warning). A JSON object or list is refused, naming the row and the field inside to use.
"""

from __future__ import annotations

import string
from dataclasses import dataclass

from mept.data.jsonl import Row
from mept.errors import MeptError

MAX_TEMPLATE_CHARS = 10_000


@dataclass(frozen=True)
class Template:
    """A parsed template: literal text and field names, alternating (``fields[i]`` follows ``literals[i]``)."""

    source: str
    literals: tuple[str, ...]
    fields: tuple[str, ...]

    def render(self, row: Row) -> str:
        out = []
        for literal, field in zip(self.literals, self.fields + ("",)):
            out.append(literal)
            if field:
                out.append(field_text(row, field))
        return "".join(out)


def parse_template(template: str) -> Template:
    """Parse ``template``, refusing anything but named fields (one line naming the bad part)."""
    if len(template) > MAX_TEMPLATE_CHARS:
        raise MeptError(f"template is {len(template):,} characters long (at most {MAX_TEMPLATE_CHARS:,}); "
                        f"name fields such as '{{text}}' and keep the words around them short")
    literals: list[str] = []
    fields: list[str] = []
    try:
        parts = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise MeptError(f"bad template {template[:80]!r}: {exc}; use named fields such as '{{text}}' "
                        f"(write {{{{ and }}}} for literal braces)") from None
    pending = ""  # literal text since the last field (``{{`` and ``}}`` arrive as literal pieces of their own)
    for literal, field, spec, conversion in parts:
        pending += literal
        if field is None:
            continue
        literals.append(pending)
        pending = ""
        shown = "{" + field + (f"!{conversion}" if conversion else "") + (f":{spec[:20]}" if spec else "") + "}"
        if not field or field.isdigit():
            raise MeptError(f"bad template {template[:80]!r}: {shown} is positional; use named fields such as '{{text}}'")
        if "[" in field or "]" in field or any(not part for part in field.split(".")):
            raise MeptError(f"bad template {template[:80]!r}: {shown} indexes a value; name fields only "
                            f"(a dotted name such as {{doc.body}} reads a nested field)")
        if spec or conversion:
            raise MeptError(f"bad template {template[:80]!r}: {shown} has a format spec or conversion; "
                            f"templates take plain field names only, e.g. '{{text}}'")
        fields.append(field)
    literals.append(pending)
    return Template(template, tuple(literals), tuple(fields))


def field_text(row: Row, field: str) -> str:
    """The text of one field of ``row`` (see the module docstring for what a field may hold)."""
    value = row.get(field)
    if value is None:
        return ""
    if isinstance(value, (dict, list)):
        kind = "a JSON object" if isinstance(value, dict) else "a list"
        inner = f"; name a field inside it, e.g. {field}.{next(iter(value))}" if isinstance(value, dict) and value else ""
        raise row.fail(f"field {field!r} holds {kind}, not text{inner}")
    return str(value)
