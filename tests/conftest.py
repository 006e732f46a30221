"""Shared fixtures and helpers: the offline backbones, loaded once per session, tiny random configs, tiny models
with a real tokenizer written to a folder, and the reliability checks (one ``error:`` line, a ``warning:`` line,
every byte of a folder) with the tiny trained runs they start from (``own_run``, ``rte_run``, ``reviews_run``),
shared by the subject files (``test_folder_ownership.py``, ``test_run_folder_safety.py``...). A test file imports
what it needs from here, never from another test file."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
import torch
import transformers

from mept.data import bigbench, vader
from mept.model.backbones import load_backbone, resolve

# The offline data sets the tests read: a test that needs one is skipped, with the reason, where it was not downloaded.
needs_vader = pytest.mark.skipif(not vader.tarball_path().is_file(), reason="vaderSentiment sdist not downloaded")
needs_bigbench = pytest.mark.skipif(not bigbench.tarball_path().exists(), reason="BIG-bench tarball not downloaded")

# Tests capture stderr, so a slow run on a loaded machine would add progress lines (one per 30 s) to
# stderr that tests count; tests/test_progress.py sets its own interval.
os.environ.setdefault("MEPT_PROGRESS_SECONDS", "3600")
# `--mixed-precision auto` picks bf16 autocast on a CPU with avx512_bf16; the tests that compare two ways of
# computing one update (1 vs 2 processes, gradient accumulation, reloads) hold fp32 tolerances, so the suite caps
# auto at fp32 on every machine (mept.harness.precision honours this variable); tests/test_precision.py sets or
# clears it itself to test the bf16 paths.
os.environ.setdefault("ONEDNN_MAX_CPU_ISA", "AVX2")


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


def tiny_mpnet(num_labels: int = 3):
    """MPNet's classification head (dense + tanh + projection, read at position 0), which BERT's is not."""
    cfg = transformers.MPNetConfig(vocab_size=128, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                                   intermediate_size=64, num_labels=num_labels, hidden_dropout_prob=0.0,
                                   attention_probs_dropout_prob=0.0)
    return transformers.MPNetForSequenceClassification(cfg).eval()


# --- tiny models with a real tokenizer, written to a folder, and data for them -------------------------

WORDS = ["great", "awful", "superb", "dull", "lovely", "boring", "moving", "tedious", "fine", "weak"]


def tiny_model_dir(path: Path, family: str = "bert", hidden_size: int = 32) -> Path:
    """A 2-layer random BERT (or Llama) with MiniLM's tokenizer: real tokenisation, seconds to train
    (``hidden_size`` for what depends on the backbone's width)."""
    tok = transformers.AutoTokenizer.from_pretrained(resolve("minilm"))
    torch.manual_seed(0)
    if family == "llama":
        cfg = transformers.LlamaConfig(
            vocab_size=tok.vocab_size, hidden_size=hidden_size, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
            num_key_value_heads=2, max_position_embeddings=128, pad_token_id=tok.pad_token_id,
            initializer_range=0.5,  # peaked predictions: token losses differ, so a wrong weighting would show
        )
        model = transformers.LlamaForCausalLM(cfg)
    else:
        cfg = transformers.BertConfig(
            vocab_size=tok.vocab_size, hidden_size=hidden_size, num_hidden_layers=2, num_attention_heads=4,
            intermediate_size=64, max_position_embeddings=128, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
        )
        model = transformers.BertModel(cfg)
    model.save_pretrained(path)
    tok.save_pretrained(path)
    return path


def reviews(path: Path, n: int, labels: tuple[str, str] = ("neg", "pos")) -> Path:
    # texts of 1 to 5 judgements, so length-grouped batches still mix both labels
    texts = ["the film was " + " and ".join(WORDS[(i + 3 * j) % 10] for j in range(1 + (7 * i) % 5)) for i in range(n)]
    rows = ["text,label"] + [f"\"{text}\",{labels[i % 2]}" for i, text in enumerate(texts)]
    path.write_text("\n".join(rows) + "\n")
    return path


def tiny_t5_with_a_real_tokenizer(folder: Path) -> Path:
    """No T5 checkpoint ships offline: a small random T5 that reads MiniLM's WordPiece vocabulary."""
    tok = transformers.AutoTokenizer.from_pretrained(resolve("minilm"))
    cfg = transformers.T5Config(vocab_size=len(tok), d_model=32, d_kv=8, d_ff=64, num_layers=2, num_decoder_layers=2,
                                num_heads=4, decoder_start_token_id=tok.pad_token_id, pad_token_id=tok.pad_token_id,
                                eos_token_id=tok.sep_token_id, dropout_rate=0.0)
    transformers.T5ForConditionalGeneration(cfg).save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


SMALL = {  # settings that keep every method quick on CPU
    "prompt_tuning": {},
    "ptuning_v2": {"prompt_length": 8},
    "smop": {},
    "mept": {"num_experts": 4, "prompt_length": 6},
    "vfpt": {"prompt_length": 6},
    "ptmoe": {},
}


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


# A MEPT run on the RTE fixture with these flags (``rte_run``); a test that resumes or overwrites a copy passes them too
FIXTURES = Path(__file__).parent / "fixtures"
RTE_BASE = ["--task", "rte", "--source", "jsonl", "--data-dir", str(FIXTURES / "superglue"),
            "--batch-size", "2", "--max-length", "64", "--no-progress", "--experts", "2", "--prompt-length", "4"]


@pytest.fixture(scope="module")
def rte_run(tmp_path_factory) -> Path:
    """A tiny MEPT run on the RTE fixture (MiniLM, 2 steps, :data:`RTE_BASE`), trained once per test module;
    copy it before damaging it."""
    from mept.cli import main

    out = tmp_path_factory.mktemp("battery") / "run"
    assert main(["train", *RTE_BASE, "--max-steps", "2", "--output", str(out)]) == 0
    return out


@pytest.fixture(scope="module")
def reviews_run(tmp_path_factory) -> Path:
    """A tiny MEPT run (MiniLM, 12 rows, one step) with its data files beside it (:func:`reviews_run_files`),
    trained once per test module; copy it before editing it."""
    from mept.cli import main

    root = tmp_path_factory.mktemp("battery3")
    train = csv_file(root / "reviews.csv", GOOD)
    val = csv_file(root / "reviews_val.csv", GOOD[::-1])  # the same rows in another order: not the training file
    out = root / "run"
    assert main(["train", "--train-file", str(train), "--val-file", str(val), "--max-steps", "1",
                 "--output", str(out), *TINY]) == 0
    return out


def reviews_run_files(reviews_run: Path) -> list[str]:
    """The data flags of :func:`reviews_run` (a --val-file, so no tiny-validation warning joins the error line)."""
    return ["--train-file", str(reviews_run.parent / "reviews.csv"),
            "--val-file", str(reviews_run.parent / "reviews_val.csv")]


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
