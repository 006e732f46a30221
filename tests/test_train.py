"""The harness end to end on real data: CLI runs, mixture training, metrics.json, eval and cross-task eval."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mept.cli import main
from tests.conftest import needs_bigbench, tiny_t5_with_a_real_tokenizer

FIXTURES = Path(__file__).parent / "fixtures" / "superglue"

QUICK = ["--max-steps", "4", "--batch-size", "4", "--eval-batch-size", "16", "--max-length", "128",
         "--no-progress", "--experts", "2", "--prompt-length", "4"]


def scores(path: Path) -> dict:
    return json.loads((path / "metrics.json").read_text())


def test_train_on_superglue_jsonl_writes_metrics_and_a_tiny_checkpoint(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--task", "rte", "--source", "jsonl", "--data-dir", str(FIXTURES), "--output", str(out), *QUICK]) == 0
    m = scores(out)
    assert set(m["tasks"]) == {"rte"} and 0 <= m["tasks"]["rte"]["score"] <= 100
    assert m["test"]["tasks"]["rte"]["score"] >= 0  # the official validation set is the paper's "test"
    assert m["steps"] == 4 and m["trainable_percent"] < 2 and m["activated_prompt_tokens"] == 4 * 6
    assert {"train_seconds", "train_examples_per_second", "peak_memory_mb"} <= set(m["timing"])
    assert (out / "best" / "adapter_model.safetensors").stat().st_size < 1_000_000
    assert not (out / ".incomplete").exists()
    assert f"validation scores (best checkpoint, step {m['best_step']} of 4):" in capsys.readouterr().out


@needs_bigbench
def test_mixture_training_reports_every_task_and_eval_reproduces_it(tmp_path, capsys):
    out = tmp_path / "mix"
    args = ["train", "--tasks", "bb-rte", "bb-cb", "--max-train-examples", "32", "--max-eval-examples", "24",
            "--output", str(out), *QUICK]
    assert main(args) == 0
    m = scores(out)
    assert set(m["tasks"]) == {"bb-rte", "bb-cb"}
    assert set(m["tasks"]["bb-cb"]) == {"accuracy", "f1", "score"}
    assert m["average"] == pytest.approx((m["tasks"]["bb-rte"]["score"] + m["tasks"]["bb-cb"]["score"]) / 2)
    assert set(m["majority"]) == {"bb-rte", "bb-cb"}
    assert main(["eval", str(out)]) == 0
    again = json.loads((out / "eval_validation_bb-rte-bb-cb.json").read_text())
    assert again["tasks"] == m["tasks"]  # the saved best checkpoint reproduces the reported scores


@needs_bigbench
def test_cross_task_evaluation_uses_the_trained_head(tmp_path):
    out = tmp_path / "cross"
    assert main(["train", "--tasks", "bb-cb", "--max-train-examples", "16", "--max-eval-examples", "16",
                 "--output", str(out), *QUICK]) == 0
    assert main(["eval", str(out), "--task", "bb-rte", "--max-eval-examples", "16"]) == 2  # non-entailment unknown
    assert main(["eval", str(out), "--task", "bb-cb", "--max-eval-examples", "16"]) == 0


def test_config_file_and_seeds_aggregate_mean_and_std(tmp_path):
    cfg = tmp_path / "run.yaml"
    cfg.write_text(
        "method: prompt_tuning\ntasks: [rte]\nsource: jsonl\n"
        f"data_dir: {FIXTURES}\nmax_steps: 2\nbatch_size: 4\nprogress: false\nprompt_length: 4\n"
    )
    out = tmp_path / "seeds"
    assert main(["train", "--config", str(cfg), "--seeds", "1", "2", "--output", str(out)]) == 0
    m = scores(out)
    assert set(m["average"]) == {"mean", "std"} and [r["seed"] for r in m["runs"]] == [1, 2]
    assert (out / "seed-1" / "metrics.json").exists() and (out / "seed-2" / "metrics.json").exists()


def test_lr_grid_picks_the_best_on_validation(tmp_path):
    out = tmp_path / "grid"
    assert main(["train", "--method", "prompt_tuning", "--task", "rte", "--source", "jsonl", "--data-dir", str(FIXTURES),
                 "--lr-grid", "0.001", "0.1", "--output", str(out), *QUICK[:-4]]) == 0
    m = scores(out)
    best = max(m["lr_grid"], key=lambda r: r["average"])
    assert m["lr"] == best["lr"] and len(m["lr_grid"]) == 2


def test_own_csv_data_trains_with_a_template_and_verbalizer(tmp_path):
    rows = ["text,label"] + [f"\"this film was {w}\",{label}" for w, label in
                             [("great", "pos"), ("awful", "neg"), ("superb", "pos"), ("dull", "neg")] * 6]
    (tmp_path / "reviews.csv").write_text("\n".join(rows) + "\n")
    out = tmp_path / "own"
    assert main(["train", "--train-file", str(tmp_path / "reviews.csv"), "--task", "reviews", "--template",
                 "review: {text}", "--verbalizer", "neg", "pos", "--method", "smop", "--output", str(out), *QUICK[:-4]]) == 0
    assert set(scores(out)["tasks"]) == {"reviews"}


@pytest.mark.parametrize("mode", ["rank", "generate"])
def test_t5_text_to_text_trains_and_scores(tmp_path, mode):
    model = tiny_t5_with_a_real_tokenizer(tmp_path / "t5")
    out = tmp_path / "t5run"
    assert main(["train", "--model", str(model), "--task", "cb", "--source", "jsonl", "--data-dir", str(FIXTURES),
                 "--eval-mode", mode, "--output", str(out), *QUICK]) == 0
    m = scores(out)
    assert m["format"] == "seq2seq" and set(m["tasks"]["cb"]) == {"accuracy", "f1", "score"}
