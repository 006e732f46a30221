"""Holm-adjusted p-values for the paired tests the studies in ``benchmarks/studies/`` report, from the stored results.

    python benchmarks/holm_results.py > benchmarks/results/holm_results.txt

A table that reports several paired tests at once must not call one "decided" at a raw p < 0.05:
with five rows against one reference, one of them falls below 0.05 by chance alone about one time
in five. This script reads what the runs left in ``benchmarks/results/`` and prints, per table (one
family of tests), each test's raw p and its Holm-adjusted p (:func:`mept.harness.stats.holm`), and whether
the adjusted p decides (< 0.05):

- ``paper_tables_*.log`` files that print their paired tests (``... per seed: ...; p = ...``):
  the p printed there (3 significant digits), grouped by the table header above them;
- the 600-step logs, which print each run's progress but not the tests: each seed's best
  validation score (its last ``best`` value) per configuration, paired by seed with
  :func:`mept.harness.stats.paired_test`, in the families the studies report;
- ``routing_table_*.json`` (``routing.py``, ``studies/router_settings.md``): each router setting against ``paper``, per seed;
- ``compare_*.json`` (``mept compare``): each method's test scores per seed against MEPT's.
"""

from __future__ import annotations

import json
import re
import statistics
from pathlib import Path

from mept.harness.stats import adjust_family, paired_test

RESULTS = Path(__file__).parent / "results"
TESTS = re.compile(r"^(?P<name>.+?) per seed: .*?; mean (?P<mean>[+-][\d.]+), paired t = [^,]+, p = (?P<p>[^,]+),")
RUN_END = re.compile(r"^step (\d+)/(\d+) .* best +([\d.]+) \(step \d+\)")
CONFIG = re.compile(r"^  (?P<name>\S+) +[\d.]+ ± [\d.]+ +\((?P<secs>\d+)s\)")
BASELINES = ["prompt_tuning", "ptuning_v2", "smop", "vfpt", "ptmoe"]
SEEDS = 3
SUITE = ["bb-intent", "bb-shapes", "bb-navigate", "bb-implicatures", "bb-parens", "bb-sentiment", "bb-fever"]


def printed_families(log: Path) -> dict[str, dict[str, tuple[float, float]]]:
    """Table header -> test name -> (mean difference, p) as the log printed them."""
    families: dict[str, dict[str, tuple[float, float]]] = {}
    header = log.name
    for line in log.read_text().splitlines():
        if line.startswith("Table"):
            header = f"{log.name}: {line.rstrip(':')}"
        elif match := TESTS.match(line):
            families.setdefault(header, {})[match["name"]] = (float(match["mean"]), float(match["p"]))
    return families


def seed_bests(logs: list[Path]) -> dict[str, list[float]]:
    """Configuration -> each seed's best validation score, from the runs printed before its summary line
    (the 600-step tables ran seeds 1-3)."""
    out: dict[str, list[float]] = {}
    for log in logs:
        finished: list[float] = []
        for line in log.read_text().splitlines():
            if (end := RUN_END.match(line)) and end[1] == end[2]:
                finished.append(float(end[3]))
            elif config := CONFIG.match(line):
                if finished:  # trained here (a configuration read back with --reuse prints no runs)
                    out[config["name"]] = finished[-SEEDS:]  # the seeds come last, after any lr-grid runs
                finished = []
    return out


def family(pairs: dict[str, tuple[list[float], list[float]]]) -> dict[str, dict]:
    return adjust_family({name: paired_test(a, b) for name, (a, b) in pairs.items()})


def report(title: str, tests: dict[str, dict]) -> str:
    lines = [f"## {title} ({sum(t['n'] > 1 for t in tests.values())} tests)",
             "| test | mean difference | p | Holm p | decided (Holm p < 0.05) |", "|---|---:|---:|---:|---|"]
    for name, t in tests.items():
        if t["n"] < 2:
            lines.append(f"| {name} | {t['mean_diff']:+.2f} | - (one seed) | - | no |")
            continue
        lines.append(f"| {name} | {t['mean_diff']:+.2f} | {t['p_two_sided']:.3g} | {t['p_holm']:.3g} | "
                     f"{'yes' if t['decided'] else 'no'} |")
    return "\n".join(lines)


def from_printed(tests: dict[str, tuple[float, float]]) -> dict[str, dict]:
    """Holm over p-values as a log printed them (no scores to recompute from)."""
    return adjust_family({name: {"n": 3, "mean_diff": mean, "p_two_sided": p} for name, (mean, p) in tests.items()})


def main() -> None:
    sections = []
    for log in sorted(RESULTS.glob("paper_tables_*.log")):
        for header, tests in printed_families(log).items():
            sections.append(report(header, from_printed(tests)))
    best = seed_bests(sorted(RESULTS.glob("paper_tables_600_*.log")))
    mixture = {m: best[f"t1/mixture/{m}"] for m in [*BASELINES, "mept"]}
    sections.append(report("600 steps, Table 1/6 mixture: MEPT (default) - each baseline",
                           family({f"mept - {b}": (mixture["mept"], mixture[b]) for b in BASELINES})))
    single = {m: [statistics.fmean(best[f"t1/single/{m}/{t}"][i] for t in SUITE) for i in range(3)]
              for m in [*BASELINES, "mept"]}
    sections.append(report("600 steps, Table 1/6 single-task (mean of 7 tasks per seed): MEPT - each baseline",
                           family({f"mept - {b}": (single["mept"], single[b]) for b in BASELINES})))
    sections.append(report("600 steps, each method: mixture - single-task",
                           family({m: (mixture[m], single[m]) for m in mixture})))
    routings = ["top1", "stochastic", "dense", "gumbel", "perturbation"]
    sections.append(report("600 steps, Table 3 routing: each row - the default (top-1 + balance loss)",
                           family({r: (best[f"t5/{r}"], mixture["mept"]) for r in routings})))
    sections.append(report("600 steps, Table 3 shared experts: each row - top-1 (paper router)",
                           family({r: (best[f"t3/paper/{r}"], best["t5/top1"]) for r in ("shared-off", "shared-replaced")})))
    settings = {name: row["per_seed"] for path in sorted(RESULTS.glob("routing_table_*.json"))
                for name, row in json.loads(path.read_text())["rows"].items()}
    sections.append(report("routing.py (studies/router_settings.md), 300 steps: each router setting - paper (no balance loss)",
                           family({name: (seeds, settings["paper"]) for name, seeds in settings.items() if name != "paper"})))
    for path in sorted(RESULTS.glob("compare_*.json")):
        rows = json.loads(path.read_text())["rows"]
        ref = next(r for r in rows if r["method"] == "mept")
        sections.append(report(f"{path.name}: test score, each method - mept",
                               family({r["method"]: (r["test"], ref["test"]) for r in rows if r is not ref})))
    print("# Holm-adjusted p-values of the stored results (benchmarks/holm_results.py)\n")
    print("\n\n".join(sections))


if __name__ == "__main__":
    from script import run  # benchmarks/script.py: a bad input is one error line, never a traceback

    run(main)
