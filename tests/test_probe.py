"""cltt probe: labels and splits by clip, the three probes against independent computations,
the feature cache, the trainer hook, and the command end to end on a tiny trained run."""

from __future__ import annotations

import csv
import json
import os
import re
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from cltt.data.stores import open_store
from cltt.data.windows import WindowSpec
from cltt.engine import checkpoint as ckpt
from cltt.engine import run_files
from cltt.engine.run_dir import prepare_training
from cltt.engine.trainer import Trainer
from cltt.errors import CLTTError
from cltt.eval.features import FrameSet, PixelSource, checkpoint_identity, extract_features
from cltt.eval.knn import knn_predict
from cltt.eval.labels import LabelTable, assign_splits, check_no_clip_leak, check_splits, load_labels
from cltt.eval.linear import fit_linear
from cltt.eval.logistic import fit_logistic
from cltt.eval.metrics_eval import HEADER, EvalRow, append_eval_row, keep_eval_rows_up_to, read_eval_rows
from cltt.eval.probe import evaluate_method, prepare_probe, random_init_method
from cltt.eval.samples import pool_samples
from cltt.methods import build_method
from cltt.recipe import load_recipe, recipe_from_dict
from tests.conftest import write_clip
from tests.helpers.commands import one_error_line, run_cli
from tests.helpers.datasets import synthetic

LAB_COLUMNS = "epoch,train_loss,train_acc,val_loss,val_acc,test_loss,test_acc"  # the lab's, first
EXACT_HEADER = LAB_COLUMNS + ",train_acc_low,train_acc_high,val_acc_low,val_acc_high,test_acc_low,test_acc_high"


# --------------------------------------------------------------------------- tiny data and run


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> Path:
    """One epoch of tiny_cnn at 32 px on 12 bouncing-balls clips of 8 frames (labels: ball count)."""
    base = tmp_path_factory.mktemp("probe")
    root = synthetic(base / "balls", "bouncing-balls")
    tree = {
        "data": {"root": str(root), "window_size": 3, "image_size": 32, "num_workers": 0},
        "model": {"backbone": "tiny_cnn", "projection_dim": 16},
        "train": {"epochs": 1, "batch_size": 8, "device": "cpu", "out_dir": str(base / "runs")},
        "probe": {"logistic_c": [0.1, 1.0, 10.0], "knn_k": 5},
    }
    path = base / "tiny.yaml"
    path.write_text(yaml.safe_dump(tree))
    recipe, run_dir, resume, _ = prepare_training(load_recipe(path), path, False)
    assert Trainer(recipe, run_dir, None, resume).run().status == "finished"
    return run_dir


# --------------------------------------------------------------------------- probes vs independent math


@pytest.mark.parametrize("n, f", [(60, 5), (40, 12)])
def test_linear_readout_is_least_squares(n, f):
    rng = np.random.default_rng(n + f)
    x = rng.normal(size=(n, f)).astype(np.float32)
    y = rng.integers(0, 4, n)
    y[:4] = np.arange(4)
    readout = fit_linear(x, y, 4)
    a = np.hstack([x.astype(np.float64), np.ones((n, 1))])
    onehot = np.eye(4)[y]
    reference = np.linalg.lstsq(a, onehot, rcond=None)[0]
    np.testing.assert_allclose(readout.weight, reference[:f], atol=1e-9)
    np.testing.assert_allclose(readout.bias - readout.mean @ readout.weight, reference[f], atol=1e-9)
    queries = rng.normal(size=(25, f))
    np.testing.assert_array_equal(readout.predict(queries), (np.hstack([queries, np.ones((25, 1))]) @ reference).argmax(1))
    chunked = fit_linear(x, y, 4, max_direct=0, chunk=7)  # the normal-equation path for large N
    np.testing.assert_allclose(chunked.scores(queries), readout.scores(queries), atol=1e-8)
    ridge = fit_linear(x, y, 4, ridge=0.5)
    xc = x.astype(np.float64) - x.astype(np.float64).mean(0)
    expected = np.linalg.solve(np.block([[xc.T @ xc + 0.5 * np.eye(f), xc.T.sum(1, keepdims=True)],
                                         [xc.sum(0, keepdims=True), np.full((1, 1), n)]]),
                               np.hstack([xc, np.ones((n, 1))]).T @ onehot)
    np.testing.assert_allclose(ridge.weight, expected[:f], atol=1e-8)


def test_linear_readout_interpolates_with_more_features_than_samples():
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(10, 50)), np.arange(10) % 3
    np.testing.assert_array_equal(fit_linear(x, y, 3).predict(x), y)


def knn_by_loop(bank, labels, queries, num_classes, k, temperature, exclude=None):
    bank = bank / np.linalg.norm(bank, axis=1, keepdims=True)
    out = []
    for i, q in enumerate(queries):
        sims = bank @ (q / np.linalg.norm(q))
        candidates = [j for j in range(len(bank)) if exclude is None or j != exclude[i]]
        nearest = sorted(candidates, key=lambda j: -sims[j])[:k]
        votes = np.zeros(num_classes)
        for j in nearest:
            votes[labels[j]] += np.exp(sims[j] / temperature)
        out.append(int(np.argmax(votes)))
    return np.array(out)


@pytest.mark.parametrize("k, temperature", [(1, 0.07), (5, 0.07), (20, 0.5), (200, 1.0)])
def test_knn_matches_a_direct_loop(k, temperature):
    rng = np.random.default_rng(k)
    centres = rng.normal(size=(4, 8))
    labels = rng.integers(0, 4, 90)
    bank = centres[labels] + rng.normal(size=(90, 8))
    queries = rng.normal(size=(30, 8)) + centres[rng.integers(0, 4, 30)]
    got = knn_predict(bank, labels, queries, 4, k, temperature, chunk=7)
    np.testing.assert_array_equal(got, knn_by_loop(bank, labels, queries, 4, min(k, 90), temperature))
    own = np.arange(90)
    got_train = knn_predict(bank, labels, bank, 4, k, temperature, exclude=own)
    np.testing.assert_array_equal(got_train, knn_by_loop(bank, labels, bank, 4, min(k, 89), temperature, own))


def test_logistic_picks_c_on_val():
    rng = np.random.default_rng(0)
    # imbalanced train, balanced val: a tiny C underfits towards the majority class
    train_y = np.r_[np.zeros(80, int), np.ones(20, int)]
    val_y = np.r_[np.zeros(50, int), np.ones(50, int)]
    train_x = rng.normal(size=(100, 6)) + 1.2 * train_y[:, None]
    val_x = rng.normal(size=(100, 6)) + 1.2 * val_y[:, None]
    cs = [1e-4, 1e-2, 1.0, 100.0]
    probe = fit_logistic(train_x, train_y, val_x, val_y, cs, 2)
    scaler = StandardScaler().fit(train_x)
    independent = {c: (LogisticRegression(C=c, max_iter=1000).fit(scaler.transform(train_x), train_y)
                       .predict(scaler.transform(val_x)) == val_y).mean() for c in cs}
    assert probe.scores_by_c == pytest.approx(independent)
    assert probe.selected_by == "val" and independent[probe.c] == max(independent.values())
    assert independent[1e-4] < max(independent.values())  # the choice mattered
    assert probe.c != 1e-4
    # no validation split: C comes from a grouped split of train
    groups = np.arange(100) // 10
    without_val = fit_logistic(train_x, train_y, val_x[:0], val_y[:0], [1e-4, 1.0], 2, train_groups=groups)
    assert without_val.selected_by.startswith("grouped") and without_val.c == 1.0
    assert 0 < without_val.loss(val_x, val_y) < np.log(2) + 0.5


def test_pooling_levels_match_loops():
    rng = np.random.default_rng(3)
    counts = [5, 2, 7]
    offsets = np.r_[0, np.cumsum(counts)]
    h = rng.normal(size=(offsets[-1], 4)).astype(np.float32)
    frames = pool_samples(h, offsets, "frame")
    np.testing.assert_array_equal(frames.clip, [0] * 5 + [1] * 2 + [2] * 7)
    clips = pool_samples(h, offsets, "clip")
    np.testing.assert_allclose(clips.features, [h[a:b].mean(0) for a, b in zip(offsets[:-1], offsets[1:])], rtol=1e-6)
    spec = WindowSpec(window_size=3, frame_step=2, window_stride=2, two_view_offset=4)
    windows = pool_samples(h, offsets, "window", spec)
    expected, owners = [], []
    for c, (a, n) in enumerate(zip(offsets[:-1], counts)):
        for t in range(0, n - 4, 2):  # span 5, the second view's offset ignored
            expected.append(h[[a + t, a + t + 2, a + t + 4]].mean(0))
            owners.append(c)
    np.testing.assert_allclose(windows.features, expected, rtol=1e-6)
    np.testing.assert_array_equal(windows.clip, owners)


# --------------------------------------------------------------------------- labels and splits


def table_of(labels: list[str]) -> LabelTable:
    return LabelTable("test", [f"clip{i}" for i in range(len(labels))], np.arange(len(labels)), labels, None, 0)


@pytest.mark.parametrize("per_class, classes, expected", [(3, 10, [18, 6, 6]), (9, 4, [22, 7, 7]), (1, 5, [5, 0, 0])])
def test_drawn_splits_are_by_clip_and_stratified(per_class, classes, expected):
    labels = [str(i % classes) for i in range(per_class * classes)]
    table = table_of(labels)
    splits = assign_splits(table, [0.6, 0.2, 0.2], seed=5)
    assert splits == assign_splits(table, [0.6, 0.2, 0.2], seed=5)
    assert [splits.count(s) for s in ("train", "val", "test")] == expected
    check_splits(labels, splits, "test")  # every class is in train
    for name in set(labels):
        mine = [s for s, lab in zip(splits, labels) if lab == name]
        for split, share in zip(("train", "val", "test"), (0.6, 0.2, 0.2)):
            assert abs(mine.count(split) - share * per_class) <= 1
    if per_class > 1:
        assert splits != assign_splits(table, [0.6, 0.2, 0.2], seed=6)
    # frames inherit their clip's split, so no clip is on two sides
    frame_clips = np.repeat(np.arange(len(labels)), 6)
    check_no_clip_leak(frame_clips, np.array(splits)[frame_clips], table.clips)


def test_a_split_by_frame_is_refused():
    frame_clips = np.repeat(np.arange(5), 4)
    by_frame = np.array(["train", "train", "train", "test"] * 5)
    with pytest.raises(CLTTError, match="clip c0 has samples in more than one split"):
        check_no_clip_leak(frame_clips, by_frame, [f"c{i}" for i in range(5)])


def test_label_errors_are_one_clear_line(tmp_path, frames_root):
    manifest = open_store(frames_root)
    with pytest.raises(CLTTError, match="no labels for .*labels.csv"):
        load_labels(manifest)
    labels = frames_root / "labels.csv"
    labels.write_text("clip,label\nclip0,a\nclip1,b\nclip7,a\nghost,b\n")
    with pytest.raises(CLTTError, match="names 2 clip.* does not have: clip7, ghost"):
        load_labels(manifest)
    labels.write_text("clip,label,split\nclip0,a,train\nclip0,a,test\n")
    with pytest.raises(CLTTError, match="lists clip clip0 twice"):
        load_labels(manifest)
    labels.write_text("video,class\nclip0,a\n")
    with pytest.raises(CLTTError, match="header clip,label"):
        load_labels(manifest)
    labels.write_text("clip,label,split\nclip0,a,train\nclip1,b,train\nclip2,c,test\n")
    table = load_labels(manifest)
    with pytest.raises(CLTTError, match="class 'c' \\(test\\) has val/test clips but no train clip"):
        check_splits(table.labels, assign_splits(table, [0.6, 0.2, 0.2], 0), table.source)
    with pytest.raises(CLTTError, match="probe.labels.*does not exist"):
        load_labels(manifest, tmp_path / "nope.csv")


def test_moving_digits_with_a_class_only_in_test_is_refused(tmp_path):
    root = synthetic(tmp_path / "digits", "moving-digits", max_objects=1)
    recipe = recipe_from_dict({"data": {"root": str(root), "image_size": 32}})
    with pytest.raises(CLTTError, match="has val/test clips but no train clip"):
        prepare_probe(recipe)
    # drawn splits (probe.labels without a split column) keep every class in train
    rows = list(csv.reader(open(root / "labels.csv")))
    (tmp_path / "nosplit.csv").write_text("".join(f"{r[0]},{r[1]}\n" for r in rows))
    recipe = recipe_from_dict({"data": {"root": str(root), "image_size": 32},
                               "probe": {"labels": str(tmp_path / "nosplit.csv")}})
    setup = prepare_probe(recipe)
    assert set(setup.splits) <= {"train", "val", "test"} and len(setup.table.clips) == 12


def test_labels_from_folders(tmp_path):
    root = tmp_path / "frames"
    for label, clip in [("cat", "a"), ("cat", "b"), ("dog", "c")]:
        write_clip(root / label, clip, 3)
    manifest = open_store(root)
    table = load_labels(manifest)
    assert table.source == "folders" and table.clips == ["cat/a", "cat/b", "dog/c"]
    assert table.labels == ["cat", "cat", "dog"] and table.file_splits is None
    (root / "labels.csv").write_text("clip,label\ncat/a,x\ndog/c,y\n")  # a file wins, by nested name
    assert load_labels(open_store(root)).labels == ["x", "y"]


# --------------------------------------------------------------------------- the feature cache


class CountingPixels(PixelSource):
    calls = 0

    def encode(self, frames):
        CountingPixels.calls += len(frames)
        return super().encode(frames)


def test_feature_cache_is_reused_and_invalidated(tmp_path, frames_root):
    manifest = open_store(frames_root)
    frames = FrameSet(manifest, [2, 0])
    weights = tmp_path / "weights.pth"
    weights.write_bytes(b"v1")

    def source():
        return CountingPixels(name="pixels", identity=checkpoint_identity(weights, 8), decode_size=8)

    seen = []
    first = extract_features(frames, [source()], tmp_path / "cache", batch_size=5,
                             on_progress=lambda done, total: seen.append((done, total)))
    assert CountingPixels.calls == 34 and first.computed == ["pixels"] and seen[-1] == (34, 34)
    assert first.features["pixels"].shape == (34, 3 * 8 * 8)
    np.testing.assert_array_equal(frames.frame_counts, [22, 12])
    again = extract_features(frames, [source()], tmp_path / "cache")
    assert CountingPixels.calls == 34 and again.reused == ["pixels"]
    np.testing.assert_array_equal(again.features["pixels"], first.features["pixels"])
    stat = weights.stat()
    os.utime(weights, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # the checkpoint changed
    extract_features(frames, [source()], tmp_path / "cache")
    assert CountingPixels.calls == 68
    write_clip(frames_root, "clip0", 13)  # one more frame in a probed clip: new frames identity
    frames = FrameSet(open_store(frames_root), [2, 0])
    assert extract_features(frames, [source()], tmp_path / "cache").computed == ["pixels"]
    assert CountingPixels.calls == 68 + 35


# --------------------------------------------------------------------------- end to end


def test_cltt_probe_run_dir(tiny_run):
    result = run_cli("probe", tiny_run)
    assert result.exit_code == 0, result.output
    for word in ("trained", "random_init", "pixels", "linear", "logistic", "knn", "train", "val", "test"):
        assert word in result.stdout
    assert f"probed {run_files.FINAL_CHECKPOINT}" in result.stdout
    report = json.loads((tiny_run / "probe.json").read_text())
    assert report["epoch"] == 1 and report["level"] == "frame" and report["classes"] == ["1", "2", "3"]
    assert {(s["features"], s["probe"]) for s in report["scores"]} == {
        (f, p) for f in ("trained", "random_init", "pixels")
        for p in ("linear", "logistic", "knn", "recall@1", "recall@5", "mAP")}
    assert all(0 <= s[k] <= 1 for s in report["scores"] for k in ("train", "val", "test") if s[k] is not None)
    for s in report["scores"]:  # every figure has its 95% interval around it
        for split in ("train", "val", "test"):
            if s[split] is not None:
                low, high = s["intervals"][split]
                assert low <= s[split] + 1e-9 and s[split] <= high + 1e-9
    assert "[" in result.stdout and "95% interval" in result.stdout
    assert sum(c["clips"] for c in report["counts"].values()) == 12
    lines = (tiny_run / "metrics_eval.csv").read_text().splitlines()
    assert lines[0] == EXACT_HEADER and len(lines) == 2
    row = dict(zip(HEADER, lines[1].split(",")))
    logistic = next(s for s in report["scores"] if s["features"] == "trained" and s["probe"] == "logistic")
    assert row["epoch"] == "1" and float(row["test_acc"]) == pytest.approx(logistic["test"], abs=1e-6)
    assert [float(row["test_acc_low"]), float(row["test_acc_high"])] == pytest.approx(logistic["intervals"]["test"], abs=1e-6)
    assert float(row["val_loss"]) == pytest.approx(logistic["losses"]["val"], abs=1e-6)
    cached = sorted((tiny_run / "features").glob("*.npz"))
    assert [p.name.split("-")[0] for p in cached] == ["pixels", "random_init", "trained"]
    stamps = [p.stat().st_mtime_ns for p in cached]

    # again, at clip level, on the checkpoint file, JSON elsewhere: features reused, row replaced
    out = tiny_run / "clip.json"
    result = run_cli("probe", tiny_run / run_files.FINAL_CHECKPOINT, "probe.level=clip", "probe.probes=[logistic]", "--out", out)
    assert result.exit_code == 0, result.output
    assert "reused" in result.stderr and "computed" not in result.stderr
    assert [p.stat().st_mtime_ns for p in sorted((tiny_run / "features").glob("*.npz"))] == stamps
    clip_report = json.loads(out.read_text())
    assert clip_report["level"] == "clip" and len(clip_report["scores"]) == 3
    # metrics_eval.csv keeps the run's own setting: a clip-level probe does not replace the row
    assert "not updated" in result.stderr and clip_report["eval_row"] is None
    assert (tiny_run / "metrics_eval.csv").read_text().splitlines() == lines


def test_cltt_probe_refusals(tiny_run, tmp_path):
    foreign = tmp_path / "resnet.pth"
    torch.save({"conv1.weight": torch.zeros(1)}, foreign)
    assert "is not a cltt checkpoint" in one_error_line(run_cli("probe", foreign))
    garbage = tmp_path / "garbage.pth"
    garbage.write_text("not a checkpoint")
    assert "is not a readable checkpoint" in one_error_line(run_cli("probe", garbage))
    assert "may not change model.backbone" in one_error_line(run_cli("probe", tiny_run, "model.backbone=resnet18"))
    assert "holds no checkpoint" in one_error_line(run_cli("probe", tmp_path))
    assert "does not exist" in one_error_line(run_cli("probe", tmp_path / "missing"))
    recipe = tmp_path / "other.yaml"
    recipe.write_text(yaml.safe_dump({"model": {"backbone": "resnet18"},
                                      "data": {"root": str(tmp_path / "nothing-here")}}))
    line = one_error_line(run_cli("probe", recipe, "--checkpoint", tiny_run / run_files.FINAL_CHECKPOINT))
    assert "does not exist" in line  # the recipe's frames root, checked before any model is built


@pytest.mark.parametrize("task", ["classes", "label_free"])
def test_a_checkpoint_with_nan_weights_is_one_line(tiny_run, tmp_path, task):
    """An encoder whose weights are NaN gives NaN features: the linear readout's lstsq and
    RankMe's eigvalsh failed with a LinAlgError traceback. Nothing is cached."""
    state = torch.load(tiny_run / run_files.FINAL_CHECKPOINT, weights_only=True)
    first = next(k for k in state["model"] if k.startswith("encoder.") and k.endswith("weight"))
    state["model"][first].fill_(float("nan"))
    torch.save(state, tmp_path / "nan.pth")
    line = one_error_line(run_cli("probe", tmp_path / "nan.pth", f"probe.task={task}"))
    assert re.search(r"the trained features of (\d+) of \1 inputs hold NaN or infinity", line), line
    assert not list((tmp_path / run_files.FEATURES_DIR).glob("trained-*"))


def test_trainer_hook_row_and_random_init(tiny_run):
    state = ckpt.load_checkpoint(tiny_run / run_files.FINAL_CHECKPOINT)
    recipe = load_recipe(tiny_run / "recipe.yaml")
    method = build_method(recipe)
    method.load_state_dict(state["model"])
    method.train()
    rng_before, numpy_before = torch.get_rng_state(), np.random.get_state()[1].copy()
    setup = prepare_probe(recipe)
    row = evaluate_method(method, recipe, torch.device("cpu"), epoch=7, setup=setup)
    assert torch.equal(rng_before, torch.get_rng_state()) and method.training
    np.testing.assert_array_equal(numpy_before, np.random.get_state()[1])
    assert row.epoch == 7 and all(0 <= v <= 1 for v in (row.train_acc, row.val_acc, row.test_acc))
    assert all(v > 0 for v in (row.train_loss, row.val_loss, row.test_loss))
    # the same numbers as cltt probe's logistic row for that checkpoint
    report = json.loads((tiny_run / "probe.json").read_text()) if (tiny_run / "probe.json").is_file() else None
    if report is not None and report["level"] == "frame":
        logistic = next(s for s in report["scores"] if s["features"] == "trained" and s["probe"] == "logistic")
        assert row.test_acc == pytest.approx(logistic["test"], abs=1e-6)
    # random init: the weights a run with this seed starts from, whatever the global RNG did
    torch.manual_seed(123)
    first = random_init_method(recipe).state_dict()
    second = random_init_method(recipe).state_dict()
    assert all(torch.equal(first[k], second[k]) for k in first)
    assert not all(torch.equal(first[k], state["model"][k]) for k in first if first[k].is_floating_point())


def test_metrics_eval_rows(tmp_path):
    append_eval_row(tmp_path, EvalRow(2, 0.5, 0.75, 0.6, 0.5, None, None))
    append_eval_row(tmp_path, EvalRow(1, 0.9, 0.5, 1.0, 0.25, 1.1, 0.2))
    append_eval_row(tmp_path, EvalRow(2, 0.4, 0.8, 0.5, 0.6, None, None))  # replaces epoch 2
    lines = (tmp_path / "metrics_eval.csv").read_text().splitlines()
    assert lines == [EXACT_HEADER, "1,0.900000,0.500000,1.000000,0.250000,1.100000,0.200000,,,,,,",
                     "2,0.400000,0.800000,0.500000,0.600000,,,,,,,,"]
    keep_eval_rows_up_to(tmp_path, 1)
    assert [r["epoch"] for r in read_eval_rows(tmp_path)] == ["1"]
    # a file with only the lab's columns (written before the intervals) is read and extended
    (tmp_path / "metrics_eval.csv").write_text(LAB_COLUMNS + "\n1,0.9,0.5,1.0,0.25,1.1,0.2\n")
    append_eval_row(tmp_path, EvalRow(2, 0.4, 0.8, 0.5, 0.6, 0.7, 0.55, 0.7, 0.9, 0.4, 0.8, 0.3, 0.75))
    lines = (tmp_path / "metrics_eval.csv").read_text().splitlines()
    assert lines == [EXACT_HEADER, "1,0.9,0.5,1.0,0.25,1.1,0.2,,,,,,",
                     "2,0.400000,0.800000,0.500000,0.600000,0.700000,0.550000,0.700000,0.900000,0.400000,0.800000,"
                     "0.300000,0.750000"]
    (tmp_path / "metrics_eval.csv").write_text("epoch,acc\n1,0.5\n")
    with pytest.raises(CLTTError, match="move it aside"):
        append_eval_row(tmp_path, EvalRow(3, None, None, None, None, None, None))


@pytest.mark.parametrize("layout", ["train_val_test", "train_test", "train_val", "no_split", "two_per_class"])
def test_labels_layouts_users_have(tiny_run, tmp_path, layout):
    """Labels with and without a val or test split, without a split column, and 2 clips per class."""
    recipe = yaml.safe_load((tiny_run / "recipe.yaml").read_text())
    rows = list(csv.DictReader(open(Path(recipe["data"]["root"]) / "labels.csv")))
    by_class: dict[str, list[str]] = {}
    for row in rows:
        by_class.setdefault(row["label"], []).append(row["clip"])
    assert min(len(clips) for clips in by_class.values()) >= 2
    sides = {"train_val_test": ["train", "val", "test"], "train_test": ["train", "test"],
             "train_val": ["train", "val"], "two_per_class": ["train", "test"]}
    lines = ["clip,label" if layout == "no_split" else "clip,label,split"]
    for label, clips in sorted(by_class.items()):
        for i, clip in enumerate(clips[:2] if layout == "two_per_class" else clips):
            lines.append(f"{clip},{label}" if layout == "no_split" else f"{clip},{label},{sides[layout][i % len(sides[layout])]}")
    labels = tmp_path / "labels.csv"
    labels.write_text("\n".join(lines) + "\n")
    out = tmp_path / "report.json"
    result = run_cli("probe", tiny_run, f"probe.labels={labels}", "--out", out)
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output
    report = json.loads(out.read_text())
    empty = {"train_test": "val", "two_per_class": "val", "train_val": "test"}.get(layout)
    if layout == "two_per_class":  # 2 clips per class: 1 in test; the figures say how uncertain they are
        assert "95% interval" in result.stdout and " [" in result.stdout
        assert "warning: the test split has 3 clips for 3 classes and the fewest" in result.stderr
        assert "(under 5 a class)" in result.stderr and "wider than +-10 points" in result.stderr
    for score in report["scores"]:
        retrieval = score["probe"] in ("recall@1", "recall@5", "mAP")  # queries come from held-out clips only
        for split in ("train", "val", "test"):
            assert (score[split] is None) == (split == empty or (retrieval and split == "train")), (score, split)
            assert (score["intervals"][split] is None) == (score[split] is None)
