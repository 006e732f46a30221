"""Bring-your-own data: CSV/JSONL rows become a registered task with a verbalizer and splits."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

import mept.data  # noqa: F401  (registers tasks)
from mept.data import get_task, load_custom, load_task
from mept.errors import MeptError


def _jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _reviews(n: int = 40) -> list[dict]:
    return [{"text": f"review {i}", "title": f"t{i}", "label": "pos" if i % 4 else "neg"} for i in range(n)]


def test_jsonl_with_string_labels_gets_sorted_verbalizer_and_stratified_split(tmp_path):
    spec, splits = load_custom(_jsonl(tmp_path / "train.jsonl", _reviews()), task_name="reviews")
    assert spec.verbalizer == ("neg", "pos") and spec.metric == "accuracy"
    train, val = splits["train"], splits["validation"]
    assert len(val) == 4 and Counter(e.label for e in val) == {0: 1, 1: 3}
    assert {e.text for e in train}.isdisjoint(e.text for e in val) and len(train) + len(val) == 40
    assert all(e.target == spec.verbalizer[e.label] for e in train + val)
    assert get_task("reviews") == spec
    assert [e.text for e in load_task("reviews")["validation"]] == [e.text for e in val]
    _, other = load_custom(tmp_path / "train.jsonl", task_name="reviews", seed=5)
    assert [e.text for e in other["validation"]] != [e.text for e in val]


def test_template_and_pair_field_render_row_fields(tmp_path):
    path = _jsonl(tmp_path / "train.jsonl", _reviews(10))
    _, splits = load_custom(path, path, text_pair_field="title", task_name="pairs")
    assert (splits["validation"][3].text, splits["validation"][3].text_pair) == ("review 3", "t3")  # the tokenizer's pair encoding
    _, splits = load_custom(path, path, template="sst2 title: {title} body: {text}", task_name="pairs")
    assert splits["validation"][3].text == "sst2 title: t3 body: review 3"


def test_csv_with_integer_labels_and_explicit_verbalizer(tmp_path):
    train = tmp_path / "train.csv"
    train.write_text("sentence,y\n" + "".join(f"\"s {i}, ok\",{i % 2}\n" for i in range(20)))
    val = tmp_path / "val.csv"
    val.write_text("sentence,y\nhello,1\nbye,negative\n")
    spec, splits = load_custom(train, val, text_field="sentence", label_field="y",
                               verbalizer=["negative", "positive"], task_name="csvtask")
    assert spec.verbalizer == ("negative", "positive")
    assert splits["train"][0].text.startswith("s ") and ", ok" in splits["train"][0].text
    assert [(e.text, e.label, e.target) for e in splits["validation"]] == [
        ("hello", 1, "positive"), ("bye", 0, "negative")]


def test_default_verbalizer_sorts_integer_labels_numerically(tmp_path):
    rows = [{"text": f"x{i}", "label": i % 11} for i in range(44)]
    spec, splits = load_custom(_jsonl(tmp_path / "t.jsonl", rows), task_name="eleven")
    assert spec.verbalizer == tuple(str(i) for i in range(11))
    assert all(e.target == str(e.label) for e in splits["train"])


def test_errors_name_file_and_line(tmp_path):
    rows = _reviews(5)
    del rows[2]["label"]
    path = _jsonl(tmp_path / "t.jsonl", rows)
    with pytest.raises(MeptError, match=rf"{path}:3: missing field 'label'"):
        load_custom(path, task_name="bad")
    path.write_text(path.read_text() + '{"text": "cut')
    with pytest.raises(MeptError, match=rf"{path}:6: malformed JSON"):
        load_custom(path, task_name="bad")
    csv = tmp_path / "t.csv"
    csv.write_text("text,label\na,pos\nb,neg\nc,meh\n")
    with pytest.raises(MeptError, match=rf"{csv}:4: label 'meh'"):
        load_custom(csv, verbalizer=["neg", "pos"], task_name="bad")
    with pytest.raises(MeptError, match=rf"{csv}:2: missing field 'title'"):
        load_custom(csv, template="{title}: {text}", task_name="bad")
    with pytest.raises(MeptError, match="data file not found"):
        load_custom(tmp_path / "nope.jsonl", task_name="bad")
    with pytest.raises(MeptError, match="unsupported data file type"):
        load_custom(tmp_path / "data.parquet", task_name="bad")


def test_builtin_task_names_are_protected(tmp_path):
    with pytest.raises(MeptError, match="built-in"):
        load_custom(_jsonl(tmp_path / "t.jsonl", _reviews(10)), task_name="rte")
