"""Gradient checkpointing gives the gradients of a plain forward, for every method on BERT, Llama and T5.

Runs on the installed transformers and, in CI, on the oldest one pyproject admits (``.ci/run``): the
two checkpoint different things (5.x a layer's ``forward``, 4.57 its ``__call__``, hooks included),
and a recomputation that lost the forward's state fails only on the latter. Noisy routings must make
the same choice when recomputed, and routers' running statistics must move once per forward.
"""

from __future__ import annotations

import json

import pytest
import torch

import mept
from mept.inject.slots import ForwardState
from tests.conftest import tiny_bert, tiny_llama, tiny_t5

SMALL = {  # quick settings per method (as conftest.SMALL, plus the routings checkpointing must replay)
    "prompt_tuning": ("prompt_tuning", {}),
    "ptuning_v2": ("ptuning_v2", {"prompt_length": 8}),
    "smop": ("smop", {"balance_loss": 0.1, "z_loss": 0.01}),
    "ptmoe": ("ptmoe", {"top_k": 2, "z_loss": 0.01}),
    "vfpt": ("vfpt", {"prompt_length": 6}),
    "mept": ("mept", {"num_experts": 4, "prompt_length": 6}),
    # noisy routings: the recomputation must draw the same noise (torch restores the RNG state)
    "mept-perturb": ("mept", {"num_experts": 4, "prompt_length": 6, "routing": "perturb"}),
    "mept-gumbel": ("mept", {"num_experts": 4, "prompt_length": 6, "routing": "gumbel"}),
    "mept-dropout": ("mept", {"num_experts": 4, "prompt_length": 6, "router_dropout": 0.5}),
    "mept-stochastic": ("mept", {"num_experts": 4, "prompt_length": 6, "routing": "stochastic"}),
    # running statistics: moved once per forward, read as the forward left them when recomputed
    "mept-center": ("mept", {"num_experts": 4, "prompt_length": 6, "router_input": "center", "z_loss": 0.01}),
    "mept-standardize": ("mept", {"num_experts": 4, "prompt_length": 6, "router_input": "standardize",
                                  "routing": "topk", "top_k": 2}),
}
BACKBONES = {"bert": tiny_bert, "llama": lambda: tiny_llama("cls"), "t5": tiny_t5}


def inputs(kind: str) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    g = torch.Generator().manual_seed(7)
    ids = torch.randint(3, 128, (4, 9), generator=g)
    mask = torch.ones_like(ids)
    mask[2:, 6:] = 0  # padded rows: pooling masks must survive the recomputation too
    labels = torch.randint(3, 128, (4, 3), generator=g) if kind == "t5" else torch.tensor([0, 1, 0, 1])
    return {"input_ids": ids, "attention_mask": mask}, labels


def step(model, batch, labels):
    """One seeded forward and backward: loss, chosen experts, gradients, buffers, the RNG state after."""
    torch.manual_seed(11)
    out = model(**batch, labels=labels)
    out.loss.backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    model.zero_grad(set_to_none=True)
    chosen = {k: r.chosen for k, r in (out.routes or {}).items()}
    buffers = {n: b.clone() for n, b in model.method.named_buffers()}
    return out.loss.detach(), chosen, grads, buffers, torch.get_rng_state()


def enable_on_backbone(backbone) -> None:
    """The user's switch, with transformers' own defaults (reentrant on 4.57)."""
    enable = getattr(backbone, "activation_checkpointing_enable", None) or backbone.gradient_checkpointing_enable
    enable()


@pytest.mark.parametrize("backbone", sorted(BACKBONES))
@pytest.mark.parametrize("case", sorted(SMALL))
def test_checkpointed_gradients_equal_plain_ones(case, backbone, monkeypatch):
    method, settings = SMALL[case]
    torch.manual_seed(0)
    model = mept.get_model(BACKBONES[backbone](), mept.make_config(method, **settings)).train()
    start = {k: v.clone() for k, v in model.method.state_dict().items()}
    batch, labels = inputs(backbone)
    plain = step(model, batch, labels)

    model.method.load_state_dict(start)  # running statistics as they were before the plain step
    model.gradient_checkpointing_enable()
    replays = []
    real_replay = ForwardState.replay
    monkeypatch.setattr(ForwardState, "replay", lambda self: replays.append(1) or real_replay(self))
    checkpointed = step(model, batch, labels)
    assert replays, "checkpointing did not recompute anything"

    loss, chosen, grads, buffers, rng = checkpointed
    torch.testing.assert_close(loss, plain[0])
    assert chosen.keys() == plain[1].keys() and all(torch.equal(chosen[k], plain[1][k]) for k in chosen)
    assert grads.keys() == plain[2].keys() and any(n.startswith("method.") for n in grads)
    for name in grads:
        torch.testing.assert_close(grads[name], plain[2][name], atol=1e-6, rtol=1e-5, msg=name)
    for name in buffers:  # statistics moved once, as in the plain step
        torch.testing.assert_close(buffers[name], plain[3][name], msg=name)
    assert torch.equal(rng, plain[4])  # the same random numbers drawn, in the same order


@pytest.mark.parametrize("backbone", sorted(BACKBONES))
def test_checkpointing_switched_on_at_the_backbone_is_bound_too(backbone):
    torch.manual_seed(0)
    model = mept.get_model(BACKBONES[backbone](), mept.make_config("mept", num_experts=4, prompt_length=6,
                                                                  routing="perturb")).train()
    batch, labels = inputs(backbone)
    plain = step(model, batch, labels)
    enable_on_backbone(model.backbone)  # after wrapping, with transformers' defaults
    checkpointed = step(model, batch, labels)
    torch.testing.assert_close(checkpointed[0], plain[0])
    assert checkpointed[2].keys() == plain[2].keys()
    for name in plain[2]:
        torch.testing.assert_close(checkpointed[2][name], plain[2][name], atol=1e-6, rtol=1e-5, msg=name)


def test_checkpointing_without_a_prompted_forward_is_left_alone():
    """The backbone used on its own (or inside disabled()) checkpoints as transformers does."""
    torch.manual_seed(0)
    model = mept.get_model(tiny_llama("cls"), mept.make_config("mept", num_experts=4, prompt_length=6)).train()
    model.gradient_checkpointing_enable()
    batch, labels = inputs("llama")
    with model.disabled():
        out = model(**batch, labels=labels)
    out.loss.backward()
    assert out.routes is None if hasattr(out, "routes") else True
    assert model.backbone.score.weight.grad is not None


def test_train_flag_checkpoints_and_learns_the_same(tmp_path):
    """``mept train --gradient-checkpointing`` is the switch users see: same losses and scores as without."""
    from mept.cli import main

    runs = {}
    for flag in ([], ["--gradient-checkpointing"]):
        out = tmp_path / ("ckpt" if flag else "plain")
        assert main(["train", "--task", "vader-movies", "--max-steps", "2", "--eval-every", "2",
                     "--max-length", "64", "--max-eval-examples", "8", "--max-train-examples", "16",
                     "--set", "router_input=center", "--no-progress", "--output", str(out), *flag]) == 0
        runs[bool(flag)] = json.loads((out / "metrics.json").read_text())
        assert json.loads((out / "run_config.json").read_text())["gradient_checkpointing"] is bool(flag)
    plain, ckpt = runs[False], runs[True]
    assert [h["loss"] for h in ckpt["history"]] == pytest.approx([h["loss"] for h in plain["history"]], abs=1e-5)
    assert ckpt["tasks"] == plain["tasks"]
