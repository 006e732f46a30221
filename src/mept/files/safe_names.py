"""Names that come from data, made safe to be one file-name component.

A task name, a data file's stem, a method or a label is data: it may come from a flag, a YAML
file, or a run folder someone shared. Pasted into a path as it is, ``../../x`` or ``/etc/x``
leaves the folder it was meant for (``mept eval`` once wrote ``eval_validation_/../../PWNED.json``
outside the run). Every file name built from such a name goes through :func:`file_component`,
and a name the user chooses for that purpose (``--task-name``) is refused by
:func:`check_component` when it would have to change.
"""

from __future__ import annotations

import hashlib

from mept.errors import MeptError

MAX_COMPONENT = 100  # characters: room for a prefix and suffix inside the usual 255-byte limit
KEPT = "-_.+"  # besides letters and digits


def file_component(name: str, fallback: str = "unnamed") -> str:
    """``name`` as one path component: letters, digits and ``-_.+`` kept, anything else (``/``, ``\\``,
    spaces, control and bidi characters) becomes ``-``; no leading dot or dash (never ``.``, ``..`` or a
    hidden file), at most :data:`MAX_COMPONENT` characters (a longer name is cut and keeps a short hash
    of the whole, so two long names stay apart). ``fallback`` when nothing is left."""
    text = "".join(c if (c.isalnum() and c.isprintable()) or c in KEPT else "-" for c in str(name))
    text = text.lstrip(".-").rstrip(".-")
    if not text:
        return fallback
    if len(text) > MAX_COMPONENT:
        digest = hashlib.sha256(str(name).encode("utf-8", "surrogatepass")).hexdigest()[:8]
        text = f"{text[:MAX_COMPONENT - 9]}-{digest}"
    return text


def check_component(name: object, what: str) -> str:
    """Refuse a chosen ``name`` that :func:`file_component` would have to change, naming a safe one."""
    if not isinstance(name, str) or file_component(name) != name:
        safe = file_component(str(name))
        raise MeptError(f"{what} {str(name)[:80]!r} cannot be part of a file name (it must be letters, digits and "
                        f"{KEPT}, not starting with '.' or '-', at most {MAX_COMPONENT} characters); "
                        f"use e.g. {safe!r}")
    return name
