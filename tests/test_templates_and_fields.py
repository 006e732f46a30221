"""Templates and text fields: a template names fields only and renders as ``str.format`` did, dotted fields
read nested values, object text is refused, sentence pairs use the tokenizer's own pair encoding."""

from __future__ import annotations

import json

import pytest
from conftest import GOOD, TINY, cli, copy_run, csv_file, jsonl_file, one_error, warned


def test_a_dotted_text_field_reads_the_nested_value(tmp_path, capsys):
    rows = [{"doc": {"body": t}, "label": lab} for t, lab in GOOD]
    train = jsonl_file(tmp_path / "nested.jsonl", rows)
    out = tmp_path / "o"
    code, _, err = cli(["train", "--train-file", str(train), "--text-field", "doc.body", "--max-steps", "1",
                        "--output", str(out), *TINY], capsys)
    assert code == 0, err
    code, _, err = cli(["predict", str(out), "--file", str(train), "--output", str(tmp_path / "p.jsonl")], capsys)
    assert code == 0, err


@pytest.mark.parametrize("template, needle", [
    ("{text.__class__}", "name fields only"),  # a dotted name is a nested field, and text holds no fields
    ("{text[0]}", "indexes a value"),
    ("{text:>300000000}", "format spec"),
    ("{text!r}", "format spec or conversion"),
    ("{0}", "positional"),
])
def test_templates_take_field_names_only(tmp_path, capsys, template, needle):
    train = csv_file(tmp_path / "t.csv", GOOD)
    code, _, err = cli(["train", "--train-file", str(train), "--template", template, "--output", str(tmp_path / "o"),
                        *TINY], capsys)
    if needle == "name fields only":
        one_error(code, err, "missing field 'text.__class__'")
    else:
        one_error(code, err, needle)


def test_a_format_spec_in_a_saved_run_config_is_refused_before_predicting(reviews_run, tmp_path, capsys):
    run = copy_run(reviews_run, tmp_path)
    config = json.loads((run / "run_config.json").read_text())
    (run / "run_config.json").write_text(json.dumps({**config, "template": "{text:>300000000}"}))
    new = csv_file(tmp_path / "new.csv", GOOD[:2])
    code, _, err = cli(["predict", str(run), "--file", str(new), "--output", str(tmp_path / "p.csv")], capsys)
    one_error(code, err, "format spec")


def test_object_text_is_refused_and_null_text_is_read_as_empty(tmp_path, capsys):
    rows = [{"text": t, "label": lab} for t, lab in GOOD]
    train = jsonl_file(tmp_path / "t.jsonl", rows + [{"text": {"body": "x"}, "label": "pos"}])
    code, _, err = cli(["train", "--train-file", str(train), "--output", str(tmp_path / "o"), *TINY], capsys)
    one_error(code, err, "holds a JSON object, not text", "text.body")
    train = jsonl_file(tmp_path / "t.jsonl", rows + [{"text": None, "label": "pos"}])
    code, _, err = cli(["train", "--train-file", str(train), "--max-steps", "1", "--output", str(tmp_path / "o2"),
                        *TINY], capsys)
    assert code == 0, err
    warned(err, "1 row(s) have an empty 'text' field")


def test_literal_braces_and_json_booleans_follow_the_documented_rules(tmp_path):
    from mept.data.custom import load_custom

    rows = [{"text": f"row {i}", "label": i % 2 == 0} for i in range(100)]
    spec, splits = load_custom(jsonl_file(tmp_path / "b.jsonl", rows), template="{{{text}}}", task_name="bools")
    assert spec.verbalizer == ("0", "1")
    assert splits["train"][0].text.startswith("{row ") and splits["train"][0].text.endswith("}")


@pytest.mark.parametrize("template", ["{text}", "review: {text}", "{{{text}}} [{label}]", "{text}{label} end", "plain"])
def test_plain_templates_render_as_str_format_did(template):
    from mept.data.jsonl import Row
    from mept.data.template import parse_template

    row = Row({"text": "a film", "label": 1}, "f.jsonl", 1)
    assert parse_template(template).render(row) == template.format(**row.data)


def test_pairs_use_the_tokenizers_own_pair_encoding(minilm):
    from mept.data.encode import Encoder
    from mept.data.examples import Example

    encoder = Encoder("cls", minilm.processor, num_slots=4, max_length=64, labels=None)
    (feature,), _ = encoder.featurize([Example("a cat sat", 0, "x", "t", text_pair="it sat")])
    assert feature.input_ids == minilm.processor("a cat sat", "it sat")["input_ids"]
    assert feature.input_ids.count(minilm.processor.sep_token_id) == 2
    (cut,), truncated = Encoder("cls", minilm.processor, 4, 10, None).featurize(
        [Example("one two three four five six", 0, "x", "t", text_pair="seven eight nine ten")])
    assert truncated == 1 and len(cut.input_ids) == 6 and cut.input_ids.count(minilm.processor.sep_token_id) == 2
