"""`mept analyze` on a small trained run: files exist, numbers agree with the recorded routing."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from mept.cli import main
from mept.core.pathways import compute_pathway, pathway_vector
from mept.data.vader import tarball_path
from mept.harness.analyze_run import analyze_run, collect
from mept.harness.run_folder import load_trained

pytestmark = pytest.mark.skipif(not tarball_path().exists(), reason="vaderSentiment sdist not downloaded")


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("analyze") / "run"
    args = ["train", "--tasks", "vader-tweets", "vader-editorials", "--max-train-examples", "48", "--max-eval-examples", "40",
            "--max-steps", "6", "--batch-size", "8", "--max-length", "128", "--experts", "4", "--prompt-length", "4",
            "--no-progress", "--output", str(out)]
    assert main(args) == 0
    return out


def test_analyze_writes_consistent_json_and_real_images(trained_run, capsys):
    out = trained_run / "analysis"
    assert main(["analyze", str(trained_run), "--out", str(out), "--max-per-task", "30"]) == 0
    printed = capsys.readouterr().out
    assert "MAE" in printed and "cosine" in printed.lower()
    pathways = json.loads((out / "pathways.json").read_text())
    assert set(pathways) == {"vader-tweets", "vader-editorials"}
    for p in pathways.values():
        top1, mean = np.array(p["top1_freq"]), np.array(p["mean_probs"])
        assert top1.shape == (6, 4) and np.allclose(top1.sum(1), 1) and np.allclose(mean.sum(1), 1)
        assert p["pathway"] == top1.argmax(1).tolist()
    sim = json.loads((out / "pathway_similarity.json").read_text())
    a, b = (pathway_vector(pathways[t]) for t in ("vader-tweets", "vader-editorials"))
    i, j = sim["tasks"].index("vader-tweets"), sim["tasks"].index("vader-editorials")
    assert sim["mae"][i][j] == pytest.approx(np.abs(a - b).mean())
    assert sim["cosine"][i][j] == pytest.approx(a @ b / np.linalg.norm(a) / np.linalg.norm(b))
    for name in ("pathway_heatmap", "expert_utilization", "manifold_tsne", "manifold_tsne_backbone"):
        with Image.open(out / f"{name}.png") as img:
            assert img.width >= 400 and img.height >= 300
    assert (out / "task_similarity.json").exists()


def test_pathways_match_the_recorded_routing_and_differ_from_a_zeroed_router(trained_run, tmp_path):
    p = load_trained(str(trained_run), data=True, one_seed=True)
    feats = p.eval_sets["vader-tweets"][:30]
    got = collect(p.model, p.encoder, "vader-tweets", feats)
    trace = got["trace"]
    # recompute the top-1 of the first example directly from a forward pass
    batch = p.encoder.collate(feats[:1], train=False)
    with torch.no_grad():
        out = p.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
    assert [r.chosen.item() for r in out.routes.values()] == trace.chosen[0].tolist()
    trained = {t: pathway_vector(compute_pathway(collect(p.model, p.encoder, t, p.eval_sets[t][:30])["trace"]))
               for t in p.eval_sets}
    with torch.no_grad():
        for router in p.model.method.routers():
            router.linear.weight.zero_()
    uniform = analyze_run(p, tmp_path / "zeroed", max_per_task=30, baseline=False)
    zeroed = json.loads(Path(uniform["files"]["pathways"]).read_text())
    for t in p.eval_sets:
        assert np.allclose(np.array(zeroed[t]["mean_probs"]), 0.25)
        assert not np.allclose(trained[t], pathway_vector(zeroed[t]))


def test_analyze_of_an_unrouted_method_writes_representations_without_routing_sections(tmp_path, capsys):
    out = tmp_path / "pt"
    assert main(["train", "--method", "prompt_tuning", "--task", "vader-tweets", "--max-train-examples", "8",
                 "--max-eval-examples", "8", "--max-steps", "1", "--batch-size", "4", "--max-length", "96",
                 "--no-progress", "--output", str(out)]) == 0
    assert main(["analyze", str(out)]) == 0
    assert "no router" in capsys.readouterr().out
    written = {p.name for p in (out / "analysis").iterdir()}
    assert "manifold_tsne.png" in written and "manifold_tsne_backbone.png" in written
    assert not written & {"pathways.json", "routing_health.json", "expert_utilization.png"}


def test_analyze_a_file_with_the_papers_mean_probability_heatmap_and_raw_data_tsne(trained_run, tmp_path, capsys):
    """--split FILE analyses that file; Fig. 6 in mean probability beside top-1 frequency; Fig. 4a t-SNE."""
    from mept import data

    rows = [{"text": e.text, "label": e.target} for e in data.load_task("vader-tweets", seed=0)["validation"][:24]]
    file = tmp_path / "dev.jsonl"
    file.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    out = tmp_path / "analysis"
    assert main(["analyze", str(trained_run), "--tasks", "vader-tweets", "--split", str(file), "--out", str(out),
                 "--no-baseline", "--feature-model", "minilm"]) == 0
    pathways = json.loads((out / "pathways.json").read_text())
    assert set(pathways) == {"vader-tweets"}
    for name in ("pathway_heatmap_probs", "pathway_heatmap", "manifold_tsne_raw"):
        with Image.open(out / f"{name}.png") as img:
            assert img.width >= 400
    raw = json.loads((out / "task_similarity_raw.json").read_text())
    assert raw["feature_model"] == "minilm" and raw["tasks"] == ["vader-tweets"]
    assert main(["analyze", str(trained_run), "--split", "nonexistent.csv", "--out", str(tmp_path / "x")]) == 2
    assert "--split must be validation, test or a labelled" in capsys.readouterr().err
