"""The ``vader`` suite: real, human-rated sentiment from the vaderSentiment sdist (what setup installs), and
the BIG-bench reader's other sources now that PyPI no longer serves ``bigbench==1.0.0``."""

from __future__ import annotations

import gzip
import io
import json
import tarfile
from collections import Counter
from pathlib import Path

import pytest
from conftest import TINY, cli, needs_vader, one_error

from mept.data import VADER, bigbench, load_task, suite_tasks, vader


@needs_vader
def test_every_domain_has_both_labels_a_fixed_test_split_and_a_seeded_validation_split():
    assert suite_tasks("vader") == VADER == ["vader-movies", "vader-tweets", "vader-products", "vader-editorials"]
    for name in VADER:
        a, b = load_task(name, seed=0), load_task(name, seed=1)
        sizes = {k: len(v) for k, v in a.items()}
        assert sizes == {"train": vader.TRAIN_CAP, "validation": vader.VALIDATION_SIZE, "test": vader.TEST_SIZE}
        for split in a.values():
            counts = Counter(e.label for e in split)
            assert set(counts) == {0, 1} and min(counts.values()) >= 0.2 * len(split), (name, counts)
        assert [e.text for e in a["test"]] == [e.text for e in b["test"]]  # every seed scored on the same sentences
        assert [e.text for e in a["validation"]] != [e.text for e in b["validation"]]
        texts = [{e.text for e in a[s]} for s in ("train", "validation", "test")]
        assert not (texts[0] & texts[1]) and not (texts[0] & texts[2]) and not (texts[1] & texts[2])
        assert all(e.text.startswith(vader.TASKS[name].prefix + " ") for e in a["train"])


@needs_vader
def test_labels_follow_the_sign_of_the_human_rating():
    rows = vader.read_ratings("movieReviewSnippets_GroundTruth.txt")
    assert len(rows) == 10605  # the README of the data: 10,605 sentence-level snippets
    by_text = {text: rating for rating, text in rows}
    for e in load_task("vader-movies")["train"][:200]:
        rating = by_text[e.text.removeprefix("movie review: ")]
        assert abs(rating) >= vader.NEUTRAL_BAND and e.label == int(rating > 0) and e.target == vader.VERBALIZER[e.label]


def _vader_at(tmp_path: Path, monkeypatch, data: bytes | None) -> Path:
    path = tmp_path / "vaderSentiment-3.3.2.tar.gz"
    if data is not None:
        path.write_bytes(data)
    monkeypatch.setenv("MEPT_VADER_TAR", str(path))
    return path


@pytest.mark.parametrize("damage", ["missing", "truncated", "foreign", "folder"])
def test_missing_or_damaged_vader_data_is_one_line_with_the_fix(tmp_path, capsys, monkeypatch, damage):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        info = tarfile.TarInfo("something-else/README")
        info.size = 3
        tar.addfile(info, io.BytesIO(b"abc"))
    data = {"missing": None, "truncated": gzip.compress(b"x" * 5000)[:200], "foreign": buf.getvalue(), "folder": None}[damage]
    path = _vader_at(tmp_path, monkeypatch, data)
    if damage == "folder":
        path.mkdir()
    out = tmp_path / "runs" / "o"
    code, _, err = cli(["train", "--task", "vader-tweets", "--output", str(out), *TINY], capsys)
    fix = {"missing": "pip download --no-deps --no-binary :all:", "folder": "MEPT_VADER_TAR"}.get(damage, "scripts/setup.sh")
    one_error(code, err, str(path), fix)
    assert not (tmp_path / "runs").exists()  # refused before anything was written: not even an empty folder


# --- BIG-bench from wherever a user can still get it --------------------------------------------------

def _task_json(n: int = 12) -> bytes:
    examples = [{"input": f"sentence {i}", "target_scores": {"correct": i % 2, "incorrect": 1 - i % 2}} for i in range(n)]
    return json.dumps({"examples": examples}).encode()


def _archive(path: Path, top: str) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for name, data in [(f"{top}README.md", b"x"), (f"{top}bigbench/benchmark_tasks/winowhy/task.json", _task_json())]:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


@pytest.mark.parametrize("layout", ["sdist", "github", "checkout", "tasks-folder"])
def test_bigbench_tasks_read_from_the_sdist_a_github_archive_or_a_checkout(tmp_path, monkeypatch, layout):
    monkeypatch.setenv("MEPT_CACHE", str(tmp_path / "cache"))
    if layout == "sdist":
        source = _archive(tmp_path / "bigbench-1.0.0.tar.gz", "bigbench-1.0.0/")
    elif layout == "github":
        source = _archive(tmp_path / "BIG-bench-main.tar.gz", "./BIG-bench-main/")
    else:
        source = tmp_path / "BIG-bench"
        task = source / "bigbench" / "benchmark_tasks" / "winowhy" / "task.json"
        task.parent.mkdir(parents=True)
        task.write_bytes(_task_json())
        if layout == "tasks-folder":
            source = source / "bigbench" / "benchmark_tasks"
    monkeypatch.setenv("MEPT_BIGBENCH_TAR", str(source))
    splits = load_task("bb-wsc")
    assert sum(len(v) for v in splits.values()) == 12
    assert {e.target for e in splits["train"]} == {"correct", "incorrect"}


def test_missing_bigbench_data_says_where_to_get_it_now(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("MEPT_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("MEPT_BIGBENCH_TAR", raising=False)
    code, _, err = cli(["train", "--task", "bb-wsc", "--output", str(tmp_path / "runs" / "o"), *TINY], capsys)
    one_error(code, err, str(bigbench.tarball_path()), "github.com/google/BIG-bench", "MEPT_BIGBENCH_TAR")
    assert not (tmp_path / "runs").exists()


def test_mept_tasks_lists_the_suites_with_their_tasks(capsys):
    code, out, _ = cli(["tasks"], capsys)
    assert code == 0
    suites = out.split("suites", 1)[1].splitlines()
    assert any(line.split()[:1] == ["vader"] and "vader-movies, vader-tweets" in line for line in suites), out
    assert any(line.split()[:1] == ["bb-diverse"] for line in suites), out
