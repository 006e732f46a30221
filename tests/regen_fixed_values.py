"""Recompute the fixed values that tests/test_fixed_values.py checks, after an intended change.

    python tests/regen_fixed_values.py      # writes tests/fixtures/fixed_values.json

Review the diff of the JSON before committing it: every changed number is a changed behaviour.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script: make `tests` importable

from tests.fixed_values import FIXTURE, case_names, run_case  # noqa: E402


def main() -> None:
    values = {name: run_case(name) for name in case_names()}
    FIXTURE.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(values, indent=1)
    text = re.sub(r"\[\s*([-\d.e,\s]*?)\s*\]", lambda m: "[" + " ".join(m.group(1).split()) + "]", text)  # lists on one line
    FIXTURE.write_text(text + "\n")
    print(f"wrote {len(values)} cases to {FIXTURE}")


if __name__ == "__main__":
    main()
