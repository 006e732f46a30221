"""Paired significance tests for comparing two methods run on the same seeds.

Two methods trained with the same seeds (same data order, same splits) give paired
scores; the question "is A better than B?" is about the per-seed differences. With
3 seeds a paired t-test has 2 degrees of freedom and rarely decides anything, and
this module says so (``decided``) rather than printing mean +- std alone.

No SciPy needed: the Student-t CDF comes from the regularized incomplete beta
function (Lentz's continued fraction, as in Numerical Recipes), checked against
known values in the tests.

A table of many paired tests (every ablation row against its reference) will call some
difference "significant" at p < 0.05 by chance alone: :func:`holm` adjusts a family's p-values
(Holm 1979, step-down Bonferroni) and :func:`adjust_family` applies it to a table's paired tests,
so that "decided" means the adjusted p is below alpha.
"""

from __future__ import annotations

import math
import random
import statistics
from typing import Any


def _betacf(a: float, b: float, x: float, max_iter: int = 300, eps: float = 1e-15) -> float:
    """Continued fraction of the incomplete beta function (modified Lentz)."""
    tiny = 1e-300
    c, d = 1.0, 1.0 - (a + b) * x / (a + 1.0)
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, max_iter + 1):
        m2 = 2 * m
        for num in (m * (b - m) * x / ((a + m2 - 1) * (a + m2)), -(a + m) * (a + b + m) * x / ((a + m2) * (a + m2 + 1))):
            d = 1.0 + num * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + num / c
            c = c if abs(c) > tiny else tiny
            h *= d * c
        if abs(d * c - 1.0) < eps:
            break
    return h


def betainc(a: float, b: float, x: float) -> float:
    """Regularized incomplete beta I_x(a, b) for a, b > 0 and 0 <= x <= 1."""
    if not 0.0 <= x <= 1.0:
        raise ValueError(f"x must be in [0, 1], got {x}")
    if x in (0.0, 1.0):
        return x
    log_front = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    if x < (a + 1.0) / (a + b + 2.0):
        return math.exp(log_front) * _betacf(a, b, x) / a
    return 1.0 - math.exp(log_front) * _betacf(b, a, 1.0 - x) / b


def t_sf_two_sided(t: float, df: float) -> float:
    """P(|T| >= |t|) for Student's t with ``df`` degrees of freedom."""
    if math.isnan(t):
        return float("nan")
    if math.isinf(t):
        return 0.0
    return betainc(df / 2.0, 0.5, df / (df + t * t))


def t_ppf_two_sided(alpha: float, df: float) -> float:
    """The critical value c with P(|T| >= c) = alpha (bisection on :func:`t_sf_two_sided`)."""
    lo, hi = 0.0, 1.0
    while t_sf_two_sided(hi, df) > alpha:
        hi *= 2.0
    for _ in range(200):
        mid = (lo + hi) / 2.0
        lo, hi = (mid, hi) if t_sf_two_sided(mid, df) > alpha else (lo, mid)
    return (lo + hi) / 2.0


def bootstrap_ci(diffs: list[float], level: float = 0.95, resamples: int = 10_000, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of ``diffs`` (resampling seeds with replacement).

    With 3 seeds there are only 10 distinct resamples: the interval is coarse, and says so by its width.
    """
    rng = random.Random(seed)
    n = len(diffs)
    means = sorted(statistics.fmean(rng.choices(diffs, k=n)) for _ in range(resamples))
    tail = (1.0 - level) / 2.0
    return means[int(tail * (resamples - 1))], means[int(round((1.0 - tail) * (resamples - 1)))]


def paired_test(a: list[float], b: list[float], level: float = 0.95, alpha: float = 0.05) -> dict[str, Any]:
    """Paired comparison of scores ``a`` and ``b`` (same seeds, same order): is a - b different from 0?

    Returns ``n``, the per-seed ``diffs``, ``mean_diff``, ``std_diff``, the paired t statistic ``t``,
    its two-sided p-value ``p_two_sided`` (df = n - 1), the t confidence interval of the mean
    difference (``ci_low``, ``ci_high``), the percentile bootstrap interval (``boot_low``,
    ``boot_high``), and ``decided``: whether p < ``alpha``. Fewer than 2 pairs cannot be tested
    (t and p are NaN); identical differences give p = 0 (or 1 if all are zero).
    """
    if len(a) != len(b):
        raise ValueError(f"paired_test needs as many scores in a as in b, got {len(a)} and {len(b)}")
    diffs = [x - y for x, y in zip(a, b)]
    n = len(diffs)
    nan = float("nan")
    out: dict[str, Any] = {"n": n, "diffs": diffs, "mean_diff": statistics.fmean(diffs) if n else nan,
                           "std_diff": nan, "t": nan, "p_two_sided": nan, "ci_low": nan, "ci_high": nan,
                           "boot_low": nan, "boot_high": nan, "level": level, "alpha": alpha, "decided": False}
    if n < 2:
        return out
    mean, sd = out["mean_diff"], statistics.stdev(diffs)
    out["std_diff"] = sd
    out["boot_low"], out["boot_high"] = bootstrap_ci(diffs, level)
    if sd == 0.0:
        out.update(t=math.copysign(math.inf, mean) if mean else nan, p_two_sided=0.0 if mean else 1.0,
                   ci_low=mean, ci_high=mean)
    else:
        se = sd / math.sqrt(n)
        half = t_ppf_two_sided(1.0 - level, n - 1) * se
        out.update(t=mean / se, p_two_sided=t_sf_two_sided(mean / se, n - 1), ci_low=mean - half, ci_high=mean + half)
    out["decided"] = bool(out["p_two_sided"] < alpha)
    return out


def holm(p_values: list[float]) -> list[float]:
    """Holm-adjusted p-values of one family of tests, in the order given.

    Sorted ascending, p_(i) becomes max over j <= i of min(1, (m - j + 1) p_(j)), m the number of
    tests (statsmodels' ``multipletests(method="holm")``). Rejecting where the adjusted p < alpha
    keeps the chance of *any* false "decided" in the family at most alpha. A NaN p-value (a test
    with one seed) stays NaN and does not count in m.
    """
    finite = sorted((p, i) for i, p in enumerate(p_values) if not math.isnan(p))
    m = len(finite)
    out = [float("nan")] * len(p_values)
    running = 0.0
    for rank, (p, i) in enumerate(finite):
        running = max(running, min(1.0, (m - rank) * p))
        out[i] = running
    return out


def adjust_family(tests: dict[str, dict[str, Any]], alpha: float = 0.05) -> dict[str, dict[str, Any]]:
    """Add the Holm-adjusted p (``p_holm``) to each of ``tests`` (:func:`paired_test` results of one
    table) and make ``decided`` use it; the raw verdict stays as ``decided_raw``."""
    adjusted = holm([t["p_two_sided"] for t in tests.values()])
    size = sum(not math.isnan(p) for p in adjusted)
    for t, p in zip(tests.values(), adjusted):
        t["decided_raw"] = bool(t["p_two_sided"] < alpha)
        t.update(p_holm=p, family_size=size, decided=bool(p < alpha))
    return tests


def describe(result: dict[str, Any], name_a: str = "A", name_b: str = "B") -> str:
    """One line a reader can act on: per-seed differences, mean, p, intervals, and whether n seeds decide."""
    r = result
    diffs = ", ".join(f"{d:+.2f}" for d in r["diffs"])
    if r["n"] < 2:
        return f"{name_a} - {name_b}: {diffs or 'no pairs'} ({r['n']} seed: no test possible)"
    adjusted = "p_holm" in r  # one of a family (adjust_family): the verdict is on the adjusted p
    p_used = "Holm-adjusted p" if adjusted else "p"
    verdict = (f"significant at {p_used} < {r['alpha']:g}" if r["decided"]
               else f"{r['n']} seeds cannot decide ({p_used} >= {r['alpha']:g}); add seeds (--seeds) to tighten")
    holm_text = f", Holm-adjusted p = {r['p_holm']:.3g} over {r['family_size']} tests" if adjusted else ""
    return (f"{name_a} - {name_b} per seed: {diffs}; mean {r['mean_diff']:+.2f}, paired t = {r['t']:.2f}, "
            f"p = {r['p_two_sided']:.3g}{holm_text}, {100 * r['level']:.0f}% CI [{r['ci_low']:+.2f}, "
            f"{r['ci_high']:+.2f}] (bootstrap [{r['boot_low']:+.2f}, {r['boot_high']:+.2f}]): {verdict}")
