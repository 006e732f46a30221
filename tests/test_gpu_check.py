"""``benchmarks/gpu_check.py``'s CPU fallback: the script itself works offline, on tiny random models."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

from mept.core.registry import all_method_names

SCRIPT = Path(__file__).parent.parent / "benchmarks" / "gpu_check.py"


def test_cpu_fallback_trains_every_method_and_moves_checkpoints(tmp_path, capsys, monkeypatch):
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "gpu_check", module)  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    out = tmp_path / "rows.json"
    assert module.main(["--cpu", "--json", str(out)]) == 0
    rows = json.loads(out.read_text())
    trained = {(r["method"], r["dtype"]) for r in rows if r["check"] == "train" and r["ok"]}
    assert trained == {(m, d) for m in all_method_names() for d in ("fp32", "bf16")}
    moved = {r["method"] for r in rows if r["check"] == "gpu->cpu" and r["ok"]}
    assert moved == {"mept", "lora", "full", "probe"}
    assert all("skipped" in r["detail"] for r in rows if r["check"] == "quantised")
    # the speed table's architectures in miniature, MPNet's attention names included (PEFT has no LoRA default there)
    timed = {(r["model"], r["method"]) for r in rows if r["check"] == "speed" and r["ok"]}
    assert timed == {(m, method) for m in ("tiny-bert", "tiny-mpnet") for method in module.SPEED_METHODS}
    assert "checks ok" in capsys.readouterr().out
