"""SuperGLUE tasks: templates render the official fields, labels round-trip, splits are sound."""

from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path

import pytest

import mept.data  # noqa: F401  (registers tasks)
from mept.data import get_task, load_task
from mept.data.superglue import SUPERGLUE, TASKS, load_superglue
from mept.errors import MeptError

FIXTURES = Path(__file__).parent / "fixtures" / "superglue"


def _first(task: str, split: str = "val") -> dict:
    folder = next(p for p in FIXTURES.iterdir() if p.name.lower() == TASKS[task].folder.lower())
    return json.loads((folder / f"{split}.jsonl").read_text().splitlines()[0])


EXPECTED_TEXT = {
    "boolq": lambda r: f"boolq passage: {r['passage']} question: {r['question']}",
    "cb": lambda r: f"cb hypothesis: {r['hypothesis']}. premise: {r['premise']}",
    "copa": lambda r: (f"copa choice1: {r['choice1']} choice2: {r['choice2']} "
                       f"premise: {r['premise']} question: {r['question']}"),
    "rte": lambda r: f"rte sentence1: {r['premise']} sentence2: {r['hypothesis']}",
    "wic": lambda r: f"wic sentence1: {r['sentence1']} sentence2: {r['sentence2']} word: {r['word']}",
    "wsc": lambda r: (f"wsc text: {r['text']} span1: {r['target']['span1_text']} "
                      f"span2: {r['target']['span2_text']}"),
}
EXPECTED_TARGET = {  # official label of the first validation record -> verbalizer word
    "boolq": lambda r: "True" if r["label"] else "False",
    "cb": lambda r: r["label"],
    "copa": lambda r: f"choice{r['label'] + 1}",
    "rte": lambda r: r["label"],
    "wic": lambda r: "True" if r["label"] else "False",
    "wsc": lambda r: "Same" if r["label"] else "Different",
}


def test_all_seven_tasks_are_registered_with_their_metric():
    assert SUPERGLUE == ["boolq", "cb", "copa", "multirc", "rte", "wic", "wsc"]
    metrics = {name: get_task(name).metric for name in SUPERGLUE}
    assert metrics == {"boolq": "accuracy", "cb": "cb", "copa": "accuracy", "multirc": "multirc",
                       "rte": "accuracy", "wic": "accuracy", "wsc": "accuracy"}


@pytest.mark.parametrize("task", sorted(EXPECTED_TEXT))
def test_template_renders_the_official_fields_exactly(task):
    record = _first(task)
    test = load_task(task, source="jsonl", data_dir=str(FIXTURES))["test"]
    assert test[0].text == EXPECTED_TEXT[task](record)
    assert test[0].target == EXPECTED_TARGET[task](record)


def test_multirc_flattens_to_one_example_per_answer_grouped_by_question():
    record = _first("multirc")
    test = load_task("multirc", source="jsonl", data_dir=str(FIXTURES))["test"]
    options = [(q, a) for q in record["passage"]["questions"] for a in q["answers"]]
    assert len(test) == len(options)
    for ex, (q, a) in zip(test, options):
        assert ex.text == (f"multirc question: {q['question']} answer: {a['text']}. "
                           f"paragraph: {record['passage']['text']}")
        assert ex.label == a["label"] and ex.target == ("True" if a["label"] else "False")
        assert ex.group == f"{record['idx']}-{q['idx']}"


@pytest.mark.parametrize("task", SUPERGLUE)
def test_verbalizer_maps_back_to_label_ids(task):
    spec = get_task(task)
    for split in load_task(task, source="jsonl", data_dir=str(FIXTURES)).values():
        for ex in split:
            assert spec.verbalizer.index(ex.target) == ex.label


@pytest.mark.parametrize("task", [t for t in SUPERGLUE if t != "multirc"])
def test_validation_is_a_stratified_disjoint_seeded_slice_of_train(task):
    splits = load_task(task, source="jsonl", data_dir=str(FIXTURES), seed=3)
    train, val = splits["train"], splits["validation"]
    assert {e.text for e in train}.isdisjoint(e.text for e in val)
    assert Counter(e.label for e in val).keys() == Counter(e.label for e in train).keys()
    again = load_task(task, source="jsonl", data_dir=str(FIXTURES), seed=3)
    assert [e.text for e in again["validation"]] == [e.text for e in val]
    official_train = len((FIXTURES / TASKS[task].folder / "train.jsonl").read_text().splitlines())
    assert len(train) + len(val) == official_train


def test_seed_changes_the_validation_slice():
    slices = {tuple(e.text for e in load_task("cb", data_dir=str(FIXTURES), seed=s)["validation"]) for s in range(6)}
    assert len(slices) > 1


def test_multirc_questions_never_straddle_train_and_validation():
    splits = load_task("multirc", data_dir=str(FIXTURES), seed=1)
    train_groups = {e.group for e in splits["train"]}
    assert splits["validation"] and train_groups.isdisjoint(e.group for e in splits["validation"])


def test_task_folder_names_are_case_insensitive_and_may_be_the_folder_itself(tmp_path):
    shutil.copytree(FIXTURES / "RTE", tmp_path / "rte")
    assert load_superglue("rte", data_dir=str(tmp_path))["test"]
    assert load_superglue("rte", data_dir=str(tmp_path / "rte"))["test"]


def test_missing_files_name_the_expected_path(tmp_path):
    with pytest.raises(MeptError, match=r"BoolQ/train\.jsonl"):
        load_superglue("boolq", data_dir=str(tmp_path))
    (tmp_path / "BoolQ").mkdir()
    (tmp_path / "BoolQ" / "train.jsonl").write_text((FIXTURES / "BoolQ" / "train.jsonl").read_text())
    with pytest.raises(MeptError, match=r"not found: .*BoolQ/val\.jsonl"):
        load_superglue("boolq", data_dir=str(tmp_path))


def _broken_copy(tmp_path: Path, task: str, edit) -> Path:
    shutil.copytree(FIXTURES / TASKS[task].folder, tmp_path / TASKS[task].folder)
    path = tmp_path / TASKS[task].folder / "train.jsonl"
    path.write_text(edit(path.read_text()))
    return path


def test_truncated_jsonl_names_file_and_line(tmp_path):
    path = _broken_copy(tmp_path, "rte", lambda text: text[: len(text) - 20])
    last = len(path.read_text().splitlines())
    with pytest.raises(MeptError, match=rf"{path}:{last}: malformed JSON"):
        load_superglue("rte", data_dir=str(tmp_path))


def test_missing_field_names_field_file_and_line(tmp_path):
    def drop_hypothesis_on_line_2(text: str) -> str:
        lines = text.splitlines()
        row = json.loads(lines[1])
        del row["hypothesis"]
        lines[1] = json.dumps(row)
        return "\n".join(lines) + "\n"

    path = _broken_copy(tmp_path, "cb", drop_hypothesis_on_line_2)
    with pytest.raises(MeptError, match=rf"{path}:2: missing field 'hypothesis'"):
        load_superglue("cb", data_dir=str(tmp_path))


def test_nested_wsc_span_missing_is_named_by_its_path(tmp_path):
    path = _broken_copy(tmp_path, "wsc", lambda text: text.replace('"span2_text": "he"', '"x": "he"', 1))
    with pytest.raises(MeptError, match=rf"{path}:1: missing field 'target.span2_text'"):
        load_superglue("wsc", data_dir=str(tmp_path))


def test_label_outside_the_verbalizer_is_rejected(tmp_path):
    path = _broken_copy(tmp_path, "rte", lambda text: text.replace('"not_entailment"', '"maybe"', 1))
    with pytest.raises(MeptError, match=rf"{path}:2: label 'maybe'"):
        load_superglue("rte", data_dir=str(tmp_path))
    path = _broken_copy(tmp_path / "b", "copa", lambda text: text.replace('"label": 1', '"label": 2', 1))
    with pytest.raises(MeptError, match=rf"{path}:2: label 2 is outside"):
        load_superglue("copa", data_dir=str(tmp_path / "b"))


def _fake_hub(calls: list):
    rows = {
        "rte": [{"premise": f"P{i}.", "hypothesis": f"H{i}.", "idx": i, "label": i % 2} for i in range(10)],
        "multirc": [{"paragraph": "Para.", "question": f"Q{q}?", "answer": f"A{a}",
                     "idx": {"paragraph": 0, "question": q, "answer": a}, "label": a % 2}
                    for q in range(10) for a in range(3)],
        "wsc.fixed": [{"text": f"T{i}", "span1_index": 0, "span2_index": 2, "span1_text": "Ann",
                       "span2_text": "she", "idx": i, "label": i % 2} for i in range(10)],
    }

    def load_dataset(path, name):
        calls.append((path, name))
        return {"train": rows[name], "validation": rows[name][:4]}

    return load_dataset


def test_hub_source_uses_super_glue_configs_and_flat_rows(monkeypatch):
    datasets = pytest.importorskip("datasets")
    calls: list = []
    monkeypatch.setattr(datasets, "load_dataset", _fake_hub(calls))
    rte = load_task("rte", source="auto")
    assert calls == [("super_glue", "rte")]
    assert rte["test"][1].text == "rte sentence1: P1. sentence2: H1." and rte["test"][1].target == "not_entailment"
    assert len(rte["train"]) + len(rte["validation"]) == 10
    wsc = load_task("wsc", source="hub")
    assert calls[-1] == ("super_glue", "wsc.fixed")
    assert wsc["test"][0].text == "wsc text: T0 span1: Ann span2: she"
    multirc = load_task("multirc", source="hub")
    assert multirc["test"][0].text == "multirc question: Q0? answer: A0. paragraph: Para."
    assert multirc["test"][0].group == "0-0" and multirc["test"][3].group == "0-1"


def test_hub_failure_is_one_line(monkeypatch):
    datasets = pytest.importorskip("datasets")

    def offline(path, name):
        raise ConnectionError("no network")

    monkeypatch.setattr(datasets, "load_dataset", offline)
    with pytest.raises(MeptError, match="could not load super_glue/boolq"):
        load_task("boolq", source="hub")


def test_unknown_source_is_rejected():
    with pytest.raises(MeptError, match="unknown source"):
        load_task("rte", source="csv", data_dir=str(FIXTURES))
