"""probe.task=phases: per-frame labels, sequence embeddings in any frame order, CARL's metrics."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from cltt.data.stores import open_store
from cltt.data.synthetic import write_synthetic
from cltt.errors import CLTTError
from cltt.eval.phases import (
    ap_at_k,
    interleaved_chunks,
    kendall_alignment,
    load_phase_labels,
    phase_splits,
    position_embeddings,
    probe_phases,
    progress_r2,
    r_squared,
    score_embeddings,
    sequence_embeddings,
    video_order,
)
from cltt.models.sequence import sinusoidal_encoding
from cltt.recipe import SyntheticConfig, load_recipe
from tests.helpers.training import train_in_process, write_recipe

# --------------------------------------------------------------------------- sequences


def test_interleaved_chunks_cover_the_video_once():
    assert interleaved_chunks(7, 3).tolist() == [[0, 3, 6], [1, 4, -1], [2, 5, -1]]
    assert interleaved_chunks(3, 5).tolist() == [[0, 1, 2, -1, -1]]
    slots = interleaved_chunks(50, 8)
    assert sorted(slots[slots >= 0].tolist()) == list(range(50)) and slots.shape == (7, 8)


class Echo(torch.nn.Module):
    """A stand-in sequence model: frame embedding = [feature, rank of its slot in the chunk]."""

    def contextualise(self, features, valid):
        ranks = torch.arange(features.shape[1], dtype=features.dtype).expand(features.shape[:2])
        return torch.cat([features, ranks[..., None]], dim=-1)


def test_sequence_embeddings_go_back_to_their_frames():
    features = np.arange(10, dtype=np.float32)[:, None] * 10  # frame f has feature 10 f
    for order_name in ("ordered", "shuffled"):
        order = video_order(10, order_name, seed=0, clip=3)
        out = sequence_embeddings(Echo(), features, 4, order, torch.device("cpu"))  # 3 chunks
        assert out[:, 0].tolist() == features[:, 0].tolist(), "each frame keeps its own features"
        slot_of = np.argsort(order)  # where each frame was fed
        assert out[:, 1].tolist() == (slot_of // 3).tolist(), "rank of its slot in the interleaved chunk"
    assert video_order(10, "shuffled", 0, 3).tolist() != list(range(10))
    assert video_order(10, "shuffled", 0, 3).tolist() == video_order(10, "shuffled", 0, 3).tolist()


def test_position_only_features_are_the_encoding_of_the_input_position():
    ordered = position_embeddings(4, 4, np.arange(4), 6)
    np.testing.assert_allclose(ordered, sinusoidal_encoding(torch.arange(4), 6).numpy())
    order = np.array([2, 0, 3, 1])
    shuffled = position_embeddings(4, 4, order, 6)
    np.testing.assert_allclose(shuffled[order], ordered)  # frame order[s] sits at position s


# --------------------------------------------------------------------------- metrics


def arc(degrees) -> np.ndarray:
    angles = np.radians(np.asarray(degrees, dtype=np.float64))
    return np.stack([np.cos(angles), np.sin(angles)], axis=1)


def test_kendall_tau_of_identical_and_reversed_videos():
    video = arc(np.linspace(0, 80, 9))
    tau, nan_pairs, pairs = kendall_alignment([video, video.copy()])
    assert tau == pytest.approx(1.0) and nan_pairs == 0 and pairs == 2
    tau, _, _ = kendall_alignment([video, video[::-1].copy()])
    assert tau == pytest.approx(-1.0)


def test_a_constant_video_gives_nan_pairs_that_are_counted_and_left_out():
    video = arc(np.linspace(0, 80, 9))
    constant = np.ones((6, 2))
    tau, nan_pairs, pairs = kendall_alignment([video, constant, video.copy()])
    assert pairs == 6 and nan_pairs == 4  # to and from the constant video
    assert tau == pytest.approx(1.0)
    tau, nan_pairs, pairs = kendall_alignment([constant, constant.copy()])
    assert tau is None and nan_pairs == pairs == 2


def test_ap_at_k_on_a_hand_made_case():
    """Worked out by hand (see the comments): 7 query frames, K = 1, 2, 3 and K beyond the candidates."""
    a, phases_a = arc([0, 10, 80, 90]), np.array([0, 0, 1, 1])
    b, phases_b = arc([5, 85, 88]), np.array([0, 0, 1])
    # A's queries vs B: 0°,10° -> [5(0), 85(0), 88(1)]; 80° -> [85(0), 88(1), 5(0)]; 90° -> [88(1), 85(0), 5(0)]
    # B's queries vs A: 5° -> [0/10 (0), 80(1)]; 85° -> [80/90 (1), 10(0)]; 88° -> [90(1), 80(1), 10(0)]
    scores = ap_at_k([a, b], [phases_a, phases_b], [1, 2, 3, 10])
    assert scores[1] == pytest.approx(5 / 7)
    assert scores[2] == pytest.approx(5 / 7)
    assert scores[3] == pytest.approx(11 / 21)
    assert scores[10] == pytest.approx(0.5)  # all candidates: (2/3 * 2 + 1/3 * 2 + 1/2 * 3) / 7
    assert ap_at_k([a], [phases_a], [1]) == {1: None}


def test_r_squared_and_progress_regression():
    target = np.array([0.0, 1.0, 2.0, 3.0])
    assert r_squared(np.array([0.0, 1.0, 2.0, 2.0]), target) == pytest.approx(0.8)  # 1 - 1/5
    assert r_squared(np.full(4, 1.5), target) == pytest.approx(0.0)
    assert r_squared(target, np.ones(4)) is None
    rng = np.random.default_rng(0)
    x = rng.normal(size=(90, 3))
    y = x @ np.array([0.5, -1.0, 2.0]) + 0.25
    assert progress_r2(x[:60], y[:60], x[60:75], y[60:75], x[75:], y[75:]) > 0.999
    assert progress_r2(x[:60], rng.normal(size=60), x[60:75], y[60:75], x[75:], y[75:]) < 0.2


# --------------------------------------------------------------------------- labels and splits


@pytest.fixture(scope="module")
def phases_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("phases") / "data"
    list(write_synthetic("phases", root, SyntheticConfig(clips=10, frames=12, size=32, seed=0)))
    return root


def test_phase_labels_and_splits_come_from_the_files(phases_root, tmp_path):
    manifest = open_store(phases_root)
    labels = load_phase_labels(manifest, phases_root / "phases.csv")
    assert labels.clips == manifest.clips and labels.names == ["0", "1", "2", "3"]
    assert all(len(p) == 12 and (np.diff(p) >= 0).all() for p in labels.phase)
    assert all((np.diff(q) > 0).all() for q in labels.progress)
    recipe = load_recipe(write_recipe(tmp_path, phases_root))
    splits, source = phase_splits(recipe, manifest, labels)
    assert "split column" in source and sorted(set(splits)) == ["test", "train", "val"]

    broken = tmp_path / "broken.csv"
    lines = (phases_root / "phases.csv").read_text().splitlines()
    broken.write_text("\n".join(lines[:5] + lines[6:]) + "\n")
    with pytest.raises(CLTTError, match="no row for 1 frame"):
        load_phase_labels(manifest, broken)
    broken.write_text("clip,frame,phase\n")
    with pytest.raises(CLTTError, match="header clip,frame,phase,progress"):
        load_phase_labels(manifest, broken)
    with pytest.raises(CLTTError, match="extract --synthetic phases"):
        load_phase_labels(manifest, tmp_path / "missing.csv")


@pytest.mark.parametrize("layout", ["train_val_test", "no_val", "two_test_videos", "no_test"])
def test_phase_scores_with_the_split_layouts_users_have(phases_root, tmp_path, layout):
    """Phase accuracy and its interval over test videos with and without val, with 2 test videos,
    and without a test split (then no accuracy, and no interval, rather than a crash)."""
    manifest = open_store(phases_root)
    labels = load_phase_labels(manifest, phases_root / "phases.csv")
    splits = np.array({"train_val_test": ["train"] * 5 + ["val"] * 2 + ["test"] * 3,
                       "no_val": ["train"] * 7 + ["test"] * 3,
                       "two_test_videos": ["train"] * 6 + ["val"] * 2 + ["test"] * 2,
                       "no_test": ["train"] * 7 + ["val"] * 3}[layout])
    rng = np.random.default_rng(0)  # embeddings that carry the phase, plus noise
    embeddings = [np.eye(4)[p] * 2 + rng.normal(size=(len(p), 4)) for p in labels.phase]
    recipe = load_recipe(write_recipe(tmp_path, phases_root))
    evaluation = np.flatnonzero(splits != "train")
    scores = score_embeddings(embeddings, labels, splits, evaluation, recipe)
    if layout == "no_test":
        assert scores.phase_acc is None and scores.phase_acc_interval is None
        return
    low, high = scores.phase_acc_interval
    assert 0.25 < scores.phase_acc <= 1 and low <= scores.phase_acc <= high
    assert score_embeddings(embeddings, labels, splits, evaluation, recipe).phase_acc_interval == (low, high)
    other_training_seed = load_recipe(write_recipe(tmp_path, phases_root, train={"seed": 7}))
    assert score_embeddings(embeddings, labels, splits, evaluation, other_training_seed).phase_acc_interval == (low, high)


# --------------------------------------------------------------------------- end to end


def test_train_carl_then_probe_phases(phases_root, tmp_path):
    recipe_path = write_recipe(tmp_path, phases_root, method={"name": "carl", "carl": {
        "frames": 4, "layers": 1, "heads": 2, "embedding_dim": 16}}, model={"projection_dim": 8},
        train={"epochs": 2, "batch_size": 4}, probe={"task": "phases", "phases": {"ap_k": [1, 3]}})
    outcome = train_in_process(recipe_path)
    assert outcome.status == "finished"
    report = probe_phases(load_recipe(recipe_path), outcome.checkpoint, cache_dir=tmp_path / "features")
    assert report.task == "phases" and report.epoch == 2
    assert report.columns == ["features", "order", "phase_acc", "phase_acc_95", "progress_r2", "kendall_tau",
                              "tau_nan_pairs", "ap@1", "ap@3"]
    keys = [(row[0], row[1]) for row in report.rows]
    both = ("ordered", "shuffled")
    assert keys == [*(("trained", o) for o in both), ("trained_backbone", "any"), *(("random_init", o) for o in both),
                    ("random_init_backbone", "any"), *(("position_only", o) for o in both), ("pixels", "any")]
    for row in report.rows:
        name, order, acc, interval, r2, tau, nan_pairs, *ap = row
        assert 0 <= acc <= 1 and r2 is not None and all(0 <= v <= 1 for v in ap)
        found = report.metrics[f"{name}/{order}"]
        assert found["phase_acc_low"] <= acc <= found["phase_acc_high"]
        assert interval == f"[{found['phase_acc_low']:.3f}–{found['phase_acc_high']:.3f}]"
        assert tau is None or -1 <= tau <= 1
        assert report.metrics[f"{name}/{order}"]["tau_pairs"] == 2  # two test videos, both ways round
    by_key = {(r[0], r[1]): r for r in report.rows}
    # position alone aligns videos only while frames come in order
    assert by_key[("position_only", "ordered")][5] > 0.8
    assert by_key[("position_only", "shuffled")][5] is None or by_key[("position_only", "shuffled")][5] < 0.8
    assert not math.isclose(by_key[("trained", "ordered")][5] or 0, by_key[("trained", "shuffled")][5] or 0)
    assert any("NaN pair" in note for note in report.notes)
    json.dumps(report.to_dict())
    assert (tmp_path / "features").is_dir() and any((tmp_path / "features").iterdir()), "backbone features cached"
