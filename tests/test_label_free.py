"""The label-free probe (issue 21): hand cases of RankMe, alignment/uniformity, the collapse
spread and temporal retrieval; its columns in metrics_eval.csv and TensorBoard during training;
the neighbour viewer and the projector export."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from cltt.data.build import open_frames
from cltt.eval.label_free import (
    alignment_values,
    held_out_clips,
    held_out_frames,
    label_free_report,
    measure,
    own_windows,
    rankme,
    rankme_interval,
    retrieval_targets,
    spread_interval,
    temporal_retrieval,
    uniformity,
    uniformity_values,
)
from cltt.eval.metrics_eval import append_eval_values, read_eval_rows
from cltt.recipe import load_recipe


def test_rankme_of_a_rank_k_matrix_is_about_k():
    rng = np.random.default_rng(0)
    for k in (1, 3, 8):
        # 40 x 16 with k equal singular values: orthonormal columns times a k-dim orthonormal basis
        left = np.linalg.qr(rng.normal(size=(40, k)))[0]
        right = np.linalg.qr(rng.normal(size=(16, k)))[0]
        assert rankme(left @ right.T) == pytest.approx(k, rel=1e-4)
    # singular values 3 and 1: p = (0.75, 0.25), exp(entropy) = exp(-(.75 ln .75 + .25 ln .25))
    assert rankme(np.diag([3.0, 1.0])) == pytest.approx(math.exp(-(0.75 * math.log(0.75) + 0.25 * math.log(0.25))),
                                                        rel=1e-5)


def test_rankme_from_clip_grams_matches_the_svd_and_its_interval_holds_it():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(60, 6)) * np.array([5, 4, 3, 1, 0.5, 0.1])
    clips = np.repeat(np.arange(6), 10)
    value, (low, high) = rankme_interval(x, clips, rounds=50, seed=0)
    assert value == pytest.approx(rankme(x), rel=1e-5)
    assert low <= value <= high and 1 < low and high < 6


def test_uniformity_of_a_point_mass_is_zero_and_of_antipodes_is_minus_eight():
    assert uniformity(np.tile([[0.0, 2.0, 0.0]], (50, 1))) == pytest.approx(0.0, abs=1e-9)
    # two antipodal points: pairs within a point give exp(0) = 1, across exp(-2 * 4); 2 points x 2 copies:
    # 6 pairs, 2 within and 4 across -> log((2 + 4 e^-8) / 6)
    two = np.array([[1.0, 0.0], [1.0, 0.0], [-1.0, 0.0], [-1.0, 0.0]])
    assert uniformity(two) == pytest.approx(math.log((2 + 4 * math.exp(-8)) / 6), rel=1e-9)


def test_every_clip_owns_its_share_of_the_uniformity_pairs():
    """All pairs (12 clips of 20 frames, 28,680 pairs under probe.label_free.pairs): each pair
    belongs to the clip of one of its frames, drawn at random. With i < j the first clip owned
    4590 pairs and the last 190, so the clip bootstrap weighed early clips 24 times as much and
    the interval hung on the clips' order; the value itself is the mean over every pair."""
    rng = np.random.default_rng(0)
    clips = np.repeat(np.arange(12), 20)
    x = rng.normal(size=(12, 8))[clips] + rng.normal(size=(240, 8))
    values, owners = uniformity_values(x, clips, 100_000, seed=0)
    assert len(values) == 240 * 239 // 2
    per_clip = np.bincount(owners)
    assert per_clip.min() > 0.9 * per_clip.mean() and per_clip.max() < 1.1 * per_clip.mean()
    assert float(np.log(values.mean())) == pytest.approx(uniformity(x), rel=1e-12)


def test_alignment_pairs_only_consecutive_frames_of_one_clip():
    # clip 0: (1,0) -> (0,1): distance^2 = 2; clip 1 is still: 0; no pair across the clip boundary
    x = np.array([[1.0, 0.0], [0.0, 3.0], [5.0, 0.0], [2.0, 0.0]])
    values, clips = alignment_values(x, np.array([0, 0, 1, 1]))
    assert values.tolist() == pytest.approx([2.0, 0.0]) and clips.tolist() == [0, 1]


def test_spread_of_a_collapsed_encoder_is_zero():
    value, (low, high) = spread_interval(np.ones((20, 4)), np.repeat(np.arange(4), 5), rounds=100, seed=0)
    assert value == pytest.approx(0.0, abs=1e-6) and high == pytest.approx(0.0, abs=1e-6)


def test_spread_interval_of_few_separated_clips_holds_the_point():
    # 8 clips, each a tight cluster in its own direction: a resample that repeats a clip is less
    # spread, and only 8!/8^8 = 0.2% repeat none, so the unshifted 95% interval was [0.714, 0.916]
    # around a point of 0.923 (on 7 held-out clips of real video every source's point sat near the top)
    rng = np.random.default_rng(0)
    x = np.repeat(rng.normal(size=(8, 16)), 10, axis=0) + 0.01 * rng.normal(size=(80, 16))
    value, (low, high) = spread_interval(x, np.repeat(np.arange(8), 10), rounds=1000, seed=0)
    assert low < value < high
    assert high - value > 0.02 and value - low > 0.02  # the point inside, not on an edge


def test_targets_and_own_windows_follow_the_times():
    clips = np.array([0, 0, 0, 0, 1, 1])
    times = np.array([0.0, 0.5, 1.0, 1.5, 0.0, 0.5])
    # gap 1 s: frame 0 -> frame 2 (t=1.0), frame 1 -> 3, frames 2 and 3 have nothing 1 s later; clip 1 neither
    assert retrieval_targets(clips, times, 1.0).tolist() == [2, 3, -1, -1, -1, -1]
    lo, hi = own_windows(clips, times, 1.0)  # |t' - t| < 0.5: the frame itself only
    assert lo.tolist() == [0, 1, 2, 3, 4, 5] and hi.tolist() == [1, 2, 3, 4, 5, 6]
    lo, hi = own_windows(clips, times, 2.0)  # |t' - t| < 1: the neighbours at 0.5 s too
    assert lo.tolist() == [0, 0, 1, 2, 4, 4] and hi.tolist() == [2, 3, 4, 4, 6, 6]


@pytest.mark.parametrize("times", [np.arange(16) * 0.1, np.arange(16) / 10], ids=["i*0.1", "i/10"])
def test_a_frame_exactly_half_a_gap_away_is_treated_alike_for_every_query(times):
    # 10 fps, gaps 0.2 and 1.0 (g/2 a whole number of frame intervals): the window |t' - t| < g/2
    # holds 1 and 9 frames wherever it fits in the clip; before TIME_EPS, 0.3 - 0.2 > 0.1 put the
    # frame at 0.3 outside and the frame at 0.1 inside the window of t = 0.2 (6 of 16 queries wrong)
    clips = np.zeros(16, dtype=int)
    for gap, half in ((0.2, 0), (1.0, 4)):
        lo, hi = own_windows(clips, times, gap)
        index = np.arange(16)
        assert lo.tolist() == np.maximum(index - half, 0).tolist()
        assert hi.tolist() == np.minimum(index + half + 1, 16).tolist()
    # the target is the frame g later, the same for every query (0.3 + 0.2 is not 0.5 in float64)
    assert retrieval_targets(clips, times, 0.2).tolist() == [i + 2 if i + 2 < 16 else -1 for i in range(16)]
    assert retrieval_targets(clips, times, 1.0).tolist() == [i + 10 if i + 10 < 16 else -1 for i in range(16)]
    # a gap a hair either side of 0.2 s gives the same windows and targets: no jump at g/2 = a frame
    for gap in (0.1999999, 0.2000001):
        assert [a.tolist() for a in own_windows(clips, times, gap)] == [a.tolist() for a in own_windows(clips, times, 0.2)]
        assert retrieval_targets(clips, times, gap).tolist() == retrieval_targets(clips, times, 0.2).tolist()


def test_retrieval_is_continuous_in_the_gap_at_half_a_gap_a_whole_frame():
    # 3 clips of 16 frames at 10 fps, features turning slowly: mAP at 0.1999999, 0.2, 0.2000001 s agrees
    angles = np.arange(16) * 0.3
    x = np.concatenate([np.concatenate([np.tile(np.eye(3)[c], (16, 1)),
                                        np.stack([np.cos(angles + c), np.sin(angles + c)], 1)], 1) for c in range(3)])
    clips, times = np.repeat(np.arange(3), 16), np.tile(np.arange(16) * 0.1, 3)
    found = temporal_retrieval(x, clips, times, [0.1999999, 0.2, 0.2000001], [1])
    ranks = [found[g]["rank"].tolist() for g in (0.1999999, 0.2, 0.2000001)]
    assert ranks[0] == ranks[1] == ranks[2]


def test_retrieval_of_a_clip_that_does_not_change():
    # clip 0: 10 identical frames, 1 s apart; clips 1 and 2: frames in other directions.
    rng = np.random.default_rng(0)
    still = np.tile([[1.0, 0.0, 0.0, 0.0]], (10, 1))
    others = np.concatenate([np.tile([[0.0, 1.0, 0.0, 0.0]], (10, 1)), rng.normal(size=(10, 4)) * [0, 0, 1, 1]])
    x = np.concatenate([still, others])
    clips = np.repeat([0, 1, 2], 10)
    times = np.tile(np.arange(10.0), 3)
    found = temporal_retrieval(x, clips, times, [1.0, 3.0], [1, 5, 9], queries=np.arange(10), block=4)
    # gap 1: queries 0..8 have a target; the window |t'-t| < 0.5 leaves out the query alone, so the
    # target ties with the clip's 8 other frames: rank 9 (ties count against the query)
    one = found[1.0]
    assert one["query"].tolist() == list(range(9))
    assert one["rank"].tolist() == [9] * 9
    assert one["recall@1"].tolist() == [0] * 9 and one["recall@9"].tolist() == [1] * 9
    assert one["AP"] == pytest.approx(np.full(9, 1 / 9))
    # gap 3: window |t'-t| < 1.5 leaves out 3 frames (2 at the clip's ends), queries 0..6
    three = found[3.0]
    assert three["query"].tolist() == list(range(7))
    assert three["rank"].tolist() == [8, 7, 7, 7, 7, 7, 7]


def test_retrieval_of_clips_that_turn_slowly_and_of_a_collapsed_encoder():
    # clip c: 3 * e_c plus a unit vector turning 0.1 rad a second in dims 3-4; the frames 1 s before and
    # after a query are its nearest candidates and equally near, so the target ranks 2 (1 at t = 0)
    angles = np.arange(12) * 0.1
    turn = np.stack([np.cos(angles), np.sin(angles)], 1)
    x = np.concatenate([np.concatenate([np.tile(3 * np.eye(3)[c], (12, 1)), turn], 1) for c in range(3)])
    clips = np.repeat(np.arange(3), 12)
    times = np.tile(np.arange(12.0), 3)
    found = temporal_retrieval(x, clips, times, [1.0], [1, 2])[1.0]
    assert found["rank"].tolist() == ([1] + [2] * 10) * 3
    assert found["recall@2"].mean() == 1.0 and found["recall@1"].mean() == pytest.approx(3 / 33)
    collapsed = temporal_retrieval(np.ones_like(x), clips, times, [1.0], [1])[1.0]
    assert collapsed["rank"].tolist() == [35] * 33  # all 35 candidates tie: last place


def test_standardised_features_have_zero_mean_and_unit_std_a_constant_dimension_stays_zero():
    from cltt.eval.label_free import standardised

    z = standardised(np.array([[0.0, 5.0], [2.0, 5.0], [4.0, 5.0]]))
    assert z == pytest.approx(np.array([[-1.2247449, 0.0], [0.0, 0.0], [1.2247449, 0.0]]))  # std of 0, 2, 4 = 1.633


def test_a_gap_shorter_than_a_frame_has_no_target():
    # frames 1 s apart, gap 0.2 s: the frame nearest t + 0.2 is the query itself, inside its own window
    assert retrieval_targets(np.zeros(3, int), np.arange(3.0), 0.2).tolist() == [-1, -1, -1]


def test_the_report_says_how_nominal_times_were_made(frames_root):
    """Frames without timestamps have nominal times at 30 fps (cltt.data.timestamps): the note
    said they were frame numbers, one frame a second, so that the gaps were in frames, beside a
    gap note measuring the same clips in seconds at 30 fps."""
    store = open_frames(load_recipe(None, [f"data.root={frames_root}"]).data)
    held = held_out_frames(store, 1.0, seed=0)
    assert not held.timed and held.times[1] == pytest.approx(1 / 30)
    recipe = load_recipe(None, [f"data.root={frames_root}", "probe.task=label_free", "probe.bootstrap_rounds=100"])
    features = np.random.default_rng(0).normal(size=(len(held.clips), 4))
    results = {"trained": measure(features, held.clips, held.times, recipe.probe.label_free, 100, 0)}
    notes = " ".join(label_free_report(recipe, Path("c.pth"), None, results, held, {}).notes)
    assert "3 held-out clip(s) have no recorded timestamps: their frame times are nominal (nominal 30 fps (default))" \
        in notes
    assert "frame numbers" not in notes and "the longest clip spans 0.70 s" in notes


def test_held_out_clips_are_seeded_and_at_least_two():
    assert held_out_clips(10, 0.2, 0).tolist() == held_out_clips(10, 0.2, 0).tolist()
    assert len(held_out_clips(10, 0.01, 0)) == 2 and held_out_clips(5, 1.0, 3).tolist() == [0, 1, 2, 3, 4]


def test_a_tasks_own_columns_join_the_lab_rows_of_metrics_eval(tmp_path):
    append_eval_values(tmp_path, 2, {"lf_rankme": 3.5, "lf_rankme_low": None})
    append_eval_values(tmp_path, 1, {"lf_rankme": 2.0})
    header = (tmp_path / "metrics_eval.csv").read_text().splitlines()[0].split(",")
    assert header[:7] == ["epoch", "train_loss", "train_acc", "val_loss", "val_acc", "test_loss", "test_acc"]
    assert header[-2:] == ["lf_rankme", "lf_rankme_low"]
    rows = read_eval_rows(tmp_path)
    assert [(r["epoch"], r["lf_rankme"], r["lf_rankme_low"], r["test_acc"]) for r in rows] == \
        [("1", "2.000000", "", ""), ("2", "3.500000", "", "")]


# --------------------------------------------------------------------------- a trained run, end to end


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """The task's smallest case trained for one epoch with probe.every=1 and TensorBoard on."""
    import yaml

    from cltt.cli import main
    from cltt.eval.tasks import registered_tasks
    from tests.conftest import invoke_in_process

    root = tmp_path_factory.mktemp("label_free")
    case = registered_tasks()["label_free"].cls.smallest_case
    tree = {**case, "data": {**case["data"], "root": str(root / "data")},
            "train": {**case["train"], "out_dir": str(root / "runs"), "name": "lf"}, "log": {"tensorboard": True}}
    (root / "lf.yaml").write_text(yaml.safe_dump(tree))
    trained = invoke_in_process(main, ["train", root / "lf.yaml"], cwd=root)
    assert trained.exit_code == 0, trained.output
    return root / "runs" / "lf"


def test_training_writes_the_label_free_columns_and_tensorboard_shows_them(run_dir):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from cltt.engine.monitor import TENSORBOARD_DIR

    rows = read_eval_rows(run_dir)
    assert [r["epoch"] for r in rows] == ["1"]
    rank = float(rows[0]["lf_rankme"])
    assert 1 <= rank <= 64 and float(rows[0]["lf_rankme_low"]) <= rank <= float(rows[0]["lf_rankme_high"])
    assert rows[0]["test_acc"] == ""  # the lab's columns stay empty: there are no labels
    events = EventAccumulator(str(run_dir / TENSORBOARD_DIR), size_guidance={"scalars": 0})
    events.Reload()
    tags = events.Tags()["scalars"]
    for name in ("rankme", "alignment", "uniformity", "spread", "mAP_0.2s", "recall@5_0.5s"):
        assert f"label_free/{name}" in tags
    (found,) = events.Scalars("label_free/rankme")
    assert found.value == pytest.approx(rank, rel=1e-5)


def test_probe_reports_trained_random_init_and_pixels_with_intervals(run_dir):
    import json

    from cltt.cli import main
    from tests.conftest import invoke_in_process

    probed = invoke_in_process(main, ["probe", run_dir], cwd=run_dir.parent)
    assert probed.exit_code == 0, probed.output
    report = json.loads((run_dir / "probe_label_free.json").read_text())
    assert report["columns"] == ["measure", "trained", "trained_95", "random_init", "random_init_95", "pixels",
                                 "pixels_95"]
    assert set(report["metrics"]) == {"trained", "random_init", "pixels"}
    for source, values in report["metrics"].items():
        assert values["uniformity"] <= 0 and 0 <= values["alignment"] <= 4
        assert values["mAP_0.2s_low"] <= values["mAP_0.2s"] <= values["mAP_0.2s_high"]
    assert report["eval_values"]["lf_rankme"] == report["metrics"]["trained"]["rankme"]


def test_a_probe_level_the_task_does_not_use_is_noted(run_dir, tmp_path):
    """probe.level=clip (a clip method's recipes set it) passed label_free without a word."""
    from cltt.cli import main
    from tests.conftest import invoke_in_process

    probed = invoke_in_process(main, ["probe", run_dir, "probe.level=clip", "--out", tmp_path / "lf.json"], cwd=tmp_path)
    assert probed.exit_code == 0, probed.output
    assert "probe.level=clip is not used by probe.task=label_free" in " ".join(probed.output.split())


def test_neighbour_viewer_draws_queries_and_marks_same_clip_hits(run_dir, tmp_path):
    import cv2

    from cltt.cli import main
    from cltt.eval.neighbours import SAME_CLIP
    from tests.conftest import invoke_in_process

    out = tmp_path / "neighbours.png"
    drawn = invoke_in_process(main, ["visualize", run_dir, "--mode", "neighbours", "--queries", "3", "--neighbours", "4",
                                     "--out", out], cwd=tmp_path)
    assert drawn.exit_code == 0, drawn.output
    image = cv2.cvtColor(cv2.imread(str(out)), cv2.COLOR_BGR2RGB)
    assert image.shape[0] > 3 * 96 and image.shape[1] > 9 * 96  # 3 rows; query + 2 x 4 neighbours
    # 4 held-out clips of 8 frames 0.1 s apart, the own window |t' - t| < 0.1 s (the first gap, 0.2 s):
    # the frames beside the query are nearly the same picture, so some neighbours are of its clip, in red
    assert (image == SAME_CLIP).all(axis=2).sum() > 100


def test_top_neighbours_leave_out_the_own_window_and_come_nearest_first():
    from cltt.eval.neighbours import top_neighbours

    x = np.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.8, 0.2], [1.0, 0.05]])
    clips = np.array([0, 0, 0, 1, 1])
    times = np.array([0.0, 1.0, 2.0, 0.0, 1.0])
    index, sims = top_neighbours(x, clips, times, np.array([0]), k=3, window=5.0)  # |t' - t| < 2.5: frames 0-2
    assert index.tolist() == [[4, 3, -1]] and sims[0, 0] > sims[0, 1]  # two candidates for k = 3
    index, _ = top_neighbours(x, clips, times, np.array([0]), k=3, window=3.0)  # |t' - t| < 1.5: frames 0, 1
    assert index.tolist() == [[4, 3, 2]]
    index, _ = top_neighbours(x, clips, times, np.array([0]), k=2, window=1.0)  # only itself left out
    assert index.tolist() == [[4, 1]]


def test_projector_files_parse_as_tensorboard_config(run_dir, tmp_path):
    from google.protobuf import text_format
    from tensorboard.plugins.projector import ProjectorConfig

    from cltt.cli import main
    from tests.conftest import invoke_in_process

    exported = invoke_in_process(main, ["export", run_dir, "--embeddings", run_dir.parent.parent / "data", "--projector",
                                        "--out", tmp_path], cwd=tmp_path)
    assert exported.exit_code == 0, exported.output
    (folder,) = tmp_path.glob("*_projector")
    config = text_format.Parse((folder / "projector_config.pbtxt").read_text(), ProjectorConfig())
    (embedding,) = config.embeddings
    tensors = np.loadtxt(folder / embedding.tensor_path, delimiter="\t")
    exported = np.load(next(tmp_path.glob("*.npy")))  # [64 frames, the representation's D]
    assert tensors.shape == tuple(embedding.tensor_shape) == exported.shape and exported.shape[0] == 64
    assert tensors == pytest.approx(exported, rel=1e-5, abs=1e-6)
    metadata = (folder / embedding.metadata_path).read_text().splitlines()
    assert metadata[0] == "clip\tframe\ttime" and len(metadata) == 65
    sprite = cv2_shape(folder / embedding.sprite.image_path)
    assert sprite == (8 * 64, 8 * 64) and list(embedding.sprite.single_image_dim) == [64, 64]


def cv2_shape(path) -> tuple[int, int]:
    import cv2

    return cv2.imread(str(path)).shape[:2]


def test_projector_metadata_keeps_one_row_per_frame_whatever_the_clip_names(tmp_path):
    """Found by the hostile-user pass: a tab or a line break in a clip folder's name split its
    metadata rows, and TensorBoard could no longer match them to tensors.tsv."""
    from cltt.data.stores import open_store
    from cltt.export.projector import write_projector
    from tests.conftest import write_clip

    root = tmp_path / "frames"
    for clip in ("a\tb", "c\nd", "plain"):
        write_clip(root, clip, 4, size=(32, 32))
    store = open_store(root, tmp_path / "cache")
    write_projector(np.zeros((store.num_frames, 3), np.float32), store, tmp_path / "proj", "embeddings")
    rows = (tmp_path / "proj" / "metadata.tsv").read_text().split("\n")[:-1]
    assert len(rows) == 1 + store.num_frames and all(len(row.split("\t")) == 3 for row in rows)
    assert sorted({row.split("\t")[0] for row in rows[1:]}) == ["a\\tb", "c\\nd", "plain"]


def test_neighbour_captions_tell_the_frames_of_a_fast_clip_apart():
    from cltt.eval.neighbours import time_decimals

    clips = np.repeat([0, 1], 5)
    ten_fps = np.arange(5) / 10 + 5.48
    # a 25 fps clip as cltt extract writes it: 6.56 s and 6.60 s both printed "6.6s" with one decimal
    assert time_decimals(clips, np.r_[ten_fps, 6.48 + np.arange(5) / 25]) == 2
    assert time_decimals(clips, np.r_[ten_fps, np.arange(5) / 10]) == 1
    assert time_decimals(clips, np.r_[ten_fps, np.arange(5) / 1000]) == 3  # no fewer decimals tells them apart
    # frames of different clips may print alike: only consecutive frames of one clip count
    assert time_decimals(np.array([0, 1]), np.array([1.0, 1.0])) == 1


def test_gaps_that_print_alike_are_refused_in_one_line():
    from cltt.errors import RecipeError

    # 0.2 and 0.2000001 both name the column recall@1_0.2s: one gap's figures would overwrite the other's
    with pytest.raises(RecipeError, match=r"gaps \[0.2, 0.2000001\] that print alike \(0.2s\)") as err:
        load_recipe(None, ["probe.task=label_free", "probe.label_free.gaps=[0.2,0.2000001]"])
    assert "\n" not in str(err.value)
    assert load_recipe(None, ["probe.task=label_free", "probe.label_free.gaps=[0.2,0.25]"]).probe.label_free.gaps == [0.2, 0.25]


@pytest.mark.parametrize("rounds", [0, 1])
def test_too_few_rankme_rounds_are_refused(rounds):
    from cltt.errors import RecipeError

    # 1 resample gave RankMe a zero-width interval (7.444 [7.444–7.444]), 0 none, silently
    with pytest.raises(RecipeError, match=r"rankme_rounds' must be >= 2"):
        load_recipe(None, ["probe.task=label_free", f"probe.label_free.rankme_rounds={rounds}"])


def test_a_missing_figure_or_interval_and_a_recall_that_cannot_fail_get_a_note():
    from cltt.eval.label_free import HeldOut, missing_notes
    from cltt.recipe.probes.tasks.label_free import LabelFreeConfig

    rng = np.random.default_rng(0)
    clips, times = np.repeat(np.arange(3), 8), np.tile(np.arange(8) * 0.1, 3)  # 24 frames
    held = HeldOut(store=None, frames=None, clips=clips, times=times, timed=True)
    config = LabelFreeConfig(gaps=[0.2], recall_at=[1, 100], queries=1, pairs=1)
    found = measure(rng.normal(size=(24, 4)), clips, times, config, rounds=100, seed=0)
    assert found["uniformity"][0] is not None and found["uniformity"][1] is None  # 1 pair: 1 clip
    notes = missing_notes({"trained": found}, held, config)
    assert any(n.startswith("uniformity, recall@1_0.2s, recall@100_0.2s, mAP_0.2s: no 95% interval (n/a)")
               and "probe.label_free.pairs (now 1) or probe.label_free.queries (now 1)" in n for n in notes)
    # every frame with a target has 23 candidates (24 less itself) <= 100: found whatever the features
    assert any(n.startswith("recall@100_0.2s: 18 of the 18 frames") for n in notes)
    assert not any(n.startswith("recall@1_") for n in notes)
    # clips of one frame each: no alignment pair, and no frame 0.2 s later
    one = np.arange(3)
    lonely = measure(rng.normal(size=(3, 4)), one, np.zeros(3), LabelFreeConfig(gaps=[0.2]), rounds=100, seed=0)
    notes = missing_notes({"trained": lonely}, HeldOut(None, None, one, np.zeros(3), True), LabelFreeConfig(gaps=[0.2]))
    assert any(n.startswith("alignment: no held-out clip has two frames") for n in notes)


def test_the_training_probe_says_once_which_gaps_no_frame_reaches(run_dir, tmp_path):
    import torch

    from cltt.eval.label_free import LabelFreeDuringTraining
    from cltt.eval.probe import random_init_method

    # clips of 8 frames 0.1 s apart: gaps 5 s and 30 s have no target, their lf_ columns stay empty
    recipe = load_recipe(run_dir / "recipe.yaml", ["probe.label_free.gaps=[0.2,5,30]"])
    probe = LabelFreeDuringTraining(recipe, tmp_path)
    method = random_init_method(recipe)
    first, _ = probe(method, torch.device("cpu"), 1)
    assert "note: gaps 5s, 30s: no held-out frame has a frame that much later in its clip (the longest clip " \
           "spans 0.70 s)" in first
    second, _ = probe(method, torch.device("cpu"), 2)
    assert "note" not in second and second.startswith("rankme ")
    assert read_eval_rows(tmp_path)[0]["lf_mAP_5s"] == ""


def test_neighbour_viewer_notes_fewer_rows_than_asked_and_a_window_over_the_whole_clip(run_dir, tmp_path):
    from cltt.cli import main
    from tests.conftest import invoke_in_process

    # 4 held-out clips of 8 frames 0.1 s apart; first gap 2 s: every query's window |t' - t| < 1 s is its clip
    drawn = invoke_in_process(main, ["visualize", run_dir, "--mode", "neighbours", "--queries", "6", "--neighbours", "2",
                                     "--out", tmp_path / "n.png", "probe.label_free.gaps=[2.0]"], cwd=tmp_path)
    assert drawn.exit_code == 0, drawn.output
    assert "4 rows, not --queries 6: one query per held-out clip, and there are 4" in drawn.output
    assert "holds the whole clip of 4 of the 4 queries" in drawn.output
