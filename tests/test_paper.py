"""The paper's settings and the paper's parameter accounting (issue 20).

``--paper`` must give the paper's router (no balance loss, top-1, one shared expert,
Xavier normal) and training settings; parameter counts must match the formulas for
stored and per-example activated parameters, method by method.
"""

from __future__ import annotations

import pytest

import mept
from mept.cli import build_parser, train_config_from_args
from mept.methods.mept import PAPER_STATED, MEPTConfig
from mept.train_config import TrainConfig
from tests.conftest import tiny_bert

D, LAYERS = 32, 3  # tiny_bert
HEAD = D * 2 + 2  # its classifier (2 labels)


def paper_config(*flags: str) -> TrainConfig:
    return train_config_from_args(build_parser().parse_args(["train", "--paper", *flags]))


def test_paper_flag_gives_the_papers_router_and_training():
    cfg = paper_config()
    method = mept.make_config("mept", **cfg.method_settings())
    assert method.balance_loss == 0 and method.z_loss == 0
    assert method.routing == "top1" and method.num_shared == 1 and method.shared == "on"
    assert method.init == "xavier_normal" and method.layers == "all"
    assert cfg.max_length == 512 and cfg.epochs == 70 and cfg.batch_size in (16, 32)
    assert cfg.lr_grid == [1e-5, 5e-5, 1e-4] and cfg.paper is True
    assert method == MEPTConfig.paper()  # the CLI and the API agree
    assert TrainConfig.paper_mode(max_steps=3).method_settings() == cfg.method_settings()


def test_paper_flag_yields_to_explicit_flags():
    cfg = paper_config("--epochs", "2", "--experts", "4", "--set", "routing=gumbel", "--lr", "0.01")
    method = mept.make_config("mept", **cfg.method_settings())
    assert cfg.epochs == 2 and method.num_experts == 4 and method.routing == "gumbel"
    assert cfg.lr == 0.01 and cfg.lr_grid is None
    assert method.balance_loss == 0  # what was not overridden stays the paper's


def test_default_keeps_our_balance_loss_and_paper_config_drops_it():
    assert MEPTConfig().balance_loss == 0.01  # our addition (measured collapse without it)
    assert MEPTConfig.paper().balance_loss == 0.0
    assert all(getattr(MEPTConfig.paper(), k) == v for k, v in PAPER_STATED.items())
    # the default differs from the paper's MEPT in the balance loss only
    differ = {k for k, v in MEPTConfig().to_dict().items() if MEPTConfig.paper().to_dict()[k] != v}
    assert differ == {"balance_loss"}


def test_paper_flag_for_other_methods_gives_their_lr_grid():
    cfg = paper_config("--method", "ptuning_v2")
    assert cfg.lr_grid == [0.1, 0.3, 0.5] and cfg.method_args == {}


def report(method: str, **settings):
    return mept.get_model(tiny_bert(), mept.make_config(method, **settings)).parameter_report()


@pytest.mark.parametrize("routing, used", [("top1", 1), ("perturb", 1), ("gumbel", 1), ("dense", 6),
                                           ("stochastic", 6), ("topk", 2)])
def test_mept_activated_is_routed_experts_used_plus_shared_plus_routers(routing, used):
    n_r, n_s, m = 6, 1, 5
    r = report("mept", num_experts=n_r, num_shared=n_s, prompt_length=m, routing=routing, top_k=2)
    routers = LAYERS * D * n_r
    assert r["trainable"] == LAYERS * (n_r + n_s) * m * D + routers + HEAD
    assert r["activated_prompt"] == LAYERS * (used + n_s) * m * D
    assert r["activated"] == r["activated_prompt"] + routers + HEAD
    assert r["activated_percent"] == pytest.approx(100 * r["activated"] / r["backbone"])
    assert r["trainable_percent"] == pytest.approx(100 * r["trainable"] / r["backbone"])


def test_mept_shared_replaced_or_off():
    r = report("mept", num_experts=4, num_shared=1, prompt_length=5, shared="replace")
    assert r["activated_prompt"] == LAYERS * 1 * 5 * D  # the former shared expert is one more routed one
    r = report("mept", num_experts=4, num_shared=1, prompt_length=5, shared="off")
    assert r["activated_prompt"] == LAYERS * 1 * 5 * D


@pytest.mark.parametrize("method, settings, stored, used", [
    ("prompt_tuning", {"prompt_length": 7}, 7 * D, 7 * D),
    ("ptuning_v2", {"prompt_length": 7}, LAYERS * 7 * D, LAYERS * 7 * D),
    ("vfpt", {"prompt_length": 7}, LAYERS * 7 * D, LAYERS * 7 * D),
    ("smop", {"prompt_length": 5, "num_prompts": 4}, 4 * 5 * D + 4 * D, 5 * D + 4 * D),
    ("ptmoe", {"prompt_length": 5, "num_experts": 4, "rank": 3, "top_k": 2},
     4 * 5 * 3 + 3 * D + (D * 4 + 4), 2 * 5 * 3 + 3 * D + (D * 4 + 4)),
])
def test_stored_and_activated_counts_of_every_method(method, settings, stored, used):
    r = report(method, **settings)
    assert r["trainable"] == stored + HEAD
    assert r["activated"] == used + HEAD
    assert r["activated"] <= r["trainable"]


def test_mept_on_t5_base_shape_matches_the_papers_para():
    """PAPER.md: N_r = m = 10, 12 layers, d = 768: 276,480 activated, 1,105,920 stored (no head)."""
    n_r, m, L, d = 10, 10, 12, 768
    stored = (n_r + 1) * m * d * L + L * d * n_r
    activated = 2 * m * d * L + L * d * n_r
    assert (stored, activated) == (1_105_920, 276_480)
    cfg = MEPTConfig.paper()
    assert (cfg.num_experts, cfg.prompt_length) == (n_r, m)
