"""Offline analogues of the MEPT paper's tables, on the learnable ``bb-diverse`` mixture.

    python benchmarks/paper_tables.py --smoke                 # every table at a tiny budget: checks the code path
    python benchmarks/paper_tables.py --tables 1 8 --seeds 1 2 3 --steps 300
    python benchmarks/paper_tables.py --tables 2 --depth-model mpnet --depth-steps 150

Tables are named by the paper's table numbers; each prints the paper's numbers
(``paper_numbers.py``) beside ours, and every comparison is paired by seed with a t-test and
a bootstrap interval (:func:`mept.harness.stats.paired_test`), saying when the seeds cannot decide. A table's
tests are one family: each also gets its Holm-adjusted p over the table (:func:`mept.harness.stats.holm`), and
"decided" means the *adjusted* p < 0.05 (ten rows against one reference would show a raw p < 0.05
by chance alone about four times in ten):

- ``1``  (paper Tables 1/6): every method, mixture training (one prompt set for all tasks) and
  single-task training (``--single``), with stored and per-example activated parameters.
- ``2``  (paper Tables 2 and 12) prompt depth: MEPT on layers 1, 1-3, 1-6, 1-9, all, 7-12 and 12 of
  the 12-layer ``--depth-model``; on a model of another depth, the same fractions of its stack
  (``--depth-model minilm``: 1, 1-2, 1-3, 1-5, all, 4-6, 6 of 6 layers).
- ``3``  routing: top-1 (the reference), stochastic, dense, Gumbel, perturbation, without shared
  experts, shared experts replaced by router experts; every row differs from the reference in
  exactly one setting. Our load-balancing loss is one extra row.
- ``4``  what is trained: router + prompts, router only, prompts only.
- ``5``  N_r x m grid (``--grid-experts``, ``--grid-lengths``).
- ``8``  training time until each method first reaches P-Tuning v2's best validation score.
- ``10`` initialisation: Xavier normal, He normal, task-text embeddings, "previous knowledge"
  (ours: P-Tuning v2 prompts trained here on the same data; the paper's Appendix E says only "stored
  parameters from prior layer training").
- ``11`` mixtures of the first 1..k tasks: MEPT's gain over P-Tuning v2.
- ``13`` routed:shared experts (4:0 .. 4:4).
- ``16`` cross-task: target -> target, source -> target, all -> target.

The reference MEPT of every ablation (``--reference paper``, the default) is the paper MEPT
(``MEPTConfig.paper()``: no balance loss, top-1, one shared expert, Xavier normal; N_r = m = 10,
ours) at this script's training budget (AdamW at lr 1e-2: ours, not the paper's 1e-5..1e-4); ``--reference default`` uses the library default (+ balance loss 0.01; router_lr_scale "auto", 1 on MiniLM).
``--skip ROW ...`` leaves rows of the ablation tables out of one invocation (the reference always runs).

Budget: MiniLM, batch 16, text length ``--text-length`` plus each method's prompt slots,
``--steps`` mixture steps, validation every ``--eval-every`` steps on at most
``--max-eval-examples`` per task. The GPU budget matching the paper (T5-Base / 70 epochs) is in
``benchmarks/studies/paper_t5_superglue.md``.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import time
from pathlib import Path
from typing import Any

import paper_numbers as P  # benchmarks/paper_numbers.py: the paper's figures

from mept.cli.flags import ListFlag
from mept.core.registry import make_config
from mept.harness.run_report import mean_std
from mept.harness.stats import adjust_family, describe, paired_test
from mept.harness.train import run
from mept.harness.train_config import TrainConfig, migrate_run_config
from mept.methods.mept import PAPER_STATED, PAPER_UNSTATED

METHODS: dict[str, dict[str, Any]] = {  # each method's usual settings, scaled to the suite
    "prompt_tuning": {"prompt_length": 10},
    "ptuning_v2": {"prompt_length": 100},
    "smop": {},
    "vfpt": {"prompt_length": 10},
    "ptmoe": {},
    "mept": {"num_experts": 10, "prompt_length": 10},
}
# MEPTConfig.paper()'s settings (the paper's where it states them, labelled choices elsewhere; N_r and m stay
# METHODS["mept"]'s): differs from the library default in balance_loss and router_lr_scale ("auto", which is
# the paper's 1 on MiniLM's width)
PAPER_MEPT: dict[str, Any] = {**{k: v for k, v in {**PAPER_UNSTATED, **PAPER_STATED}.items()
                                 if k not in ("num_experts", "prompt_length")}, **METHODS["mept"]}
# a method whose scale differs from the text methods' (VFPT's FFT-mixed rows sum over m x d entries)
# picks its lr on validation (seed 42) from its own grid before the seeds run; the others use 1e-2
LR_GRIDS: dict[str, list[float]] = {"vfpt": [1e-3, 1e-4]}
# Table 3: one setting changed from the reference per row (the reference is the paper MEPT's top-1)
ROUTING_ROWS: dict[str, dict[str, Any]] = {
    "top1": {},
    "stochastic": {"routing": "stochastic"},
    "dense": {"routing": "dense"},
    "gumbel": {"routing": "gumbel"},
    "perturbation": {"routing": "perturb"},
    "shared off": {"shared": "off"},
    "shared replaced": {"shared": "replace"},
}
TABLES = ["1", "2", "3", "4", "5", "8", "10", "11", "13", "16"]


def fmt(ms: dict[str, float]) -> str:
    return f"{ms['mean']:.2f} ± {ms['std']:.2f}"


def seed_averages(r: dict[str, Any]) -> list[float]:
    return [s["average"] for s in r["seeds"]]


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.out = Path(args.out)
        self.results: dict[str, Any] = {"settings": vars(args)}

    def reference(self) -> dict[str, Any]:
        """The MEPT every ablation row changes one setting of: the paper's, or the library default."""
        return dict(PAPER_MEPT if self.args.reference == "paper" else METHODS["mept"])

    def ref_folder(self) -> str:
        return "t1/mixture/mept-paper" if self.args.reference == "paper" else "t1/mixture/mept"

    def train(self, name: str, method: str, settings: dict[str, Any], tasks: list[str], steps: int,
              model: str | None = None, seeds: list[int] | None = None, **overrides: Any) -> dict[str, Any]:
        """One configuration over ``seeds`` (default: all of ``--seeds``): per-seed metrics and their aggregate."""
        a = self.args
        seeds = seeds or a.seeds
        cfg = self.config(name, method, settings, tasks, steps, model=model, seeds=seeds,
                          lr_grid=LR_GRIDS.get(method), **overrides)
        t0 = time.perf_counter()
        folder = self.out / name
        if a.reuse and _finished(folder, cfg):  # a configuration measured before, with these very settings
            summary = json.loads((folder / "metrics.json").read_text())
        else:
            summary = run(cfg)
        per_seed = [json.loads((folder / f"seed-{s}" / "metrics.json").read_text()) for s in seeds]
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
            "max_eval_examples": a.max_eval_examples, "max_train_examples": a.max_train_examples,
            "eval_every": min(a.eval_every, steps), "save_every": 10**9,
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

    def ablation(self, key: str, title: str, rows: dict[str, dict[str, Any]], reference: str,
                 paper: dict[str, tuple[float, ...] | str], paper_tasks: tuple[str, ...], note: str = "") -> None:
        """Train ``rows`` (name -> train() arguments), print ours beside the paper's, paired against ``reference``.

        Ours is the validation average over our tasks; the paper's is per task (``paper_tasks``). What
        compares across the two is each row's difference to its table's reference row.
        """
        print(title)
        rows = {name: spec for name, spec in rows.items() if name == reference or name not in self.args.skip}
        got = {name: self.train(**spec) for name, spec in rows.items()}
        ref = seed_averages(got[reference])
        paper_ref = paper.get(reference)
        lines = [f"| row | stored / activated params | ours: validation avg | ours: row - {reference} (paired by seed) | "
                 f"p (paired t) | Holm p (this table) | paper ({' / '.join(paper_tasks)}) | "
                 f"paper: row - {reference} (mean of its tasks) |",
                 "|---|---:|---|---|---:|---:|---|---:|"]
        tests = adjust_family({name: paired_test(seed_averages(r), ref) for name, r in got.items() if name != reference})
        for name, r in got.items():
            paper_row = paper.get(name)
            paper_cell = paper_row if isinstance(paper_row, str) else P.cells(paper_row)
            paper_diff = "-"
            if isinstance(paper_row, tuple) and isinstance(paper_ref, tuple) and name != reference:
                paper_diff = f"{P.mean(paper_row) - P.mean(paper_ref):+.2f}"
            params = f"{_count(r['seeds'][0], 'trainable')} / {_count(r['seeds'][0], 'activated')}"
            if name == reference:
                lines.append(f"| **{name}** (reference) | {params} | {fmt(r['summary']['average'])} | - | - | - | "
                             f"{paper_cell} | - |")
                continue
            t = tests[name]
            lines.append(f"| {name} | {params} | {fmt(r['summary']['average'])} | {t['mean_diff']:+.2f} "
                         f"({', '.join(f'{d:+.2f}' for d in t['diffs'])}) | {_p(t)} | {_p_holm(t)} | {paper_cell} | "
                         f"{paper_diff} |")
        text = "\n".join(lines) + "\n" + "\n".join(describe(t, name, reference) for name, t in tests.items())
        if note:
            text += "\n" + note
        self.results[f"table{key}"] = {"text": text, "rows": {k: r["summary"] for k, r in got.items()},
                                       "paired": tests, "per_seed": {k: seed_averages(r) for k, r in got.items()}}
        print(text)

    # --- tables ---------------------------------------------------------------------------

    def table1(self) -> None:
        a, rows = self.args, {}
        print("Table 1/6: every method, mixture training")
        for name, (method, settings, folder) in self.table1_rows().items():
            if method in a.methods or a.reuse:
                rows[name] = self.train(folder, method, settings, a.tasks, a.steps)
        if set(rows) != set(self.table1_rows()):
            print(f"  (only {', '.join(rows)} measured: the table needs every method; rerun with --reuse)")
            self.results["table1_partial"] = {m: r["summary"] for m, r in rows.items()}
            return
        single = {}
        if a.single:
            from mept.harness.prepare_run import expand_tasks

            names = expand_tasks(a.tasks)
            print("Table 1/6: single-task training")
            for name, (method, settings, folder) in self.table1_rows().items():
                single[name] = {t: self.train(f"t1/single/{folder.split('/')[-1]}/{t}", method, settings, [t],
                                              max(1, a.steps // len(names))) for t in names}
        single_seeds = {m: [statistics.fmean(per_task[t]["seeds"][i]["average"] for t in per_task)
                            for i in range(len(a.seeds))] for m, per_task in single.items()}
        lines = ["| method | lr | stored params (% backbone) | activated per example (% backbone) | "
                 "activated prompt tokens | mixture avg | single-task avg | paper Para (T5-Base) | "
                 "paper single-task avg | paper mixture avg |",
                 "|---|---:|---:|---:|---:|---|---|---:|---:|---:|"]
        for name, r in rows.items():
            m0, method = r["seeds"][0], self.table1_rows()[name][0]
            single_avg = fmt(mean_std(single_seeds[name])) if name in single_seeds else "-"
            lines.append(f"| {name} | {m0['lr']:g} | {_count(m0, 'trainable')} | {_count(m0, 'activated')} | "
                         f"{m0['activated_prompt_tokens']} | {fmt(r['summary']['average'])} | {single_avg} | "
                         f"{_paper_para(method)} | {_paper_avg(P.TABLE1['t5-base'], method)} | "
                         f"{_paper_avg(P.TABLE6, method)} |")
        majority = statistics.fmean(next(iter(rows.values()))["seeds"][0]["majority"].values())
        lines.append(f"| majority class | - | - | - | - | {majority:.2f} | | | | |")
        paired = _paired({m: seed_averages(r) for m, r in rows.items()})
        text = "\n".join(lines) + "\n\nper task (mixture):\n" + _task_table({m: r["summary"]["tasks"] for m, r in rows.items()})
        if single:
            single_paired = _paired(single_seeds)
            self.results["table1_single"] = {"per_seed": single_seeds, "paired": single_paired,
                                             "rows": {m: {t: r["summary"] for t, r in pt.items()} for m, pt in single.items()}}
            text += ("\n\nper task (single-task):\n"
                     + _task_table({m: {t: r["summary"]["average"] for t, r in pt.items()} for m, pt in single.items()})
                     + "\n\nsingle-task, paired by seed:\n" + _paired_text(single_paired))
        text += "\n\nmixture, paired by seed:\n" + _paired_text(paired) + f"\n(paper: {P.SIGNIFICANCE})"
        self.results["table1"] = {"text": text, "paired": paired,
                                  "rows": {m: r["summary"] for m, r in rows.items()}, "mixture_seeds": {
                                      m: r["seeds"] for m, r in rows.items()}}
        print(text)

    def table1_rows(self) -> dict[str, tuple[str, dict[str, Any], str]]:
        """Table 1's rows: name -> (method, settings, folder). MEPT as MEPTConfig.paper() has it and as our default."""
        rows = {m: (m, s, f"t1/mixture/{m}") for m, s in METHODS.items() if m != "mept"}
        rows["mept"] = ("mept", PAPER_MEPT, "t1/mixture/mept-paper")
        rows["mept (default: + balance loss)"] = ("mept", METHODS["mept"], "t1/mixture/mept")
        return rows

    def table2(self) -> None:
        """Paper Tables 2 and 12: prompt depth on a 12-layer backbone."""
        a, ref = self.args, self.reference()
        n = _num_layers(a.depth_model)
        depths = {name: _scaled_layers(name, n) for name in ("1", "1-3", "1-6", "1-9", "1-12", "7-12", "12")}
        if n != 12:  # the paper's depths as fractions of a shallower (or deeper) stack: ours, to fit a small model
            print(f"  {a.depth_model} has {n} layers: the paper's 12-layer depths map to "
                  + ", ".join(f"{k} -> {v}" for k, v in depths.items()))
        tag = a.reference if n == 12 else f"{a.reference}-{a.depth_model}"
        rows = {name: dict(name=f"t2/{tag}/{name}", method="mept", settings={**ref, "layers": layers},
                           tasks=a.tasks, steps=a.depth_steps, model=a.depth_model) for name, layers in depths.items()}
        paper = {k: v for k, v in P.TABLE2.items()}
        paper.update({k: f"CB / COPA (Table 12): {P.cells(v)}" for k, v in P.TABLE12.items() if k not in P.TABLE2})
        self.ablation("2", f"Tables 2/12: prompt depth on {a.depth_model} ({a.reference} MEPT)", rows, "1-12",
                      paper, P.ABLATION_TASKS, note="paper Table 12 (CB / COPA): "
                      + "; ".join(f"{k}: {P.cells(v)}" for k, v in P.TABLE12.items()))

    def table3(self) -> None:
        """Paper Table 3: routing and shared experts, one setting changed per row; our balance loss as an extra row."""
        a, ref = self.args, self.reference()
        rows = {name: dict(name=self.ref_folder() if not change else f"t3/{a.reference}/{name.replace(' ', '-')}",
                           method="mept", settings={**ref, **change}, tasks=a.tasks, steps=a.steps)
                for name, change in ROUTING_ROWS.items()}
        extra = "+ balance loss 0.01 (ours)" if a.reference == "paper" else "- balance loss (paper)"
        rows[extra] = dict(name="t1/mixture/mept" if a.reference == "paper" else "t1/mixture/mept-paper",
                           method="mept", settings={**ref, "balance_loss": 0.01 if a.reference == "paper" else 0.0},
                           tasks=a.tasks, steps=a.steps)
        paper = {**P.TABLE3, extra: "not in the paper"}
        self.ablation("3", f"Table 3: routing ({a.reference} MEPT as reference)", rows, "top1", paper,
                      P.ABLATION_TASKS, note=f"paper: {P.TABLE3_NOTE}")

    def table4(self) -> None:
        """Paper Table 4: what is trained."""
        a, ref = self.args, self.reference()
        rows = {"router + prompts": dict(name=self.ref_folder(), method="mept", settings=ref, tasks=a.tasks, steps=a.steps),
                "router only": dict(name=f"t4/{a.reference}/router-only", method="mept",
                                    settings={**ref, "train_prompts": False}, tasks=a.tasks, steps=a.steps),
                "prompts only": dict(name=f"t4/{a.reference}/prompts-only", method="mept",
                                     settings={**ref, "train_router": False}, tasks=a.tasks, steps=a.steps)}
        either = f"{P.cells(P.TABLE4_SINGLE[0])} or {P.cells(P.TABLE4_SINGLE[1])} (which is which: garbled in our copy)"
        paper = {**P.TABLE4, "router only": either, "prompts only": either}
        self.ablation("4", "Table 4: what is trained", rows, "router + prompts", paper, P.ABLATION_TASKS)

    def table5(self) -> None:
        """Paper Table 5: N_r x m grid (the paper: RTE accuracy; ours: the mixture's average)."""
        a, ref = self.args, self.reference()
        rows = {}
        for m in a.grid_lengths:
            for n in a.grid_experts:
                is_ref = (n, m) == (ref["num_experts"], ref["prompt_length"])
                rows[f"N_r={n}, m={m}"] = dict(
                    name=self.ref_folder() if is_ref else f"t5/{a.reference}/n{n}-m{m}", method="mept",
                    settings={**ref, "num_experts": n, "prompt_length": m}, tasks=a.tasks, steps=a.steps)
        paper = {f"N_r={n}, m={m}": (P.TABLE5[m][P.TABLE5_EXPERTS.index(n)],)
                 for m in P.TABLE5 for n in P.TABLE5_EXPERTS}
        reference = f"N_r={ref['num_experts']}, m={ref['prompt_length']}"
        if reference not in rows:
            reference = next(iter(rows))
        self.ablation("5", "Table 5: N_r x m grid", rows, reference, paper, ("RTE",),
                      note="paper: the m = 15 and m = 20 rows are garbled in our copy (m = 20 as read there); "
                           "its m = 10 row is not monotone in N_r")

    def table10(self) -> None:
        """Paper Table 10: initialisation, including "previous knowledge" (P-Tuning v2 prompts trained by this script)."""
        a, ref = self.args, self.reference()
        # only the first seed's P-Tuning v2 prompts seed the experts: train (or read back) that seed alone
        self.train(f"t10/ptuning_v2-seed-{a.seeds[0]}", "ptuning_v2", METHODS["ptuning_v2"], a.tasks, a.steps,
                   seeds=a.seeds[:1])
        init_from = str((self.out / f"t10/ptuning_v2-seed-{a.seeds[0]}" / f"seed-{a.seeds[0]}").resolve())
        rows = {"xavier_normal": dict(name=self.ref_folder(), method="mept", settings=ref, tasks=a.tasks, steps=a.steps)}
        for name, change in (("he_normal", {"init": "he_normal"}), ("task_text", {"init": "task_text"}),
                             ("previous_knowledge", {"init": "previous_knowledge", "init_from": init_from})):
            rows[name] = dict(name=f"t10/{a.reference}/{name}", method="mept", settings={**ref, **change},
                              tasks=a.tasks, steps=a.steps)
        self.ablation("10", "Table 10: initialisation", rows, "xavier_normal",
                      {**P.TABLE10, "task_text": "not in the paper"}, P.ABLATION_TASKS,
                      note="previous_knowledge here: every expert starts from P-Tuning v2 prompts trained by this script "
                           f"on the same data and budget (seed {a.seeds[0]}, first m of its 100 rows per layer): our "
                           "reading, the paper describes it only as stored parameters from prior layer training")

    def table11(self) -> None:
        """Paper Table 11: MEPT's gain over P-Tuning v2 on mixtures of the first 1..k tasks."""
        from mept.harness.prepare_run import expand_tasks

        a, ref = self.args, self.reference()
        names = expand_tasks(a.tasks)[: a.max_mixture]
        print(f"Table 11: mixtures of the first 1..{len(names)} tasks ({', '.join(names)})")
        lines = ["| tasks | steps | MEPT avg | P-Tuning v2 avg | ours: MEPT - P-Tuning v2 (paired) | p | "
                 "Holm p (this table) | paper gain |",
                 "|---|---:|---|---|---|---:|---:|---:|"]
        got = {}
        for k in range(1, len(names) + 1):
            tasks, steps = names[:k], max(1, a.steps * k // len(names))  # the same examples per task in every row
            got[k] = (steps, self.train(f"t11/{a.reference}/k{k}/mept", "mept", ref, tasks, steps),
                      self.train(f"t11/k{k}/ptuning_v2", "ptuning_v2", METHODS["ptuning_v2"], tasks, steps))
        out = adjust_family({k: paired_test(seed_averages(m), seed_averages(b)) for k, (_, m, b) in got.items()})
        for k, (steps, mept_r, pt2_r) in got.items():
            t = out[k]
            paper = f"{P.TABLE11[k - 1]:+.1f}" if k <= len(P.TABLE11) else "-"
            lines.append(f"| {k}: +{names[k - 1]} | {steps} | {fmt(mept_r['summary']['average'])} | "
                         f"{fmt(pt2_r['summary']['average'])} | {t['mean_diff']:+.2f} | {_p(t)} | {_p_holm(t)} | "
                         f"{paper} |")
        text = "\n".join(lines) + "\n" + "\n".join(describe(t, f"MEPT ({k} tasks)", "P-Tuning v2") for k, t in out.items())
        self.results["table11"] = {"text": text, "paired": out}
        print(text)

    def table13(self) -> None:
        """Paper Table 13: routed:shared experts, 4 routed and 0..4 shared."""
        a, ref = self.args, self.reference()
        tasks = a.ratio_tasks or a.tasks
        rows = {f"4:{s}": dict(name=f"t13/{a.reference}/4-{s}", method="mept",
                               settings={**ref, "num_experts": 4, "num_shared": s}, tasks=tasks, steps=a.steps)
                for s in range(5)}
        self.ablation("13", f"Table 13: routed:shared experts on {', '.join(tasks)}", rows, "4:1",
                      {f"4:{s}": (v,) for s, v in P.TABLE13.items()}, ("RTE",))

    def table16(self) -> None:
        """Paper Table 16: cross-task, target -> target, source -> target, all -> target."""
        a, ref = self.args, self.reference()
        target, source = a.cross_target, a.cross_source
        methods = {"prompt_tuning": METHODS["prompt_tuning"], "ptuning_v2": METHODS["ptuning_v2"], "mept": ref}
        print(f"Table 16: cross-task onto {target} (from {source}; from all of {', '.join(a.tasks)})")
        lines = [f"| method | {target} -> {target} | {source} -> {target} | all -> {target} | "
                 "paper BoolQ->BoolQ / MRC->BoolQ / All->BoolQ |", "|---|---|---|---|---|"]
        out, scores = {}, {}
        for method, settings in methods.items():
            tag = f"{method}-{a.reference}" if method == "mept" else method
            own = self.train(f"t16/{tag}/{target}", method, settings, [target], a.steps)
            cross = self.train(f"t16/{tag}/{source}-to-{target}", method, settings, [source], a.steps,
                               eval_tasks=[target])
            everything = self.train(f"t16/{tag}/all-to-{target}", method, settings, a.tasks, a.steps,
                                    eval_tasks=[target])
            scores[method] = [[s["tasks"][target]["score"] for s in r["seeds"]] for r in (own, cross, everything)]
            cells = [mean_std(column) for column in scores[method]]
            out[method] = cells
            lines.append(f"| {method} | " + " | ".join(fmt(c) for c in cells) + f" | {P.cells(P.TABLE16[method])} |")
        columns = (f"{target} -> {target}", f"{source} -> {target}", f"all -> {target}")
        paired = adjust_family({f"mept vs {b} ({col})": paired_test(scores["mept"][i], scores[b][i])
                                for b in methods if b != "mept" for i, col in enumerate(columns)})
        text = "\n".join(lines) + "\n" + _paired_text(paired)
        self.results["table16"] = {"text": text, "rows": out, "paired": paired}
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


def _paired(per_seed: dict[str, list[float]]) -> dict[str, dict[str, Any]]:
    """Every MEPT row against every baseline, paired by seed (:func:`mept.harness.stats.paired_test`), Holm-adjusted
    over all of them (one family)."""
    mepts = [m for m in per_seed if m.startswith("mept")]
    return adjust_family({f"{m} vs {b}": paired_test(per_seed[m], per_seed[b])
                          for m in mepts for b in per_seed if b not in mepts})


def _paired_text(paired: dict[str, dict[str, Any]]) -> str:
    return "\n".join(describe(t, *name.split(" vs ")) for name, t in paired.items())


def _p(test: dict[str, Any]) -> str:
    return "-" if test["n"] < 2 else f"{test['p_two_sided']:.3g}"


def _p_holm(test: dict[str, Any]) -> str:
    """The Holm-adjusted p of one test of a table, in bold where it decides (adjusted p < alpha)."""
    if test["n"] < 2:
        return "-"
    return f"**{test['p_holm']:.3g}**" if test["decided"] else f"{test['p_holm']:.3g}"


def _count(metrics: dict[str, Any], key: str) -> str:
    """A parameter count with its % of the backbone, from metrics.json (runs before activated counts: '-')."""
    report = metrics.get("parameters", {})
    if key not in report:
        return "-"
    return f"{report[key]:,} ({report[key + '_percent']:.3f}%)"


def _paper_para(method: str) -> str:
    row = P.TABLE1["t5-base"].get(method)
    return "-" if row is None else f"{row['para']:g}%"


def _paper_avg(table: dict[str, dict[str, float]], method: str) -> str:
    """The paper's average for ``method`` as the paper printed it (paper_numbers.PRINTED_AVERAGE_DIFFERS)."""
    row = table.get(method)
    return "-" if row is None else f"{P.printed_average(row):.2f}"


def _task_table(rows: dict[str, dict[str, dict[str, float]]]) -> str:
    """A markdown table of mean ± std per task (columns) for each method (rows)."""
    tasks = list(next(iter(rows.values())))
    lines = ["| method | " + " | ".join(tasks) + " |", "|---|" + "---|" * len(tasks)]
    lines += [f"| {m} | " + " | ".join(fmt(per_task[t]) for t in tasks) + " |" for m, per_task in rows.items()]
    return "\n".join(lines)


def _num_layers(model: str) -> int:
    """The backbone's layer count, read from its config (no weights loaded)."""
    from transformers import AutoConfig

    from mept.model.backbones import resolve

    return int(AutoConfig.from_pretrained(resolve(model)).num_hidden_layers)


def _scaled_layers(paper_depth: str, n: int) -> str:
    """A depth of the paper's 12-layer encoder ("1-9", "12") as the same fraction of an ``n``-layer stack.

    Layers i..j of 12 cover the fraction ((i-1)/12, j/12] of the stack; we take the layers of an
    ``n``-layer stack in that fraction, rounding outwards (1-9 of 12 -> 1-5 of 6; 7-12 -> 4-6; 1 of
    12 -> 1-2 of 24). On 12 layers it is the paper's own.
    """
    lo, _, hi = paper_depth.partition("-")
    ends = [math.floor((int(lo) - 1) * n / 12) + 1, math.ceil(int(hi or lo) * n / 12)]
    if ends == [1, n]:
        return "all"
    return str(ends[0]) if ends[0] == ends[1] else f"{ends[0]}-{ends[1]}"


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




SMOKE = dict(steps=2, depth_steps=2, seeds=[1], max_eval_examples=4, max_train_examples=16, eval_every=2,
             text_length=32, timing_steps=2, batch_size=4, grid_experts=[4, 10], grid_lengths=[10], max_mixture=2,
             depth_model="mpnet", reuse=True)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tables", action=ListFlag, default=TABLES, choices=TABLES)
    ap.add_argument("--tasks", action=ListFlag, default=["bb-diverse"])
    ap.add_argument("--model", default="minilm")
    ap.add_argument("--reference", choices=["paper", "default"], default="paper",
                    help="the MEPT each ablation row changes one setting of: the paper's (no balance loss) or ours")
    ap.add_argument("--depth-model", default="mpnet")
    ap.add_argument("--seeds", action=ListFlag, type=int, default=[1, 2, 3], help="any number; more seeds tighten the tests")
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--depth-steps", type=int, default=150)
    ap.add_argument("--timing-steps", type=int, default=30, help="Table 8: steps per back-to-back speed measurement")
    ap.add_argument("--single", action="store_true", help="also train each task on its own (Table 1/6 single-task)")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--text-length", type=int, default=118)
    ap.add_argument("--eval-every", type=int, default=50)
    ap.add_argument("--max-eval-examples", type=int, default=100)
    ap.add_argument("--max-train-examples", type=int, default=None, help="per task (default: all)")
    ap.add_argument("--grid-experts", action=ListFlag, type=int, default=list(P.TABLE5_EXPERTS), help="Table 5: N_r values")
    ap.add_argument("--grid-lengths", action=ListFlag, type=int, default=[10, 15, 20], help="Table 5: m values")
    ap.add_argument("--max-mixture", type=int, default=7, help="Table 11: mixtures of the first 1..k tasks")
    ap.add_argument("--ratio-tasks", action=ListFlag, help="Table 13's tasks (default: --tasks)")
    ap.add_argument("--cross-target", default="bb-implicatures", help="Table 16: the task evaluated (paper: BoolQ)")
    ap.add_argument("--cross-source", default="bb-boolq", help="Table 16: the other task trained on (paper: MRC); "
                                                              "must share the target's label words")
    ap.add_argument("--skip", action=ListFlag, default=[], metavar="ROW",
                    help="rows of the ablation tables not to run now, e.g. 'shared off' (the reference always runs)")
    ap.add_argument("--out", default="runs/paper-tables")
    ap.add_argument("--methods", action=ListFlag, default=list(METHODS), choices=list(METHODS),
                    help="Table 1 methods to train now (the others are read back with --reuse)")
    ap.add_argument("--reuse", action="store_true", help="read back configurations already measured in --out")
    ap.add_argument("--smoke", action="store_true", help="every table at a tiny budget (2 steps, 1 seed, few "
                                                         "examples) into runs/paper-tables-smoke: checks the code paths")
    args = ap.parse_args(argv)
    if args.smoke:  # the tiny budget, except what the command line set explicitly (e.g. --seeds 1 2)
        for key, value in SMOKE.items():
            if getattr(args, key) == ap.get_default(key):
                setattr(args, key, value)
        if args.out == "runs/paper-tables":
            args.out = "runs/paper-tables-smoke"
    bench = Bench(args)
    for table in args.tables:
        getattr(bench, f"table{table}")()
        bench.save()
    print(f"wrote {bench.out / 'paper_tables.json'}")


if __name__ == "__main__":
    from script import run  # benchmarks/script.py: a bad input is one error line, never a traceback

    run(main)
