"""The package as a whole: light to import, lint-clean, one list of task types, no dead aliases."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from mept.core.task_types import FORMATS, TaskType
from mept.errors import MeptError

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("matplotlib", "sklearn", "gguf", "PIL")


def test_importing_mept_and_its_harness_loads_no_plotting_imaging_or_ml_extras():
    # A fresh interpreter: pytest itself (and other tests) may already have imported them.
    code = (
        "import json, sys; import mept, mept.harness.train, mept.cli, mept.data, mept.harness.evaluate; "
        f"print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert json.loads(out.stdout) == []


def test_evaluation_and_its_routing_health_load_neither_analysis_nor_matplotlib_nor_sklearn():
    # routing health is measured on every routed evaluation: it must stay as light as the harness
    code = (
        "import json, sys; import numpy as np; import mept.harness.evaluate, mept.harness.train; "
        "from mept.core.routing_health import format_health, routing_health; from mept.core.pathways import RoutingTrace; "
        "t = RoutingTrace('t', [0, 1], np.full((4, 2, 2), 0.5), np.zeros((4, 2), dtype=int)); "
        "format_health(routing_health([t])); "
        "print(json.dumps([m for m in ('matplotlib', 'sklearn', 'mept.analysis') if m in sys.modules]))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert json.loads(out.stdout) == []


def test_heavy_packages_still_load_where_they_are_used():
    code = (
        "import json, sys; from mept.data.metrics import compute_metrics; "
        "compute_metrics('accuracy', [1, 0], [1, 1]); import mept.analysis; "
        "print(json.dumps(sorted(m for m in ('matplotlib', 'sklearn') if m in sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert json.loads(out.stdout) == ["matplotlib", "sklearn"]


def test_ruff_finds_nothing():
    # ruff comes with the test extra (pip install -e .[test]); its rules are in pyproject.toml.
    out = subprocess.run([sys.executable, "-m", "ruff", "check", "src", "tests"], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stdout + out.stderr


def test_task_types_are_one_enum_that_equals_its_plain_names():
    assert [t.value for t in TaskType] == ["cls", "causal_lm", "seq2seq", "image_cls", "base"]
    assert TaskType.CLS == "cls" and f"{TaskType.CAUSAL_LM}" == "causal_lm"
    assert json.dumps({"t": TaskType.SEQ2SEQ}) == '{"t": "seq2seq"}'
    assert FORMATS == ("auto", "cls", "causal_lm", "seq2seq", "image_cls")
    assert TaskType.IMAGE_CLS.auto_class == "AutoModelForImageClassification"
    with pytest.raises(MeptError, match="unknown task type 'clss'; use one of cls, causal_lm"):
        TaskType.parse("clss")


def test_backbone_spec_reports_its_task_type_as_the_enum():
    from mept.inject.spec import inspect_backbone
    from tests.conftest import tiny_bert, tiny_llama, tiny_t5

    assert inspect_backbone(tiny_bert()).task_type is TaskType.CLS
    assert inspect_backbone(tiny_llama("causal_lm")).task_type is TaskType.CAUSAL_LM
    assert inspect_backbone(tiny_t5()).task_type is TaskType.SEQ2SEQ
    assert inspect_backbone(tiny_bert()).describe()["task_type"] == "cls"
