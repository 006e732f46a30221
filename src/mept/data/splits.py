"""Seeded held-out splits carved from a training set.

SuperGLUE's test labels are hidden, so (as in the MEPT/MPT code) the official
validation set becomes our test set and a slice of the official train set
becomes validation. The slice is stratified per label so small tasks (CB has
250 training examples, one class under 10%) keep every label in both halves,
and grouped for MultiRC so one question's answer options never straddle the
split (otherwise exact match per question would be meaningless).
"""

from __future__ import annotations

import random
from collections import defaultdict

from mept.data.examples import Example


def _allocate(total: int, sizes: dict[int, int], one_each: bool = True) -> dict[int, int]:
    """Split ``total`` over labels proportionally to ``sizes`` (largest remainder).

    With ``one_each``, every label with at least two examples gets at least one held-out
    example; every label keeps at least one for training.
    """
    n = sum(sizes.values())
    exact = {k: total * s / n for k, s in sizes.items()}
    take = {k: int(v) for k, v in exact.items()}
    for k in sorted(exact, key=lambda k: exact[k] - take[k], reverse=True)[: total - sum(take.values())]:
        take[k] += 1
    for k, s in sizes.items():
        take[k] = min(max(take[k], 1 if s >= 2 and one_each else 0), max(s - 1, 0))
    return take


def stratified_split(
    examples: list[Example], fraction: float, seed: int, cap: int | None = None, max_fraction: float | None = None
) -> tuple[list[Example], list[Example]]:
    """``(train, held_out)``: about ``fraction`` of each label held out, at most ``cap`` in all.

    One held-out example per label can take far more than ``fraction`` when labels are many and
    rows per label few (500 labels x 2 rows held out half the data); with ``max_fraction`` the
    split then falls back to plain proportional allocation, and some labels have no held-out row.
    Deterministic for a given ``seed``; both halves come back in one seeded
    shuffled order, so callers need not shuffle again.
    """
    order = list(range(len(examples)))
    random.Random(seed).shuffle(order)
    by_label: dict[int, list[int]] = defaultdict(list)
    for i in order:
        by_label[examples[i].label].append(i)
    total = round(fraction * len(examples))
    if cap is not None:
        total = min(total, cap)
    sizes = {k: len(v) for k, v in by_label.items()}
    take = _allocate(total, sizes)
    if max_fraction is not None and sum(take.values()) > max(1, round(max_fraction * len(examples))):
        take = _allocate(max(total, 1), sizes, one_each=False)  # never an empty validation split
    held = {i for k, idx in by_label.items() for i in idx[: take[k]]}
    return [examples[i] for i in order if i not in held], [examples[i] for i in order if i in held]


def grouped_split(
    examples: list[Example], fraction: float, seed: int, cap: int | None = None
) -> tuple[list[Example], list[Example]]:
    """Like :func:`stratified_split` but whole ``group``s move together (MultiRC questions).

    Groups are drawn in seeded order until ``fraction`` of the examples (at most
    ``cap``) are held out; examples without a group form a group of their own.
    """
    groups: dict[str, list[int]] = defaultdict(list)
    for i, ex in enumerate(examples):
        groups[ex.group if ex.group is not None else f"#{i}"].append(i)
    keys = list(groups)
    random.Random(seed).shuffle(keys)
    target = round(fraction * len(examples))
    if cap is not None:
        target = min(target, cap)
    held: set[int] = set()
    for key in keys:
        if len(held) >= target:
            break
        if cap is not None and len(held) + len(groups[key]) > cap:
            continue  # never exceed the cap, even by one group
        held.update(groups[key])
    order = [i for key in keys for i in groups[key]]
    return [examples[i] for i in order if i not in held], [examples[i] for i in order if i in held]
