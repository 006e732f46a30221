"""Baselines in the same harness: LoRA (through PEFT), full fine-tuning and a linear probe train,
evaluate, predict and resume exactly as the prompt methods do, and LoRA's folder is PEFT's own."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from conftest import interrupt_training_at_step

import mept
from mept.cli import main
from mept.errors import MeptError

FIXTURES = Path(__file__).parent / "fixtures" / "reviews"
TINY = ["--train-file", str(FIXTURES / "train.csv"), "--test-file", str(FIXTURES / "test.csv"), "--batch-size", "8",
        "--eval-batch-size", "16", "--max-length", "48", "--no-progress", "--save-every", "2"]
# one prompt method beside the baselines: the suite's claims are the harness's, for every kind of method
SUITE = ["mept", "lora", "full", "probe"]


def metrics(run: Path) -> dict:
    return json.loads((run / "metrics.json").read_text())


def without_timing(m: dict) -> dict:
    return {k: v for k, v in m.items() if k != "timing"}


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> dict[str, Path]:
    """One tiny run per method (4 steps), shared by the eval / predict / resume claims."""
    root = tmp_path_factory.mktemp("baselines")
    runs = {}
    for method in SUITE:
        runs[method] = root / method
        extra = ["--experts", "2", "--prompt-length", "4"] if method == "mept" else []
        assert main(["train", "--method", method, *TINY, *extra, "--max-steps", "4", "--output", str(runs[method])]) == 0
    return runs


@pytest.mark.parametrize("method", SUITE)
def test_train_writes_metrics_test_scores_and_a_checkpoint(trained, method):
    m = metrics(trained[method])
    assert m["method"] == method and m["steps"] == 4 and m["test"]["tasks"]["reviews"]["score"] >= 0
    assert m["trainable_params"] > 0 and m["parameters"]["method"] == method
    assert (m["routing"] is not None) == (method == "mept")  # routing sections only where there is routing
    assert (trained[method] / "best").is_dir() and (trained[method] / "checkpoint" / "trainer_state.json").exists()


@pytest.mark.parametrize("method", SUITE)
def test_eval_reproduces_the_best_checkpoints_validation_score(trained, method, capsys):
    assert main(["eval", str(trained[method])]) == 0
    result = json.loads((trained[method] / "eval_validation_reviews.json").read_text())
    assert result["average"] == pytest.approx(metrics(trained[method])["average"])
    assert main(["eval", str(trained[method]), "--split", "test"]) == 0
    test = json.loads((trained[method] / "eval_test_reviews.json").read_text())
    assert test["average"] == pytest.approx(metrics(trained[method])["test"]["average"])


@pytest.mark.parametrize("method", SUITE)
def test_predict_labels_new_rows_with_probabilities(trained, method, tmp_path):
    out = tmp_path / "p.jsonl"
    assert main(["predict", str(trained[method]), "--file", str(FIXTURES / "new.csv"), "--output", str(out)]) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 8 and all(r["prediction"] in ("negative", "positive") for r in rows)


@pytest.mark.parametrize("method", SUITE)
def test_interrupted_then_resumed_run_ends_with_the_uninterrupted_metrics(trained, method, tmp_path, monkeypatch):
    run = tmp_path / "run"
    extra = ["--experts", "2", "--prompt-length", "4"] if method == "mept" else []
    interrupt_training_at_step(monkeypatch, 3)
    assert main(["train", "--method", method, *TINY, *extra, "--max-steps", "4", "--output", str(run)]) == 130
    assert main(["train", "--resume", "--output", str(run), "--no-progress"]) == 0
    resumed, straight = without_timing(metrics(run)), without_timing(metrics(trained[method]))
    assert resumed["history"] == straight["history"] and resumed["test"] == straight["test"]


def test_methods_lists_the_baselines_with_their_parameter_counts(capsys):
    assert main(["methods"]) == 0
    rows = {line.split()[0]: line.split() for line in capsys.readouterr().out.splitlines()[1:]}
    assert rows["lora"][1:3] == ["baseline", "74,498"]  # r=8 on query and value, plus the head
    assert rows["probe"][1:3] == ["baseline", "770"]  # the head alone: 384 x 2 + 2
    assert int(rows["full"][2].replace(",", "")) > 22_000_000
    assert rows["mept"][1] == "prompt"


@pytest.mark.parametrize("method", ["dora", "ia3"])
def test_other_peft_tuners_train_too(method, tmp_path):
    assert main(["train", "--method", method, *TINY, "--max-steps", "2", "--output", str(tmp_path / "r")]) == 0
    assert metrics(tmp_path / "r")["parameters"]["adapter"] > 0


@pytest.mark.parametrize("pooling", ["mean", "native"])
def test_lora_folder_loads_with_peft_and_gives_the_same_logits(trained, tmp_path, minilm, pooling):
    """A folder mept writes is PEFT's own: ``PeftModel.from_pretrained`` gives mept's logits."""
    import copy

    import peft

    from mept.baselines.lora import LoRAConfig

    torch.manual_seed(3)
    ours = mept.get_model(copy.deepcopy(minilm.model), LoRAConfig(), head_pooling=pooling).eval()
    with torch.no_grad():  # make the adapter and head non-trivial, as after training
        for p in ours.adapter_parameters().values():
            p.add_(0.05 * torch.randn_like(p))
    ours.save_pretrained(tmp_path / "lora")
    theirs = peft.PeftModel.from_pretrained(copy.deepcopy(minilm.model), str(tmp_path / "lora")).eval()
    batch = minilm.processor(["a fine film", "dull, dull and long"], padding=True, return_tensors="pt")
    with torch.no_grad():
        got = ours(**batch).logits
        if pooling == "mean":  # mept's heads read the mean of the final states: give PEFT's model the same
            from mept.core.routing import masked_mean

            mask = batch["attention_mask"].float()
            pooler = theirs.get_base_model().bert.pooler
            hook = pooler.register_forward_hook(lambda m, a, o: masked_mean(a[0], mask))
        want = theirs(**batch).logits
        if pooling == "mean":
            hook.remove()
    assert torch.allclose(got, want, atol=1e-5)
    assert mept.load(copy.deepcopy(minilm.model), tmp_path / "lora")(**batch).logits.allclose(got, atol=1e-5)


def test_full_fine_tuning_checkpoint_is_a_hugging_face_model(trained):
    import transformers

    best = trained["full"] / "best"
    model = transformers.AutoModelForSequenceClassification.from_pretrained(best)
    assert sum(p.numel() for p in model.parameters()) == metrics(trained["full"])["trainable_params"]


def test_a_baseline_checkpoint_of_another_method_is_refused(trained, tmp_path, minilm):
    import copy

    from mept.baselines.probe import ProbeConfig

    probe = mept.get_model(copy.deepcopy(minilm.model), ProbeConfig())
    with pytest.raises(MeptError, match="is for method 'lora'"):
        probe.load_adapter(trained["lora"] / "best", check_config=True)


def test_prompt_settings_on_a_baseline_are_one_error(capsys):
    assert main(["train", "--method", "lora", "--prompt-length", "4", "--max-steps", "1"]) == 2
    assert "unknown lora setting(s): prompt_length" in capsys.readouterr().err


@pytest.mark.parametrize("method", SUITE)
def test_analyze_writes_the_representations_and_routing_only_where_there_is_routing(trained, method, tmp_path, capsys):
    out = tmp_path / "analysis"
    assert main(["analyze", str(trained[method]), "--out", str(out), "--max-per-task", "20"]) == 0
    written = {p.name for p in out.iterdir()}
    assert "manifold_tsne.png" in written
    assert ("routing_health.json" in written) == (method == "mept")
    assert ("manifold_tsne_backbone.png" in written) == (method != "full")  # full FT keeps no frozen backbone


def _tiny(config_class, **kw):
    from transformers import AutoModelForSequenceClassification

    return AutoModelForSequenceClassification.from_config(
        config_class(vocab_size=100, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                     intermediate_size=64, num_labels=2, **kw))


def test_peft_tuners_find_their_targets_where_peft_has_no_default():
    """PEFT knows no target modules for MPNet (the offline 12 x 768 backbone); ours are the same
    choice found by name, and every tuned projection really carries PEFT's trainable tensors."""
    import peft
    from peft.tuners.tuners_utils import BaseTunerLayer
    from transformers import MPNetConfig

    from mept.baselines.lora import DoRAConfig, IA3Config, LoRAConfig

    expected = {LoRAConfig: {"attention.attn.q", "attention.attn.v"}, DoRAConfig: {"attention.attn.q", "attention.attn.v"},
                IA3Config: {"attention.attn.k", "attention.attn.v", "output.dense"}}
    for config_class, sites in expected.items():
        backbone = _tiny(MPNetConfig)
        net = peft.get_peft_model(backbone, config_class().peft_config(["classifier"], backbone))
        tuned = {n.split("layer.0.", 1)[1] for n, m in net.named_modules()
                 if isinstance(m, BaseTunerLayer) and "layer.0." in n}
        assert tuned == sites, (config_class.__name__, tuned)
        assert all(any(p.requires_grad for p in m.parameters()) for m in net.modules() if isinstance(m, BaseTunerLayer))
    # ViT, which PEFT has no LoRA default for either: its own attention projections, whatever this
    # transformers version calls them
    from transformers import ViTConfig, ViTForImageClassification

    vit = ViTForImageClassification(ViTConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                                              intermediate_size=64, image_size=32, patch_size=8))
    net = peft.get_peft_model(vit, LoRAConfig().peft_config(["classifier"], vit))
    tuned = [n for n, m in net.named_modules() if isinstance(m, BaseTunerLayer)]
    assert len(tuned) == 2 and all(".attention." in n for n in tuned)


def test_peft_tuner_without_targets_is_one_error_naming_the_fix():
    from torch import nn

    from mept.baselines.lora import LoRAConfig

    class Odd(nn.Module):
        def __init__(self):
            super().__init__()
            self.mix = nn.Linear(4, 4)

    with pytest.raises(MeptError, match="no query and value projections.*--set 'target_modules="):
        LoRAConfig().peft_config([], Odd())
    # a user's own targets are used as given
    assert LoRAConfig(target_modules=["mix"]).peft_config([], Odd()).target_modules == {"mix"}


def test_a_probe_on_a_model_without_a_task_head_is_one_error_naming_the_fix():
    from conftest import tiny_llama

    from mept.baselines.probe import ProbeConfig

    with pytest.raises(MeptError, match=r"has none: it needs a classification model \(--format cls"):
        mept.get_model(tiny_llama("causal"), ProbeConfig())
