"""What the CLI prints and draws: ``mept methods`` defaults, a closed pipe, collapsed layers' entropy (never -0.00),
plot layer numbers."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np

from mept.analysis import plots
from mept.cli import main
from mept.core.pathways import RoutingTrace
from mept.core.routing_health import format_health, routing_health


def test_methods_lists_each_methods_default_prompt_length_and_layers(capsys):
    assert main(["methods"]) == 0
    lines = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()[1:]}
    assert {"mept", "prompt_tuning", "ptuning_v2", "smop", "vfpt", "ptmoe", "lora", "full", "probe"} <= set(lines)
    assert "prompt length 100 (slots per prompted layer), layers all" in lines["ptuning_v2"]
    assert "prompt length  10" in lines["mept"] and "10 experts (num_experts) + 1 shared" in lines["mept"]
    assert "input layer only" in lines["prompt_tuning"] and "prompt length   5" in lines["smop"]


def test_a_closed_pipe_is_not_an_error():
    """``mept methods | head -1``: the reader goes away before mept writes; no ``error:`` line, status 0 or 141."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    read, write = os.pipe()
    os.close(read)  # the reader has gone before anything is written
    done = subprocess.run([sys.executable, "-m", "mept.cli", "methods"], stdout=write, stderr=subprocess.PIPE,
                          text=True, env=env, timeout=120)
    os.close(write)
    assert done.returncode in (0, 141)
    assert done.stderr == ""


def test_collapsed_layer_entropy_prints_as_zero_not_minus_zero():
    chosen = np.zeros((8, 2), dtype=int)  # every example on expert 0 in both layers
    probs = np.full((8, 2, 4), 0.1 / 3)
    probs[..., 0] = 0.9
    health = routing_health([RoutingTrace("t", [0, 1], probs, chosen)])
    assert all(str(r["entropy"]) == "0.0" for r in health["layers"])
    text = format_health(health)
    assert "entropy 0.00" in text and "-0.00" not in text


def test_plots_number_layers_from_one_like_the_text_and_preds_files(tmp_path, monkeypatch):
    figures = []
    monkeypatch.setattr(plots, "_save", lambda fig, path: figures.append(fig) or path)
    chosen = np.array([[0, 1, 2], [1, 1, 2]])  # prompted layers 0, 2, 5 (0-based ids) = layers 1, 3, 6
    probs = np.full((2, 3, 3), 1 / 3)
    trace = RoutingTrace("t", [0, 2, 5], probs, chosen)
    plots.plot_pathway_heatmap([trace], tmp_path / "h.png")
    plots.plot_expert_utilization([trace], tmp_path / "u.png")
    heat, util = figures
    assert [t.get_text() for t in heat.axes[0].get_yticklabels()] == ["1", "3", "6"]
    assert [t.get_text() for t in util.axes[0].get_xticklabels()] == ["1", "3", "6"]


def test_routing_entropy_never_prints_minus_zero():
    from mept.core.routing_health import format_health

    health = {"experts": 2, "examples": 4, "layers": [{"layer": 1, "experts_in_use": 1, "entropy": -0.0,
                                                       "mean_top1_prob": 1.0, "share": [1.0, 0.0], "collapsed": True}]}
    assert "entropy 0.00" in format_health(health) and "-0.00" not in format_health(health)
