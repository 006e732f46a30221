"""``mept eval`` and ``mept predict`` on a run folder: what they warn about when reading it, and where and how
they write (never over their input, one result file per input, the user's columns and file modes kept)."""

from __future__ import annotations

import json
import os
import stat

import pytest
from conftest import GOOD, RTE_BASE, cli, copy_run, csv_file, jsonl_file, one_error, warned

from mept.cli import main


def test_eval_of_an_unfinished_run_warns(rte_run, tmp_path, capsys):
    run = copy_run(rte_run, tmp_path)
    (run / ".incomplete").write_text("training in progress\n")
    code, _, err = cli(["eval", str(run)], capsys)
    assert code == 0
    warned(err, "unfinished run")


def test_eval_of_a_multi_seed_run_scores_every_seed(tmp_path, capsys):
    out = tmp_path / "seeds"
    assert main(["train", *RTE_BASE, "--max-steps", "1", "--seeds", "1", "2", "--output", str(out)]) == 0
    code, printed, err = cli(["eval", str(out)], capsys)
    assert code == 0, err
    for seed in (1, 2):
        assert json.loads((out / f"seed-{seed}" / "eval_validation_rte.json").read_text())["seed"] == seed
    summary = json.loads((out / "eval_validation_rte.json").read_text())
    assert [s["seed"] for s in summary["seeds"]] == [1, 2] and "mean over 2 seeds" in printed


def test_predict_output_that_is_the_input_is_refused(reviews_run, tmp_path, capsys):
    new = csv_file(tmp_path / "x.csv", GOOD[:3])
    before = new.read_bytes()
    code, _, err = cli(["predict", str(reviews_run), "--file", str(new), "--output", str(new)], capsys)
    one_error(code, err, "is the input file")
    assert new.read_bytes() == before and stat.S_IMODE(new.stat().st_mode) != 0o600


@pytest.mark.parametrize("rows", [
    [{"text": "fine"}, {"text": "bad", "prediction": "mine"}],  # only a later row has it
    [{"text": "fine", "probabilities": [0.1]}],  # a name the clash check did not know
])
def test_predict_refuses_rows_with_fields_it_would_overwrite(reviews_run, tmp_path, capsys, rows):
    new = jsonl_file(tmp_path / "new.jsonl", rows)
    before = new.read_bytes()
    out = tmp_path / "preds.jsonl"
    code, _, err = cli(["predict", str(reviews_run), "--file", str(new), "--output", str(out)], capsys)
    one_error(code, err, "which mept predict writes")
    assert new.read_bytes() == before and not out.exists()


def test_predict_csv_keeps_every_field_of_a_ragged_jsonl(reviews_run, tmp_path, capsys):
    new = jsonl_file(tmp_path / "new.jsonl", [{"text": "fine", "id": 1}, {"text": "bad", "source": "web"}])
    out = tmp_path / "preds.csv"
    code, _, err = cli(["predict", str(reviews_run), "--file", str(new), "--output", str(out)], capsys)
    assert code == 0, err
    import csv

    rows = list(csv.DictReader(out.open()))
    assert rows[0]["id"] == "1" and rows[1]["source"] == "web" and rows[1]["prediction"] in ("neg", "pos")


def test_eval_files_with_the_same_stem_do_not_overwrite_each_other(reviews_run, tmp_path, capsys):
    run = copy_run(reviews_run, tmp_path)
    for sub in ("a", "b"):
        (tmp_path / sub).mkdir()
        csv_file(tmp_path / sub / "test.csv", GOOD[: 4 if sub == "a" else 8])
        code, _, err = cli(["eval", str(run), "--file", str(tmp_path / sub / "test.csv")], capsys)
        assert code == 0, err
    written = sorted(run.glob("eval_file_test*.json"))
    assert len(written) == 2
    assert {json.loads(p.read_text())["examples"] for p in written} == {4, 8}


def test_predict_keeps_the_mode_of_a_replaced_file_and_the_umask_for_a_new_one(reviews_run, tmp_path, capsys):
    new = csv_file(tmp_path / "new.csv", GOOD[:2])
    out = tmp_path / "preds.csv"
    assert cli(["predict", str(reviews_run), "--file", str(new), "--output", str(out)], capsys)[0] == 0
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(out.stat().st_mode) == 0o666 & ~umask
    out.chmod(0o640)
    assert cli(["predict", str(reviews_run), "--file", str(new), "--output", str(out), "--overwrite"], capsys)[0] == 0
    assert stat.S_IMODE(out.stat().st_mode) == 0o640


def test_the_interrupt_hint_of_predict_is_about_predict(reviews_run, tmp_path, capsys, monkeypatch):
    import mept.harness.eval_run

    monkeypatch.setattr(mept.harness.eval_run, "predict_details", lambda *a, **k: (_ for _ in ()).throw(KeyboardInterrupt()))
    new = csv_file(tmp_path / "new.csv", GOOD[:2])
    code, _, err = cli(["predict", str(reviews_run), "--file", str(new), "--output", str(tmp_path / "p.csv")], capsys)
    assert code == 130 and "mept predict" in err and "--resume" not in err


def test_predict_output_problems_come_before_the_model_loads(reviews_run, tmp_path, capsys, monkeypatch):
    import mept.harness.eval_run

    monkeypatch.setattr(mept.harness.eval_run, "load_trained", lambda *a, **k: pytest.fail("model loaded first"))
    new = csv_file(tmp_path / "new.csv", GOOD[:2])
    folder = tmp_path / "out.csv"
    folder.mkdir()
    code, _, err = cli(["predict", str(reviews_run), "--file", str(new), "--output", str(folder)], capsys)
    one_error(code, err, "is a folder")
    blocker = tmp_path / "file"
    blocker.write_text("x")
    code, _, err = cli(["predict", str(reviews_run), "--file", str(new), "--output", str(blocker / "p.csv")], capsys)
    one_error(code, err, "which is a file")


def test_predict_output_that_links_to_the_input_is_refused(reviews_run, tmp_path, capsys):
    new = csv_file(tmp_path / "x.csv", GOOD[:3])
    before = new.read_bytes()
    link = tmp_path / "y.csv"
    link.symlink_to(new)
    code, _, err = cli(["predict", str(reviews_run), "--file", str(new), "--output", str(link)], capsys)
    one_error(code, err, "is the input file")
    assert new.read_bytes() == before and link.is_symlink()


def test_scoring_the_same_file_twice_keeps_one_result_file(reviews_run, tmp_path, capsys):
    run = copy_run(reviews_run, tmp_path)
    scored = csv_file(tmp_path / "test.csv", GOOD[:4])
    for _ in range(2):
        assert cli(["eval", str(run), "--file", str(scored)], capsys)[0] == 0
    assert [p.name for p in run.glob("eval_file_test*.json")] == ["eval_file_test.json"]
