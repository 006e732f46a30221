"""One PromptedModel, several threads: each call gives exactly what it gives alone.

A server calls ``forward`` and ``generate`` from several threads on one model. Each forward's state
lives in a context variable (one per thread), never on the model, so interleaved forwards cannot
read each other's masks or routes. A barrier inside a layer holds every thread there until all
have arrived, so the forwards really run at the same time.
"""

from __future__ import annotations

import threading

import pytest
import torch

import mept
from tests.conftest import tiny_bert, tiny_llama, tiny_t5


def interleaved(model: torch.nn.Module, calls: list, layer: torch.nn.Module) -> list:
    """Run ``calls`` (functions of no argument) in threads that all meet inside ``layer``'s first call."""
    barrier = threading.Barrier(len(calls), timeout=60)
    waited = threading.local()

    def meet(module, args):
        if not getattr(waited, "done", False):  # once per thread: generation calls the layer per token
            waited.done = True
            barrier.wait()

    results: list = [None] * len(calls)
    errors: list = []

    def run(k: int) -> None:
        try:
            results[k] = calls[k]()
        except BaseException as exc:  # reported in the main thread
            errors.append(exc)
            barrier.abort()

    handle = layer.register_forward_pre_hook(meet)
    try:
        threads = [threading.Thread(target=run, args=(k,)) for k in range(len(calls))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        handle.remove()
    if errors:
        raise errors[0]
    return results


def batches() -> list[dict[str, torch.Tensor]]:
    """Different contents, batch sizes and lengths (so one thread's mask cannot fit the other's)."""
    g = torch.Generator().manual_seed(3)
    a = {"input_ids": torch.randint(3, 128, (3, 7), generator=g)}
    b = {"input_ids": torch.randint(3, 128, (5, 12), generator=g), "attention_mask": torch.ones(5, 12, dtype=torch.long)}
    b["attention_mask"][1:, 9:] = 0
    return [a, b]


def same(x, y) -> None:
    torch.testing.assert_close(x.logits, y.logits, rtol=0, atol=0)
    assert x.routes.keys() == y.routes.keys()
    for k in x.routes:
        assert torch.equal(x.routes[k].chosen, y.routes[k].chosen) and torch.equal(x.routes[k].probs, y.routes[k].probs)


@pytest.mark.parametrize("make", [tiny_bert, lambda: tiny_llama("cls"), tiny_t5], ids=["bert", "llama", "t5"])
def test_threaded_forwards_equal_sequential_ones(make):
    torch.manual_seed(0)
    model = mept.get_model(make(), mept.MEPTConfig(num_experts=4, prompt_length=4)).eval()
    inputs = batches()
    extra = [{"decoder_input_ids": torch.zeros(len(b["input_ids"]), 1, dtype=torch.long)} if make is tiny_t5 else {}
             for b in inputs]
    with torch.no_grad():
        alone = [model(**b, **e) for b, e in zip(inputs, extra)]
        layer = model.backbone.get_submodule(model.spec.layers_path)[1]
        together = interleaved(model, [lambda b=b, e=e: model(**b, **e) for b, e in zip(inputs, extra)], layer)
    for x, y in zip(alone, together):
        same(x, y)


def test_threaded_generation_and_a_disabled_forward_equal_sequential_ones():
    torch.manual_seed(0)
    model = mept.get_model(tiny_llama("lm"), mept.MEPTConfig(num_experts=4, prompt_length=4)).eval()
    a, b = batches()
    kw = dict(max_new_tokens=5, do_sample=False, pad_token_id=0, return_dict_in_generate=True)

    def bare():
        with model.disabled():  # another thread's disabled() must not turn this thread's prompts off
            return model(**a)

    calls = [lambda: model.generate(**a, **kw), lambda: model.generate(**b, **kw), bare, lambda: model(**b)]
    with torch.no_grad():
        alone = [call() for call in calls]
        layer = model.backbone.get_submodule(model.spec.layers_path)[1]
        together = interleaved(model, calls, layer)
    for x, y in zip(alone[:2], together[:2]):
        assert torch.equal(x.sequences, y.sequences)
        assert all(torch.equal(x.routes[k].chosen, y.routes[k].chosen) for k in x.routes)
    torch.testing.assert_close(alone[2].logits, together[2].logits, rtol=0, atol=0)
    assert getattr(together[2], "routes", None) is None
    same(alone[3], together[3])


def snapshot(model: torch.nn.Module) -> dict[str, dict[str, object]]:
    """Every module's attributes: plain values by value, objects by identity, dicts and lists by their items.

    Parameters and buffers count by identity, so statistics a router updates in place (its running
    mean, as training means to) pass, while any attribute set, replaced or removed does not.
    """

    def view(value: object) -> object:
        if isinstance(value, (bool, int, float, str, type(None))):
            return value
        if isinstance(value, dict):
            return {k: id(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [id(v) for v in value]
        return id(value)

    objects = {f"module {n}": vars(m) for n, m in model.named_modules()}
    objects["injector"] = vars(model.injector)
    return {name: {k: view(v) for k, v in attrs.items()} for name, attrs in objects.items()}


@pytest.mark.parametrize("mode", ["eval", "train", "train+checkpointing"])
@pytest.mark.parametrize("method", ["mept", "smop", "ptmoe", "ptuning_v2"])
def test_no_attribute_of_any_module_changes_during_a_forward(method, mode):
    torch.manual_seed(0)
    settings = {"router_input": "center", "balance_loss": 0.1} if method == "mept" else {}
    model = mept.get_model(tiny_llama("cls"), mept.make_config(method, **settings))
    model.train(mode != "eval")
    if mode == "train+checkpointing":
        model.gradient_checkpointing_enable()
    ids, labels = torch.randint(3, 128, (4, 9)), torch.tensor([0, 1, 0, 1])
    model(input_ids=ids, labels=labels)  # first call: lazily built things of the backbone (e.g. rotary caches)
    before = snapshot(model)
    out = model(input_ids=ids, labels=labels)
    if mode != "eval":
        out.loss.backward()
    after = snapshot(model)
    changed = sorted(f"{name}.{k}" for name in before for k in set(before[name]) | set(after[name])
                     if before[name].get(k, "<absent>") != after[name].get(k, "<absent>"))
    assert not changed, changed
