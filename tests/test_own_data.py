"""A user's CSV, end to end with the CLI alone: train with a test file, score a file, predict new rows.

One small run (MiniLM, 12 steps, --max-length 64) on hand-made review sentences in
``fixtures/reviews`` is shared by the tests; the training files are copied and then
deleted, so everything after training must come from the run folder alone.
"""

from __future__ import annotations

import csv
import json
import re
import shutil
import time
from pathlib import Path

import numpy as np
import pytest

from mept.cli import main
from mept.data.custom import file_task_name, load_custom, read_examples
from mept.errors import MeptError
from mept.harness.train_config import TrainConfig

FIXTURES = Path(__file__).parent / "fixtures" / "reviews"
RUN = ["--max-steps", "12", "--eval-every", "4", "--save-every", "1", "--batch-size", "8", "--max-length", "64",
       "--experts", "2", "--prompt-length", "4"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Train on a copy of the fixture folder, then delete the copy: the run must not need it again."""
    root = tmp_path_factory.mktemp("own")
    data = root / "reviews"
    shutil.copytree(FIXTURES, data)
    out = root / "run"
    started = time.perf_counter()
    import contextlib
    import io

    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert main(["train", "--train-file", str(data / "train.csv"), "--test-file", str(data / "test.csv"),
                     "--output", str(out), *RUN]) == 0
    elapsed = time.perf_counter() - started
    shutil.rmtree(data)
    return {"out": out, "elapsed": elapsed, "printed": printed.getvalue()}


def metrics(run: Path) -> dict:
    return json.loads((run / "metrics.json").read_text())


def test_task_is_named_after_the_file_and_test_file_is_scored_with_the_best_checkpoint(trained):
    out = trained["out"]
    m = metrics(out)
    config = json.loads((out / "run_config.json").read_text())
    assert config["tasks"] == ["reviews"] and config["task_name"] == "reviews"  # folder name of reviews/train.csv
    assert Path(config["train_file"]).is_absolute() and Path(config["test_file"]).is_absolute()
    assert set(m["tasks"]) == {"reviews"} and set(m["test"]["tasks"]) == {"reviews"}
    assert 0 <= m["test"]["average"] <= 100
    labels = json.loads((out / "labels.json").read_text())
    assert labels["words"] == ["negative", "positive"] and labels["tasks"]["reviews"]["verbalizer"] == ["negative", "positive"]


def test_summary_names_best_step_counts_parameters_and_logs_every_evaluation(trained):
    m, printed = metrics(trained["out"]), trained["printed"]
    assert f"validation scores (best checkpoint, step {m['best_step']} of 12):" in printed
    assert "test scores (best checkpoint):" in printed
    assert f"trainable: {m['trainable_params']:,} parameters = " in printed
    lines = [line for line in printed.splitlines() if line.startswith("step ")]
    assert [int(line.split()[1].split("/")[0]) for line in lines] == [4, 8, 12]
    assert [h["step"] for h in m["history"]] == [4, 8, 12]
    best = max(m["history"], key=lambda h: h["validation"])
    assert m["best_step"] == best["step"] and f"validation {best['validation']:6.2f}" in printed


def test_timing_counts_training_once_and_never_exceeds_wall_time(trained):
    timing = metrics(trained["out"])["timing"]
    # --save-every 1 wrote 12 checkpoints: the old bookkeeping added the time since start at every one
    assert 0 < timing["train_seconds"] <= timing["wall_seconds"] <= trained["elapsed"]
    seen = timing["examples_seen"]  # 58 training rows: each epoch ends in one short batch
    assert 12 * 8 - 2 * 6 <= seen < 12 * 8
    assert timing["train_examples_per_second"] == pytest.approx(seen / timing["train_seconds"], rel=0.01)


def test_eval_file_works_from_elsewhere_with_only_the_run_folder(trained, tmp_path, monkeypatch, capsys):
    run = tmp_path / "moved"
    shutil.copytree(trained["out"], run)
    shutil.copy(FIXTURES / "test.csv", tmp_path / "scores.csv")
    monkeypatch.chdir(tmp_path)
    assert main(["eval", "moved", "--file", "scores.csv"]) == 0
    result = json.loads((run / "eval_file_scores.json").read_text())
    assert result["tasks"]["reviews"] == metrics(run)["test"]["tasks"]["reviews"]  # same file, same checkpoint
    assert "scores on scores.csv (24 examples, best checkpoint):" in capsys.readouterr().out
    # --split test re-reads the training data from its saved absolute path; that file was deleted, and it says
    # so, and why it is needed
    assert main(["eval", "moved", "--split", "test"]) == 2
    err = capsys.readouterr().err
    assert "training file" in err and "is gone" in err and "rebuilt from the files it was trained with" in err


def test_predict_writes_label_probability_and_experts_per_layer(trained, tmp_path):
    from mept.harness.evaluate import predict
    from mept.harness.run_folder import load_trained, pick_task, read_task_file

    out_csv, out_jsonl = tmp_path / "preds.csv", tmp_path / "preds.jsonl"
    new = FIXTURES / "new.csv"
    assert main(["predict", str(trained["out"]), "--file", str(new), "--output", str(out_csv)]) == 0
    assert main(["predict", str(trained["out"]), "--file", str(new), "--output", str(out_jsonl)]) == 0
    with open(out_csv, newline="") as f:
        rows = list(csv.DictReader(f))
    with open(new, newline="") as f:
        inputs = list(csv.DictReader(f))
    assert [(r["id"], r["text"]) for r in rows] == [(r["id"], r["text"]) for r in inputs]
    records = [json.loads(line) for line in out_jsonl.read_text().splitlines()]
    p = load_trained(trained["out"])
    spec = pick_task(p, None)
    features, _ = p.encoder.featurize(read_task_file(p, spec, str(new), labelled=False))
    expected = [spec.verbalizer[i] for i in predict(p.model, p.encoder, spec, features, 8)]
    assert [r["prediction"] for r in rows] == [r["prediction"] for r in records] == expected
    for row, rec in zip(rows, records):
        probs = rec["probabilities"]
        assert set(probs) == {"negative", "positive"} and sum(probs.values()) == pytest.approx(1, abs=1e-5)
        assert rec["probability"] == max(probs.values()) == pytest.approx(float(row["probability"]))
        assert list(rec["experts"]) == [f"layer {n}" for n in range(1, 7)]
        assert all(e in (0, 1) for e in rec["experts"].values())
        assert row["experts"] == " ".join(str(e) for e in rec["experts"].values())


def test_predict_experts_match_the_routing_trace(trained):
    import torch

    from mept.harness.evaluate import predict_details
    from mept.harness.run_folder import load_trained, pick_task, read_task_file

    p = load_trained(trained["out"])
    spec = pick_task(p, None)
    features, _ = p.encoder.featurize(read_task_file(p, spec, str(FIXTURES / "new.csv"), labelled=False))
    preds = predict_details(p.model, p.encoder, spec, features, 3)
    batch = p.encoder.collate(features, train=False)
    with torch.no_grad():
        out = p.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
    logits = out.logits
    chosen = torch.stack([r.chosen for r in out.routes.values()], 1).tolist()
    assert [q.experts for q in preds] == chosen
    assert np.allclose([q.probabilities for q in preds], logits.softmax(-1).numpy(), atol=1e-5)


def test_analyze_one_task_prints_layer_use_and_routing_by_class(trained, tmp_path, capsys):
    data = tmp_path / "reviews"
    shutil.copytree(FIXTURES, data)  # analyze reads the validation split of the training file
    run = tmp_path / "run"
    shutil.copytree(trained["out"], run)
    config = json.loads((run / "run_config.json").read_text())
    config.update(train_file=str(data / "train.csv"), test_file=str(data / "test.csv"))
    (run / "run_config.json").write_text(json.dumps(config))
    assert main(["analyze", str(run), "--by", "label", "--no-baseline", "--out", str(tmp_path / "an")]) == 0
    printed = capsys.readouterr().out
    assert "reviews: expert use per layer" in printed and "pathway by class" in printed
    saved = json.loads((tmp_path / "an" / "pathways.json").read_text())["reviews"]
    by_label = saved["by_label"]
    assert set(by_label) == {"negative", "positive"}
    assert sum(c["examples"] for c in by_label.values()) == 6  # 10% of 64 held out
    total = sum(np.array(c["top1_freq"]) * c["examples"] for c in by_label.values()) / 6
    assert np.allclose(total, saved["top1_freq"])  # the classes partition the task's routing


def test_errors_are_one_line_and_name_the_problem(trained, tmp_path, capsys):
    new = str(FIXTURES / "new.csv")
    assert main(["predict", str(trained["out"]), "--file", new, "--output", str(tmp_path / "p.txt")]) == 2
    assert main(["eval", str(trained["out"]), "--file", new]) == 2  # no label column
    assert main(["predict", str(trained["out"]), "--file", new, "--output", str(tmp_path / "p.csv"),
                 "--task", "rte"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[0] == "error: --output must end in .csv or .jsonl, got p.txt"
    assert "missing field 'label'" in err[1] and "new.csv:2" in err[1]
    assert err[2].startswith("error: task 'rte' is not one this run can score")
    assert not (tmp_path / "p.csv").exists()


def test_file_task_names_and_absolute_paths(tmp_path, monkeypatch):
    assert file_task_name("spam/train.csv") == "spam"
    assert file_task_name("My News.csv") == "my-news"
    assert file_task_name("rte.csv") == "rte-own"  # never shadows a built-in task
    monkeypatch.chdir(tmp_path)
    cfg = TrainConfig(train_file="sentiment.csv", val_file="dev.csv")
    assert cfg.tasks == ["sentiment"] and cfg.train_file == str(tmp_path / "sentiment.csv")
    assert TrainConfig(train_file="a.csv", task_name="mine").tasks == ["mine"]
    assert TrainConfig(train_file="a.csv", tasks=["reviews"]).task_name == "reviews"
    with pytest.raises(MeptError, match="test_file needs train_file"):
        TrainConfig(test_file="t.csv")


def test_test_split_and_unlabelled_rows_are_read_like_train(tmp_path):
    spec, splits = load_custom(FIXTURES / "train.csv", path_test=FIXTURES / "test.csv", task_name="reviews-t")
    assert len(splits["test"]) == 24 and {e.target for e in splits["test"]} == {"negative", "positive"}
    rows = read_examples(FIXTURES / "new.csv", spec, labelled=False)
    assert len(rows) == 8 and all(e.label == -1 and e.task == "reviews-t" for e in rows)
    bad = tmp_path / "bad.csv"
    bad.write_text("text,label\nfine,positive\nmeh,neutral\n")
    with pytest.raises(MeptError, match=rf"{bad}:3: label 'neutral'"):
        load_custom(FIXTURES / "train.csv", path_test=bad, task_name="reviews-t")


def test_truncation_is_announced_before_training_and_transformers_stays_quiet(tmp_path, capfd, monkeypatch):
    import mept.harness.prepare_run
    import mept.harness.train_loop

    events = []
    for module, name in ((mept.harness.prepare_run, "warn_truncation"), (mept.harness.train_loop, "task_loss")):
        real = getattr(module, name)
        monkeypatch.setattr(module, name, lambda *a, _real=real, _name=name, **k: events.append(_name) or _real(*a, **k))
    rows = [("word " * 700 if i % 4 == 0 else f"short review {i}", "positive" if i % 2 else "negative") for i in range(24)]
    path = tmp_path / "long.csv"
    path.write_text("text,label\n" + "".join(f"{t},{lab}\n" for t, lab in rows))
    assert main(["train", "--train-file", str(path), "--output", str(tmp_path / "run"), "--max-steps", "2",
                 "--batch-size", "8", "--max-length", "64", "--method", "prompt_tuning", "--prompt-length", "4"]) == 0
    out, err = capfd.readouterr()
    assert "Token indices sequence length is longer" not in out + err
    warning = re.search(r"warning: longer than --max-length 64 \(text tokens\), truncated: "
                        r"long/train (\d+) of (\d+) \((\d+)%\)", err)
    assert warning, err
    cut, total, share = map(int, warning.groups())
    m = metrics(tmp_path / "run")
    assert cut == m["truncated"]["long/train"] and total == m["train_examples"] and share == round(100 * cut / total)
    assert events[0] == "warn_truncation" and events.count("task_loss") == 2  # up front, before the first step
    assert "it/s" not in err and "train:" not in err  # no progress bar when stderr is not a terminal


@pytest.mark.parametrize("mode", ["rank", "generate"])
def test_predict_on_a_text_to_text_run_ranks_label_words(tmp_path, mode):
    """seq2seq runs have no head: predict ranks (or generates) the label words, from labels.json alone."""
    from tests.conftest import tiny_t5_with_a_real_tokenizer

    model = tiny_t5_with_a_real_tokenizer(tmp_path / "t5")
    out = tmp_path / "run"
    assert main(["train", "--model", str(model), "--train-file", str(FIXTURES / "train.csv"), "--format", "seq2seq",
                 "--eval-mode", mode, "--output", str(out), "--max-steps", "2", "--batch-size", "8",
                 "--max-length", "64", "--prompt-length", "4", "--experts", "2"]) == 0
    assert json.loads((out / "labels.json").read_text())["format"] == "seq2seq"
    preds = tmp_path / "p.jsonl"
    assert main(["predict", str(out), "--file", str(FIXTURES / "new.csv"), "--output", str(preds)]) == 0
    records = [json.loads(line) for line in preds.read_text().splitlines()]
    assert len(records) == 8
    for rec in records:
        assert list(rec["experts"]) == ["layer 1", "layer 2"]  # the tiny T5 encoder has two layers
        if mode == "rank":
            assert rec["prediction"] in ("negative", "positive")
            assert sum(rec["probabilities"].values()) == pytest.approx(1, abs=1e-5)
        else:  # a generated answer outside the label words is no prediction; there is no probability
            assert rec["probability"] is None and rec["prediction"] in ("negative", "positive", None)
