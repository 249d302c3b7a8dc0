"""Probes that hold up at small sizes: clip-bootstrap intervals, the ridge chosen on val,
retrieval metrics, and the warnings a small test split earns."""

from __future__ import annotations

import numpy as np

from cltt.eval.bootstrap import bootstrap_accuracies, clip_interval
from cltt.eval.linear import select_ridge
from cltt.eval.probe import small_sample_warnings
from cltt.eval.retrieval import retrieval_scores


def test_the_bootstrap_resamples_clips_not_frames():
    """Clip A: 3 frames, all right; clip B: 1 frame, wrong. Drawing 2 clips with replacement
    gives AA (acc 1) with p 1/4, AB or BA (3/4) with p 1/2, BB (0) with p 1/4. Resampling the 4
    frames instead would give accuracies in quarters from a binomial(4, 3/4): 1 with p 0.32."""
    correct = np.array([1, 1, 1, 0])
    clips = np.array(["a", "a", "a", "b"])
    values = bootstrap_accuracies(correct, clips, rounds=20000, seed=0)
    found, counts = np.unique(values, return_counts=True)
    np.testing.assert_allclose(found, [0.0, 0.75, 1.0])
    np.testing.assert_allclose(counts / counts.sum(), [0.25, 0.5, 0.25], atol=0.01)
    assert clip_interval(correct, clips, rounds=20000) == (0.0, 1.0)
    # three clips of one frame each, right, right, wrong: acc* = (number of "right" draws) / 3,
    # binomial(3, 2/3): P(0) = 1/27 > 2.5%, so the interval runs from 0 to 1
    assert clip_interval([1, 1, 0], ["x", "y", "z"], rounds=20000) == (0.0, 1.0)
    # the same draws for the same seed; None without samples
    np.testing.assert_array_equal(bootstrap_accuracies(correct, clips, 50, seed=3),
                                  bootstrap_accuracies(correct, clips, 50, seed=3))
    assert clip_interval([], []) is None


def test_one_clip_gives_no_interval_rather_than_a_zero_width_one():
    """Every resample of one clip is that clip, so the percentiles would be [acc, acc]: certainty
    from the least evidence. One clip gives None (n/a); two clips already give the bootstrap's
    interval, unchanged (the hand-worked case above)."""
    assert clip_interval([1, 1, 0, 1], ["a", "a", "a", "a"]) is None
    assert clip_interval([1.0], [7]) is None
    assert clip_interval([1, 1, 1, 0], ["a", "a", "a", "b"], rounds=20000) == (0.0, 1.0)


def test_the_probe_plot_of_one_test_clip_draws_no_error_bars_and_says_why(tmp_path):
    import json

    from cltt.visualize import plot_probe, read_probe_scores

    report = {"format": "cltt-probe/1", "checkpoint": "runs/x/checkpoint_final.pth", "unit": "clips",
              "counts": {"test": {"clips": 1, "samples": 8}},
              "scores": [{"features": source, "probe": "logistic", "test": test, "intervals": {"test": None}}
                         for source, test in (("trained", 0.75), ("pixels", 0.5))]}
    (tmp_path / "probe.json").write_text(json.dumps(report))
    _, _, scores, title = read_probe_scores(tmp_path)
    assert title == "checkpoint_final.pth: test accuracy, no 95% interval (n/a: 1 clip)"
    assert np.isnan(scores["trained", "logistic"][1:]).all()  # no [75, 75] bar
    assert plot_probe(tmp_path, tmp_path / "probe.png").stat().st_size > 0  # NaN error bars: none drawn


def test_the_interval_narrows_with_more_clips_and_covers_the_accuracy():
    rng = np.random.default_rng(0)
    widths = []
    for clips in (5, 20, 80):
        clip_ids = np.repeat(np.arange(clips), 10)
        correct = rng.random(clips * 10) < np.repeat(rng.uniform(0.4, 1.0, clips), 10)
        low, high = clip_interval(correct, clip_ids)
        assert low <= correct.mean() <= high
        widths.append(high - low)
    assert widths[0] > widths[1] > widths[2]


def test_the_ridge_chosen_on_val_beats_ridge_0_with_more_features_than_samples():
    rng = np.random.default_rng(0)
    centres = rng.normal(0, 1, (4, 8))

    def draw(n: int, features: int = 60):
        y = rng.integers(0, 4, n)
        signal = centres[y] + rng.normal(0, 1, (n, 8))
        return np.concatenate([signal, rng.normal(0, 1, (n, features - 8))], axis=1), y

    (x_train, y_train), (x_val, y_val), (x_test, y_test) = draw(48), draw(100), draw(400)
    assert x_train.shape[1] > len(x_train)
    grid = [0.0, 1.0, 10.0, 100.0, 1000.0, 10000.0]
    chosen = select_ridge(x_train, y_train, x_val, y_val, grid, 4)
    plain = select_ridge(x_train, y_train, x_val, y_val, [0.0], 4)
    assert chosen.ridge > 0 and chosen.selected_by == "val" and set(chosen.scores_by_ridge) == set(grid)
    accuracy = {name: (choice.readout.predict(x_test) == y_test).mean() for name, choice in
                (("chosen", chosen), ("ridge 0", plain))}
    assert accuracy["chosen"] > accuracy["ridge 0"] + 0.1, accuracy
    # without val, grouped folds on train pick it
    folded = select_ridge(x_train, y_train, x_val[:0], y_val[:0], grid, 4, train_groups=np.arange(48) // 4)
    assert folded.selected_by == "grouped 3-fold on train" and folded.ridge > 0


def test_retrieval_recall_and_average_precision_by_hand():
    train = np.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9]])
    labels = np.array([0, 1, 1, 0])
    queries = np.array([[1.0, 0.05], [0.0, 1.0]])
    scores = retrieval_scores(train, labels, queries, np.array([0, 0]))
    # query 1 ranks train 0 (label 0), 1 (1), 3 (0), 2 (1): hits at ranks 1 and 3 -> AP = (1 + 2/3) / 2
    # query 2 ranks train 2 (1), 3 (0), 1 (1), 0 (0): hits at ranks 2 and 4 -> AP = (1/2 + 2/4) / 2
    np.testing.assert_allclose(scores["recall@1"], [1.0, 0.0])
    np.testing.assert_allclose(scores["recall@5"], [1.0, 1.0])
    np.testing.assert_allclose(scores["mAP"], [(1 + 2 / 3) / 2, (1 / 2 + 2 / 4) / 2])


def test_the_few_test_units_warning_counts_empty_classes_in_words():
    """One class without a test clip is '1 class has none' ('1 classes have none' before); two are 'classes'."""
    splits = np.array(["train", "train", "train", "test", "test"])
    one = small_sample_warnings(np.array([0, 1, 2, 0, 1]), splits, ["a", "b", "c"], [])
    assert "and 1 class has none (under 5" in one[0], one
    two = small_sample_warnings(np.array([0, 1, 2, 0, 0]), splits, ["a", "b", "c"], [])
    assert "and 2 classes have none (under 5" in two[0], two
    # one test unit is "1 clip" ("1 clips" before), whatever the unit
    single = np.array(["train", "train", "train", "train", "test"])
    for unit, word in (("clips", "clip"), ("images", "image"), ("groups", "group")):
        notes = small_sample_warnings(np.array([0, 1, 2, 0, 1]), single, ["a", "b", "c"], [], unit=unit)
        assert f"the test split has 1 {word} for 3 classes" in notes[0], notes
