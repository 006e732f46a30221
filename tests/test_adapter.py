"""The adapter as a unit: one definition of what it owns, a versioned file format, a switch to turn it off."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

import mept
from mept.core.adapter_format import CONFIG_NAME, FORMAT_VERSION, WEIGHTS_NAME, read_adapter_config
from mept.errors import MeptError
from tests.conftest import tiny_bert, tiny_llama, tiny_vit


def wrapped(method: str = "mept", backbone=None, **settings):
    return mept.get_model(backbone or tiny_bert(), mept.make_config(method, prompt_length=4, **settings))


def batch():
    ids = torch.randint(5, 100, (3, 9))
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids)}


def test_saving_counting_and_the_optimizer_agree_on_what_the_adapter_owns():
    model = wrapped(num_experts=3, train_router=False)  # frozen routers: owned and saved, not optimised
    owned = model.adapter_parameters()
    saved = model.adapter_state_dict()
    # saved: the owned parameters and the routers' running statistics of their centred input (buffers)
    stats = {n for n, _ in model.named_buffers() if n.startswith("method.")}
    assert stats and all(n.rsplit(".", 1)[1] in ("running_mean", "running_var", "stats_updates") for n in stats)
    assert {k.replace("backbone.", "head.", 1) for k in owned} | stats == set(saved)
    in_optimizer = {id(p) for g in model.param_groups(1e-2, 1e-3) for p in g["params"]}
    assert in_optimizer == {id(p) for p in owned.values() if p.requires_grad}
    assert in_optimizer == {id(p) for p in model.parameters() if p.requires_grad}
    report = model.parameter_report()
    assert report["trainable"] == sum(p.numel() for p in owned.values() if p.requires_grad)
    assert report["head"] == sum(p.numel() for n, p in owned.items() if n.startswith("backbone."))
    assert report["backbone"] + report["head"] == sum(p.numel() for p in model.backbone.parameters())
    groups = {g["name"]: g for g in model.param_groups(1e-2, 1e-3)}
    assert [g["lr"] for g in groups.values()] == [1e-2, 1e-3]  # the routers are frozen here: no router group
    assert {id(p) for p in groups["prompt"]["params"]} == {id(p) for p in model.method.parameters() if p.requires_grad}
    assert {id(p) for p in groups["head"]["params"]} == {id(p) for p in model.backbone.classifier.parameters()}


def test_saved_config_says_which_mept_and_format_wrote_it(tmp_path):
    wrapped().save_pretrained(tmp_path)
    meta = json.loads((tmp_path / CONFIG_NAME).read_text())
    assert meta["library"] == "mept"
    assert meta["mept_version"] == mept.__version__
    assert meta["format_version"] == FORMAT_VERSION
    assert meta["modules_to_save"] == ["classifier"]


def test_a_newer_format_is_refused_with_the_versions_named(tmp_path):
    wrapped().save_pretrained(tmp_path)
    meta = json.loads((tmp_path / CONFIG_NAME).read_text())
    meta.update(format_version=FORMAT_VERSION + 1, mept_version="9.0.0")
    (tmp_path / CONFIG_NAME).write_text(json.dumps(meta))
    with pytest.raises(MeptError, match=rf"adapter format {FORMAT_VERSION + 1} .*mept 9\.0\.0.*upgrade mept"):
        mept.load(tiny_bert(), tmp_path)
    with pytest.raises(MeptError, match="upgrade mept"):
        wrapped().load_adapter(tmp_path)


def test_another_librarys_adapter_is_refused(tmp_path):
    wrapped().save_pretrained(tmp_path)
    meta = json.loads((tmp_path / CONFIG_NAME).read_text())
    (tmp_path / CONFIG_NAME).write_text(json.dumps({**meta, "library": "peft"}))
    with pytest.raises(MeptError, match="written by 'peft', not mept"):
        read_adapter_config(tmp_path)


@pytest.mark.parametrize("text, needle", [("{bad", "is not readable JSON"), ("[1, 2]", "is not a JSON object")])
def test_a_damaged_adapter_config_is_one_error_naming_the_file(tmp_path, text, needle):
    wrapped().save_pretrained(tmp_path)
    (tmp_path / CONFIG_NAME).write_text(text)
    with pytest.raises(MeptError, match=needle) as info:
        read_adapter_config(tmp_path)
    assert str(tmp_path / CONFIG_NAME) in str(info.value)


def test_an_unversioned_adapter_is_migrated_and_loads_to_the_same_logits(tmp_path):
    backbone = tiny_bert()
    model = wrapped(backbone=backbone, num_experts=3).eval()
    x = batch()
    want = model(**x).logits
    model.save_pretrained(tmp_path)
    meta = json.loads((tmp_path / CONFIG_NAME).read_text())
    for key in ("library", "mept_version", "format_version"):
        del meta[key]
    meta["head"] = meta.pop("modules_to_save")  # the layout before format 1
    (tmp_path / CONFIG_NAME).write_text(json.dumps(meta))
    assert read_adapter_config(tmp_path)["modules_to_save"] == ["classifier"]
    model.unload()
    restored = mept.load(backbone, tmp_path).eval()
    assert torch.allclose(restored(**x).logits, want, atol=1e-6)


def test_load_adapter_restores_weights_into_a_wrapped_model(tmp_path):
    backbone = tiny_bert()
    trained = wrapped(backbone=backbone, num_experts=3).eval()
    with torch.no_grad():
        trained.method.experts.add_(1.0)
        trained.backbone.classifier.weight.mul_(3.0)
    x = batch()
    want = trained(**x).logits
    trained.save_pretrained(tmp_path)
    state = load_file(str(tmp_path / WEIGHTS_NAME))
    trained.unload()
    other = wrapped(backbone=tiny_bert(), num_experts=3).eval()
    other.backbone.load_state_dict(backbone.state_dict())
    assert not torch.allclose(other(**x).logits, want)
    other.load_adapter(tmp_path)
    assert torch.allclose(other(**x).logits, want, atol=1e-6)
    assert torch.equal(other.adapter_state_dict()["method.experts"], state["method.experts"])


def test_load_adapter_of_another_method_is_a_clear_error(tmp_path):
    wrapped("prompt_tuning").save_pretrained(tmp_path)
    with pytest.raises(MeptError, match="does not fit this backbone/method"):
        wrapped(num_experts=3).load_adapter(tmp_path)


@pytest.mark.parametrize("make", [tiny_bert, tiny_llama], ids=["bert", "llama"])
def test_disabled_runs_the_bare_backbone(make):
    backbone = make()
    x = batch()
    with torch.no_grad():
        bare = backbone(**x, output_hidden_states=True)
        model = wrapped(backbone=backbone, num_experts=3).eval()
        prompted = model(**x).logits
        with model.disabled():
            off = model(**x, output_hidden_states=True)
        again = model(**x).logits
    assert torch.allclose(off.logits, bare.logits, atol=1e-6)
    assert torch.allclose(off.hidden_states[-1], bare.hidden_states[-1], atol=1e-6)
    assert not torch.allclose(prompted, bare.logits, atol=1e-4)
    assert torch.equal(again, prompted)  # the switch is back on after the block


def test_disabled_generation_is_the_bare_backbones():
    backbone = tiny_llama("causal_lm")
    x = batch()
    with torch.no_grad():
        bare = backbone.generate(**x, max_new_tokens=4, do_sample=False, pad_token_id=0)
        model = wrapped(backbone=backbone, num_experts=3).eval()
        with model.disabled():
            off = model.generate(**x, max_new_tokens=4, do_sample=False, pad_token_id=0)
    assert torch.equal(off, bare)


def test_disabled_image_model_gets_no_slots():
    backbone = tiny_vit()
    pixels = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        bare = backbone(pixel_values=pixels).logits
        model = wrapped("vfpt", backbone=backbone).eval()
        with model.disabled():
            off = model(pixel_values=pixels).logits
    assert torch.allclose(off, bare, atol=1e-6)


def test_per_forward_state_lives_only_inside_the_forward():
    model = wrapped(num_experts=3).eval()
    out = model(**batch())
    assert model.injector.current() is None
    assert set(out.routes) == set(model.method.layer_ids)  # the forward's routes come back with its output
    with pytest.raises(RuntimeError):
        with model.injector.forward(model.method, torch.ones(2, 5, dtype=torch.long)) as state:
            assert model.injector.current() is state and not state.routes
            raise RuntimeError("a failing forward")
    assert model.injector.current() is None


def test_a_missing_head_tensor_is_refused_but_a_file_from_a_headless_backbone_loads(tmp_path):
    model = wrapped(num_experts=3)
    model.save_pretrained(tmp_path / "full")
    state = load_file(str(tmp_path / "full" / WEIGHTS_NAME))
    with pytest.raises(MeptError, match="missing 1 tensor"):
        model.load_adapter_weights({k: v for k, v in state.items() if k != "head.classifier.bias"})
    # prompts saved from the base model (no head: modules_to_save []) load onto a classifier, head as it is
    base = mept.get_model(tiny_bert().bert, mept.make_config("mept", prompt_length=4, num_experts=3))
    base.save_pretrained(tmp_path / "base")
    head = model.backbone.classifier.weight.detach().clone()
    model.load_adapter(tmp_path / "base")
    assert torch.equal(model.backbone.classifier.weight, head)
    assert torch.equal(model.method.experts, base.method.experts)


def test_return_dict_false_gives_the_tuple_in_training_too():
    model = wrapped(num_experts=3, balance_loss=0.5).train()
    labels = torch.tensor([0, 1, 0])
    torch.manual_seed(2)
    out = model(**batch(), labels=labels)
    torch.manual_seed(2)
    loss, logits = model(**batch(), labels=labels, return_dict=False)[:2]
    torch.testing.assert_close(loss, out.loss)  # the routers' auxiliary loss included, as in the dict
    torch.testing.assert_close(logits, out.logits)
    loss.backward()


def test_loading_a_backbone_keeps_the_callers_progress_bar_setting():
    import transformers

    from mept.model.backbones import load_backbone

    transformers.logging.disable_progress_bar()
    try:
        load_backbone("minilm", "cls", num_labels=2)
        assert not transformers.logging.is_progress_bar_enabled()
    finally:
        transformers.logging.enable_progress_bar()
    load_backbone("minilm", "cls", num_labels=2)
    assert transformers.logging.is_progress_bar_enabled()


def test_a_task_name_is_never_silently_replaced():
    from mept.data.registry import TaskSpec, get_task, register_task

    spec = TaskSpec("bb-rte", ("no", "yes"), "accuracy", "classification", "mine")
    with pytest.raises(MeptError, match="'bb-rte' is already taken"):
        register_task(spec, lambda **_: {})
    assert get_task("bb-rte").description != "mine"


def test_an_adapter_saved_before_the_routed_settings_existed_still_matches_its_run(tmp_path):
    model = wrapped("smop")
    model.save_pretrained(tmp_path)
    meta = json.loads((tmp_path / CONFIG_NAME).read_text())
    for key in ("balance_loss", "z_loss", "router_lr_scale"):  # SMoP's config before RoutedConfig
        del meta["config"][key]
    (tmp_path / CONFIG_NAME).write_text(json.dumps(meta))
    model.load_adapter(tmp_path, check_config=True)  # read as their defaults: the same settings
    meta["config"]["noise_sigma"] = 2.0
    (tmp_path / CONFIG_NAME).write_text(json.dumps(meta))
    with pytest.raises(MeptError, match=r"noise_sigma \(checkpoint 2.0, run 1.0\)"):
        model.load_adapter(tmp_path, check_config=True)
