"""What drives a MEPT router to collapse in training: measured per layer, every few steps.

    python benchmarks/router_dynamics.py --model smollm2 --data ~/.cache/mept/csv/winowhy --steps 40 \\
        --set router_lr_scale=auto --out benchmarks/results/router_dynamics/smollm2-default.json

Trains MEPT in-process (the library's model, param groups, AdamW and linear warmup schedule, as
``mept train`` builds them; batches here are plain padded tokenizer batches) and, every
``--probe-every`` steps, routes a fixed probe set of validation rows in eval mode and records per
prompted layer:

- ``share``: the largest share of the probe rows one expert takes (>= 0.9: collapsed);
- ``top1_p``: the mean top-1 probability (near 1: the softmax has saturated);
- ``shared`` / ``specific``: the logits split into the part every input shares (the spread across
  experts of the logits averaged over inputs) and the part that tells inputs apart (the spread
  across inputs, averaged over experts). A router that sends every input to one expert with a
  top-1 probability far from 1 has a large ``shared`` and a small ``specific`` part: it has learnt a
  bias, not a routing;
- ``push``: over a training batch, the cosine between the routers' weight gradient and the
  gradient it would get if every example pushed the same way (the outer product of the summed
  logit gradient with the mean input): near 1, the router is being taught a bias;
- ``drift`` (``router_input=center`` only): the distance between the batch mean of the router's
  input and the running mean it subtracts, over the inputs' spread.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import torch

import mept
from mept.cli import _method_args as method_args
from mept.cli.flags import ListFlag
from mept.core.routing import Router
from mept.model.backbones import load_backbone


def read_rows(path: Path) -> list[tuple[str, str]]:
    from script import csv_rows  # benchmarks/script.py: a CSV without the columns is one error line

    return [(r["text"], r["label"]) for r in csv_rows(path, ("text", "label"))]


def probe(model, routers: list[Router], batch) -> list[dict[str, float]]:
    """Route the probe batch in eval mode; per layer the statistics of the module docstring."""
    model.eval()
    with torch.no_grad():
        out = model(**batch)
    rows = []
    for _, route in sorted(out.routes.items()):
        logits = route.logits.float()  # (B, E)
        counts = torch.bincount(route.chosen, minlength=logits.shape[1]).float()
        rows.append({"share": round((counts.max() / counts.sum()).item(), 3),
                     "top1_p": round(route.probs.max(-1).values.mean().item(), 3),
                     "shared": round(logits.mean(0).std().item(), 3),
                     "specific": round(logits.std(0).mean().item(), 3)})
    return rows


def push_cosines(routers: list[Router], inputs: list[torch.Tensor]) -> list[float]:
    """Per router, cos(grad W, sum_b g_b  x_mean^T): how much of the update is one shared push."""
    cos = []
    for router, x in zip(routers, inputs):
        grad = router.linear.weight.grad
        if grad is None or x is None:
            cos.append(float("nan"))
            continue
        xn = router.normalize_input(x, update_stats=False)  # (B, d) what the router read
        # the gradient's part along the mean input: G u u^T with u the unit mean input direction
        u = xn.mean(0)
        u = u / u.norm().clamp_min(1e-12)
        along = grad @ u[:, None] @ u[None, :]
        cos.append(round((along.norm() / grad.norm().clamp_min(1e-12)).item(), 3))
    return cos


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--data", required=True, help="folder with train.csv and val.csv (columns text, label)")
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--max-length", type=int, default=64)
    ap.add_argument("--lr", type=float, default=1e-2)
    ap.add_argument("--probe-every", type=int, default=5)
    ap.add_argument("--probe-rows", type=int, default=64)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--set", action=ListFlag, nargs="*", default=[], help="MEPT settings key=value (as mept train --set)")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    torch.manual_seed(args.seed)
    data = Path(args.data).expanduser()
    train, val = read_rows(data / "train.csv"), read_rows(data / "val.csv")
    labels = sorted({y for _, y in train})
    backbone = load_backbone(args.model, "cls", num_labels=len(labels))
    tok = backbone.processor
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    backbone.model.config.pad_token_id = tok.pad_token_id
    settings = method_args(args.set)  # read as `mept train --set` reads them
    model = mept.get_model(backbone.model, mept.make_config("mept", **settings))
    routers = list(model.method.routers())
    groups = model.param_groups(args.lr, 1e-2)
    opt = torch.optim.AdamW(groups, weight_decay=0.01)
    from transformers import get_linear_schedule_with_warmup

    sched = get_linear_schedule_with_warmup(opt, int(0.06 * args.steps), args.steps)

    def encode(rows):
        b = tok([t for t, _ in rows], padding=True, truncation=True, max_length=args.max_length, return_tensors="pt")
        b["labels"] = torch.tensor([labels.index(y) for _, y in rows])
        return b

    probe_batch = encode(val[: args.probe_rows])
    probe_batch.pop("labels")
    # what each router reads in a training forward: its pooled input, caught on the way in
    seen: list[torch.Tensor | None] = [None] * len(routers)
    hooks = [r.register_forward_pre_hook(lambda mod, a, i=i: seen.__setitem__(i, a[0].detach().float()))
             for i, r in enumerate(routers)]
    g = torch.Generator().manual_seed(args.seed)
    order: list[int] = []
    history = [{"step": 0, "layers": probe(model, routers, probe_batch)}]
    for step in range(1, args.steps + 1):
        if len(order) < args.batch_size:
            order += torch.randperm(len(train), generator=g).tolist()
        idx, order = order[: args.batch_size], order[args.batch_size:]
        model.train()
        means_before = [r.running_mean.clone() if hasattr(r, "running_mean") else None for r in routers]
        out = model(**encode([train[i] for i in idx]))
        out.loss.backward()
        push = push_cosines(routers, seen)
        drift = []
        for r, x, m in zip(routers, seen, means_before):
            if m is None or x is None:
                continue
            drift.append(round(((x.mean(0) - m).norm() / x.std(0).norm().clamp_min(1e-12)).item(), 3))
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        if step % args.probe_every == 0 or step == args.steps:
            rec = {"step": step, "loss": round(out.loss.item(), 4), "push": push,
                   "layers": probe(model, routers, probe_batch)}
            if drift:
                rec["drift"] = drift
            history.append(rec)
            layers = rec["layers"]
            print(f"step {step:3d} loss {rec['loss']:.3f} collapsed {sum(x['share'] >= 0.9 for x in layers):2d}/{len(layers)}"
                  f"  top1_p {sum(x['top1_p'] for x in layers) / len(layers):.2f}"
                  f"  shared {sum(x['shared'] for x in layers) / len(layers):.2f}"
                  f"  specific {sum(x['specific'] for x in layers) / len(layers):.2f}"
                  f"  push {sum(c for c in push if not math.isnan(c)) / max(1, len(push)):.2f}"
                  + (f"  drift {sum(drift) / len(drift):.2f}" if drift else ""), flush=True)
    for h in hooks:
        h.remove()
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"args": vars(args), "config": model.prompt_config.to_dict()
                                          if hasattr(model.prompt_config, "to_dict") else str(model.prompt_config),
                                          "history": history}, indent=1))


if __name__ == "__main__":
    from script import run  # benchmarks/script.py: a bad input is one error line, never a traceback

    run(main)
