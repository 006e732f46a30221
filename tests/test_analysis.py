"""Routing analysis: pathways, similarity, plots, t-SNE and the report folder."""
from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from mept.analysis import (
    format_table,
    pairwise_similarity,
    plot_expert_utilization,
    plot_pathway_heatmap,
    plot_tsne,
    subsample_per_task,
    task_similarity,
    tsne_embed,
    write_report,
)
from mept.core.pathways import RoutingTrace, compute_pathway, pathway_vector, pathways_json
from mept.errors import MeptError

N, L, E = 40, 6, 4
LAYERS = [0, 2, 4, 6, 8, 10]


def peaked_trace(task: str, preferred: list[int], seed: int = 0, strength: float = 4.0) -> RoutingTrace:
    """Router that mostly picks ``preferred[layer]``; chosen = argmax of probs."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(N, L, E))
    logits[:, np.arange(L), preferred] += strength
    probs = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    return RoutingTrace(task, LAYERS, probs, probs.argmax(-1), labels=rng.integers(0, 2, size=N))


def zeroed_router_trace(task: str) -> RoutingTrace:
    """A router whose weights are zero: uniform probs, ties go to expert 0."""
    probs = np.full((N, L, E), 1.0 / E)
    return RoutingTrace(task, LAYERS, probs, probs.argmax(-1))


PATH_A = [0, 1, 2, 3, 0, 1]
PATH_B = [3, 2, 1, 0, 3, 2]


def test_pathway_rows_are_distributions_and_pathway_is_argmax():
    p = compute_pathway(peaked_trace("a", PATH_A))
    assert p.mean_probs.shape == p.top1_freq.shape == (L, E)
    np.testing.assert_allclose(p.mean_probs.sum(1), 1.0)
    np.testing.assert_allclose(p.top1_freq.sum(1), 1.0)
    np.testing.assert_array_equal(p.pathway, p.top1_freq.argmax(1))
    np.testing.assert_array_equal(p.pathway, PATH_A)  # strong preference is recovered


def test_top1_freq_counts_chosen_experts():
    chosen = np.zeros((4, 1), dtype=int)
    chosen[:3, 0] = 2  # three of four examples pick expert 2
    t = RoutingTrace("t", [5], np.full((4, 1, 3), 1 / 3), chosen)
    np.testing.assert_allclose(compute_pathway(t).top1_freq, [[0.25, 0.0, 0.75]])


def test_pathways_json_schema_and_vector():
    js = pathways_json([peaked_trace("a", PATH_A), peaked_trace("b", PATH_B)])
    assert list(js) == ["a", "b"]
    assert set(js["a"]) == {"layers", "mean_probs", "top1_freq", "pathway"}
    assert js["a"]["layers"] == LAYERS
    json.dumps(js)  # plain Python types only
    p = compute_pathway(peaked_trace("a", PATH_A))
    np.testing.assert_array_equal(pathway_vector(p), pathway_vector(js["a"]))
    assert pathway_vector(p).shape == (L * E,)


def test_zeroed_router_pathway_differs_from_peaked():
    flat = compute_pathway(zeroed_router_trace("z"))
    peaked = compute_pathway(peaked_trace("a", PATH_B))
    np.testing.assert_array_equal(flat.pathway, np.zeros(L))
    np.testing.assert_allclose(flat.mean_probs, 1.0 / E)
    assert not np.array_equal(flat.pathway, peaked.pathway)


def test_trace_validation_names_the_field():
    with pytest.raises(MeptError, match="chosen"):
        RoutingTrace("t", LAYERS, np.full((N, L, E), 0.25), np.zeros((N, L + 1), dtype=int))
    with pytest.raises(MeptError, match="layers"):
        RoutingTrace("t", [0, 1], np.full((N, L, E), 0.25), np.zeros((N, L), dtype=int))
    with pytest.raises(MeptError, match="outside"):
        RoutingTrace("t", LAYERS, np.full((N, L, E), 0.25), np.full((N, L), E))


def test_identical_traces_have_zero_mae_and_unit_cosine():
    v = pathway_vector(compute_pathway(peaked_trace("a", PATH_A)))
    sim = pairwise_similarity({"a": v, "a2": v.copy()})
    assert sim["mae"][0][1] == pytest.approx(0.0)
    assert sim["cosine"][0][1] == pytest.approx(1.0)
    assert len(sim["pairs"]) == 2  # ordered pairs, both directions


def test_tasks_using_different_experts_are_less_similar():
    a = pathway_vector(compute_pathway(peaked_trace("a", PATH_A, seed=1)))
    a_again = pathway_vector(compute_pathway(peaked_trace("a2", PATH_A, seed=2)))
    b = pathway_vector(compute_pathway(peaked_trace("b", PATH_B, seed=3)))
    sim = pairwise_similarity({"a": a, "a2": a_again, "b": b})
    cos, mae = np.array(sim["cosine"]), np.array(sim["mae"])
    assert cos[0, 2] < cos[0, 1]
    assert mae[0, 2] > mae[0, 1]
    np.testing.assert_allclose(cos, cos.T)
    table = format_table(sim)
    assert "MAE" in table and "cosine" in table and table.count("\n") >= 8


def test_similarity_json_matches_numpy_on_saved_vectors(tmp_path):
    traces = [peaked_trace("a", PATH_A, 1), peaked_trace("b", PATH_B, 2), zeroed_router_trace("z")]
    result = write_report(tmp_path, traces)
    saved = json.loads((tmp_path / "pathways.json").read_text())
    sim = json.loads((tmp_path / "pathway_similarity.json").read_text())
    assert sim["tasks"] == ["a", "b", "z"]
    vecs = {t: np.asarray(saved[t]["top1_freq"]).ravel() for t in sim["tasks"]}
    for i, ti in enumerate(sim["tasks"]):
        for j, tj in enumerate(sim["tasks"]):
            vi, vj = vecs[ti], vecs[tj]
            assert sim["mae"][i][j] == pytest.approx(np.abs(vi - vj).mean())
            cos = vi @ vj / (np.linalg.norm(vi) * np.linalg.norm(vj))
            assert sim["cosine"][i][j] == pytest.approx(cos)
    assert result["summary"].endswith(format_table(sim))
    health = json.loads((tmp_path / "routing_health.json").read_text())
    assert result["summary"].startswith("routing (") and len(health["layers"]) == len(saved["a"]["layers"])


def test_mismatched_vector_lengths_are_rejected():
    with pytest.raises(MeptError, match="differ in length"):
        pairwise_similarity({"a": np.ones(4), "b": np.ones(6)})


def test_task_similarity_is_cosine_of_mean_embeddings():
    rng = np.random.default_rng(0)
    emb = {"a": rng.normal(size=(10, 8)) + 3, "b": rng.normal(size=(12, 8)) - 3, "c": rng.normal(size=(5, 8)) + 3}
    m = task_similarity(emb)
    ma, mb = emb["a"].mean(0), emb["b"].mean(0)
    assert m.shape == (3, 3)
    np.testing.assert_allclose(np.diag(m), 1.0)
    assert m[0, 1] == pytest.approx(ma @ mb / (np.linalg.norm(ma) * np.linalg.norm(mb)))
    assert m[0, 2] > m[0, 1]


def _png_size(path) -> tuple[int, int]:
    with Image.open(path) as im:
        im.verify()
    with Image.open(path) as im:
        return im.size


def test_plots_write_readable_pngs(tmp_path):
    traces = [peaked_trace("a", PATH_A), peaked_trace("b", PATH_B), zeroed_router_trace("z")]
    pws = [compute_pathway(t) for t in traces]
    for out in [
        plot_pathway_heatmap(pws, tmp_path / "heat.png"),
        plot_expert_utilization(traces, tmp_path / "util_traces.png"),
        plot_expert_utilization(pws, tmp_path / "util_pathways.png"),
        plot_tsne(np.random.default_rng(0).normal(size=(30, 2)), ["x"] * 15 + ["y"] * 15, [0, 1] * 15,
                  tmp_path / "tsne.png", "demo"),
    ]:
        w, h = _png_size(out)
        assert w >= 600 and h >= 400, (out, w, h)


def test_tsne_shape_and_determinism():
    x = np.random.default_rng(0).normal(size=(25, 6))
    a = tsne_embed(x, seed=7)
    b = tsne_embed(x, seed=7)
    assert a.shape == (25, 2)
    np.testing.assert_allclose(a, b)


def test_tsne_clips_perplexity_for_tiny_inputs():
    assert tsne_embed(np.random.default_rng(0).normal(size=(5, 3))).shape == (5, 2)


def test_subsample_caps_each_task_and_is_seeded():
    ids = np.array(["a"] * 300 + ["b"] * 50)
    keep = subsample_per_task(ids, max_per_task=200, seed=1)
    assert (ids[keep] == "a").sum() == 200 and (ids[keep] == "b").sum() == 50
    np.testing.assert_array_equal(keep, subsample_per_task(ids, max_per_task=200, seed=1))
    assert len(set(keep.tolist())) == len(keep)


def test_write_report_writes_every_requested_file(tmp_path):
    rng = np.random.default_rng(0)
    traces = [peaked_trace("a", PATH_A, 1), peaked_trace("b", PATH_B, 2)]
    feats = {"a": rng.normal(size=(N, 16)) + 2, "b": rng.normal(size=(N, 16)) - 2}
    base = {"a": rng.normal(size=(N, 16)), "b": rng.normal(size=(N, 16))}
    emb = {"a": rng.normal(size=(7, 5)), "b": rng.normal(size=(9, 5))}
    result = write_report(tmp_path, traces, features=feats, baseline_features=base, input_embeddings=emb)
    expected = {
        "pathways": "pathways.json",
        "pathway_heatmap": "pathway_heatmap.png",
        "pathway_heatmap_probs": "pathway_heatmap_probs.png",
        "expert_utilization": "expert_utilization.png",
        "pathway_similarity": "pathway_similarity.json",
        "routing_health": "routing_health.json",
        "manifold_tsne": "manifold_tsne.png",
        "manifold_tsne_backbone": "manifold_tsne_backbone.png",
        "task_similarity": "task_similarity.json",
    }
    assert {k: v.name for k, v in result["files"].items()} == expected
    for name in expected.values():
        assert (tmp_path / name).is_file()
        if name.endswith(".png"):
            assert _png_size(tmp_path / name)[0] >= 400
    ts = json.loads((tmp_path / "task_similarity.json").read_text())
    assert ts["tasks"] == ["a", "b"] and len(ts["cosine"]) == 2


def test_write_report_without_optional_inputs_skips_their_files(tmp_path):
    result = write_report(tmp_path, [peaked_trace("a", PATH_A)])
    assert set(result["files"]) == {"pathways", "pathway_heatmap", "pathway_heatmap_probs", "expert_utilization",
                                    "pathway_similarity",
                                    "routing_health"}
    assert not (tmp_path / "manifold_tsne.png").exists()
