"""Before any training, how good is what the task head reads? A linear probe on the untrained prompted backbone.

    python benchmarks/head_input_probe.py --model smollm2 --tasks vader

Why: a prompt method whose prompts barely move in training (MEPT at 1e-4 on a text decoder) trains, in effect, a
linear head on the features its untrained prompts leave. If those features are worse for a linear head than the
bare backbone's, the method scores below the probe (the head alone) however healthy its routing is. For each
variant this builds the prompted model at the library's defaults (seed 1; ``init="auto"``: a decoder's prompts are
drawn from its own layer inputs over the first 64 training texts, as ``mept train`` does), reads the input of the
head's last linear layer at the row the head scores (a decoder: the last real token), and fits an L2 logistic
regression on ``--train-per-task`` training examples of every task (one head for the mixture, as ``mept train``
trains), its C chosen on ``--eval-per-task`` validation examples per task, scored on as many test examples per task.
``bare``: the backbone without prompts (what the probe trains on); ``slot_prefix``: the backbone reading 11 pad
tokens before the text. Fixed subsamples: every variant reads the same
examples. A check before the fit: the head applied to the captured rows gives the model's own logits.
"""

from __future__ import annotations

import time

import numpy as np
import torch
from common import prompted_model  # benchmarks/common.py: the untrained model mept train builds
from script import fail  # benchmarks/script.py: the one refusal of every benchmark script

import mept
from mept.data.registry import load_task, suite_tasks
from mept.inject.heads import find_heads
from mept.inject.spec import inspect_backbone
from mept.model.backbones import load_backbone

C_GRID = (0.001, 0.003, 0.01, 0.03, 0.1, 0.3)
SPLITS = ("train", "validation", "test")


def task_rows(tasks: str, per_split: dict[str, int], seed: int = 1) -> dict[str, list[tuple[str, int]]]:
    """The first ``per_split[s]`` examples of split ``s`` of every task of ``tasks`` (a task or a suite)."""
    rows: dict[str, list[tuple[str, int]]] = {s: [] for s in SPLITS}
    for name in suite_tasks(tasks):
        splits = load_task(name, seed=seed)
        for split in SPLITS:
            rows[split] += [(e.text, e.label) for e in splits.get(split, [])[: per_split[split]]
                            if e.label >= 0 and e.image is None and e.text.strip()]
    empty = [split for split, examples in rows.items() if not examples]
    if empty:
        fail(f"{tasks} has no labelled text examples in its {', '.join(empty)} split(s); this probe needs text "
             f"classification tasks with train, validation and test splits (e.g. vader)")
    return rows


def head_inputs(model: torch.nn.Module, head: torch.nn.Linear, tok, texts: list[str], max_length: int,
                prefix: int = 0) -> np.ndarray:
    """The rows the head's last linear layer scores, one per text; checked against the model's own logits.
    ``prefix``: that many pad tokens stand before each text (attended, not masked)."""
    seen: list[torch.Tensor] = []
    hook = head.register_forward_pre_hook(lambda module, args: seen.append(args[0].detach().float()))
    out = []
    try:
        with torch.no_grad():
            for start in range(0, len(texts), 16):
                batch = tok(texts[start:start + 16], padding=True, truncation=True, max_length=max_length,
                            return_tensors="pt")
                if prefix:
                    n = len(batch["input_ids"])
                    batch["input_ids"] = torch.cat([torch.full((n, prefix), tok.pad_token_id), batch["input_ids"]], 1)
                    batch["attention_mask"] = torch.cat([torch.ones(n, prefix, dtype=torch.long),
                                                         batch["attention_mask"]], 1)
                seen.clear()
                logits = model(**batch).logits.float()
                h = seen[-1]
                if h.ndim == 3:  # a decoder's score head reads every position; it scores the last real token
                    extra = h.shape[1] - batch["input_ids"].shape[1]  # prompt columns the method put in front
                    last = batch["attention_mask"].sum(1) - 1 + extra
                    h = h[torch.arange(len(last)), last]
                mine = torch.nn.functional.linear(h, head.weight.float(), None if head.bias is None else head.bias.float())
                if not torch.allclose(mine, logits, atol=1e-3 * (1 + logits.abs().max().item())):
                    raise RuntimeError("the captured rows are not what the head scored (padding side or layout changed)")
                out.append(h)
    finally:
        hook.remove()
    return torch.cat(out).numpy()


def linear_probe(features: dict[str, np.ndarray], labels: dict[str, np.ndarray]) -> dict[str, object]:
    """The logistic regression whose C scored best on validation: its accuracies (%), C, and whether it got each
    validation and test example right (for the paired comparison)."""
    from sklearn.linear_model import LogisticRegression  # imported where it is used, as the library does

    mean, std = features["train"].mean(0), features["train"].std(0) + 1e-6
    x = {s: (f - mean) / std for s, f in features.items()}
    best: dict[str, object] = {"validation": -1.0}
    for c in C_GRID:
        clf = LogisticRegression(C=c, max_iter=2000).fit(x["train"], labels["train"])
        right = {s: clf.predict(x[s]) == labels[s] for s in ("validation", "test")}
        if 100 * right["validation"].mean() > best["validation"]:
            best = {"C": c, "right": right, **{s: 100 * r.mean() for s, r in right.items()}}
    return best


def mcnemar(a: np.ndarray, b: np.ndarray) -> str:
    """Paired comparison of two probes on the same examples: how many only ``a`` / only ``b`` got right, and the
    exact two-sided McNemar p (a binomial test on those discordant examples)."""
    from scipy.stats import binomtest

    only_a, only_b = int((a & ~b).sum()), int((~a & b).sum())
    p = binomtest(only_a, only_a + only_b).pvalue if only_a + only_b else 1.0
    return f"{only_b - only_a:+d} ({only_b} vs {only_a}, p = {p:.3f})"


# "bare": the backbone alone; "slot_prefix": the backbone reading m + 1 = 11 pad tokens (the slot token) before the
# text -- what a deep prompt whose rows started as the slot token's own layer inputs computes, behind its sink token
# (the same last-token state to cosine 1.0000 on SmolLM2: benchmarks/studies/decoder_prompts.md)
BACKBONE_ONLY = {"bare": 0, "slot_prefix": 11}
VARIANTS = {  # name: (method, settings)
    "mept": ("mept", {}),
    "mept_nr1": ("mept", {"num_experts": 1}),
    "ptuning_v2": ("ptuning_v2", {}),
    "prompt_tuning": ("prompt_tuning", {}),
}


def main() -> None:
    import argparse

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--tasks", default="vader", help="a task or a suite (default vader)")
    ap.add_argument("--train-per-task", type=int, default=200)
    ap.add_argument("--eval-per-task", type=int, default=100)
    ap.add_argument("--max-length", type=int, default=128)
    ap.add_argument("--variants", default="bare,mept,mept_nr1,ptuning_v2,prompt_tuning",
                    help=f"comma-separated, of: {', '.join([*BACKBONE_ONLY, *VARIANTS])}")
    args = ap.parse_args()
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = [v for v in variants if v not in BACKBONE_ONLY and v not in VARIANTS]
    if unknown or not variants:
        fail(f"unknown variant(s) {', '.join(unknown) or '(none given)'}; "
             f"choose from {', '.join([*BACKBONE_ONLY, *VARIANTS])}")
    if min(args.train_per_task, args.eval_per_task, args.max_length) < 1:
        fail("--train-per-task, --eval-per-task and --max-length must be >= 1")

    rows = task_rows(args.tasks, {"train": args.train_per_task, "validation": args.eval_per_task,
                                  "test": args.eval_per_task})
    loaded = load_backbone(args.model, "cls", num_labels=max(label for _, label in rows["train"]) + 1)
    backbone, tok = loaded.model.eval(), loaded.processor
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    if "slot_prefix" in variants and not inspect_backbone(backbone).text_decoder:
        fail(f"slot_prefix is a text decoder's layout (pad tokens before the text); {args.model} is not a text decoder")
    init_texts = [tok(text, truncation=True, max_length=args.max_length)["input_ids"] for text, _ in rows["train"][:64]]
    labels = {s: np.array([label for _, label in r]) for s, r in rows.items()}
    print(f"{args.model} on {args.tasks}: {', '.join(f'{len(r)} {s}' for s, r in rows.items())} examples; "
          f"untrained, seed 1, fp32; paired against {variants[0]}: examples only this variant got right minus those "
          f"only {variants[0]} got right (the two counts), exact McNemar p\n\n| variant | validation | test | validation paired | test paired | C | s |\n"
          "|---|---:|---:|---|---|---:|---:|", flush=True)
    # the backbone's own head: every variant's prompted model wraps it
    head = [m for name in find_heads(backbone) for m in backbone.get_submodule(name).modules()
            if isinstance(m, torch.nn.Linear)][-1]
    first: dict[str, object] | None = None
    for variant in variants:
        start = time.time()
        alone = variant in BACKBONE_ONLY
        if alone:
            model = backbone
        else:
            method, settings = VARIANTS[variant]
            model = prompted_model(backbone, mept.make_config(method, **settings), init_texts)
        try:
            features = {s: head_inputs(model, head, tok, [t for t, _ in r], args.max_length,
                                       BACKBONE_ONLY.get(variant, 0)) for s, r in rows.items()}
        finally:
            if not alone:
                model.unload()
        probe = linear_probe(features, labels)
        first = first or probe
        paired = [mcnemar(first["right"][s], probe["right"][s]) if probe is not first else "-"
                  for s in ("validation", "test")]
        print(f"| {variant} | {probe['validation']:.2f} | {probe['test']:.2f} | {' | '.join(paired)} | {probe['C']:g} "
              f"| {time.time() - start:.0f} |", flush=True)


if __name__ == "__main__":
    from script import run  # benchmarks/script.py: a bad input is one error line, never a traceback

    run(main)
