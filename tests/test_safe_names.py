"""No file outside the run: every file name built from data goes through one function (``safe_names``).

Issue 34: ``mept train --task-name '/../../../x/PWNED'``, then ``mept eval RUN``, wrote ``x/PWNED.json``
outside the run. A chosen name that cannot be one file-name component is refused at train time; a
name read from a shared run folder is made safe (or refused) before any path is built from it.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import GOOD, TINY, cli, copy_run, csv_file, one_error, own_files

from mept.errors import MeptError
from mept.files.safe_names import MAX_COMPONENT, check_component, file_component


@pytest.mark.parametrize("name, safe", [
    ("/../../../../tmp/PWNED", "tmp-PWNED"),
    ("..", "unnamed"),
    (".hidden", "hidden"),
    ("a/b\\c", "a-b-c"),
    ("C:evil", "C-evil"),
    ("tab\there", "tab-here"),
    ("bidi\u202eevil", "bidi-evil"),
    ("image-folder:flowers", "image-folder-flowers"),  # the name mept itself gives an image folder's task
    ("bb-rte", "bb-rte"),
    ("reviews.v2+extra", "reviews.v2+extra"),
])
def test_a_data_name_becomes_one_safe_component(name, safe):
    got = file_component(name)
    assert got == safe and "/" not in got and got not in (".", "..") and not got.startswith(".")
    assert file_component(got) == got  # safe names pass unchanged


def test_a_long_name_is_cut_and_keeps_two_names_apart():
    a, b = "x" * 300 + "a", "x" * 300 + "b"
    assert len(file_component(a)) == MAX_COMPONENT and file_component(a) != file_component(b)


def test_a_chosen_name_that_would_change_is_refused_naming_a_safe_one():
    with pytest.raises(MeptError, match="cannot be part of a file name.*'tmp-PWNED'"):
        check_component("/../tmp/PWNED", "task_name")
    assert check_component("reviews", "task_name") == "reviews"


def test_an_unsafe_task_name_is_refused_at_train_time(tmp_path, capsys):
    out = tmp_path / "run"
    code, _, err = cli(["train", *own_files(tmp_path / "data"), "--task-name", "/../../../../../tmp/PWNED",
                        "--max-steps", "1", "--output", str(out), *TINY], capsys)
    one_error(code, err, "task_name", "cannot be part of a file name")
    assert not out.exists()


def test_the_same_rule_holds_in_the_api(tmp_path):
    from mept.data.custom import load_custom

    with pytest.raises(MeptError, match="cannot be part of a file name"):
        load_custom(csv_file(tmp_path / "t.csv", GOOD), task_name="../x")


def test_a_shared_run_with_a_hostile_task_name_writes_nothing_outside(own_run, tmp_path, capsys):
    """The issue's case, from the reader's side: a run folder someone shares, its run_config.json edited."""
    run = copy_run(own_run, tmp_path)
    victim = tmp_path / "victim"
    victim.mkdir()
    (run / "eval_validation_").mkdir()
    config = json.loads((run / "run_config.json").read_text())
    config.update(task_name=f"/../../{victim.name}/PWNED", tasks=[f"/../../{victim.name}/PWNED"])
    (run / "run_config.json").write_text(json.dumps(config))
    code, _, err = cli(["eval", str(run)], capsys)
    one_error(code, err, "run_config.json", "task_name", "cannot be part of a file name")
    assert list(victim.iterdir()) == []


def test_the_scored_files_name_is_made_safe_before_eval_names_its_result(own_run, tmp_path, capsys):
    """Another member of the family, not in the issue: ``eval --file`` names its result after the scored
    file's stem; a stem with characters a file name cannot safely hold (``:``, a bidi control) is made
    safe, and the result stays in the run folder."""
    run = copy_run(own_run, tmp_path)
    scored = csv_file(tmp_path / "new: scores\u202e.csv", GOOD[:4])
    code, out, err = cli(["eval", str(run), "--file", str(scored)], capsys)
    assert code == 0, err
    written = sorted(p.name for p in run.glob("eval_file_*.json"))
    assert written == ["eval_file_new--scores.json"]
    assert all(Path(line.split("wrote ", 1)[1]).parent == run for line in out.splitlines() if "wrote " in line)
