"""What we say the MEPT paper says, checked: the settings it states (with its own words), the ones it leaves
open and whose choice fills them, its templates, its printed averages and what its "Para" column matches.

Where the paper's text is on this machine (``shared/papers/mept-emnlp2025.txt`` beside the repository, or
``MEPT_PAPER_TEXT``), every quoted phrase and every transcribed Table 1 / Table 6 row is looked up in it.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

import pytest

from mept.data.superglue import TASKS
from mept.harness.train_config import PAPER_TRAINING_UNSTATED, TrainConfig
from mept.methods.mept import PAPER_SEARCH, PAPER_STATED, PAPER_UNSTATED, ROUTER_INIT

sys.path.insert(0, str(Path(__file__).parent.parent / "benchmarks"))
import paper_numbers as P  # noqa: E402


def paper_text() -> str | None:
    given = os.environ.get("MEPT_PAPER_TEXT")
    candidates = [Path(given)] if given else [p / "shared" / "papers" / "mept-emnlp2025.txt"
                                              for p in Path(__file__).resolve().parents]
    found = next((c for c in candidates if c.is_file()), None)
    return found.read_text(encoding="utf-8") if found else None


TEXT = paper_text()
needs_text = pytest.mark.skipif(TEXT is None, reason="the paper's text is not on this machine")


def squash(text: str) -> str:
    """The text with its typesetting undone: underlines dropped, whitespace squashed, and two misreadings of our
    copy mended (Table 6 prints MEPT's RTE as "79. 7"; Appendix B.5 reads "multire" for "multirc", which
    Figure 4's table spells right)."""
    text = re.sub(r"\s+", " ", text.replace("<u>", "").replace("</u>", "")).strip()
    return re.sub(r"(\d)\. (\d)", r"\1.\2", text).replace("Template: multire ", "Template: multirc ")


@needs_text
@pytest.mark.parametrize("setting", list(P.STATED))
def test_every_stated_setting_quotes_the_papers_words(setting):
    _, where, words = P.STATED[setting]
    assert squash(words) in squash(TEXT), f"{setting} ({where}): {words!r} is not in the paper's text"


@needs_text
def test_every_transcribed_table1_and_table6_row_is_in_the_papers_text():
    lines = [squash(line).split(" ") for line in TEXT.splitlines()]

    def found(cells: list[str]) -> bool:
        n = len(cells)
        return any(tokens[i:i + n] == cells for tokens in lines for i in range(len(tokens) - n + 1))

    for backbone, rows in P.TABLE1.items():
        for method, row in rows.items():
            assert found([f"{row[t]:.2f}" for t in P.SUPERGLUE6] + [f"{row['avg']:.2f}"]), (backbone, method)
    for method, row in P.TABLE6.items():
        assert found([f"{row[t]:.1f}" for t in P.SUPERGLUE6] + [f"{row['avg']:.1f}"]), method


def test_the_papers_templates_are_ours():
    """Appendix B.5 gives every template and verbalizer; ours are the same (the paper states them)."""
    assert set(P.TEMPLATES_B5) == set(P.SUPERGLUE6)
    for task, (template, verbalizer) in P.TEMPLATES_B5.items():
        assert (TASKS[task].template, TASKS[task].verbalizer) == (template, verbalizer), task
    assert "templates" in P.STATED and not any("template" in k.lower() for k in P.UNSTATED)


@needs_text
def test_the_transcribed_templates_are_appendix_b5s():
    for template, verbalizer in P.TEMPLATES_B5.values():
        bold = re.sub(r"\{(\w+)\}", r"**\1**", template)
        assert f"Template: {bold} **Verbalizer:** {', '.join(verbalizer)}" in squash(TEXT)


def test_nothing_the_paper_states_is_listed_as_unstated():
    assert not set(PAPER_STATED) & set(PAPER_UNSTATED)
    assert PAPER_STATED["router_type"] == "linear"  # Sec. 3.2: "a linear network followed by a softmax"
    assert PAPER_SEARCH == {"prompt_length": P.SEARCH_M, "num_experts": P.SEARCH_NR}
    # P-Tuning v2's 100 prompts are the paper's (Appendix B.6), not a choice of ours
    assert "ptuning_v2_length" in P.STATED and not any("P-Tuning v2" in k for k in P.UNSTATED)
    unstated_words = " ".join(P.UNSTATED).lower()
    for stated in ("template", "epoch", "batch", "max length", "shared expert", "xavier", "lr grid", "learning rate grid"):
        assert stated not in unstated_words, stated


def test_what_the_paper_leaves_open_says_whose_choice_it_is():
    assert "authors' code" in ROUTER_INIT and "orthogonal" in ROUTER_INIT  # not the paper's
    for name, label in P.UNSTATED.items():
        assert "ours" in label or "authors' code" in label, name
    # --paper scores T5 by ranking unless told otherwise: labelled ours, and the --paper help says so
    assert "ours" in PAPER_TRAINING_UNSTATED["eval_mode"] and "generate" in PAPER_TRAINING_UNSTATED["eval_mode"]
    help_text = next(f.metadata["help"] for f in TrainConfig.__dataclass_fields__.values() if f.name == "paper")
    assert "--eval-mode rank" in help_text and "m = N_r = 10" in help_text


def test_the_papers_printed_averages_are_kept_and_three_differ_from_their_cells():
    assert P.printed_average(P.TABLE1["llama-3.2-1b"]["prompt_tuning"]) == 56.94
    differs = {k: v for k, v in P.PRINTED_AVERAGE_DIFFERS.items() if abs(v[0] - v[1]) > 0.01}
    assert differs == {("llama-3.2-1b", "prompt_tuning"): (56.94, 58.103), ("llama-3.2-1b", "smop"): (57.51, 58.675),
                       ("t5-large", "vfpt"): (82.56, 82.595)}
    for rows in (*P.TABLE1.values(), P.TABLE6):  # every other row: its printed average is its cells' mean
        for row in rows.values():
            if (row["avg"], round(P.cell_mean(row), 3)) not in P.PRINTED_AVERAGE_DIFFERS.values():
                assert abs(row["avg"] - P.cell_mean(row)) < 0.051


def test_para_matches_the_activated_count_on_t5_base_and_llama_but_no_setting_on_t5_large():
    """Our reading of Table 1's "Para" for MEPT, with its evidence and its gap (paper_numbers' docstring)."""
    assert P.mept_parameters(10, 10, 12, 768) == (1_105_920, 276_480)
    assert P.para_matches("t5-base") == [(10, 10)]  # 0.126% of 220M, printed 0.13%
    assert (15, 4) in P.para_matches("llama-3.2-1b")  # 0.111% of 1B, printed 0.11%
    assert P.para_matches("t5-large") == []  # printed 0.12%: nearest 0.109% and 0.128%
    assert all(P.para_matches(b, "stored") == [] for b in P.PARA_BACKBONES)
