"""The README's commands work as written: its Python API snippet runs, its example config trains."""

from __future__ import annotations

import json
import re
from pathlib import Path

from mept.cli import main
from mept.harness.train_config import TrainConfig

ROOT = Path(__file__).parent.parent
README = (ROOT / "README.md").read_text()


def python_block(after_heading: str) -> str:
    section = README.split(after_heading, 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_python_api_snippet_runs_as_written(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # it saves "my-prompts" in the working directory
    namespace: dict = {}
    exec(compile(python_block("## Python API"), "README.md", "exec"), namespace)
    assert (tmp_path / "my-prompts" / "adapter_model.safetensors").exists()
    assert namespace["base"].logits.shape == namespace["out"].logits.shape


def test_example_config_is_documented_and_trains(tmp_path, capsys):
    path = ROOT / "examples" / "run.yaml"
    assert "--config examples/run.yaml" in README
    cfg = TrainConfig.from_file(path)
    assert cfg.tasks == ["bb-rte"] and cfg.lr == 1e-2 and cfg.method_args["routing"] == "top1"
    out = tmp_path / "run"
    assert main(["train", "--config", str(path), "--max-steps", "1", "--seeds", "1", "--max-length", "64",
                 "--max-eval-examples", "8", "--max-train-examples", "16", "--no-progress", "--output", str(out)]) == 0
    saved = json.loads((out / "run_config.json").read_text())
    assert saved["experts"] == 10 and saved["method_args"]["balance_loss"] == 0.01
