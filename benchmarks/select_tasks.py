"""Choose the learnable offline suite by measurement: a linear probe of frozen features per task.

For each candidate BIG-bench classification task (a fixed label set), embed up to
``--max-examples`` inputs with a frozen offline encoder (mean of the final hidden states over
real tokens, the sentence encoders' own pooling), fit a logistic regression on a seeded,
stratified 70% and score the other 30%, beside the majority class of the same split. A task
is kept when the probe beats the majority by >= 10 points on some backbone: then the frozen
features carry the label and a prompt method has something to learn (and a router something
to route).

    python benchmarks/select_tasks.py --models minilm mpnet      # ~15 min on 2 CPU cores
"""

from __future__ import annotations

import argparse
import json
import random
import time
from collections import Counter
from pathlib import Path

import numpy as np
import torch

from mept.cli.flags import ListFlag
from mept.core.routing import masked_mean
from mept.data.bigbench import extract_tasks, read_task
from mept.model.backbones import load_backbone

CANDIDATES = [
    "intent_recognition", "geometric_shapes", "navigate", "implicatures", "metaphor_boolean",
    "salient_translation_error_detection", "vitaminc_fact_verification", "social_support",
    "analogical_similarity", "logical_fallacy_detection", "winowhy", "moral_permissibility",
    "fantasy_reasoning", "misconceptions", "anachronisms", "snarks", "mnist_ascii",
    "multiemo/reviews_sentence_en", "color/rgb", "color/hex", "cs_algorithms/valid_parentheses",
    "fact_checker/fever", "sports_understanding", "hyperbaton",
]


def examples(task: str, limit: int, seed: int = 0) -> tuple[list[str], list[int], list[str]]:
    raw = [e for e in read_task(task)["examples"] if "target_scores" in e]
    words = sorted({w for e in raw for w in e["target_scores"]})
    random.Random(seed).shuffle(raw)
    raw = raw[:limit]
    labels = [words.index(max(e["target_scores"], key=e["target_scores"].get)) for e in raw]
    return [" ".join(e["input"].split()) for e in raw], labels, words


@torch.no_grad()
def embed(backbone, texts: list[str], max_length: int, batch_size: int = 32) -> np.ndarray:
    model, tok = backbone.model.eval(), backbone.processor
    out = []
    for i in range(0, len(texts), batch_size):
        batch = tok(texts[i : i + batch_size], padding=True, truncation=True, max_length=max_length, return_tensors="pt")
        hidden = model(**batch).last_hidden_state  # (B, T, d)
        out.append(masked_mean(hidden, batch["attention_mask"]).numpy())
    return np.concatenate(out)


def probe(features: np.ndarray, labels: list[int], seed: int = 0) -> tuple[float, float]:
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import StandardScaler

    y = np.array(labels)
    counts = Counter(labels)
    stratify = y if min(counts.values()) >= 2 else None
    xtr, xte, ytr, yte = train_test_split(features, y, test_size=0.3, random_state=seed, stratify=stratify)
    scaler = StandardScaler().fit(xtr)
    clf = LogisticRegression(max_iter=2000, C=0.5).fit(scaler.transform(xtr), ytr)
    majority = Counter(ytr.tolist()).most_common(1)[0][0]
    return 100 * float((yte == majority).mean()), 100 * float((clf.predict(scaler.transform(xte)) == yte).mean())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", action=ListFlag, default=["minilm", "mpnet"])
    ap.add_argument("--tasks", action=ListFlag, default=CANDIDATES)
    ap.add_argument("--max-examples", type=int, default=1500)
    ap.add_argument("--max-length", type=int, default=128)
    ap.add_argument("--out", default="benchmarks/results/task_selection.json")
    args = ap.parse_args()
    extract_tasks(args.tasks)
    rows = {t: {} for t in args.tasks}
    for name in args.models:
        backbone = load_backbone(name, "base")
        for task in args.tasks:
            texts, labels, words = examples(task, args.max_examples)
            t0 = time.perf_counter()
            majority, score = probe(embed(backbone, texts, args.max_length), labels)
            rows[task].update(size=len(read_task(task)["examples"]), used=len(texts), labels=len(words), majority=majority)
            rows[task][name] = score
            print(f"{name:7s} {task:38s} n={len(texts):5d} labels={len(words):2d} majority {majority:5.1f} "
                  f"probe {score:5.1f} ({time.perf_counter() - t0:.0f}s)", flush=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"settings": vars(args), "tasks": rows}, indent=2))
    print("\n| task | examples | labels | majority | " + " | ".join(f"probe {m} (gain)" for m in args.models) + " | kept |")
    print("|---|---:|---:|---:|" + "---:|" * len(args.models) + "---|")
    for task, r in rows.items():
        gains = [r[m] - r["majority"] for m in args.models]
        cells = " | ".join(f"{r[m]:.1f} ({g:+.1f})" for m, g in zip(args.models, gains))
        print(f"| {task} | {r['size']} | {r['labels']} | {r['majority']:.1f} | {cells} | {'yes' if max(gains) >= 10 else 'no'} |")


if __name__ == "__main__":
    from script import run  # benchmarks/script.py: a bad input is one error line, never a traceback

    run(main)
