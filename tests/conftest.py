"""Shared fixtures and helpers: the offline backbones, loaded once per session, tiny random configs, and the
reliability batteries' checks (one ``error:`` line, a ``warning:`` line, every byte of a folder) with a tiny
trained run on files of one's own, shared by the subject files (``test_folder_ownership.py``...)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
import torch
import transformers

from mept.model.backbones import load_backbone

# Tests capture stderr, so a slow run on a loaded machine would add progress lines (one per 30 s) to
# stderr that tests count; tests/test_progress.py sets its own interval.
os.environ.setdefault("MEPT_PROGRESS_SECONDS", "3600")


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture(scope="session")
def minilm():
    return load_backbone("minilm", "cls", num_labels=3)


@pytest.fixture(scope="session")
def smollm2_lm():
    return load_backbone("smollm2", "causal_lm")


@pytest.fixture(scope="session")
def smollm2_cls():
    return load_backbone("smollm2", "cls", num_labels=2)


def tiny_llama(task: str = "cls"):
    cfg = transformers.LlamaConfig(
        vocab_size=128, hidden_size=32, intermediate_size=64, num_hidden_layers=3, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=256, pad_token_id=0, num_labels=2,
    )
    cls = transformers.LlamaForSequenceClassification if task == "cls" else transformers.LlamaForCausalLM
    return cls(cfg).eval()


def tiny_t5():
    cfg = transformers.T5Config(
        vocab_size=128, d_model=32, d_kv=8, d_ff=64, num_layers=3, num_decoder_layers=2, num_heads=4,
        decoder_start_token_id=0, pad_token_id=0, eos_token_id=1, dropout_rate=0.0,
    )
    return transformers.T5ForConditionalGeneration(cfg).eval()


def tiny_vit(num_labels: int = 10):
    cfg = transformers.ViTConfig(
        image_size=32, patch_size=8, num_channels=3, hidden_size=32, num_hidden_layers=3, num_attention_heads=4,
        intermediate_size=64, num_labels=num_labels, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
    )
    return transformers.ViTForImageClassification(cfg).eval()


def tiny_bert(num_labels: int = 2):
    cfg = transformers.BertConfig(
        vocab_size=128, hidden_size=32, num_hidden_layers=3, num_attention_heads=4, intermediate_size=64,
        max_position_embeddings=64, num_labels=num_labels, hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
    )
    return transformers.BertForSequenceClassification(cfg).eval()


# --- the reliability batteries' checks ----------------------------------------------------------------

def cli(args: list[str], capsys) -> tuple[int, str, str]:
    """Run ``mept ARGS`` in this process: (exit status, stdout, stderr)."""
    from mept.cli import main

    code = main(args)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def one_error(code: int, err: str, *needles: str) -> None:
    """Exit 2 and exactly one line on stderr, an ``error:`` naming each needle."""
    assert code == 2, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    for needle in needles:
        assert needle in lines[0], lines[0]


def warned(err: str, *needles: str) -> None:
    """A ``warning:`` line naming every needle."""
    lines = [line for line in err.splitlines() if line.startswith("warning: ")]
    assert any(all(n in line for n in needles) for line in lines), err


def csv_file(path: Path, rows: list[tuple[str, str]], header: str = "text,label", encoding: str = "utf-8") -> Path:
    path.write_bytes((header + "\n" + "\n".join(f"{t},{lab}" for t, lab in rows) + "\n").encode(encoding))
    return path


def jsonl_file(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` with its bytes: what a data-loss test compares afterwards."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


# 12 rows per file, two classes: no tiny-validation warning, so an error is the only stderr line
GOOD = [("a great film", "pos"), ("a dull film", "neg"), ("loved it", "pos"), ("hated it", "neg")] * 3
TINY = ["--batch-size", "4", "--max-length", "32", "--no-progress", "--experts", "2", "--prompt-length", "2"]


def own_files(folder: Path) -> list[str]:
    """Training, validation and test files of one's own in ``folder`` (three different files), as flags."""
    folder.mkdir(parents=True, exist_ok=True)
    train = csv_file(folder / "reviews.csv", GOOD)
    val = csv_file(folder / "reviews_val.csv", GOOD[::-1])
    test = csv_file(folder / "reviews_test.csv", GOOD[1:] + GOOD[:1])
    return ["--train-file", str(train), "--val-file", str(val), "--test-file", str(test)]


@pytest.fixture(scope="session")
def own_run(tmp_path_factory) -> Path:
    """A tiny finished MEPT run on MiniLM (one step) trained on :func:`own_files`; copy it before changing it."""
    from mept.cli import main

    root = tmp_path_factory.mktemp("own_run")
    out = root / "run"
    assert main(["train", *own_files(root / "data"), "--max-steps", "1", "--output", str(out), *TINY]) == 0
    return out


def copy_run(run: Path, tmp_path: Path, name: str = "copy") -> Path:
    dest = tmp_path / name
    shutil.copytree(run, dest)
    return dest


def interrupt_training_at_step(monkeypatch, step: int) -> None:
    """Make the next `mept train` in this process stop with Ctrl-C as step ``step`` starts (exit 130),
    after the earlier steps ran and checkpointed; a later train in the same test runs normally."""
    import mept.harness.train as train_mod

    real, calls = train_mod.accumulate_gradients, []

    def stop(*args, **kwargs):
        calls.append(1)
        if len(calls) == step:
            monkeypatch.setattr(train_mod, "accumulate_gradients", real)  # the resumed run trains normally
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(train_mod, "accumulate_gradients", stop)
