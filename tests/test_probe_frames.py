"""probe.task=frames (issue 23 item 3): the readouts on frames labelled by time (playroom's
segments.csv: the toy nearest the image centre per frame), splits by clip, intervals over clips;
every bad input is one line."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from cltt.cli import main
from cltt.eval.segments import FrameSegments
from cltt.eval.tasks.frames import frame_targets
from tests.conftest import invoke_in_process
from tests.helpers.commands import one_line_error
from tests.helpers.training import tiny_run


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    """One epoch of tiny_cnn at 32 px on 12 playroom clips of 8 frames (2 kinds of toy)."""
    return tiny_run(tmp_path_factory.mktemp("run"), "playroom", max_objects=2)


def probe(run_dir: Path, *overrides: str):
    return invoke_in_process(main, ["probe", str(run_dir), "probe.task=frames", "probe.bootstrap_rounds=200",
                                    "probe.logistic_c=[1.0]", "probe.ridge=[1.0]", "probe.knn_k=3", *overrides],
                             cwd=run_dir.parent)


def probed(run_dir: Path, *overrides: str) -> dict:
    result = probe(run_dir, *overrides)
    assert result.exit_code == 0, result.output
    report = json.loads((run_dir / "probe_frames.json").read_text())
    assert report["level"] == "frame" and report["unit"] == "clips" and report["eval_row"] is None
    assert {s["features"] for s in report["scores"]} == {"trained", "random_init", "pixels"}
    for score in report["scores"]:
        low, high = score["intervals"]["test"]
        assert 0 <= low <= score["test"] <= high <= 1, score
    return report


def rows_of(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def write_csv(path: Path, header: list[str], rows: list[list]) -> Path:
    with open(path, "w", newline="") as handle:
        csv.writer(handle).writerows([header, *rows])
    return path


def room_of(run_dir: Path) -> Path:
    return run_dir.parent.parent / "data"


def test_frame_targets_by_hand():
    """Clips 0, 1, 2 of 3, 2, 2 frames; the segments list clips 0 and 2 (clip 1: no labels) with
    names ball, car, cup, of which car labels no frame: it drops out and cup becomes class 1."""
    segments = FrameSegments("s.csv", ["ball", "car", "cup"], ["a", "c"], np.array([0, 2]),
                             [np.array([0, 0, -1]), np.array([2, 0])], 3, [])
    targets, classes = frame_targets(np.array([0, 1, 2]), np.array([3, 2, 2]), segments)
    assert targets.tolist() == [0, 0, -1, -1, -1, 1, 0] and classes == ["ball", "cup"]
    targets, classes = frame_targets(np.array([1]), np.array([2]), segments)  # a clip the segments lack
    assert targets.tolist() == [-1, -1] and classes == []


def test_playroom_frames_are_probed_with_the_clip_splits_of_labels_csv(run_dir):
    report = probed(run_dir)
    room = room_of(run_dir)
    centre = rows_of(room / "centre.csv")
    split_of = {row["clip"]: row["split"] for row in rows_of(room / "labels.csv")}
    assert report["labels"] == str(room / "segments.csv")
    assert report["classes"] == sorted({row["label"] for row in centre if row["label"]})
    for split in ("train", "val", "test"):  # every labelled frame of the split's clips, no other
        clips = {clip for clip, s in split_of.items() if s == split}
        labelled = [row for row in centre if row["clip"] in clips and row["label"]]
        assert report["counts"][split] == {"clips": len(clips), "samples": len(labelled)}
    assert any("intervals resample clips" in note for note in report["notes"])


@pytest.fixture(scope="module")
def two_test_clips(run_dir, tmp_path_factory) -> dict:
    """The report of the frames probe with two test clips (clip_0000, clip_0001), one val clip and
    nine train clips, each labelled 'early' for t in [0, 0.3) s and 'late' for [0.35, 0.8) s."""
    tmp = tmp_path_factory.mktemp("halves")
    clips = [f"clip_{i:04d}" for i in range(12)]
    splits = ["test" if i < 2 else "val" if i == 2 else "train" for i in range(12)]
    labels = write_csv(tmp / "labels.csv", ["clip", "label", "split"],
                       [[c, "even" if i % 2 == 0 else "odd", s] for i, (c, s) in enumerate(zip(clips, splits))])
    segments = write_csv(tmp / "halves.csv", ["clip", "start", "end", "label"],
                         [row for c in clips for row in ([c, 0.0, 0.3, "early"], [c, 0.35, 0.8, "late"])])
    return probed(run_dir, f"probe.labels={labels}", f"probe.frames.segments={segments}")


def test_the_bootstrap_resamples_clips_not_frames(two_test_clips):
    """Two test clips of 7 labelled frames each (the frame at t = 0.3 s is in no segment): a
    round draws AA, AB or BB, so the pooled test figure is the mean of the two clips' and the 95%
    interval runs from the lower clip's figure to the higher's, accuracies in sevenths. A
    bootstrap over the 14 frames would spread them in fourteenths, around no such midpoint."""
    report = two_test_clips
    assert report["counts"]["test"] == {"clips": 2, "samples": 14} and report["classes"] == ["early", "late"]
    clips_differ = 0
    for score in report["scores"]:
        low, high = score["intervals"]["test"]
        assert score["test"] == pytest.approx((low + high) / 2), score
        if score["probe"] in ("linear", "logistic", "knn", "recall@1", "recall@5"):
            assert 7 * low == pytest.approx(round(7 * low)) and 7 * high == pytest.approx(round(7 * high)), score
        clips_differ += high > low
    assert clips_differ >= 1  # not every figure is the same on both clips


def test_the_few_test_units_warning_counts_clips_not_frames(two_test_clips):
    """The test split holds 6 'early' frames and 8 'late' ones, but each class in only 2 clips,
    and clips are what the interval resamples: the warning of under 5 test units a class is
    given, in clips (counted in frames, 6 and 8 were enough and it was not)."""
    warnings = [note for note in two_test_clips["notes"] if "under 5 a class" in note]
    assert len(warnings) == 1, two_test_clips["notes"]
    assert "has 2 (under 5 a class)" in warnings[0] and "hold out more clips" in warnings[0], warnings[0]
    assert "the test split has 2 clips for" in warnings[0], warnings[0]  # clips, not (clip, class) pairs


def test_bad_inputs_are_one_line(run_dir, tmp_path):
    room = room_of(run_dir)
    one_line_error(probe(run_dir, "probe.level=window"), "probe.task=frames scores labelled frames",
                   "probe.level=frame")
    one_line_error(probe(run_dir, f"probe.labels={room / 'segments.csv'}"), "gives segments by time",
                   "probe.frames.segments")
    one_line_error(probe(run_dir, f"probe.frames.segments={tmp_path / 'none.csv'}"), "needs labels by time in",
                   "probe.frames.segments")
    test_clip = next(row["clip"] for row in rows_of(room / "labels.csv") if row["split"] == "test")
    rows = [[r["clip"], r["start"], r["end"], "rare" if r["clip"] == test_clip else r["label"]]
            for r in rows_of(room / "segments.csv")]
    rare = write_csv(tmp_path / "rare.csv", ["clip", "start", "end", "label"], rows)
    one_line_error(probe(run_dir, f"probe.frames.segments={rare}"), "class 'rare' (test) has val/test frames but no "
                   "train frame", "move a clip that shows it to train")
