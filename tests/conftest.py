"""Shared fixtures: the offline backbones, loaded once per session, and tiny random configs."""

from __future__ import annotations

import os

import pytest
import torch
import transformers

from mept.backbones import load_backbone

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
