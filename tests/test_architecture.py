"""The layers of docs/architecture.md hold: import-linter's contracts in pyproject.toml pass, and
they do catch an upward import and a cycle (shown on a copy of the package with one bad line added)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LINT = "import sys; from importlinter.cli import lint_imports; sys.exit(lint_imports(sys.argv[1], no_cache=True))"


def lint(src: Path) -> subprocess.CompletedProcess:
    """``lint-imports`` with pyproject's contracts, on the ``mept`` package under ``src``."""
    env = {**os.environ, "PYTHONPATH": str(src)}
    return subprocess.run([sys.executable, "-c", LINT, str(ROOT / "pyproject.toml")], capture_output=True, text=True,
                          cwd=ROOT, env=env)


def test_every_layer_imports_only_those_below_it_and_no_sub_package_is_in_a_cycle():
    done = lint(ROOT / "src")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Contracts: 2 kept, 0 broken." in done.stdout


@pytest.mark.parametrize("file, line, broken", [
    ("core/registry.py", "import mept.methods", "each layer imports only the layers below it BROKEN"),
    ("harness/evaluate.py", "import mept.cli", "each layer imports only the layers below it BROKEN"),
    ("core/config.py", "import mept.core.registry", "no import cycle between sibling modules or packages BROKEN"),
])
def test_the_contracts_catch_an_upward_import_and_a_cycle(tmp_path, file, line, broken):
    shutil.copytree(ROOT / "src" / "mept", tmp_path / "mept", ignore=shutil.ignore_patterns("__pycache__"))
    target = tmp_path / "mept" / file
    target.write_text(target.read_text() + f"\n{line}  # added by the test\n")
    done = lint(tmp_path)
    assert done.returncode == 1 and broken in done.stdout, done.stdout + done.stderr


@pytest.mark.parametrize("method", ["mept", "prompt_tuning", "lora", "full", "probe"])
def test_prompt_methods_and_baselines_are_one_adapter_model(method):
    import mept
    from mept.model.adapter import AdapterModel
    from tests.conftest import tiny_bert

    model = mept.get_model(tiny_bert(), mept.make_config(method))
    assert isinstance(model, AdapterModel)
    report = model.parameter_report()
    assert report["method"] == method and report["trainable"] == sum(p.numel() for p in model.adapter_parameters().values()
                                                                       if p.requires_grad)
    routed = method == "mept"  # of these, only MEPT routes; a baseline has no prompt slots at all
    assert model.routed == routed
    assert model.routed_layers == ([i + 1 for i in model.method.layer_ids] if routed else [])
    assert model.num_slots == (model.prompt_config.prompt_length if method in ("mept", "prompt_tuning") else 0)
