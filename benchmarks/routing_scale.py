"""Why MEPT's routers collapse on wider and deeper backbones: one change at a time, through ``mept train``.

    python benchmarks/routing_scale.py --model mpnet --data ~/.cache/mept/csv/winowhy --steps 60 \\
        --variants default width depth both --seeds 1 --out runs/routing-scale-mpnet

Each variant is one ``mept train`` run on the same files, budget and seed, differing only in the
router settings named below; the table reads each run's ``metrics.json``: the validation routing
after the last step (collapsed layers: one expert takes >= 90% of the examples; mean routing
entropy), the best validation score, and the collapse over training (``history``).

The variants test two candidate causes, each derived from the backbone's shape:

- ``width``: AdamW moves every router weight by about the lr per step, so one step moves a logit
  by about ``lr * sum_i |x_i|`` ~ ``lr * 0.8 * d`` for a layer-normed input of width d: at
  MiniLM's d = 384 the library's defaults were tuned; at d = 768 the same lr moves logits twice as
  far per step and saturates the softmax sooner (p -> 1, where the top-1 router gets no gradient).
  ``router_lr_scale = 384 / d`` keeps the logit step of MiniLM's tuning.
- ``depth``: the balance loss is averaged over the prompted layers (``PromptMethod.aux_loss``), so
  each layer's router feels ``balance_loss / L`` of it: 0.01 / 6 on MiniLM, 0.01 / 30 on SmolLM2.
  ``balance_loss = 0.01 * L / 6`` gives every layer MiniLM's share.
- ``both``: the two together.
- ``center-slow``: the router reads its pooled input minus a running mean (``router_input=center``)
  that moves by 1% per step (``router_stats_momentum=0.01``, the momentum before section 9's fix):
  before any training the pooled states of unrelated inputs share one dominant direction, so a
  layer-normed linear router ranks the experts alike for every input.
- ``center``: the same with a running mean that keeps up with the hidden states as the prompts move
  them (momentum 0.3); ``benchmarks/router_dynamics.py`` measures why the slow one does not.

``default`` is the library's default at the time of the run (since section 9: the ``width`` rule,
the centred input and momentum 0.3); ``old-default`` is the default before section 9 (routers at the
prompts' rate, layer-normed input). ``width``, ``depth`` and ``both`` read the layer-normed input. Each run's ``best/adapter_config.json`` records the settings it really used.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

from script import run_command  # benchmarks/script.py: a failed child run is one error line

from mept.cli.flags import ListFlag
from mept.model.backbones import resolve

REFERENCE_WIDTH, REFERENCE_DEPTH, BALANCE = 384, 6, 0.01  # MiniLM, where the defaults were tuned


def shape(model: str) -> tuple[int, int]:
    import transformers

    cfg = transformers.AutoConfig.from_pretrained(resolve(model))
    return cfg.hidden_size, cfg.num_hidden_layers


def variant_settings(name: str, width: int, depth: int) -> list[str]:
    width_scale = f"router_lr_scale={REFERENCE_WIDTH / width:.4g}"
    depth_weight = f"balance_loss={BALANCE * depth / REFERENCE_DEPTH:.4g}"
    layernorm = "router_input=layernorm"  # the router input before the tracking centre became the default
    return {"default": [], "old-default": ["router_lr_scale=1", layernorm], "width": [width_scale, layernorm],
            "depth": [depth_weight, layernorm], "both": [width_scale, depth_weight, layernorm],
            "center-slow": ["router_input=center", "router_stats_momentum=0.01"],
            "center": ["router_input=center", "router_stats_momentum=0.3"]}[name]


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--data", required=True, help="folder with train.csv, val.csv, test.csv")
    ap.add_argument("--variants", action=ListFlag, default=["default", "width", "depth", "both"])
    ap.add_argument("--seeds", action=ListFlag, type=int, default=[1])
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--eval-every", type=int, default=20)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--max-length", type=int, default=64)
    ap.add_argument("--extra", action=ListFlag, nargs="*", default=[], help="more `mept train` flags for every run")
    ap.add_argument("--out", required=True)
    args = ap.parse_args(argv)
    width, depth = shape(args.model)
    data = Path(args.data).expanduser()
    rows = []
    for seed in args.seeds:
        for name in args.variants:
            out = Path(args.out) / f"{name}-seed{seed}"
            if not (out / "metrics.json").exists():
                sets = variant_settings(name, width, depth)
                cmd = [sys.executable, "-m", "mept.cli", "train", "--model", args.model,
                       "--train-file", str(data / "train.csv"), "--val-file", str(data / "val.csv"),
                       "--test-file", str(data / "test.csv"), "--max-steps", str(args.steps),
                       "--eval-every", str(args.eval_every), "--batch-size", str(args.batch_size),
                       "--max-length", str(args.max_length), "--seed", str(seed), "--no-progress",
                       "--output", str(out), "--overwrite", *args.extra, *(["--set", *sets] if sets else [])]
                print("$", " ".join(cmd), flush=True)
                run_command(cmd, env={**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")},
                            stdout=subprocess.DEVNULL)
            m = json.loads((out / "metrics.json").read_text())
            last = m["history"][-1]
            rows.append({"variant": name, "seed": seed, "settings": variant_settings(name, width, depth),
                         "collapsed_by_eval": [h.get("collapsed_layers") for h in m["history"]],
                         "entropy_by_eval": [h.get("routing_entropy") for h in m["history"]],
                         "collapsed_last": last.get("collapsed_layers"), "entropy_last": last.get("routing_entropy"),
                         "validation_best": m["average"], "test": m["test"]["average"] if m.get("test") else None,
                         "train_seconds": m["timing"]["train_seconds"]})
    print(f"\n{args.model}: d = {width}, L = {depth}; {args.steps} steps, batch {args.batch_size}, "
          f"{args.max_length} text tokens\n")
    print("| variant | seed | settings | collapsed layers per eval | entropy per eval | best val | test | train s |")
    print("|---|---:|---|---|---|---:|---:|---:|")
    for r in rows:
        print(f"| {r['variant']} | {r['seed']} | {' '.join(r['settings']) or '-'} | {r['collapsed_by_eval']} | "
              f"{[round(e, 2) for e in r['entropy_by_eval'] if e is not None]} | {r['validation_best']:.2f} | "
              f"{r['test'] if r['test'] is None else round(r['test'], 2)} | {r['train_seconds']:.0f} |")
    Path(args.out).mkdir(parents=True, exist_ok=True)
    (Path(args.out) / "routing_scale.json").write_text(json.dumps({"model": args.model, "width": width, "depth": depth,
                                                                  "args": vars(args), "rows": rows}, indent=2))


if __name__ == "__main__":
    from script import run  # benchmarks/script.py: a bad input is one error line, never a traceback

    run(main)
