"""PT-MoE on generation tasks with SmolLM2: training on answer tokens helps, greedy answers are scored right."""

from __future__ import annotations

import re
import time
from dataclasses import replace

import pytest
import transformers
from conftest import needs_bigbench

import mept
from mept.data import get_task
from mept.data.encode import Encoder, Feature
from mept.data.examples import Example
from mept.harness.evaluate import evaluate, predict, score
from mept.harness.prepare_run import prepare
from mept.harness.train import train
from mept.harness.train_config import TrainConfig

ONE_DIGIT = re.compile(r"^What is \d (plus|minus|times) \d\?$")


def qa(answers: list[list[str]], task: str = "bb-quoref") -> list[Feature]:
    """Generation-task features carrying only the gold answers (what score() reads)."""
    return [Feature(Example(text="q", label=-1, target=a[0], task=task, answers=a)) for a in answers]


def test_squad_em_and_f1_from_the_generation_path_match_hand_computed_values():
    answers = [["Eiffel Tower"], ["Paris"], ["Shakespeare", "W. Shakespeare"], ["1600"]]
    preds = ["The Eiffel Tower", "in Paris, France", "William Shakespeare", ""]
    # EM: only the first (articles are dropped). F1 per example: 1; 1/3 precision, 1 recall -> 1/2;
    # best of "shakespeare" (P 1/2, R 1 -> 2/3) and "w shakespeare" (P 1/2, R 1/2 -> 1/2) -> 2/3; 0.
    for task in ("bb-quoref", "bb-disflqa"):
        result = score(get_task(task), qa(answers, task), preds)
        assert result["exact_match"] == pytest.approx(25.0)
        assert result["f1"] == pytest.approx(100 * (1 + 1 / 2 + 2 / 3 + 0) / 4)
        assert result["score"] == result["f1"]


def test_arithmetic_exact_match_normalises_only_harmless_differences():
    answers = [["-2"], ["-2"], ["1,000"], ["35"], ["7"]]
    preds = ["-2.", "2", "1000", "3.5", " 7 "]
    result = score(get_task("bb-arithmetic"), qa(answers, "bb-arithmetic"), preds)
    assert result["exact_match"] == pytest.approx(60.0)  # -2., 1000 and " 7 " count; 2 and 3.5 do not


def test_batched_left_padded_answers_equal_one_by_one_and_exclude_the_question(smollm2_lm):
    """The harness's generate path: left padding, prompt stripped. A tiny random Llama on SmolLM2's
    tokenizer keeps 32-token greedy decoding fast; the padding logic is the same for any decoder."""
    tok = smollm2_lm.processor
    backbone = transformers.LlamaForCausalLM(transformers.LlamaConfig(
        vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id)).eval()
    model = mept.get_model(backbone, mept.PTMoEConfig(num_experts=4, prompt_length=8)).eval()
    encoder = Encoder("causal_lm", tok, model.num_slots, 128, None)
    texts = ["What is 3 plus 4?", "question: Who wrote Hamlet? context: Hamlet is a play by William Shakespeare.",
             "What is 9 times 9? Give the number."]
    features, _ = encoder.featurize([Example(t, -1, "x", "bb-arithmetic", answers=["x"]) for t in texts])
    assert len({len(f.input_ids) for f in features}) == 3  # different lengths: real left padding
    spec = get_task("bb-arithmetic")
    together = predict(model, encoder, spec, features, batch_size=3)
    alone = [predict(model, encoder, spec, [f], batch_size=1)[0] for f in features]
    assert together == alone
    assert all(p for p in together) and not any("What is" in p or "Answer:" in p for p in together)


@pytest.mark.slow
@needs_bigbench
def test_ptmoe_training_improves_one_digit_arithmetic_over_the_untrained_prompt(tmp_path):
    cfg = TrainConfig(method="ptmoe", model="smollm2", tasks=["bb-arithmetic"], format="causal_lm",
                      prompt_length=8, experts=4, lr=5e-2, warmup_ratio=0.0, batch_size=8, max_steps=60,
                      eval_batch_size=48, max_length=64, eval_every=1000, output=str(tmp_path / "run"), progress=False)
    p = prepare(cfg)
    # 1-digit questions only: a task the 135M model can learn to answer in a few steps
    train_set = [f for f in p.train if ONE_DIGIT.match(f.example.text)]
    val = {"bb-arithmetic": [f for f in p.eval_sets["bb-arithmetic"] if ONE_DIGIT.match(f.example.text)][:60]}
    assert len(train_set) >= 200 and len(val["bb-arithmetic"]) >= 40
    p = replace(p, train=train_set, eval_sets=val, test_sets={})
    t0 = time.perf_counter()
    before = evaluate(p.model, p.encoder, p.specs, p.eval_sets, cfg.eval_batch_size)["average"]
    t1 = time.perf_counter()
    metrics = train(cfg, prepared=p)  # metrics.json scores the best checkpoint with the same evaluate()
    after = metrics["average"]
    print(f"\nbb-arithmetic 1-digit EM: untrained {before:.1f} -> trained {after:.1f} "
          f"(eval {t1 - t0:.0f}s, train+eval {time.perf_counter() - t1:.0f}s)")
    assert metrics["format"] == "causal_lm" and metrics["tasks"]["bb-arithmetic"]["exact_match"] == after
    assert after >= before + 15.0  # measured (60 steps, seeds 42 / 1): 0.0 -> 47.6, 9.5 -> 50.0 (42 questions)
