"""No silent label leaks: what the model reads, which classes exist, and what is held out.

Issue 34: a template reading the label trained to 100.00 in two steps; ``--verbalizer good good`` made a
one-class head; class ``1`` beside classes ``2, 3, 4`` was scored as class id 1 (``'3'``); ``--seeds 1 1``
trained seed 1 twice into one folder; validation = training file passed as held out; a removed
``identity.json`` switched the label-map check off; whitespace- or bidi-only texts got no warning.
"""

from __future__ import annotations

import json

import pytest
from conftest import GOOD, TINY, cli, copy_run, csv_file, jsonl_file, one_error, own_files, warned

import mept
from mept.errors import MeptError


def train(tmp_path, *extra: str, flags: list[str] | None = None) -> list[str]:
    return ["train", *(flags or own_files(tmp_path / "data")), "--max-steps", "1", "--output", str(tmp_path / "run"),
            *TINY, *extra]


# --- the label never reaches the input ---------------------------------------------------------

@pytest.mark.parametrize("extra, needle", [
    (["--template", "review: {text} {label}"], "--template reads {label}"),  # the case
    (["--text-field", "label"], "--text-field reads label"),
    (["--text-pair-field", "label"], "--text-pair-field reads label"),  # a member the issue does not list
    (["--label-field", "meta.label", "--template", "{text} {meta}"], "--template reads {meta}"),  # nested
])
def test_an_input_that_reads_the_label_is_refused(tmp_path, capsys, extra, needle):
    code, _, err = cli(train(tmp_path, *extra), capsys)
    one_error(code, err, needle, "label field", "answer in its input")
    assert not (tmp_path / "run").exists()


def test_scoring_a_file_with_a_template_that_reads_the_label_is_refused(own_run, tmp_path, capsys):
    scored = csv_file(tmp_path / "s.csv", GOOD[:4])
    code, _, err = cli(["eval", str(own_run), "--file", str(scored), "--template", "{label}: {text}"], capsys)
    one_error(code, err, "--template reads {label}")


@pytest.mark.parametrize("same", ["--val-file", "--test-file"])
def test_a_held_out_file_that_is_the_training_file_is_warned_about(tmp_path, capsys, same):
    flags = own_files(tmp_path / "data")
    flags[flags.index(same) + 1] = flags[1]  # the training file itself
    code, _, err = cli(train(tmp_path, flags=flags), capsys)
    assert code == 0, err
    warned(err, f"the {same[2:-5].replace('val', 'validation')} file", "is the training file")


def test_a_byte_for_byte_copy_of_the_training_file_is_warned_about_too(tmp_path, capsys):
    flags = own_files(tmp_path / "data")
    copy = tmp_path / "data" / "copy.csv"
    copy.write_bytes((tmp_path / "data" / "reviews.csv").read_bytes())
    flags[flags.index("--val-file") + 1] = str(copy)
    code, _, err = cli(train(tmp_path, flags=flags), capsys)
    assert code == 0, err
    warned(err, "the validation file", "or a copy of it")


# --- classes -------------------------------------------------------------------------------------

@pytest.mark.parametrize("words, needle", [
    (["good", "good"], "'good' and 'good' name the same class"),  # the case
    (["1", "01"], "'1' and '01' name the same class"),  # the same after the label rule: a member not listed
    (["ok", ""], "a label word is empty"),
])
def test_label_words_must_name_distinct_classes(tmp_path, capsys, words, needle):
    rows = [(t, "1" if lab == "pos" else "0") for t, lab in GOOD]
    flags = ["--train-file", str(csv_file(tmp_path / "n.csv", rows)), "--val-file",
             str(csv_file(tmp_path / "v.csv", rows[::-1]))]
    code, _, err = cli(train(tmp_path, "--verbalizer", *words, flags=flags), capsys)
    one_error(code, err, needle)


def test_the_api_refuses_duplicate_label_words_too(tmp_path):
    from mept.data.custom import load_custom

    with pytest.raises(MeptError, match="name the same class"):
        load_custom(csv_file(tmp_path / "t.csv", GOOD), verbalizer=["good ", "good"], task_name="dup")


def integer_classes(tmp_path):
    """Classes 2, 3, 4 in train and validation, 1 in test: the issue's case."""
    rows = [(f"text number {i}", str(2 + i % 3)) for i in range(24)]
    train_file = csv_file(tmp_path / "ints.csv", rows)
    val = csv_file(tmp_path / "ints_val.csv", rows[::-1][:12])
    test = csv_file(tmp_path / "ints_test.csv", [("text number 1", "1"), ("text number 2", "2")])
    return ["--train-file", str(train_file), "--val-file", str(val), "--test-file", str(test)]


def test_an_integer_class_name_never_seen_in_training_is_refused_not_read_as_an_id(tmp_path, capsys):
    code, _, err = cli(train(tmp_path, flags=integer_classes(tmp_path)), capsys)
    one_error(code, err, "ints_test.csv:2", "label '1' is not one of the classes ['2', '3', '4']")
    assert not (tmp_path / "run").exists()


def test_the_same_rule_holds_for_a_file_scored_later(tmp_path, capsys):
    flags = integer_classes(tmp_path)
    flags = flags[:-2]  # no test file: train on 2, 3, 4
    assert cli(train(tmp_path, flags=flags), capsys)[0] == 0
    scored = csv_file(tmp_path / "later.csv", [("text number 0", "0"), ("text number 3", "3")])
    code, _, err = cli(["eval", str(tmp_path / "run"), "--file", str(scored)], capsys)
    one_error(code, err, "later.csv:2", "label '0' is not one of the classes")


def test_with_a_verbalizer_integer_labels_stay_class_ids(tmp_path, capsys):
    rows = [(t, "1" if lab == "pos" else "0") for t, lab in GOOD]
    flags = ["--train-file", str(csv_file(tmp_path / "n.csv", rows)), "--val-file",
             str(csv_file(tmp_path / "v.csv", rows[::-1]))]
    code, _, err = cli(train(tmp_path, "--verbalizer", "bad", "good", flags=flags), capsys)
    assert code == 0, err
    assert json.loads((tmp_path / "run" / "labels.json").read_text())["words"] == ["bad", "good"]


# --- seeds ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("extra, needle", [
    (["--seeds", "1", "1"], "seeds names 1 more than once"),  # the case
    (["--lr-grid", "0.01", "0.01"], "lr_grid names 0.01 more than once"),  # the same family, not in the issue
])
def test_a_repeated_seed_or_learning_rate_is_refused(tmp_path, capsys, extra, needle):
    code, _, err = cli(train(tmp_path, *extra), capsys)
    one_error(code, err, needle)
    assert not (tmp_path / "run").exists()


# --- identity.json -------------------------------------------------------------------------------

def test_a_removed_identity_file_does_not_switch_the_label_check_off(own_run, tmp_path, capsys):
    run = copy_run(own_run, tmp_path)
    labels = json.loads((run / "labels.json").read_text())
    assert labels["identity"] == "identity.json"
    (run / "identity.json").unlink()
    labels["words"] = labels["words"][::-1]  # swapped words: every prediction would flip
    (run / "labels.json").write_text(json.dumps(labels))
    new = csv_file(tmp_path / "new.csv", GOOD[:2])
    for command in (["eval", str(run)], ["predict", str(run), "--file", str(new), "--output", str(tmp_path / "p.csv")]):
        code, _, err = cli(command, capsys)
        one_error(code, err, "identity.json is missing")
    assert not (tmp_path / "p.csv").exists()


# --- empty texts ---------------------------------------------------------------------------------

@pytest.mark.parametrize("blank", ["   ", "\u202e\u200b", "\u3000\t"])
def test_a_text_of_only_spaces_or_invisible_characters_is_warned_about(tmp_path, capsys, blank):
    rows = [{"text": blank, "label": "pos"}] + [{"text": t, "label": lab} for t, lab in GOOD]
    flags = own_files(tmp_path / "data")
    flags[1] = str(jsonl_file(tmp_path / "data" / "blank.jsonl", rows))
    code, _, err = cli(train(tmp_path, flags=flags), capsys)
    assert code == 0, err
    warned(err, "1 row(s) have an empty 'text' field", "blank.jsonl:1")


def test_empty_texts_in_a_file_to_label_are_warned_about_too(own_run, tmp_path, capsys):
    new = jsonl_file(tmp_path / "new.jsonl", [{"text": "\u202e"}, {"text": "a good film"}])
    code, _, err = cli(["predict", str(own_run), "--file", str(new), "--output", str(tmp_path / "p.jsonl")], capsys)
    assert code == 0, err
    warned(err, "1 row(s) have an empty 'text' field", "labelled on the prompt alone")


def test_a_list_label_is_one_line_naming_the_row(tmp_path, capsys):
    rows = [{"text": t, "label": lab} for t, lab in GOOD] + [{"text": "odd", "label": ["pos", "neg"]}]
    train = jsonl_file(tmp_path / "t.jsonl", rows)
    code, _, err = cli(["train", "--train-file", str(train), "--output", str(tmp_path / "o"), *TINY], capsys)
    one_error(code, err, f"{train}:13", "is a list")


def test_label_spellings_of_one_class_merge_with_a_warning(tmp_path, capsys):
    rows = [("a", "1"), ("b", "01"), ("c", "1.0"), ("d", " 1"), ("e", "0"), ("f", "0"), ("g", "0"), ("h", "1")] * 2
    train = csv_file(tmp_path / "nums.csv", rows)
    out = tmp_path / "o"
    code, _, err = cli(["train", "--train-file", str(train), "--val-file", str(train), "--max-steps", "1",
                        "--output", str(out), *TINY], capsys)
    assert code == 0, err
    assert json.loads((out / "labels.json").read_text())["tasks"]["nums"]["verbalizer"] == ["0", "1"]
    warned(err, "read as one class", "'01'", "'1.0'", "' 1'")


def test_trailing_spaces_are_not_a_class_of_their_own_in_train_and_eval(reviews_run, tmp_path, capsys):
    rows = [(t, lab + " " if i % 3 else lab) for i, (t, lab) in enumerate(GOOD)]
    train = csv_file(tmp_path / "spaces.csv", rows)
    out = tmp_path / "o"
    code, _, err = cli(["train", "--train-file", str(train), "--max-steps", "1", "--output", str(out), *TINY], capsys)
    assert code == 0, err
    assert json.loads((out / "labels.json").read_text())["tasks"]["spaces"]["verbalizer"] == ["neg", "pos"]
    warned(err, "read as one class", "'pos '")
    code, _, err = cli(["eval", str(reviews_run), "--file", str(train)], capsys)  # the same rule for eval files
    assert code == 0, err
    warned(err, "read as one class")


def test_integer_labels_read_as_ids_are_named(reviews_run, tmp_path, capsys):
    scored = csv_file(tmp_path / "ids.csv", [("a great film", "1"), ("a dull film", "0")])
    code, _, err = cli(["eval", str(reviews_run), "--file", str(scored)], capsys)
    assert code == 0, err
    warned(err, "read as label ids", "0 = 'neg'", "1 = 'pos'")


def test_a_tiny_validation_split_is_warned_about(tmp_path, capsys):
    train = csv_file(tmp_path / "small.csv", GOOD[:4])
    code, _, err = cli(["train", "--train-file", str(train), "--max-steps", "1", "--output", str(tmp_path / "o"),
                        *TINY], capsys)
    assert code == 0, err
    warned(err, "validation set has only", "mean little")


def test_held_out_validation_is_capped_when_labels_are_many(tmp_path):
    from mept.data.custom import MAX_HELD_OUT, load_custom
    from mept.errors import MeptWarning

    train = csv_file(tmp_path / "many.csv", [(f"row {i}", f"c{i // 2}") for i in range(1000)])
    with pytest.warns(MeptWarning, match="too few rows to hold one out"):
        _, splits = load_custom(train, task_name="many")
    assert len(splits["validation"]) <= MAX_HELD_OUT * 1000 and len(splits["train"]) >= 800


def test_an_edited_label_map_is_refused(reviews_run, tmp_path, capsys):
    run = copy_run(reviews_run, tmp_path)
    info = json.loads((run / "labels.json").read_text())
    for task in info["tasks"].values():
        task["verbalizer"] = task["verbalizer"][::-1]
    info["words"] = info["words"][::-1]
    (run / "labels.json").write_text(json.dumps(info))
    new = csv_file(tmp_path / "new.csv", GOOD[:2])
    code, _, err = cli(["predict", str(run), "--file", str(new), "--output", str(tmp_path / "p.csv")], capsys)
    one_error(code, err, "labels.json was changed after training")


def test_a_non_finite_label_is_refused(tmp_path, capsys):
    train = tmp_path / "t.jsonl"
    train.write_text("".join(json.dumps({"text": t, "label": lab}) + "\n" for t, lab in GOOD) + '{"text": "x", "label": NaN}\n')
    code, _, err = cli(["train", "--train-file", str(train), "--output", str(tmp_path / "o"), *TINY], capsys)
    one_error(code, err, f"{train}:13", "not a class name")


def test_label_normalisation_rule_table():
    from mept.data.jsonl import Row
    from mept.data.labels import normalise_label

    row = Row({}, "f.csv", 2)
    cases = [("1", "1"), ("01", "1"), ("+1", "1"), ("1.0", "1"), (" 1 ", "1"), (1, "1"), (1.0, "1"), (True, "1"),
             (False, "0"), ("-0", "0"), ("pos ", "pos"), ("Pos", "Pos"), ("0.5", "0.5"), (0.5, "0.5"),
             ("9" * 5000, "9" * 5000)]  # a list: 1, 1.0 and True are one dict key
    assert [normalise_label(raw, row) for raw, _ in cases] == [want for _, want in cases]
    for bad in (None, ["a"], {"a": 1}, float("inf")):
        with pytest.raises(mept.MeptError, match="f.csv:2"):
            normalise_label(bad, row)
