"""The user's data files: unreadable, malformed or meaningless ones end in one ``error:`` line naming the file
(and the row or field), doubtful ones run with a ``warning:`` line, odd but valid ones are read."""

from __future__ import annotations

import gzip
import json
import os
from pathlib import Path

import pytest
from conftest import GOOD, TINY, cli, csv_file, one_error, warned

FIXTURES = Path(__file__).parent / "fixtures" / "superglue"
BASE = ["--task", "rte", "--source", "jsonl", "--data-dir", str(FIXTURES), "--batch-size", "2", "--max-length", "96",
        "--no-progress", "--experts", "2", "--prompt-length", "4"]


@pytest.mark.parametrize("kind, needle", [
    ("latin1", "is not UTF-8 text"),
    ("binary", "is not UTF-8 text"),
    ("gzip", "is gzip-compressed"),
])
def test_unreadable_training_files(tmp_path, capsys, kind, needle):
    path = tmp_path / "train.csv"
    if kind == "latin1":
        path.write_bytes("text,label\ntrès bien,pos\nmauvais,neg\n".encode("latin-1"))
    elif kind == "binary":
        path.write_bytes(bytes(range(256)) * 4)
    else:
        path.write_bytes(gzip.compress(b"text,label\nhi,a\nbye,b\n"))
    code, _, err = cli(["train", "--train-file", str(path), "--output", str(tmp_path / "o"), *TINY], capsys)
    one_error(code, err, needle)
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("rows, needle", [
    ([("a", "pos"), ("b", "pos"), ("c", "pos")] * 2, "every training row has the label 'pos'"),
    ([("a", "pos"), ("b", ""), ("c", "neg")] * 2, "empty label in field 'label'"),
    ([("", "pos"), ("", "neg")] * 3, "field 'text' is empty in every row"),
])
def test_meaningless_training_data_is_refused(tmp_path, capsys, rows, needle):
    path = csv_file(tmp_path / "train.csv", rows)
    code, _, err = cli(["train", "--train-file", str(path), "--output", str(tmp_path / "o"), *TINY], capsys)
    one_error(code, err, needle)


def test_doubtful_data_is_warned_about_and_runs(tmp_path, capsys):
    train = csv_file(tmp_path / "train.csv", [*GOOD, ("", "neg")])
    val = csv_file(tmp_path / "val.csv", [("fine", "pos"), ("meh", "neutral"), ("bad", "neg")])
    code, _, err = cli(["train", "--train-file", str(train), "--val-file", str(val), "--max-steps", "1",
                        "--output", str(tmp_path / "o"), *TINY], capsys)
    assert code == 0, err
    warned(err, "'neutral'", "never occur in the training data")
    warned(err, "1 row(s) have an empty 'text' field")


def test_bom_and_semicolon_csv_files_are_read(tmp_path, capsys):
    bom = tmp_path / "bom.csv"
    bom.write_bytes(b"\xef\xbb\xbf" + csv_file(tmp_path / "plain.csv", GOOD).read_bytes())
    semi = tmp_path / "semi.csv"
    semi.write_text("text;label\n" + "\n".join(f"{t};{lab}" for t, lab in GOOD) + "\n")
    for path in (bom, semi):
        code, _, err = cli(["train", "--train-file", str(path), "--max-steps", "1", "--output", str(tmp_path / path.stem),
                            *TINY], capsys)
        assert code == 0, err
        assert json.loads((tmp_path / path.stem / "labels.json").read_text())["tasks"][path.stem]["verbalizer"] == ["neg", "pos"]


def test_missing_field_lists_the_columns_found(tmp_path, capsys):
    path = csv_file(tmp_path / "train.csv", GOOD, header="sentence,label")
    code, _, err = cli(["train", "--train-file", str(path), "--output", str(tmp_path / "o"), *TINY], capsys)
    one_error(code, err, "missing field 'text'", "fields found: sentence, label")


def test_malformed_jsonl_names_file_and_line(tmp_path, capsys):
    rte = tmp_path / "RTE"
    rte.mkdir()
    good = (FIXTURES / "RTE" / "train.jsonl").read_text().splitlines()
    (rte / "train.jsonl").write_text("\n".join(good[:3] + ['{"premise": "cut off'] + good[3:]) + "\n")
    (rte / "val.jsonl").write_text((FIXTURES / "RTE" / "val.jsonl").read_text())
    code, _, err = cli(["train", *BASE[:4], "--data-dir", str(tmp_path), "--output", str(tmp_path / "o")], capsys)
    assert code == 2 and f"{rte / 'train.jsonl'}:4" in err


def test_missing_field_and_unknown_label_are_named(tmp_path, capsys):
    rte = tmp_path / "RTE"
    rte.mkdir()
    (rte / "val.jsonl").write_text((FIXTURES / "RTE" / "val.jsonl").read_text())
    (rte / "train.jsonl").write_text('{"premise": "a", "label": "entailment", "idx": 0}\n')
    code, _, err = cli(["train", *BASE[:4], "--data-dir", str(tmp_path), "--output", str(tmp_path / "o")], capsys)
    assert code == 2 and "hypothesis" in err
    (rte / "train.jsonl").write_text('{"premise": "a", "hypothesis": "b", "label": "maybe", "idx": 0}\n')
    code, _, err = cli(["train", *BASE[:4], "--data-dir", str(tmp_path), "--output", str(tmp_path / "o")], capsys)
    assert code == 2 and "maybe" in err


def test_own_data_with_an_empty_split_is_refused(tmp_path, capsys):
    (tmp_path / "train.csv").write_text("text,label\nhello,a\nbye,b\n")
    (tmp_path / "val.csv").write_text("text,label\n")
    code, _, err = cli(["train", "--train-file", str(tmp_path / "train.csv"), "--val-file", str(tmp_path / "val.csv"),
                         "--output", str(tmp_path / "o")], capsys)
    assert code == 2 and "empty" in err


def test_a_csv_with_a_one_megabyte_cell_is_read(tmp_path):
    from mept.data.jsonl import read_table

    path = csv_file(tmp_path / "long.csv", [("x" * (1 << 20), "pos"), ("short", "neg")])
    rows = read_table(path)
    assert len(rows[0].data["text"]) == 1 << 20 and rows[1].line == 3


def test_a_pipe_is_not_reported_missing(tmp_path, capsys):
    fifo = tmp_path / "train.csv"
    os.mkfifo(fifo)
    code, _, err = cli(["train", "--train-file", str(fifo), "--output", str(tmp_path / "o"), *TINY], capsys)
    one_error(code, err, "not a regular file")
