"""The paper's settings and the paper's parameter accounting (issue 20).

``--paper`` must give the paper's router (no balance loss, top-1, one shared expert,
Xavier normal) and training settings; parameter counts must match the formulas for
stored and per-example activated parameters, method by method.
"""

from __future__ import annotations

import pytest
import torch

import mept
from mept.cli import build_parser, train_config_from_args
from mept.errors import MeptError
from mept.harness.train_config import TrainConfig
from mept.methods.mept import PAPER_STATED, MEPTConfig
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
    assert cfg.max_length_counts_slots  # the paper's 512 includes the prompts
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
    assert MEPTConfig().balance_loss == 0.01  # our addition (measured collapse without it at our lr 1e-2)
    assert MEPTConfig.paper().balance_loss == 0.0
    assert all(getattr(MEPTConfig.paper(), k) == v for k, v in PAPER_STATED.items())
    # the default differs from the paper's MEPT in three router settings of ours: the balance loss, the
    # width-derived router lr ("auto": min(1, 384 / d), 1 on MiniLM) and the centred router input; and on
    # text decoders in two more: the sink before the slots and prompts drawn from the backbone's states
    differ = {k for k, v in MEPTConfig().to_dict().items() if MEPTConfig.paper().to_dict()[k] != v}
    assert differ == {"balance_loss", "router_lr_scale", "router_input", "attention_sink", "init"}
    assert MEPTConfig().router_lr_scale_for(384) == MEPTConfig.paper().router_lr_scale_for(384) == 1.0
    assert MEPTConfig().router_lr_scale_for(768) == 0.5 and MEPTConfig.paper().router_lr_scale_for(768) == 1.0


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
    import transformers

    cfg = transformers.BertConfig(vocab_size=64, hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                                  intermediate_size=32, max_position_embeddings=32)
    model = mept.get_model(transformers.BertModel(cfg), MEPTConfig.paper())
    r = model.parameter_report()
    assert (r["trainable"], r["activated"], r["head"]) == (1_105_920, 276_480, 0)
    ptv2 = mept.get_model(transformers.BertModel(cfg), mept.make_config("ptuning_v2")).parameter_report()
    assert ptv2["activated"] == ptv2["trainable"] == 921_600
    assert 1 - r["activated"] / ptv2["activated"] == pytest.approx(0.70)  # 70% fewer activated (README)
    assert r["trainable"] / ptv2["trainable"] == pytest.approx(1.20)  # 20% more stored


# --- "previous knowledge" and task-text initialisation (paper Table 10) ---------------------------

def test_previous_knowledge_copies_a_trained_prompt_adapter_into_every_expert(tmp_path):
    source = mept.get_model(tiny_bert(), mept.make_config("ptuning_v2", prompt_length=8))
    source.save_pretrained(tmp_path / "pt2")
    prompts = source.method.prompts.detach()  # (3, 8, 32)
    model = mept.get_model(tiny_bert(), MEPTConfig(num_experts=4, prompt_length=5, init="previous_knowledge",
                                                   init_from=str(tmp_path / "pt2")))
    experts, shared = model.method.experts.detach(), model.method.shared.detach()  # (3, 4, 5, 32), (3, 1, 5, 32)
    for j in range(LAYERS):
        assert torch.equal(experts[j], prompts[j, :5].expand(4, -1, -1))
        assert torch.equal(shared[j, 0], prompts[j, :5])


def test_previous_knowledge_from_a_mept_run_folder_copies_experts_and_routers(tmp_path):
    source = mept.get_model(tiny_bert(), MEPTConfig(num_experts=4, prompt_length=5))
    source.save_pretrained(tmp_path / "run" / "best")
    model = mept.get_model(tiny_bert(), MEPTConfig(num_experts=4, prompt_length=5, init="previous_knowledge",
                                                   init_from=str(tmp_path / "run")))
    for name, value in source.method.state_dict().items():
        assert torch.equal(model.method.state_dict()[name], value), name


def test_previous_knowledge_needs_a_source_and_says_so(tmp_path):
    with pytest.raises(MeptError, match="init_from must name"):
        MEPTConfig(init="previous_knowledge")
    with pytest.raises(MeptError, match="holds no adapter_model"):
        mept.get_model(tiny_bert(), MEPTConfig(init="previous_knowledge", init_from=str(tmp_path)))
    with pytest.raises(MeptError, match="init_from applies"):
        MEPTConfig(init_from="x")


def test_task_text_init_fills_experts_with_the_texts_token_embeddings():
    model = mept.get_model(tiny_bert(), MEPTConfig(num_experts=2, prompt_length=3, init="task_text"))
    assert model.method.wants_text_init
    embed = model.backbone.get_input_embeddings().weight.detach()
    ids = torch.tensor([5, 9, 11, 17, 23, 31, 40])
    model.method.init_from_embeddings(embed[ids])
    rows = model.method.experts.detach().reshape(-1, D)  # (L * 2 * 3, d), consecutive windows, cycled
    expected = embed[ids[torch.arange(rows.shape[0]) % len(ids)]]
    assert torch.equal(rows, expected)


def test_task_text_init_through_training_uses_the_given_text(tmp_path):
    from mept.harness.prepare_run import prepare

    cfg = TrainConfig(tasks=["vader-movies"], method_args={"init": "task_text", "init_from": "entailment means",
                                                     "num_experts": 2, "prompt_length": 3},
                      max_steps=1, max_train_examples=8, max_eval_examples=8, output=str(tmp_path / "r"),
                      progress=False)
    p = prepare(cfg)
    ids = p.encoder.processor("entailment means", add_special_tokens=False)["input_ids"]
    embed = p.model.backbone.get_input_embeddings().weight.detach()
    first = p.model.method.experts.detach()[0, 0]  # (3, d): the first expert of layer 1
    assert torch.equal(first, embed[torch.tensor(ids)[torch.arange(3) % len(ids)]])


def test_paper_true_in_a_config_file_gives_the_papers_settings_and_the_file_wins(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("paper: true\nepochs: 5\n")
    cfg = train_config_from_args(build_parser().parse_args(["train", "--config", str(path)]))
    method = mept.make_config("mept", **cfg.method_settings())
    assert cfg.epochs == 5 and cfg.max_length == 512 and cfg.lr_grid == [1e-5, 5e-5, 1e-4]
    assert method == MEPTConfig.paper()
    flagged = train_config_from_args(build_parser().parse_args(["train", "--config", str(path), "--epochs", "3"]))
    assert flagged.epochs == 3


def test_paper_search_searches_the_papers_grid_of_m_nr_and_lr():
    from mept.harness.train import point_folder, search_points
    from mept.methods.mept import PAPER_SEARCH

    cfg = paper_config("--paper-search")
    assert cfg.paper_search and cfg.prompt_length is None and cfg.experts is None  # picked by the search
    points = search_points(cfg)
    assert PAPER_SEARCH == {"prompt_length": (10, 15, 20), "num_experts": (4, 10, 20)}  # Sec. 4.3
    assert len(points) == 27 and {(p["prompt_length"], p["experts"], p["lr"]) for p in points} == {
        (m, n, lr) for m in (10, 15, 20) for n in (4, 10, 20) for lr in (1e-5, 5e-5, 1e-4)}
    assert point_folder(points[0]) == "search-m10-nr4-lr1e-05" and point_folder({"lr": 0.1}) == "lr-0.1"
    assert len(search_points(paper_config("--paper-search", "--lr", "1e-4"))) == 9  # a given lr: m x N_r only
    fixed = paper_config()  # without the search: one setting, m = N_r = 10 (ours)
    assert fixed.prompt_length == 10 and fixed.experts == 10 and len(search_points(fixed)) == 3  # its lr grid


@pytest.mark.parametrize("flags, message", [
    (["train", "--paper-search"], "add --paper"),
    (["train", "--paper", "--paper-search", "--method", "ptuning_v2"], "not ptuning_v2's"),
    (["train", "--paper", "--paper-search", "--experts", "4"], "drop --experts"),
    (["train", "--paper", "--paper-search", "--set", "prompt_length=20"], "drop --set prompt_length"),
])
def test_paper_search_refuses_what_it_cannot_honour(flags, message):
    with pytest.raises(MeptError, match=message):
        train_config_from_args(build_parser().parse_args(flags))


def test_paper_search_trains_each_point_on_validation_and_scores_test_once(tmp_path, capsys):
    """The real flag on a tiny budget: the paper's 3 x 3 grid of m and N_r at one given lr, 1 step each."""
    import json
    from pathlib import Path

    from mept.cli import main

    fixtures = Path(__file__).parent / "fixtures" / "superglue"
    out = tmp_path / "search"
    assert main(["train", "--paper", "--paper-search", "--lr", "0.01", "--task", "rte", "--source", "jsonl",
                 "--data-dir", str(fixtures), "--max-steps", "1", "--batch-size", "4", "--max-length", "64",
                 "--max-eval-examples", "8", "--no-progress", "--output", str(out)]) == 0
    m = json.loads((out / "metrics.json").read_text())
    search = m["search"]
    assert len(search["results"]) == 9 and search["grid"]["experts"] == [4, 10, 20]
    best = max(search["results"], key=lambda r: r["average"])
    assert search["chosen"] == {"lr": 0.01, "prompt_length": best["prompt_length"], "experts": best["experts"]}
    for r in search["results"]:  # the search's runs are scored on validation only
        point = json.loads((out / f"search-m{r['prompt_length']}-nr{r['experts']}" / "metrics.json").read_text())
        assert point["test"] is None and point["average"] == r["average"]
    final = json.loads((out / "seed-42" / "metrics.json").read_text())
    assert final["test"]["tasks"]["rte"]["score"] >= 0  # the chosen setting, scored on test once
    assert final["activated_prompt_tokens"] == best["prompt_length"] * 6  # MiniLM's 6 layers, the chosen m
    printed = capsys.readouterr().out
    assert "paper search: 9 settings" in printed and f"chose m = {best['prompt_length']}, N_r = {best['experts']}" in printed
