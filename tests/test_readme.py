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
    assert cfg.tasks == ["vader-movies"] and cfg.lr == 1e-2 and cfg.method_args["routing"] == "top1"
    out = tmp_path / "run"
    assert main(["train", "--config", str(path), "--max-steps", "1", "--seeds", "1", "--max-length", "64",
                 "--max-eval-examples", "8", "--max-train-examples", "16", "--no-progress", "--output", str(out)]) == 0
    saved = json.loads((out / "run_config.json").read_text())
    assert saved["experts"] == 10 and saved["method_args"]["balance_loss"] == 0.01


def _outside_fences(text: str) -> list[str]:
    lines, fenced = [], False
    for line in text.split("\n"):
        if line.startswith("```"):
            fenced = not fenced
        elif not fenced:
            lines.append(line)
    return lines


def _anchors(markdown: Path) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces as hyphens, repeats numbered."""
    seen: dict[str, int] = {}
    for line in _outside_fences(markdown.read_text()):
        heading = re.match(r"#{1,6} (.*)", line)
        if heading:
            text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading.group(1))
            slug = re.sub(r"[^\w\- ]", "", text.strip().lower()).replace(" ", "-")
            seen[slug if slug not in seen else f"{slug}-{seen[slug]}"] = 0
            seen[slug] = seen.get(slug, 0) + 1
    return set(seen)


def test_every_relative_link_in_the_docs_resolves():
    """A link in README.md, docs/ or benchmarks/ names a file that exists, and a heading that exists in it."""
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md")), *sorted((ROOT / "benchmarks").rglob("*.md"))]
    broken, checked = [], 0
    for page in pages:
        for line in _outside_fences(page.read_text()):
            for target in re.findall(r"\]\(([^)\s]+)\)", line):
                if re.match(r"[a-z]+:", target):
                    continue  # http(s), mailto: not ours to check offline
                checked += 1
                path, _, anchor = target.partition("#")
                dest = (page.parent / path).resolve() if path else page
                if not dest.exists():
                    broken.append(f"{page.relative_to(ROOT)}: {target} (no such file)")
                elif anchor and dest.suffix == ".md" and anchor not in _anchors(dest):
                    broken.append(f"{page.relative_to(ROOT)}: {target} (no such heading)")
    assert checked > 50 and not broken, "\n".join(broken)
