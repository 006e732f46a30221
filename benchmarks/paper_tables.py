"""Offline analogues of the MEPT paper's tables, on the learnable ``bb-diverse`` mixture.

    python benchmarks/paper_tables.py                       # all tables, reduced CPU budget, 3 seeds
    python benchmarks/paper_tables.py --tables 1 8 --seeds 1 2 3 --steps 300
    python benchmarks/paper_tables.py --tables 4 --depth-model mpnet --depth-steps 150

Tables (every run goes through ``mept.train.run`` with the same budget per table):

- ``1``  (paper Tables 1/6): every method, mixture training (one prompt set for all tasks) and
  single-task training (``--single``; one run per task with ``steps / n_tasks`` steps each, the
  same number of examples in all), with trainable parameters and activated prompt tokens, and
  the per-seed paired difference of MEPT against the best baseline.
- ``4``  prompt depth: MEPT on layers 1-6, 7-12 and all of the 12-layer ``mpnet``.
- ``5``  routing ablation: top-1 (paper router), stochastic, dense, Gumbel, perturbation and
  the library default, with routing health beside accuracy.
- ``sweeps``: N_r in {4, 10, 20} and m in {10, 15, 20}.
- ``8``  (paper Table 8): training time until each method first reaches P-Tuning v2's best
  validation score (its own seed), from the per-evaluation timing in ``metrics.json``.

Budget: MiniLM, batch 16, text length ``--text-length`` plus each method's prompt slots,
``--steps`` mixture steps, validation every ``--eval-every`` steps on at most
``--max-eval-examples`` per task. The GPU budget matching the paper (T5-Base / 70 epochs)
is in ``benchmarks/README.md``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path
from typing import Any

from mept.registry import make_config
from mept.run_report import mean_std
from mept.train import run
from mept.train_config import TrainConfig, migrate_run_config

METHODS: dict[str, dict[str, Any]] = {  # the paper's settings, scaled to the suite
    "prompt_tuning": {"prompt_length": 10},
    "ptuning_v2": {"prompt_length": 100},
    "smop": {},
    "vfpt": {"prompt_length": 10},
    "ptmoe": {},
    "mept": {"num_experts": 10, "prompt_length": 10},
}
# a method whose scale differs from the text methods' (VFPT's FFT-mixed rows sum over m x d entries)
# picks its lr on validation (seed 42) from its own grid before the seeds run; the others use 1e-2
LR_GRIDS: dict[str, list[float]] = {"vfpt": [1e-3, 1e-4]}
ROUTINGS: dict[str, dict[str, Any]] = {
    "top1 (paper router)": {"routing": "top1", "router_input": "layernorm", "router_lr_scale": 1.0, "balance_loss": 0.0,
                            "z_loss": 0.0},
    "stochastic": {"routing": "stochastic"},
    "dense": {"routing": "dense"},
    "gumbel": {"routing": "gumbel"},
    "perturbation": {"routing": "perturb"},
    "default": {},
}


def fmt(ms: dict[str, float]) -> str:
    return f"{ms['mean']:.2f} ± {ms['std']:.2f}"


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.out = Path(args.out)
        self.results: dict[str, Any] = {"settings": vars(args)}

    def train(self, name: str, method: str, settings: dict[str, Any], tasks: list[str], steps: int,
              model: str | None = None) -> dict[str, Any]:
        """One configuration over all seeds: per-seed metrics and their aggregate."""
        a = self.args
        cfg = self.config(name, method, settings, tasks, steps, model=model, seeds=a.seeds,
                          lr_grid=LR_GRIDS.get(method))
        t0 = time.perf_counter()
        folder = self.out / name
        if a.reuse and _finished(folder, cfg):  # a configuration measured before, with these very settings
            summary = json.loads((folder / "metrics.json").read_text())
        else:
            summary = run(cfg)
        per_seed = [json.loads((folder / f"seed-{s}" / "metrics.json").read_text()) for s in a.seeds]
        print(f"  {name:40s} {fmt(summary['average'])}  ({time.perf_counter() - t0:.0f}s)", flush=True)
        return {"summary": summary, "seeds": per_seed}

    def config(self, name: str, method: str, settings: dict[str, Any], tasks: list[str], steps: int,
               model: str | None = None, **overrides: Any) -> TrainConfig:
        """The benchmark budget for one configuration; ``overrides`` set what a table changes (seeds, eval size)."""
        a = self.args
        budget: dict[str, Any] = {
            "method": method, "model": model or a.model, "tasks": tasks, "method_args": dict(settings),
            "max_steps": steps, "batch_size": a.batch_size,
            "max_length": a.text_length,  # text tokens (the prompt slots come on top)
            "max_eval_examples": a.max_eval_examples, "eval_every": min(a.eval_every, steps), "save_every": 10**9,
            "output": str(self.out / name), "overwrite": True, "progress": False,
        }
        return TrainConfig(**{**budget, **overrides})

    def save(self) -> None:
        """Merge this invocation's tables into ``paper_tables.json``: running one table keeps the others."""
        self.out.mkdir(parents=True, exist_ok=True)
        path = self.out / "paper_tables.json"
        saved = json.loads(path.read_text()) if path.exists() else {}
        for key, value in self.results.items():
            if key != "settings":
                saved[key] = {**value, "settings": self.results["settings"]}
        path.write_text(json.dumps(saved, indent=2, default=str))

    # --- tables ---------------------------------------------------------------------------

    def table1(self) -> None:
        a, rows = self.args, {}
        print("Table 1/6: every method, mixture training")
        for method, settings in METHODS.items():
            if method in a.methods or a.reuse:
                rows[method] = self.train(f"t1/mixture/{method}", method, settings, a.tasks, a.steps)
        if set(rows) != set(METHODS):
            print(f"  (only {', '.join(rows)} measured: the table needs every method; rerun with --reuse)")
            self.results["table1_partial"] = {m: r["summary"] for m, r in rows.items()}
            return
        single = {}
        if a.single:
            from mept.train import expand_tasks

            names = expand_tasks(a.tasks)
            print("Table 1/6: single-task training")
            for method, settings in METHODS.items():
                per_task = {t: self.train(f"t1/single/{method}/{t}", method, settings, [t], max(1, a.steps // len(names)))
                            for t in names}
                single[method] = per_task
        single_seeds = {m: [statistics.fmean(per_task[t]["seeds"][i]["average"] for t in per_task)
                            for i in range(len(a.seeds))] for m, per_task in single.items()}
        lines = ["| method | lr | trainable params | activated prompt tokens | mixture avg | single-task avg |",
                 "|---|---:|---:|---:|---|---|"]
        for method, r in rows.items():
            m0 = r["seeds"][0]
            single_avg = fmt(mean_std(single_seeds[method])) if method in single_seeds else "-"
            lines.append(f"| {method} | {m0['lr']:g} | {m0['trainable_params']:,} | {m0['activated_prompt_tokens']} | "
                         f"{fmt(r['summary']['average'])} | {single_avg} |")
        majority = statistics.fmean(rows["mept"]["seeds"][0]["majority"].values())
        lines.append(f"| majority class | - | - | - | {majority:.2f} | |")
        paired = _paired({m: [s["average"] for s in r["seeds"]] for m, r in rows.items()})
        verdicts = {}
        for m in ("ptuning_v2", "smop"):
            d = rows["mept"]["summary"]["average"]["mean"] - rows[m]["summary"]["average"]["mean"]
            verdicts[m] = {"difference": d, "std_mept": rows["mept"]["summary"]["average"]["std"],
                           "std_baseline": rows[m]["summary"]["average"]["std"]}
        text = "\n".join(lines) + "\n\nper task (mixture):\n" + _task_table({m: r["summary"]["tasks"] for m, r in rows.items()})
        if single:
            single_paired = _paired(single_seeds)
            self.results["table1_single"] = {"per_seed": single_seeds, "paired": single_paired,
                                             "rows": {m: {t: r["summary"] for t, r in pt.items()} for m, pt in single.items()}}
            text += ("\n\nper task (single-task):\n"
                     + _task_table({m: {t: r["summary"]["average"] for t, r in pt.items()} for m, pt in single.items()})
                     + "\n\nsingle-task: " + _paired_text(single_paired))
        text += ("\n\n" + _paired_text(paired) + "\n"
                 + "\n".join(f"MEPT - {m}: {v['difference']:+.2f} (std MEPT {v['std_mept']:.2f}, {m} {v['std_baseline']:.2f})"
                             for m, v in verdicts.items()))
        self.results["table1"] = {"text": text, "paired": paired, "verdicts": verdicts,
                                  "rows": {m: r["summary"] for m, r in rows.items()}, "mixture_seeds": {
                                      m: r["seeds"] for m, r in rows.items()}}
        print(text)

    def table4(self) -> None:
        a, rows = self.args, {}
        print(f"Table 4: prompt depth on {a.depth_model}")
        for layers in ("1-6", "7-12", "all"):
            rows[layers] = self.train(f"t4/{layers}", "mept", {**METHODS["mept"], "layers": layers}, a.tasks,
                                      a.depth_steps, model=a.depth_model)
        text = "\n".join(["| MEPT layers | validation avg | collapsed layers | max pathway cosine |", "|---|---|---:|---:|"]
                         + [f"| {k} | {fmt(r['summary']['average'])} | "
                            f"{statistics.fmean(len(s['routing']['collapsed_layers']) for s in r['seeds']):.1f} | "
                            f"{statistics.fmean(s['routing']['max_pathway_cosine'] for s in r['seeds']):.3f} |"
                            for k, r in rows.items()])
        self.results["table4"] = {"text": text, "rows": {k: r["summary"] for k, r in rows.items()}}
        print(text)

    def table5(self) -> None:
        a, rows = self.args, {}
        print("Table 5: routing ablation")
        for name, settings in ROUTINGS.items():  # the default is Table 1's MEPT run (same settings): reused with --reuse
            folder = "t1/mixture/mept" if name == "default" else f"t5/{name.split()[0]}"
            rows[name] = self.train(folder, "mept", {**METHODS["mept"], **settings}, a.tasks, a.steps)
        head = ("| routing | validation avg | collapsed layers | layers with >= 3 experts | mean entropy | "
                "max pathway cosine |")
        body = []
        for name, r in rows.items():
            h = [s["routing"] for s in r["seeds"]]
            body.append(f"| {name} | {fmt(r['summary']['average'])} | "
                        f"{statistics.fmean(len(x['collapsed_layers']) for x in h):.1f} | "
                        f"{statistics.fmean(x['layers_with_3_experts'] for x in h):.1f} | "
                        f"{statistics.fmean(x['mean_entropy'] for x in h):.2f} | "
                        f"{statistics.fmean(x['max_pathway_cosine'] for x in h):.3f} |")
        text = "\n".join([head, "|---|---|---:|---:|---:|---:|", *body])
        self.results["table5"] = {"text": text, "rows": {k: r["summary"] for k, r in rows.items()}}
        print(text)

    def sweeps(self) -> None:
        a, rows = self.args, {}
        print("N_r and m sweeps")
        for n in (4, 10, 20):  # N_r = 10, m = 10 is Table 1's MEPT run (same settings): reused with --reuse
            folder = "t1/mixture/mept" if n == 10 else f"sweep/n{n}"
            rows[f"N_r={n}, m=10"] = self.train(folder, "mept", {"num_experts": n, "prompt_length": 10}, a.tasks, a.steps)
        for m in (15, 20):
            rows[f"N_r=10, m={m}"] = self.train(f"sweep/m{m}", "mept", {"num_experts": 10, "prompt_length": m},
                                                 a.tasks, a.steps)
        text = "\n".join(["| setting | trainable params | validation avg |", "|---|---:|---|"]
                         + [f"| {k} | {r['seeds'][0]['trainable_params']:,} | {fmt(r['summary']['average'])} |"
                            for k, r in rows.items()])
        self.results["sweeps"] = {"text": text, "rows": {k: r["summary"] for k, r in rows.items()}}
        print(text)

    def table8(self) -> None:
        """Time to P-Tuning v2's best score, for P-Tuning v2 and the --methods (Table 1's runs).

        Two clocks. The train seconds recorded during the runs (``timing.train_seconds_at_eval``)
        are only fair when nothing else shares the machine; the step at which each run first
        reaches the target is exact (identical runs repeat it), so it is also converted to time
        with each method's seconds per step measured back to back here (``--timing-steps`` steps
        each, alternating methods twice, median), which a noisy machine disturbs far less.
        """
        a = self.args
        methods = ["ptuning_v2"] + [m for m in a.methods if m != "ptuning_v2"]
        print(f"Table 8: train seconds until P-Tuning v2's best validation score ({', '.join(methods)})")
        # the same configurations as Table 1 (read back with --reuse): one run per method serves both tables
        seeds = {m: self.train(f"t1/mixture/{m}", m, METHODS[m], a.tasks, a.steps)["seeds"] for m in methods}
        per_step = self.seconds_per_step(methods)
        lines = ["| method | s/step (back to back) | steps to reach P-Tuning v2's best (per seed) | time to reach = "
                 "steps x s/step (per seed) | ratio to P-Tuning v2 (mean) | recorded train s to reach (per seed) |",
                 "|---|---:|---|---|---:|---|"]
        out = {}
        for method in methods:
            steps, recorded, ratios = [], [], []
            for mine, ref in zip(seeds[method], seeds["ptuning_v2"]):
                target = max(h["validation"] for h in ref["history"])
                ref_step = _step_to(ref, target)
                step = _step_to(mine, target)
                steps.append(step)
                recorded.append(_time_to(mine, target))
                if step is not None:
                    ratios.append(step * per_step[method] / (ref_step * per_step["ptuning_v2"]))
            out[method] = {"seconds_per_step": per_step[method], "steps": steps, "recorded_seconds": recorded,
                           "ratio": statistics.fmean(ratios) if ratios else None, "reached": f"{len(ratios)}/{len(steps)}"}
            cells = ", ".join("not reached" if s is None else str(s) for s in steps)
            times = ", ".join("-" if s is None else f"{s * per_step[method]:.0f}" for s in steps)
            rec = ", ".join("-" if t is None else f"{t:.0f}" for t in recorded)
            ratio = "-" if not ratios else f"{statistics.fmean(ratios):.2f} ({len(ratios)} of {len(steps)} seeds)"
            lines.append(f"| {method} | {per_step[method]:.3f} | {cells} | {times} | {ratio} | {rec} |")
        text = "\n".join(lines)
        self.results["table8"] = {"text": text, "rows": out}
        print(text)

    def seconds_per_step(self, methods: list[str]) -> dict[str, float]:
        """Median train seconds per step of each method, measured back to back (alternating, twice)."""
        a, times = self.args, {m: [] for m in methods}
        for rep in range(2):
            for method in methods:
                cfg = self.config(f"t8-timing/{method}-{rep}", method, METHODS[method], a.tasks, a.timing_steps,
                                  max_eval_examples=8, eval_every=a.timing_steps)
                metrics = run(cfg)
                times[method].append(metrics["timing"]["train_seconds"] / metrics["steps"])
        return {m: statistics.median(t) for m, t in times.items()}


# what decides a run's result; anything else in run_config.json (paths, defaults that max_steps
# overrides, progress bars) may differ between two runs of one configuration
RESULT_KEYS = ("method", "model", "tasks", "max_steps", "batch_size", "max_length", "max_eval_examples",
               "eval_every", "seeds", "lr", "lr_grid", "head_lr", "weight_decay", "warmup_ratio", "max_train_examples")


def _settings(run_config: dict[str, Any]) -> dict[str, Any]:
    """The result-deciding settings of a run, with its method settings resolved to the full config."""
    keys = {k: run_config.get(k) for k in RESULT_KEYS}
    method = make_config(run_config["method"], **run_config.get("method_args", {}))
    if migrate_run_config(run_config)["max_length_counts_slots"]:  # older runs: max_length held the slots too
        keys["max_length"] -= getattr(method, "prompt_length", 0)  # compare text budgets
    return {**keys, "method_config": method.to_dict()}


def _finished(folder: Path, cfg: TrainConfig) -> bool:
    """True when ``folder`` holds a finished multi-seed run of ``cfg`` (same result-deciding settings, all seeds)."""
    saved = folder / "run_config.json"
    if not (folder / "metrics.json").exists() or not saved.exists():
        return False
    same = _settings(cfg.to_dict()) == _settings(json.loads(saved.read_text()))
    return same and all((folder / f"seed-{s}" / "metrics.json").exists() for s in cfg.seeds)


def _paired(per_seed: dict[str, list[float]]) -> dict[str, Any]:
    """MEPT's per-seed difference against the baseline with the best mean (per-seed averages by method)."""
    best = max((m for m in per_seed if m != "mept"), key=lambda m: statistics.fmean(per_seed[m]))
    diffs = [x - y for x, y in zip(per_seed["mept"], per_seed[best])]
    return {"vs": best, "per_seed": diffs, **mean_std(diffs)}


def _paired_text(paired: dict[str, Any]) -> str:
    return (f"MEPT - best baseline ({paired['vs']}), paired by seed: " + ", ".join(f"{d:+.2f}" for d in paired["per_seed"])
            + f" (mean {paired['mean']:+.2f} ± {paired['std']:.2f})")


def _task_table(rows: dict[str, dict[str, dict[str, float]]]) -> str:
    """A markdown table of mean ± std per task (columns) for each method (rows)."""
    tasks = list(next(iter(rows.values())))
    lines = ["| method | " + " | ".join(tasks) + " |", "|---|" + "---|" * len(tasks)]
    lines += [f"| {m} | " + " | ".join(fmt(per_task[t]) for t in tasks) + " |" for m, per_task in rows.items()]
    return "\n".join(lines)


def _step_to(metrics: dict[str, Any], target: float) -> int | None:
    """The first evaluated step whose validation score reaches ``target``."""
    return next((h["step"] for h in metrics["history"] if h["validation"] >= target - 1e-9), None)


def _time_to(metrics: dict[str, Any], target: float) -> float | None:
    """Train seconds at the first evaluation whose validation score reaches ``target``."""
    seconds = dict((step, s) for step, s in metrics["timing"]["train_seconds_at_eval"])
    for h in metrics["history"]:
        if h["validation"] >= target - 1e-9:
            return seconds.get(h["step"])
    return None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tables", nargs="+", default=["1", "5", "sweeps", "8", "4"], choices=["1", "4", "5", "sweeps", "8"])
    ap.add_argument("--tasks", nargs="+", default=["bb-diverse"])
    ap.add_argument("--model", default="minilm")
    ap.add_argument("--depth-model", default="mpnet")
    ap.add_argument("--seeds", nargs="+", type=int, default=[1, 2, 3])
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--depth-steps", type=int, default=150)
    ap.add_argument("--timing-steps", type=int, default=30, help="Table 8: steps per back-to-back speed measurement")
    ap.add_argument("--single", action="store_true", help="also train each task on its own (Table 1/6 single-task)")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--text-length", type=int, default=118)
    ap.add_argument("--eval-every", type=int, default=50)
    ap.add_argument("--max-eval-examples", type=int, default=100)
    ap.add_argument("--out", default="runs/paper-tables")
    ap.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS),
                    help="Table 1 methods to train now (the others are read back with --reuse)")
    ap.add_argument("--reuse", action="store_true", help="read back configurations already measured in --out")
    args = ap.parse_args()
    bench = Bench(args)
    for table in args.tables:
        {"1": bench.table1, "4": bench.table4, "5": bench.table5, "sweeps": bench.sweeps, "8": bench.table8}[table]()
        bench.save()
    print(f"wrote {bench.out / 'paper_tables.json'}")


if __name__ == "__main__":
    main()
