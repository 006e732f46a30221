"""Is an untrained MEPT's routing collapsed before any training? Router input layernorm vs center.

    python benchmarks/init_routing.py --model smollm2 --data ~/.cache/mept/csv/winowhy/val.csv

Builds MEPT (N_r = 10, m = 10, seed 1) on the backbone, routes the first ``--examples`` rows of a
real CSV (column ``text``) and prints, per prompted layer, the largest share of the examples one
expert takes (>= 0.9: collapsed, as ``mept.core.routing_health`` counts it). ``center`` sets its running
mean from one training-mode pass over the same rows, then routes in eval mode.
"""

from __future__ import annotations

import argparse

import torch

import mept
from mept.model.backbones import load_backbone


def untrained_mept(model_name: str, texts: list[str], max_length: int, **config: object) -> tuple[object, object, dict]:
    """An untrained MEPT (N_r = 10, m = 10, seed 1) with a two-label head on the backbone, and ``texts`` as a batch."""
    backbone = load_backbone(model_name, "cls", num_labels=2)
    tok = backbone.processor
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    batch = tok(texts, padding=True, truncation=True, max_length=max_length, return_tensors="pt")
    torch.manual_seed(1)
    model = mept.get_model(backbone.model, mept.make_config("mept", num_experts=10, prompt_length=10, **config))
    return backbone, model, batch


def shares(model_name: str, router_input: str, texts: list[str], max_length: int) -> list[float]:
    _, model, batch = untrained_mept(model_name, texts, max_length, router_input=router_input)
    with torch.no_grad():
        if router_input != "layernorm":
            model.train()
            model(**batch)  # the running statistics, from these rows
        model.eval()
        out = model(**batch)
    return [round((torch.bincount(r.chosen, minlength=10).float() / len(r.chosen)).max().item(), 2)
            for _, r in sorted(out.routes.items())]


def rows_of_a_csv(description: str, examples: int, max_length: int) -> tuple[argparse.Namespace, list[str]]:
    """The flags these scripts share (--model, --data, --examples, --max-length) and the first rows' text."""
    from script import csv_flags, csv_rows  # benchmarks/script.py: a CSV without the column is one error line

    args = csv_flags(description, examples, max_length).parse_args()

    return args, [r["text"] for r in csv_rows(args.data)][: args.examples]


def main() -> None:
    args, texts = rows_of_a_csv(__doc__.splitlines()[0], examples=48, max_length=64)
    for router_input in ("layernorm", "center"):
        s = shares(args.model, router_input, texts, args.max_length)
        print(f"{args.model} {router_input}: collapsed {sum(x >= 0.9 for x in s)} of {len(s)} layers; "
              f"largest share per layer {s}", flush=True)


if __name__ == "__main__":
    from script import run  # benchmarks/script.py: a bad input is one error line, never a traceback

    run(main)
