"""Router switches that keep MEPT routing (issue: collapse to one expert), and the routing-health report."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import mept
from mept.core.pathways import RoutingTrace
from mept.core.routing import Router, RouterConfig, balance_loss, trace_of, z_loss
from mept.core.routing_health import format_health, routing_health
from mept.errors import MeptError
from mept.methods.mept import MEPTConfig
from mept.methods.smop import SMoPConfig
from tests.conftest import tiny_bert, tiny_llama

TOKENS = torch.randint(5, 120, (6, 12))


def tiny_mept(**settings):
    cfg = mept.MEPTConfig(num_experts=4, prompt_length=3, **settings)
    return mept.get_model(tiny_bert(num_labels=2), cfg)


def router_grads(model) -> list[torch.Tensor | None]:
    return [p.grad for r in model.method.routers() for p in r.parameters()]


@pytest.mark.parametrize("norm", ["center", "standardize"])
def test_running_statistics_move_in_training_and_stay_fixed_in_evaluation(norm):
    router = Router(8, 4, input_norm=norm)
    x = torch.randn(16, 8) * 3 + 5
    router.train()(x)
    torch.testing.assert_close(router.running_mean, x.mean(0))  # the first batch sets the statistics
    before = router.running_mean.clone()
    router(torch.randn(16, 8))
    assert not torch.allclose(router.running_mean, before)  # later batches move them (EMA)
    frozen = router.running_mean.clone()
    router.eval()(torch.randn(16, 8) + 100)
    torch.testing.assert_close(router.running_mean, frozen)


def test_centring_removes_the_direction_every_input_shares():
    # Inputs = one large shared vector + small individual parts: a layer-normed linear router sends
    # them all to one expert, a centred one spreads them.
    torch.manual_seed(0)
    shared = torch.randn(32) * 10
    x = shared + torch.randn(200, 32)
    plain, centred = Router(32, 8), Router(32, 8, input_norm="center")
    centred.load_state_dict({**plain.state_dict(), **{k: v for k, v in centred.state_dict().items() if "running" in k or "stats" in k}})
    centred.train()(x)  # statistics from the data
    used_plain = plain.eval()(x).chosen.unique().numel()
    used_centred = centred.eval()(x).chosen.unique().numel()
    assert used_plain <= 2 and used_centred >= 6


@pytest.mark.parametrize("method", ["mept", "smop", "ptmoe"])
def test_every_routed_method_reads_what_its_router_input_says(method):
    # the rule, not the instance: router_input is a setting of every routed method (RoutedConfig), and the
    # statistics of a centred router really follow the training batches whichever method owns it
    cfg = mept.make_config(method, router_input="center", router_stats_momentum=0.5)
    model = mept.get_model(tiny_bert(num_labels=2), cfg).train()
    routers = model.method.routers()
    assert routers and all(r.input_norm == "center" and r.stats_momentum == 0.5 for r in routers)
    model(input_ids=TOKENS, labels=torch.zeros(6, dtype=torch.long))
    assert all(int(r.stats_updates) == 1 and r.running_mean.abs().sum() > 0 for r in routers)


def test_routing_of_one_example_never_depends_on_its_batch_mates():
    model = tiny_mept(router_input="center")
    model.train()(input_ids=TOKENS, labels=torch.zeros(6, dtype=torch.long))  # statistics exist
    model.eval()
    with torch.no_grad():
        full = {k: p for k, (p, _) in trace_of(model(input_ids=TOKENS).routes).items()}
        alone = {k: p for k, (p, _) in trace_of(model(input_ids=TOKENS[:1]).routes).items()}
    for k in full:
        torch.testing.assert_close(full[k][:1], alone[k])


@pytest.mark.parametrize("settings", [
    {"router_input": "center"}, {"router_input": "standardize"}, {"router_type": "cosine"},
    {"z_loss": 1e-2}, {"balance_loss": 1e-2},
])
def test_gradients_reach_every_router_parameter(settings):
    model = tiny_mept(**settings).train()
    model(input_ids=TOKENS, labels=torch.tensor([0, 1, 0, 1, 0, 1])).loss.backward()
    grads = router_grads(model)
    assert grads and all(g is not None and g.abs().sum() > 0 for g in grads)


def test_z_loss_is_the_weighted_mean_squared_logsumexp_of_the_router_logits():
    model = tiny_mept(z_loss=0.5, balance_loss=0.0).train()
    out = model(input_ids=TOKENS)
    expected = torch.stack([r.logits.logsumexp(-1).pow(2).mean() for r in out.routes.values()]).mean()
    torch.testing.assert_close(out.router_aux_loss, 0.5 * expected)
    assert tiny_mept(balance_loss=0.0).train()(input_ids=TOKENS).router_aux_loss is None  # nothing enabled, nothing added


@pytest.mark.parametrize("method", ["smop", "ptmoe", "mept"])
def test_every_routed_method_takes_the_balance_and_z_losses(method):
    """The routed-config base declares them once: SMoP and PT-MoE get them as MEPT does."""
    backbone = tiny_llama("cls")
    model = mept.get_model(backbone, mept.make_config(method, balance_loss=0.5, z_loss=0.1)).train()
    labels = torch.tensor([0, 1, 0, 1, 0, 1])
    out = model(input_ids=TOKENS, labels=labels)
    routes = list(out.routes.values())
    expected = 0.5 * torch.stack([balance_loss(r) for r in routes]).mean() + 0.1 * torch.stack(
        [z_loss(r) for r in routes]).mean()
    torch.testing.assert_close(out.router_aux_loss, expected)
    torch.testing.assert_close(out.loss, torch.nn.functional.cross_entropy(out.logits, labels) + expected)
    assert routes[0].logits.grad_fn is None and out.router_aux_loss.grad_fn is not None  # routes detached, loss not


def test_cosine_router_logits_are_bounded_by_the_temperature():
    router = Router(16, 5, router_type="cosine", temperature=0.2)
    logits = router.logits(router.normalize_input(torch.randn(50, 16) * 1000))
    assert logits.abs().max() <= 1 / 0.2 + 1e-5


def test_router_learning_rate_is_scaled_in_its_own_optimizer_group():
    model = tiny_mept(router_lr_scale=0.01)
    groups = {g["name"]: g for g in model.param_groups(lr=1e-2, head_lr=3e-3)}
    assert set(groups) == {"prompt", "router", "head"}
    assert groups["router"]["lr"] == pytest.approx(1e-4) and groups["head"]["lr"] == 3e-3
    router_ids = {id(p) for r in model.method.routers() for p in r.parameters()}
    assert {id(p) for p in groups["router"]["params"]} == router_ids
    assert not router_ids & {id(p) for p in groups["prompt"]["params"]}


def test_routed_experts_train_at_their_own_rate_and_the_shared_ones_at_the_prompts():
    model = tiny_mept(expert_lr_scale=0.1)
    groups = {g["name"]: g for g in model.param_groups(lr=1e-2, head_lr=3e-3)}
    assert set(groups) == {"prompt", "experts", "router", "head"}
    assert groups["experts"]["lr"] == pytest.approx(1e-3)
    assert [id(p) for p in groups["experts"]["params"]] == [id(model.method.experts)]
    assert id(model.method.shared) in {id(p) for p in groups["prompt"]["params"]}
    # one AdamW step moves each trained entry by about its lr: the routed experts a tenth as far as the shared
    before = model.method.experts.detach().clone(), model.method.shared.detach().clone()
    optimizer = torch.optim.AdamW(list(groups.values()), weight_decay=0.0)
    labels = torch.tensor([0, 1, 0, 1, 0, 1])
    model(input_ids=TOKENS, labels=labels).loss.backward()
    optimizer.step()
    moved = [(p.detach() - b).abs() for p, b in zip((model.method.experts, model.method.shared), before)]
    experts_step, shared_step = (m[m > 0].median().item() for m in moved)  # entries the batch reached
    assert experts_step == pytest.approx(1e-3, rel=0.1) and shared_step == pytest.approx(1e-2, rel=0.1)
    assert {g["name"] for g in tiny_mept().param_groups(1e-2, 3e-3)} == {"prompt", "router", "head"}  # default: 1


@pytest.mark.parametrize("settings", [{"router_input": "center"}, {"router_input": "standardize"},
                                      {"router_type": "cosine"}])
def test_router_state_saves_and_reloads_exactly(tmp_path, settings):
    model = tiny_mept(**settings).train()
    for _ in range(3):
        model(input_ids=torch.randint(5, 120, (6, 12)))
    model.eval()
    with torch.no_grad():
        before = model(input_ids=TOKENS).logits
    model.save_pretrained(tmp_path)
    saved = model.adapter_state_dict()
    assert any("running_mean" in k for k in saved) or settings.get("router_type") == "cosine"
    backbone = model.unload()
    again = mept.load(backbone, tmp_path).eval()
    with torch.no_grad():
        torch.testing.assert_close(again(input_ids=TOKENS).logits, before)
    for k, v in again.adapter_state_dict().items():
        torch.testing.assert_close(v, saved[k])


def test_paper_preset_is_the_papers_router():
    cfg = mept.MEPTConfig.paper(num_experts=4)
    assert (cfg.routing, cfg.router_input, cfg.router_type, cfg.z_loss, cfg.balance_loss, cfg.router_lr_scale) == (
        "top1", "layernorm", "linear", 0.0, 0.0, 1.0)
    with pytest.raises(MeptError, match="router_input"):
        mept.MEPTConfig(router_input="batchnorm")
    with pytest.raises(MeptError, match="router_temperature"):
        mept.MEPTConfig(router_temperature=0)
    for momentum in (0, 1.5, "abc", float("nan")):  # a share of each batch: (0, 1], and a number
        with pytest.raises(MeptError, match="router_stats_momentum"):
            mept.MEPTConfig(router_stats_momentum=momentum)


def _trace(task, chosen, E=4):
    chosen = np.asarray(chosen)
    probs = np.full((*chosen.shape, E), 0.1 / (E - 1))
    np.put_along_axis(probs, chosen[..., None], 0.9, axis=-1)
    return RoutingTrace(task=task, layers=list(range(chosen.shape[1])), probs=probs, chosen=chosen)


def test_health_flags_a_collapsed_layer_and_identical_pathways():
    # layer 1: everyone on expert 2 (collapsed); layer 2: task a on 0/1, task b on 2/3.
    a = _trace("a", [[2, 0], [2, 1], [2, 0], [2, 1]])
    b = _trace("b", [[2, 2], [2, 3], [2, 2], [2, 3]])
    h = routing_health([a, b])
    assert h["collapsed_layers"] == [1]
    first, second = h["layers"]
    assert first["experts_in_use"] == 1 and first["entropy"] == 0.0
    assert second["experts_in_use"] == 4 and second["entropy"] == pytest.approx(1.0)
    assert second["mean_top1_prob"] == pytest.approx(0.9)
    assert h["pathways"] == {"a": [2, 0], "b": [2, 2]}
    assert h["max_pathway_cosine"] == pytest.approx(2 / 3, abs=1e-4)  # shared layer 1 (1), disjoint layer 2 (2 x 0.5)
    text = format_health(h)
    assert "COLLAPSED" in text and "warning: routing collapsed in 1 of 2" in text
    same = routing_health([a, _trace("c", a.chosen)])
    assert same["max_pathway_cosine"] == pytest.approx(1.0)


def test_a_single_expert_is_not_reported_as_a_collapse():
    """``num_experts=1`` (the ablation that removes the choice): every example takes the one expert, which is
    no router failure, so no layer is flagged and no warning sends the user to the switches that spread load."""
    chosen = np.zeros((6, 3), dtype=int)
    h = routing_health([RoutingTrace(task="t", layers=[0, 1, 2], probs=np.ones((6, 3, 1)), chosen=chosen)])
    assert h["collapsed_layers"] == [] and [r["collapsed"] for r in h["layers"]] == [False] * 3
    assert format_health(h) == "routing: 1 expert per layer, nothing to route (6 validation examples)"


def test_a_method_config_hands_every_router_setting_to_the_router_under_one_naming_rule():
    cfg = MEPTConfig(routing="topk", top_k=3, noise_sigma=0.5, gumbel_tau=0.7, router_dropout=0.2,
                     router_input="standardize", router_stats_momentum=0.4, router_type="cosine",
                     router_temperature=2.0)
    assert cfg.router_config() == RouterConfig(routing="topk", top_k=3, noise_sigma=0.5, gumbel_tau=0.7, dropout=0.2,
                                               input_norm="standardize", stats_momentum=0.4, router_type="cosine",
                                               temperature=2.0)
    # SMoP states routing and noise only: the rest keep the router's defaults
    assert RouterConfig.of(SMoPConfig(routing="gumbel", noise_sigma=0.3)) == RouterConfig(routing="gumbel",
                                                                                          noise_sigma=0.3)
    with pytest.raises(ValueError, match="noise must be one of"):  # a choice setting's values come from its type
        RouterConfig(noise="loud")
