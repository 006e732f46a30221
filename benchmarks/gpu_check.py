"""GPU readiness in one script: every method trains on CUDA, quantised loading works, checkpoints move.

    python benchmarks/gpu_check.py                    # on a CUDA machine: the full check, < 10 minutes
    python benchmarks/gpu_check.py --cpu              # the CPU fallback (tiny random models, ~1 minute)
    python benchmarks/gpu_check.py --llama HuggingFaceTB/SmolLM2-135M --json gpu_check.json

Four checks, each a table row with ok / FAIL (the exit status is 1 if any row failed):

1. *train*: every registered method (prompt methods and baselines) trains ``--steps`` AdamW steps
   on the device in fp32 and under bf16 autocast: the loss stays finite and the owned weights move.
2. *quantised*: a Llama-family model (``--llama``, default the offline ``smollm2`` alias) loaded in
   4-bit and 8-bit by bitsandbytes, wrapped by MEPT, takes one training step (prompts and routers
   get gradients through the frozen quantised layers).
3. *GPU -> CPU*: MEPT, LoRA, full fine-tuning and the probe are trained two steps on the device,
   saved, loaded onto a fresh CPU backbone with ``mept.load``; the CPU logits must match the
   device's (fp32, max abs difference < 1e-4).
4. *speed*: steps/s and peak memory (``torch.cuda.max_memory_allocated``) of a training step for
   each method on MiniLM and MPNet, batch 16 x 128 text tokens, fp32 and bf16.

Without CUDA (or with ``--cpu``) the same code runs on tiny random BERT / MPNet / Llama configs with small
batches, and the quantised check is reported as skipped: a quick offline test of the script itself
(``tests/test_gpu_check.py``), not a measurement.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

import torch
import torch.nn.functional as F

import mept
from mept.cli.flags import ListFlag
from mept.core.registry import all_method_names
from mept.errors import first_line

# Settings that keep the default configs but make P-Tuning v2 (100 slots) fit tiny position tables.
TINY_SETTINGS: dict[str, dict[str, Any]] = {"ptuning_v2": {"prompt_length": 8}}
CHECKPOINT_METHODS = ["mept", "lora", "full", "probe"]
SPEED_METHODS = ["prompt_tuning", "ptuning_v2", "mept", "lora", "full", "probe"]


@dataclass
class Row:
    check: str
    model: str
    method: str
    dtype: str
    ok: bool
    detail: str = ""
    steps_per_s: float | None = None
    peak_mb: float | None = None


def _tiny_encoder(config_class: str, model_class: str, num_labels: int) -> torch.nn.Module:
    import transformers

    torch.manual_seed(0)  # the same frozen weights every time: a fresh copy must equal the saved run's base
    cfg = getattr(transformers, config_class)(vocab_size=128, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                                              intermediate_size=64, max_position_embeddings=128, num_labels=num_labels)
    return getattr(transformers, model_class)(cfg)


def tiny_bert(num_labels: int = 2) -> torch.nn.Module:
    return _tiny_encoder("BertConfig", "BertForSequenceClassification", num_labels)


def tiny_mpnet(num_labels: int = 2) -> torch.nn.Module:
    """MPNet's architecture (the offline 12 x 768 backbone's) in miniature: its own attention names,
    which PEFT has no default LoRA targets for."""
    return _tiny_encoder("MPNetConfig", "MPNetForSequenceClassification", num_labels)


def tiny_llama() -> torch.nn.Module:
    import transformers

    torch.manual_seed(0)
    cfg = transformers.LlamaConfig(vocab_size=128, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                   num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128,
                                   pad_token_id=0)
    return transformers.LlamaForCausalLM(cfg)


def offline_backbone(name: str) -> Callable[[], torch.nn.Module]:
    def load() -> torch.nn.Module:
        from mept.model.backbones import load_backbone

        return load_backbone(name, "cls", num_labels=2).model

    return load


def batch(vocab: int, size: int, length: int, device: torch.device) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(5, vocab, (size, length), generator=g)
    mask = torch.ones_like(ids)
    mask[size // 2 :, length * 3 // 4 :] = 0  # padded rows: pooling and slots must respect the mask
    return {"input_ids": ids.to(device), "attention_mask": mask.to(device),
            "labels": torch.randint(0, 2, (size,), generator=g).to(device)}


def build(method: str, make_backbone: Callable[[], torch.nn.Module], device: torch.device, tiny: bool):
    settings = TINY_SETTINGS.get(method, {}) if tiny else {}
    return mept.get_model(make_backbone().to(device), mept.make_config(method, **settings))


def step(model, inputs: dict[str, torch.Tensor], optimizer, dtype: str) -> float:
    model.train()
    with torch.autocast(inputs["input_ids"].device.type, dtype=torch.bfloat16, enabled=dtype == "bf16"):
        out = model(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"])
    loss = F.cross_entropy(out.logits.float(), inputs["labels"])
    if out.get("router_aux_loss") is not None:  # this forward's routing loss, returned with its output
        loss = loss + out["router_aux_loss"]
    loss.backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return loss.item()


def optimizer_for(model) -> torch.optim.Optimizer:
    return torch.optim.AdamW(model.param_groups(1e-3, 1e-3))


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def check_train(method: str, make_backbone, model_name: str, device, dtype: str, steps: int, size: int,
                length: int, tiny: bool) -> Row:
    try:
        model = build(method, make_backbone, device, tiny)
        vocab = model.backbone.config.vocab_size
        inputs = batch(min(vocab, 1000), size, length, device)
        opt = optimizer_for(model)
        before = {n: p.detach().clone() for n, p in model.adapter_parameters().items() if p.requires_grad}
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats()
        losses = [step(model, inputs, opt, dtype)]  # warm-up (AdamW state, kernels)
        sync(device)
        t0 = time.perf_counter()
        for _ in range(steps):
            losses.append(step(model, inputs, opt, dtype))
        sync(device)
        rate = steps / (time.perf_counter() - t0)
        peak = torch.cuda.max_memory_allocated() / 2**20 if device.type == "cuda" else None
        moved = any(not torch.equal(before[n], p.detach()) for n, p in model.adapter_parameters().items() if n in before)
        ok = all(torch.isfinite(torch.tensor(losses))) and moved
        detail = f"loss {losses[0]:.3f} -> {losses[-1]:.3f}" + ("" if moved else ", weights did not move")
        return Row("train", model_name, method, dtype, ok, detail, rate, peak)
    except Exception as exc:  # a check reports, it does not stop the others
        return Row("train", model_name, method, dtype, False, f"{type(exc).__name__}: {first_line(str(exc))}")


def check_quantised(llama: str, bits: str, device) -> Row:
    if device.type != "cuda":
        return Row("quantised", llama, "mept", bits, True, "skipped: needs CUDA and bitsandbytes")
    try:
        from transformers import BitsAndBytesConfig

        from mept.model.backbones import load_backbone

        quant = (BitsAndBytesConfig(load_in_8bit=True) if bits == "8bit" else
                 BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_compute_dtype=torch.bfloat16))
        torch.cuda.reset_peak_memory_stats()
        loaded = load_backbone(llama, "causal_lm", quantization_config=quant)
        model = mept.get_model(loaded.model, mept.make_config("mept"))
        ids = torch.randint(5, 1000, (4, 32), device=device)
        opt = optimizer_for(model)
        t0 = time.perf_counter()
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = model(input_ids=ids, attention_mask=torch.ones_like(ids), labels=ids).loss
        loss.backward()
        grads = [p.grad for g in model.param_groups(1e-3, 1e-3) for p in g["params"] if p.grad is not None]
        opt.step()
        torch.cuda.synchronize()
        ok = bool(torch.isfinite(loss)) and bool(grads)
        return Row("quantised", llama, "mept", bits, ok, f"loss {loss.item():.3f}, {len(grads)} tensors with grad",
                   1 / (time.perf_counter() - t0), torch.cuda.max_memory_allocated() / 2**20)
    except Exception as exc:
        return Row("quantised", llama, "mept", bits, False, f"{type(exc).__name__}: {first_line(str(exc))}")


def check_checkpoint(method: str, make_backbone, model_name: str, device, tiny: bool) -> Row:
    """Train on the device, save, load on CPU: the same logits."""
    try:
        model = build(method, make_backbone, device, tiny)
        inputs = batch(min(model.backbone.config.vocab_size, 1000), 4, 24, device)
        opt = optimizer_for(model)
        for _ in range(2):
            step(model, inputs, opt, "fp32")
        model.eval()
        with torch.no_grad():
            want = model(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"]).logits.float().cpu()
        with tempfile.TemporaryDirectory() as tmp:
            model.save_pretrained(tmp)
            on_cpu = mept.load(make_backbone(), tmp).eval()
            with torch.no_grad():
                got = on_cpu(input_ids=inputs["input_ids"].cpu(), attention_mask=inputs["attention_mask"].cpu()).logits
        diff = (got.float() - want).abs().max().item()
        return Row("gpu->cpu", model_name, method, "fp32", diff < 1e-4, f"max |logit difference| {diff:.2e}")
    except Exception as exc:
        return Row("gpu->cpu", model_name, method, "fp32", False, f"{type(exc).__name__}: {first_line(str(exc))}")


def print_rows(rows: list[Row]) -> None:
    print("| check | model | method | dtype | ok | steps/s | peak MB | detail |")
    print("|---|---|---|---|---|---:|---:|---|")
    for r in rows:
        rate = f"{r.steps_per_s:.2f}" if r.steps_per_s is not None else "-"
        peak = f"{r.peak_mb:,.0f}" if r.peak_mb is not None else "-"
        print(f"| {r.check} | {r.model} | {r.method} | {r.dtype} | {'ok' if r.ok else 'FAIL'} | {rate} | {peak} | "
              f"{r.detail} |", flush=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cpu", action="store_true", help="the CPU fallback even where CUDA is available")
    ap.add_argument("--llama", default="smollm2", help="Llama-family model for the 4/8-bit check (hub id or alias)")
    ap.add_argument("--speed-models", action=ListFlag, default=["minilm", "mpnet"])
    ap.add_argument("--steps", type=int, default=None, help="timed steps per train check (default 10 GPU, 2 CPU)")
    ap.add_argument("--json", help="write every row here")
    args = ap.parse_args(argv)
    cuda = torch.cuda.is_available() and not args.cpu
    device = torch.device("cuda" if cuda else "cpu")
    steps = args.steps or (10 if cuda else 2)
    start = time.perf_counter()
    rows: list[Row] = []
    # 1. every method trains, fp32 and bf16 (on GPU: MiniLM; CPU fallback: a tiny random BERT)
    backbone, name = (offline_backbone("minilm"), "minilm") if cuda else (tiny_bert, "tiny-bert")
    for method in all_method_names():
        for dtype in ("fp32", "bf16"):
            rows.append(check_train(method, backbone, name, device, dtype, steps, 8 if cuda else 2,
                                    64 if cuda else 12, tiny=not cuda))
    # 2. 4-bit and 8-bit Llama with MEPT
    for bits in ("4bit", "8bit"):
        rows.append(check_quantised(args.llama, bits, device))
    # 3. a checkpoint saved on the device loads on CPU to the same outputs
    for method in CHECKPOINT_METHODS:
        rows.append(check_checkpoint(method, backbone, name, device, tiny=not cuda))
    print_rows(rows)
    # 4. speed table
    speed: list[Row] = []
    models = ([(m, offline_backbone(m)) for m in args.speed_models] if cuda
              else [("tiny-bert", tiny_bert), ("tiny-mpnet", tiny_mpnet)])
    for model_name, make in models:
        for method in SPEED_METHODS:
            for dtype in ("fp32", "bf16"):
                r = check_train(method, make, model_name, device, dtype, steps, 16 if cuda else 2,
                                128 if cuda else 12, tiny=not cuda)
                speed.append(Row("speed", *[getattr(r, k) for k in ("model", "method", "dtype", "ok", "detail",
                                                                        "steps_per_s", "peak_mb")]))
    print(f"\nspeed: training steps on {device} ({torch.cuda.get_device_name(0) if cuda else 'CPU fallback, tiny'}), "
          f"batch {16 if cuda else 2} x {128 if cuda else 12} text tokens\n")
    print_rows(speed)
    rows += speed
    failed = [r for r in rows if not r.ok]
    print(f"\n{len(rows) - len(failed)} of {len(rows)} checks ok in {time.perf_counter() - start:.0f}s on {device}"
          + ("" if cuda else " (CPU fallback: tiny random models, no quantisation)"))
    if args.json:
        Path(args.json).write_text(json.dumps([asdict(r) for r in rows], indent=2))
    return 1 if failed else 0


if __name__ == "__main__":
    from script import run  # benchmarks/script.py: a bad input is one error line, never a traceback

    run(main)
