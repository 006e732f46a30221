"""Summarise the runs of ``run.sh`` (issue 31): routing health of the paper's MEPT at three learning rates.

    python benchmarks/results/paper_lr_routing/summarise.py [runs/paper-lr-routing]

Copies each seed's ``metrics.json`` here (``lr-X/seed-N.metrics.json``: the raw result) and prints a
markdown table: per lr and seed, the best validation average and the routing health of that checkpoint
on the 1,109 validation examples (collapsed layers: one expert >= 90% of the examples; layers using >= 3
experts; mean normalised entropy; mean top-1 probability; largest pathway cosine between two tasks),
then the mean over seeds and the paired test of accuracy against lr 1e-2.
"""

from __future__ import annotations

import json
import shutil
import statistics
import sys
from pathlib import Path

from mept.harness.stats import adjust_family, paired_test

HERE = Path(__file__).parent


def health(m: dict) -> dict:
    r = m["routing"]
    return {"average": m["average"], "collapsed": len(r["collapsed_layers"]), "three": r["layers_with_3_experts"],
            "entropy": r["mean_entropy"], "top1": statistics.fmean(layer["mean_top1_prob"] for layer in r["layers"]),
            "cosine": r["max_pathway_cosine"], "best_step": m["best_step"],
            "history": [(h["step"], h.get("collapsed_layers"), h.get("routing_entropy")) for h in m["history"]]}


def main(root: Path) -> None:
    rows: dict[str, list[dict]] = {}
    for folder in [*sorted(root.glob("lr-*")), root / "init"]:
        for path in sorted(folder.glob("seed-*/metrics.json")):
            target = HERE / folder.name / f"{path.parent.name}.metrics.json"
            target.parent.mkdir(exist_ok=True)
            shutil.copyfile(path, target)
            name = folder.name[3:] if folder.name.startswith("lr-") else "init (1 step at lr 1e-12)"
            rows.setdefault(name, []).append({"seed": path.parent.name[5:], **health(json.loads(path.read_text()))})
    print("| lr | seed | best validation avg (step) | collapsed layers (of 6) | layers with >= 3 experts | "
          "mean entropy | mean top-1 prob | max pathway cosine | collapsed layers / entropy at each evaluation |")
    print("|---|---|---|---:|---:|---:|---:|---:|---|")
    for lr, seeds in sorted(rows.items(), key=lambda kv: float(kv[0]) if kv[0][0].isdigit() else 0.0):
        for s in seeds:
            trace = "; ".join(f"{step}: {c} / {e:.2f}" for step, c, e in s["history"])
            print(f"| {lr} | {s['seed']} | {s['average']:.2f} ({s['best_step']}) | {s['collapsed']} | {s['three']} | "
                  f"{s['entropy']:.2f} | {s['top1']:.2f} | {s['cosine']:.3f} | {trace} |")
        mean = {k: statistics.fmean(s[k] for s in seeds) for k in ("average", "collapsed", "three", "entropy", "top1", "cosine")}
        print(f"| **{lr}** | mean of {len(seeds)} | {mean['average']:.2f} | {mean['collapsed']:.1f} | {mean['three']:.1f} | "
              f"{mean['entropy']:.2f} | {mean['top1']:.2f} | {mean['cosine']:.3f} | |")
    if "1e-2" in rows:
        ref = [s["average"] for s in rows["1e-2"]]
        tests = adjust_family({lr: paired_test([s["average"] for s in seeds], ref)
                               for lr, seeds in rows.items() if lr[0].isdigit() and lr != "1e-2" and len(seeds) == len(ref)})
        for lr, t in tests.items():
            print(f"\nvalidation avg, lr {lr} - lr 1e-2 paired by seed: {', '.join(f'{d:+.2f}' for d in t['diffs'])}; "
                  f"mean {t['mean_diff']:+.2f}, p = {t['p_two_sided']:.3g}, Holm p = {t['p_holm']:.3g} "
                  f"({'decided' if t['decided'] else 'undecided'})")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("runs/paper-lr-routing"))
