"""Training-step and inference speed of every prompt method vs the bare backbone and HF PEFT.

    python benchmarks/speed.py                       # MiniLM and SmolLM2, batch 16, seq 128
    python benchmarks/speed.py --models minilm --rounds 7
    python benchmarks/speed.py --quick               # MiniLM, batch 4, seq 32, 2 rounds: a smoke test
    python benchmarks/speed.py --profile             # also: where the time of a MEPT step goes
    python benchmarks/speed.py --precision fp32 bf16 bf16-weights --only mept   # the precision axis

``--precision``: each config runs in every precision given, round-robin in one process, so the ratios
come from one run. ``bf16`` is ``mept train``'s bf16: autocast over the fp32 backbone (prompts, routers,
head fp32); ``bf16-weights`` also stores the frozen backbone's Linear and Embedding weights in bf16
(half their memory, no per-forward weight casts), still under autocast. Whether bf16 is native here
is printed (``mept.harness.precision.native_bf16``): emulated bf16 is many times slower than fp32.

Each config gets its own backbone instance (a PEFT model and a PromptedModel
cannot wrap one instance at once). A training step is forward + cross-entropy
+ backward + AdamW step over the trainable parameters (prompts, routers, head);
inference is one no_grad forward in eval mode. Random token ids, attention mask
all ones. Configs run round-robin (one warm-up step each, then ``--rounds``
rounds); medians are reported with ratios to the bare backbone.

Two bare references, because a frozen backbone with only its head trainable
never back-propagates into the network:

- ``bare (head only)``: no prompts, only the classification head trains --
  backward stops at the head, so its "step" is about one forward.
- ``bare + input grad``: no prompts, but the input embeddings require grad, so
  backward runs through every layer exactly as for any prompt method. This is
  the zero-prompt cost of prompt tuning, and the fair denominator.

Memory: see benchmarks/common.py (torch.profiler allocation peak during one step).
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

sys.path.insert(0, str(Path(__file__).resolve().parent))
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from common import median, peak_step_memory_mb, timed  # noqa: E402  (sets profiler env before torch)

import mept  # noqa: E402
from mept.cli.flags import ListFlag  # noqa: E402
from mept.errors import first_line  # noqa: E402
from mept.inject.heads import HEAD_NAMES  # noqa: E402
from mept.model.backbones import load_backbone  # noqa: E402

# (label, kind, settings): kind "bare" / "bare_grad" / a mept method name / "peft_prompt" / "peft_prefix"
CONFIGS: list[tuple[str, str, dict[str, Any]]] = [
    ("bare (head only)", "bare", {}),
    ("bare + input grad", "bare_grad", {}),
    ("prompt_tuning m=10", "prompt_tuning", {"prompt_length": 10}),
    ("ptuning_v2 m=100", "ptuning_v2", {"prompt_length": 100}),
    ("smop 4x5", "smop", {}),
    ("mept N_r=10 m=10", "mept", {"num_experts": 10, "prompt_length": 10}),
    ("vfpt m=10", "vfpt", {"prompt_length": 10}),
    ("ptmoe 4 experts m=10", "ptmoe", {}),
    ("PEFT PromptTuning 10", "peft_prompt", {"num_virtual_tokens": 10}),
    ("PEFT PrefixTuning 10", "peft_prefix", {"num_virtual_tokens": 10}),
]


@dataclass
class Bench:
    label: str
    model: torch.nn.Module
    step: Callable[[], None]
    infer: Callable[[], None]
    trainable: int
    seq_len: int  # tokens the backbone's layers actually see (prompt slots included)
    train_times: list[float] = field(default_factory=list)  # wall seconds
    infer_times: list[float] = field(default_factory=list)
    train_cpu: list[float] = field(default_factory=list)  # process CPU seconds
    infer_cpu: list[float] = field(default_factory=list)
    memory_mb: float = float("nan")
    weights_mb: float = float("nan")  # frozen weights: what bf16 storage halves
    error: str | None = None


def build(label: str, kind: str, settings: dict[str, Any], model_name: str, ids, mask, labels,
          precision: str = "fp32") -> Bench:
    backbone = load_backbone(model_name, "cls", num_labels=2).model
    seq = ids.shape[1]
    forward: Callable[[], Any]
    if kind in ("bare", "bare_grad"):
        backbone.requires_grad_(False)
        head = next(getattr(backbone, n) for n in HEAD_NAMES if hasattr(backbone, n))
        head.requires_grad_(True)
        model = backbone
        if kind == "bare":
            forward = lambda: model(input_ids=ids, attention_mask=mask)  # noqa: E731
        else:
            embed = backbone.get_input_embeddings()

            def forward():
                emb = embed(ids).detach().requires_grad_(True)  # (B, T, d): backward reaches the input
                return model(inputs_embeds=emb, attention_mask=mask)
    elif kind.startswith("peft_"):
        from peft import PrefixTuningConfig, PromptTuningConfig, TaskType, get_peft_model

        cls = PromptTuningConfig if kind == "peft_prompt" else PrefixTuningConfig
        model = get_peft_model(backbone, cls(task_type=TaskType.SEQ_CLS, **settings))
        if kind == "peft_prompt":
            seq += settings["num_virtual_tokens"]
        forward = lambda: model(input_ids=ids, attention_mask=mask)  # noqa: E731
    else:
        model = mept.get_model(backbone, mept.make_config(kind, **settings))
        seq += model.num_slots
        forward = lambda: model(input_ids=ids, attention_mask=mask)  # noqa: E731
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-4)
    if precision == "bf16-weights":
        store_frozen_in_bf16(model)
    cast = precision != "fp32"

    def step() -> None:
        model.train()
        with torch.autocast(ids.device.type, dtype=torch.bfloat16, enabled=cast):
            logits = forward().logits
        loss = F.cross_entropy(logits.float(), labels)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    def infer() -> None:
        model.eval()
        with torch.no_grad(), torch.autocast(ids.device.type, dtype=torch.bfloat16, enabled=cast):
            forward()

    return Bench(label, model, step, infer, sum(p.numel() for p in params), seq)


def store_frozen_in_bf16(model: torch.nn.Module) -> None:
    """The frozen backbone's Linear and Embedding weights in bf16; anything trainable stays fp32."""
    for module in model.modules():
        if isinstance(module, (torch.nn.Linear, torch.nn.Embedding)) and not any(
                p.requires_grad for p in module.parameters(recurse=False)):
            module.to(torch.bfloat16)


def frozen_mb(model: torch.nn.Module) -> float:
    """Memory of the model's frozen weights, MiB (what bf16 storage halves)."""
    return sum(p.numel() * p.element_size() for p in model.parameters() if not p.requires_grad) / 2**20


def run_model(model_name: str, args) -> list[Bench]:
    torch.manual_seed(0)
    vocab = load_backbone(model_name, "cls", num_labels=2).model.config.vocab_size
    ids = torch.randint(100, min(vocab, 30000), (args.batch, args.seq))
    mask = torch.ones_like(ids)
    labels = torch.randint(0, 2, (args.batch,))
    benches = []
    runs = [(label if precision == "fp32" else f"{label} [{precision}]", kind, settings, precision)
            for label, kind, settings in CONFIGS for precision in args.precision]
    for label, kind, settings, precision in runs:
        if args.only and not any(o in label for o in args.only):
            continue
        try:
            b = build(label, kind, settings, model_name, ids, mask, labels, precision)
            b.step()  # warm-up: allocator, AdamW state, lazy inits
            b.infer()
        except Exception as exc:  # a reference library may not support a backbone: report, don't abort
            b = Bench(label, None, None, None, 0, 0, error=f"{type(exc).__name__}: {first_line(str(exc))[:120]}")
            print(f"[{model_name}] {label}: skipped ({b.error})", file=sys.stderr)
        benches.append(b)
    live = [b for b in benches if b.error is None]
    for r in range(args.rounds):
        for b in live:  # round-robin: noise from other jobs hits every config alike
            for times, cpu, fn in ((b.train_times, b.train_cpu, b.step), (b.infer_times, b.infer_cpu, b.infer)):
                w, c = timed(fn)
                times.append(w)
                cpu.append(c)
        print(f"[{model_name}] round {r + 1}/{args.rounds} done", file=sys.stderr)
    for b in live:
        b.memory_mb = peak_step_memory_mb(b.step)
        b.weights_mb = frozen_mb(b.model)
    if args.profile:
        profile(model_name, live, args)
    return benches


def profile(model_name: str, live: list[Bench], args) -> None:
    """Top ops (self CPU time) of one training step: MEPT vs the same-length PEFT prompt tuning."""
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    for b in live:
        if not any(k in b.label for k in ("mept", "PEFT PromptTuning", "bare + input grad")):
            continue
        with torch_profile(activities=[ProfilerActivity.CPU], record_shapes=False) as prof:
            b.step()
        print(f"\n### profile [{model_name}] {b.label}: one training step, top 15 ops by self CPU time\n")
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=15))


def table(model_name: str, benches: list[Bench], args) -> tuple[str, dict[str, Any]]:
    ok = {b.label: b for b in benches if b.error is None}
    bare = ok.get("bare (head only)")
    bare_g = ok.get("bare + input grad")
    rows = [
        f"\n#### {model_name}: batch {args.batch}, seq {args.seq}, {args.rounds} rounds (medians)\n",
        "| config | layers see | trainable | step wall (s) | step CPU (s) | CPU / bare head-only "
        "| CPU / bare+input-grad | wall / bare+input-grad | inference CPU (s) | CPU / bare | step peak mem (MiB) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    out: dict[str, Any] = {}
    for b in benches:
        if b.error:
            rows.append(f"| {b.label} | n/a | n/a | error: {b.error} | | | | | | | |")
            out[b.label] = {"error": b.error}
            continue
        ts, cs, ci = median(b.train_times), median(b.train_cpu), median(b.infer_cpu)
        rb = cs / median(bare.train_cpu) if bare else float("nan")
        rg = cs / median(bare_g.train_cpu) if bare_g else float("nan")
        rgw = ts / median(bare_g.train_times) if bare_g else float("nan")
        ri = ci / median(bare.infer_cpu) if bare else float("nan")
        rows.append(f"| {b.label} | {b.seq_len} | {b.trainable:,} | {ts:.3f} | {cs:.3f} | {rb:.2f}x | {rg:.2f}x "
                    f"| {rgw:.2f}x | {ci:.3f} | {ri:.2f}x | {b.memory_mb:.0f} |")
        out[b.label] = {"train_wall_s": ts, "train_cpu_s": cs, "infer_wall_s": median(b.infer_times),
                        "infer_cpu_s": ci, "train_times": b.train_times, "train_cpu": b.train_cpu,
                        "infer_times": b.infer_times, "infer_cpu": b.infer_cpu, "trainable": b.trainable,
                        "seq_len": b.seq_len, "memory_mb": b.memory_mb}
    rows.append("")
    rows += targets(ok)
    rows += precision_rows(ok)
    return "\n".join(rows), out


def targets(ok: dict[str, Bench]) -> list[str]:
    """Pass/fail of our speed targets, on CPU time and on wall time (ratios of medians)."""

    def ratio(a: str, b: str, clock: str) -> float | None:
        if a not in ok or b not in ok:
            return None
        get = (lambda x: x.train_cpu) if clock == "cpu" else (lambda x: x.train_times)
        return median(get(ok[a])) / median(get(ok[b]))

    checks = [
        ("MEPT step <= 1.15x bare (head only)", "mept N_r=10 m=10", "bare (head only)", lambda v: v <= 1.15),
        ("MEPT step <= 1.15x bare + input grad", "mept N_r=10 m=10", "bare + input grad", lambda v: v <= 1.15),
        ("MEPT step <= 1.10x PEFT PromptTuning (10)", "mept N_r=10 m=10", "PEFT PromptTuning 10", lambda v: v <= 1.10),
        ("MEPT >= 1.5x faster than P-Tuning v2 (100)", "ptuning_v2 m=100", "mept N_r=10 m=10", lambda v: v >= 1.5),
    ]
    lines = ["| target | CPU-time ratio | result | wall ratio | result |", "|---|---:|---|---:|---|"]
    for name, a, b, good in checks:
        cells = []
        for clock in ("cpu", "wall"):
            v = ratio(a, b, clock)
            cells += ["n/a", "not measured"] if v is None else [f"{v:.2f}x", "PASS" if good(v) else "FAIL"]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines


def precision_rows(ok: dict[str, Bench]) -> list[str]:
    """Each config's bf16 variants against its fp32 run: speed-up of a training step and of inference
    (CPU time and wall), step memory and frozen-weight memory."""
    rows = []
    for label, b in ok.items():
        if not label.endswith("]") or "[" not in label:
            continue
        base = ok.get(label.rsplit(" [", 1)[0])
        if base is None:
            continue
        if not rows:
            rows = ["", "| config | fp32 step CPU (s) | speed-up, step CPU | step wall | inference CPU | "
                        "step peak mem MiB (fp32 -> this) | frozen weights MiB (fp32 -> this) |",
                    "|---|---:|---:|---:|---:|---|---|"]
        up = lambda a, c: median(a) / median(c)  # noqa: E731  (> 1: faster than fp32)
        rows.append(f"| {label} | {median(base.train_cpu):.3f} | {up(base.train_cpu, b.train_cpu):.2f}x "
                    f"| {up(base.train_times, b.train_times):.2f}x | {up(base.infer_cpu, b.infer_cpu):.2f}x "
                    f"| {base.memory_mb:.0f} -> {b.memory_mb:.0f} | {base.weights_mb:.0f} -> {b.weights_mb:.0f} |")
    return rows


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", action=ListFlag, default=["minilm", "smollm2"], choices=["minilm", "smollm2", "mpnet"])
    ap.add_argument("--precision", action=ListFlag, default=["fp32"], choices=["fp32", "bf16", "bf16-weights"],
                    help="run every config in each (ratios from one run)")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--seq", type=int, default=128)
    ap.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's choice)")
    ap.add_argument("--only", action=ListFlag, help="run configs whose label contains any of these strings (bare ones always)")
    ap.add_argument("--profile", action="store_true", help="print torch.profiler op tables for MEPT and references")
    ap.add_argument("--quick", action="store_true", help="smoke test: MiniLM, batch 4, seq 32, 2 rounds")
    ap.add_argument("--json", help="also write raw timings to this file")
    args = ap.parse_args(argv)
    if args.quick:
        args.models, args.batch, args.seq, args.rounds = ["minilm"], 4, 32, 2
    if args.only:
        args.only = list(args.only) + ["bare"]
    if args.threads:
        torch.set_num_threads(args.threads)
    from mept.harness.precision import native_bf16

    device = "cuda" if torch.cuda.is_available() else "cpu"
    native, why = native_bf16(device)
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, device {device}, "
          f"bf16 {'native' if native else 'not native'} ({why})", flush=True)
    results = {}
    for name in args.models:
        benches = run_model(name, args)
        text, results[name] = table(name, benches, args)
        print(text, flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps({"args": vars(args), "results": results}, indent=2))


if __name__ == "__main__":
    from script import run  # benchmarks/script.py: a bad input is one error line, never a traceback

    run(main)
