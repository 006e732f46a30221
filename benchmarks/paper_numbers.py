"""The MEPT paper's own numbers (EMNLP 2025, arXiv 2509.00996), copied from its text (../shared/papers/).

One place for every figure the benchmark scripts print beside ours: ``paper_tables.py`` (offline
analogues of the ablations) and ``paper_t5.py`` (the GPU recipe). Scores are % on the SuperGLUE
development set, mean of 3 runs (Table 1's caption), T5-Base unless a key says otherwise. Where our
copy of a table is garbled, the entry says so rather than guessing.

Each Table 1 / Table 6 row keeps the average the paper printed (``avg``). Three printed averages
differ from the mean of their row's six cells by more than rounding: Llama-3.2-1B prompt tuning
(printed 56.94, mean of its cells 58.103), Llama-3.2-1B SMoP (57.51 vs 58.675) and T5-Large VFPT
(82.56 vs 82.595); T5-Base P-Tuning v2 prints 76.94 where its cells give 76.948 (76.95 rounded).
``PRINTED_AVERAGE_DIFFERS`` lists them; scripts print the paper's average as printed.

"Para" (Table 1's caption: "the number of trainable parameters", % of the backbone). Our reading,
not the paper's words: for MEPT it matches the parameters one example *activates* (one routed + one
shared expert per layer + the routers; ``parameters.activated`` in our metrics.json), not the ones
stored. Evidence (:func:`mept_parameters`, :func:`para_matches`): on T5-Base, N_r = m = 10 activates
276,480 = 0.126% of 220M (printed 0.13%) and stores 1,105,920 = 0.50%; on Llama-3.2-1B, m = 15 and
N_r = 4 activates 0.111% of 1B (printed 0.11%); no stored count of the paper's grid gives any printed
MEPT Para. But no setting of the grid gives T5-Large's 0.12% either way (activated: nearest 0.109%
and 0.128% of 770M), so the reading is not confirmed on every backbone. Its "79.25% fewer" is the
Llama row: 0.11% vs P-Tuning v2's 0.53% (Sec. 4.4).

What the paper states about its setup is ``STATED`` (each with its place and the paper's own words,
which ``tests/test_paper_claims.py`` finds in the paper's text); what it leaves open, and whose
choice fills it in ``mept train --paper``, is ``UNSTATED``.
"""

from __future__ import annotations

from mept.harness.train_config import PAPER_TRAINING_UNSTATED

SUPERGLUE6 = ("boolq", "cb", "copa", "multirc", "rte", "wic")  # the paper's six tasks (no WSC)

# Table 1, single-task training: {backbone: {method: {"para": % of backbone, task: score, "avg": the printed average}}}
TABLE1: dict[str, dict[str, dict[str, float]]] = {
    "t5-base": {
        "fine_tuning": dict(para=100.0, boolq=82.30, cb=91.30, copa=60.00, multirc=79.70, rte=84.50, wic=69.30, avg=77.85),
        "prompt_tuning": dict(para=0.06, boolq=78.12, cb=84.42, copa=54.37, multirc=78.30, rte=75.27, wic=62.29, avg=72.13),
        "ptuning_v2": dict(para=0.53, boolq=80.81, cb=90.23, copa=61.28, multirc=79.83, rte=81.98, wic=67.56, avg=76.94),
        "smop": dict(para=0.01, boolq=79.40, cb=86.42, copa=58.30, multirc=79.60, rte=77.50, wic=65.20, avg=74.40),
        "vfpt": dict(para=0.21, boolq=78.38, cb=90.92, copa=61.76, multirc=78.73, rte=76.90, wic=65.36, avg=75.34),
        "mept": dict(para=0.13, boolq=81.13, cb=90.92, copa=62.33, multirc=80.70, rte=83.52, wic=69.60, avg=78.03),
    },
    "t5-large": {
        "fine_tuning": dict(para=100.0, boolq=85.75, cb=95.26, copa=76.00, multirc=84.41, rte=88.05, wic=72.11, avg=83.60),
        "prompt_tuning": dict(para=0.04, boolq=83.20, cb=90.32, copa=57.50, multirc=83.10, rte=86.11, wic=68.74, avg=78.16),
        "ptuning_v2": dict(para=0.52, boolq=85.82, cb=95.56, copa=77.00, multirc=84.07, rte=89.25, wic=71.03, avg=83.79),
        "smop": dict(para=0.04, boolq=83.45, cb=92.37, copa=71.00, multirc=83.92, rte=87.70, wic=68.60, avg=81.17),
        "vfpt": dict(para=0.18, boolq=83.89, cb=93.71, copa=75.63, multirc=83.24, rte=88.10, wic=71.00, avg=82.56),
        "mept": dict(para=0.12, boolq=85.96, cb=97.61, copa=79.67, multirc=85.29, rte=90.01, wic=73.09, avg=85.27),
    },
    "llama-3.2-1b": {
        "linear_head": dict(para=3e-4, boolq=59.85, cb=51.69, copa=56.33, multirc=48.94, rte=55.23, wic=53.45, avg=54.25),
        "prompt_tuning": dict(para=0.06, boolq=60.95, cb=61.61, copa=57.67, multirc=57.73, rte=55.96, wic=54.70, avg=56.94),
        "ptuning_v2": dict(para=0.53, boolq=62.48, cb=64.29, copa=61.00, multirc=60.34, rte=58.12, wic=60.15, avg=61.06),
        "smop": dict(para=0.04, boolq=61.13, cb=62.50, copa=59.33, multirc=57.46, rte=57.40, wic=54.23, avg=57.51),
        "vfpt": dict(para=0.17, boolq=62.44, cb=61.72, copa=59.67, multirc=58.41, rte=64.35, wic=57.60, avg=60.70),
        "mept": dict(para=0.11, boolq=64.56, cb=67.86, copa=63.33, multirc=62.22, rte=60.29, wic=59.72, avg=63.00),
    },
}
SIGNIFICANCE = ("the paper states its results are significant against all baselines on each backbone, all p < 0.005 "
                "(Table 1's caption; test not named)")

# Table 6, mixture training (one prompt set for the six tasks), T5-Base; avg: the printed average
TABLE6: dict[str, dict[str, float]] = {
    "prompt_tuning": dict(boolq=78.0, cb=85.7, copa=53.0, multirc=79.3, rte=70.7, wic=63.7, avg=71.7),
    "ptuning_v2": dict(boolq=78.8, cb=85.7, copa=60.0, multirc=79.5, rte=70.0, wic=65.0, avg=73.2),
    "smop": dict(boolq=78.6, cb=85.7, copa=58.0, multirc=79.7, rte=71.1, wic=64.8, avg=73.0),
    "mept": dict(boolq=80.1, cb=91.0, copa=56.0, multirc=80.2, rte=79.7, wic=67.8, avg=75.8),
}

# Ablations on CB / COPA / WiC / MRC (T5-Base): {row: (cb, copa, wic, mrc)}
ABLATION_TASKS = ("CB", "COPA", "WiC", "MRC")
TABLE2 = {"1-12": (90.9, 62.3, 69.6, 80.7), "1-6": (89.8, 62.0, 67.0, 80.1), "7-12": (89.9, 61.3, 66.1, 80.0),
          "1": (86.4, 58.3, 65.2, 79.6), "12": (85.9, 58.0, 65.1, 79.8)}
TABLE12 = {"1": (86.4, 58.3), "1-3": (88.5, 60.7), "1-6": (89.8, 61.3), "1-9": (89.9, 62.0), "1-12": (90.9, 62.3)}
TABLE12_TASKS = ("CB", "COPA")
TABLE3 = {"top1": (90.9, 62.3, 69.6, 80.7), "stochastic": (83.2, 57.7, 64.9, 69.6), "dense": (85.7, 59.0, 66.0, 79.7),
          "gumbel": (88.3, 61.3, 65.1, 80.0), "perturbation": (90.1, 62.0, 67.4, 80.3),
          "shared off": (89.3, 60.7, 67.0, 80.1), "shared replaced": (89.9, 62.0, 67.9, 80.2)}
TABLE3_NOTE = ("the paper names no load-balancing loss in any row; on load balancing (Appendix G.3) it points to "
               "the perturbation row")
TABLE4 = {"router + prompts": (90.9, 62.3, 69.6, 80.7)}
TABLE4_SINGLE = ((89.1, 61.3, 66.3, 79.4), (88.5, 58.0, 65.0, 78.3))  # which is router-only: garbled in our copy
TABLE10 = {"xavier_normal": (90.9, 62.3, 69.6, 80.7), "he_normal": (90.7, 62.7, 69.0, 80.2),
           "previous_knowledge": (91.0, 63.7, 69.9, 80.4)}

# Table 5: RTE accuracy by prompt length m (rows) and N_r (columns); the m = 15 and m = 20 rows are garbled
# in our copy (m = 20 as read there)
TABLE5_EXPERTS = (4, 6, 10, 14, 20)
TABLE5 = {10: (83.0, 82.0, 81.8, 82.1, 82.7), 20: (81.0, 81.8, 81.6, 81.8, 82.3)}

# Table 11: MEPT's gain over P-Tuning v2 as tasks are added (CB; +COPA; +WiC; +RTE; +BoolQ; +MRC)
TABLE11 = (0.7, 1.0, 1.3, 1.6, 2.1, 2.6)

# Table 13: RTE accuracy by routed:shared experts
TABLE13 = {0: 82.3, 1: 83.5, 2: 83.3, 3: 83.5, 4: 83.6}  # 4 routed experts : this many shared

# Table 16: cross-task on BoolQ: (BoolQ->BoolQ, MRC->BoolQ, All->BoolQ)
TABLE16 = {"prompt_tuning": (78.1, 78.0, 78.0), "ptuning_v2": (80.8, 79.4, 78.8), "mept": (81.1, 80.8, 80.1)}

# Table 8: training time on T5-Base, minutes (BoolQ / CB / COPA / RTE / WiC)
TABLE8 = {"prompt_tuning": (158, 8, 11, 57, 51), "ptuning_v2": (216, 10, 14, 88, 74), "mept": (203, 6, 8, 50, 35)}


def cells(values: tuple[float, ...] | None) -> str:
    """A paper row as ``a / b / c / d`` (or ``-`` when the paper has none)."""
    return "-" if values is None else " / ".join(f"{v:.1f}" for v in values)


def mean(values: tuple[float, ...]) -> float:
    return sum(values) / len(values)


def printed_average(row: dict[str, float]) -> float:
    """The average the paper printed for a Table 1 / Table 6 row (not recomputed: three differ, see the top)."""
    return row["avg"]


def cell_mean(row: dict[str, float]) -> float:
    """The mean of a row's six task cells."""
    return sum(row[t] for t in SUPERGLUE6) / len(SUPERGLUE6)


# The rows whose printed average is not the mean of their cells at the printed 2 decimals: (printed, mean of cells)
PRINTED_AVERAGE_DIFFERS: dict[tuple[str, str], tuple[float, float]] = {
    (backbone, method): (row["avg"], round(cell_mean(row), 3))
    for backbone, rows in TABLE1.items() for method, row in rows.items() if abs(row["avg"] - cell_mean(row)) > 0.005
}

# Appendix B.5: the paper's text-to-text template and verbalizer per task, its **field** written {field}
# (mept.data.superglue uses these; WSC, beyond the paper's six, has none there)
TEMPLATES_B5: dict[str, tuple[str, tuple[str, ...]]] = {
    "boolq": ("boolq passage: {passage} question: {question}", ("False", "True")),
    "cb": ("cb hypothesis: {hypothesis}. premise: {premise}", ("entailment", "contradiction", "neutral")),
    "copa": ("copa choice1: {choice1} choice2: {choice2} premise: {premise} question: {question}", ("choice1", "choice2")),
    "multirc": ("multirc question: {question} answer: {answer}. paragraph: {paragraph}", ("False", "True")),
    "rte": ("rte sentence1: {premise} sentence2: {hypothesis}", ("entailment", "not_entailment")),
    "wic": ("wic sentence1: {sentence1} sentence2: {sentence2} word: {word}", ("False", "True")),
}

# --- "Para": the paper's Table 1 column, against our two counts ------------------------------------------------
# backbone: (prompted layers, hidden size d, size as the paper states it: Table 1 headers, Sec. 4.3)
PARA_BACKBONES: dict[str, tuple[int, int, float]] = {
    "t5-base": (12, 768, 220e6), "t5-large": (24, 1024, 770e6), "llama-3.2-1b": (16, 2048, 1e9)}
SEARCH_M, SEARCH_NR = (10, 15, 20), (4, 10, 20)  # Sec. 4.3 (mept.methods.mept.PAPER_SEARCH)


def mept_parameters(m: int, n_r: int, layers: int, d: int, shared: int = 1) -> tuple[int, int]:
    """(stored, activated per example) parameters of MEPT's prompts and bias-free linear routers (no head)."""
    routers = layers * d * n_r
    return (n_r + shared) * m * d * layers + routers, (1 + shared) * m * d * layers + routers


def para_matches(backbone: str, count: str = "activated") -> list[tuple[int, int]]:
    """The (m, N_r) of the paper's grid whose ``count`` (stored or activated), as % of the backbone rounded to
    the printed 2 decimals, equals the MEPT Para Table 1 prints for ``backbone``."""
    layers, d, size = PARA_BACKBONES[backbone]
    index = 0 if count == "stored" else 1
    printed = TABLE1[backbone]["mept"]["para"]
    return [(m, n) for m in SEARCH_M for n in SEARCH_NR
            if round(100 * mept_parameters(m, n, layers, d)[index] / size, 2) == printed]


# --- what the paper states about its setup, and what it leaves open ------------------------------------------
# setting: (what the paper says, where, its own words: tests/test_paper_claims.py finds each in the text)
STATED: dict[str, tuple[str, str, str]] = {
    "search": ("m from {10, 15, 20}, N_r from {4, 10, 20}, per task", "Sec. 4.3",
               "we linearly search the best prompt length from {10, 15, 20} and number of router experts from {4, 10, 20}"),
    "lr_grid": ("1e-5, 5e-5, 1e-4 for MEPT; 0.1, 0.3, 0.5 for the other prompt methods", "Appendix B.2",
                "we linearly search the best learning rate from {1e-5, 5e-5, 1e-4} for MEPT and {0.1, 0.3, 0.5} "
                "for other prompt tuning methods"),
    "epochs": ("70", "Sec. 4.3", "we train our prompts for 70 epochs"),
    "batch_size": ("16 to 32", "Sec. 4.3", "using a batch size ranging from 16 to 32"),
    "max_length": ("512 tokens including the prompt", "Appendix B.3",
                   "we set the maximum input length, including the prompt, to 512 tokens"),
    "shared_experts": ("one per layer", "Sec. 4.3", "we only utilize one single shared expert per layer"),
    "routing": ("top-1: the expert with the highest probability", "Sec. 3.2",
                "we sparsely activate only the i-th"),
    "router": ("a linear network and a softmax, on the previous layer's hidden state", "Sec. 3.2",
               "is implemented as a linear network followed by a softmax activation"),
    "init": ("Xavier normal (prompts)", "Appendix E, Table 10", "we apply xavier normal as the default initialization strategy"),
    "depth": ("all 12 layers of T5-Base's encoder (the default row)", "Table 2",
              "extending prompt experts to deeper layers"),
    "templates": ("a text-to-text template and verbalizer per task, SMoP's formatting", "Appendix B.5 (B.3)",
                  "Text-to-text templates and verbalizers of SuperGLUE"),
    "ptuning_v2_length": ("100 prompts per layer for P-Tuning v2, against MEPT's 10", "Appendix B.6",
                          "10 prompts in MEPT vs. 100 prompts in P-Tuning v2"),
    "metrics": ("accuracy; CB the average of F1 and accuracy; MultiRC F1a, which Table 7 calls macro F1",
                "Table 7, Appendix A", "F1a denotes the macro F1 score"),
    "evaluation_set": ("the SuperGLUE development set, mean of 3 runs", "Table 1's caption",
                       "Performance comparison result (%) on SuperGLUE development set"),
    "runs": ("3 per result", "Table 1's caption", "All scores are averaged over 3 runs"),
    "significance": ("all p < 0.005 against all baselines", "Table 1's caption", "all p-value < 0.005"),
    "llama_head": ("the score head trains beside the prompts", "Appendix B.2",
                   "both the prompt and the final score network are fine-tuning"),
    "library": ("Hugging Face PEFT", "Sec. 4.3", "MEPT is implemented with the Huggingface PEFT library"),
    "hardware": ("NVIDIA A100-40GB", "Sec. 4.3", "NVIDIA A100-40GB GPUs"),
    "router_variants": ("stochastic, dense, Gumbel (temperature 1), perturbation (sigma 1)", "Appendix B.4",
                        "Add Gaussian noise to the router with standard deviation"),
    "tsne": ("mean-pooled last encoder layer, <= 200 validation examples per task, perplexity 30, seed 42",
             "Appendix D", "t-SNE with a perplexity of 30 and random seed 42"),
}
# setting: whose choice fills it in ``mept train --paper`` (the paper does not state it); the training ones are
# the library's own list (mept.harness.train_config.PAPER_TRAINING_UNSTATED)
UNSTATED: dict[str, str] = {
    **PAPER_TRAINING_UNSTATED,
    "m and N_r of one run": "10 and 10: ours, a point of the paper's search (--paper-search runs the search)",
    "router pooling and normalisation": "masked mean + parameter-free layer norm: ours (the authors' code: a "
                                        "norm, and a mean that counts padding)",
    "router bias and initialisation": "none and orthogonal: the authors' code's",
    "prompt lengths of prompt tuning, SMoP, VFPT": "ours (paper_t5.py METHOD_FLAGS)",
    "seeds": "1, 2, 3: ours",
    "numeric precision": "fp32 unless --mixed-precision: ours",
}
