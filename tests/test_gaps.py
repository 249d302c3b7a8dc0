"""Missing frames inside a clip: found from the numbering, windows cut there, reported; a folder
named like a frame is pointed out; corrupt-frame replacements are counted once per epoch."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from cltt.cli import main
from cltt.data.dataset import WindowDataset
from cltt.data.manifest import find_gaps
from cltt.data.pack import pack_folder
from cltt.data.stores import open_store
from cltt.data.windows import WindowSpec, build_windows
from cltt.recipe import AugmentConfig
from tests.conftest import invoke_in_process, write_clip
from tests.helpers.commands import QUICKSTART, one_line_error

NO_AUGMENT = AugmentConfig(enabled=False)


@pytest.fixture
def gappy_root(tmp_path: Path) -> Path:
    """clip_a: frames 1-3 and 6-12 (4 and 5 missing); clip_b: 1-9, whole; clip_b/frame_10.jpg is a folder."""
    root = tmp_path / "frames"
    write_clip(root, "clip_a", 12)
    write_clip(root, "clip_b", 9)
    for missing in (4, 5):
        (root / "clip_a" / f"frame_{missing}.jpg").unlink()
    (root / "clip_b" / "frame_10.jpg").mkdir()
    return root


def test_find_gaps_uses_each_clips_own_step():
    numbers = np.array([1, 2, 3, 5, 6,   0, 5, 10, 20,   1, 3, 2,   7,   -1, 4], np.int64)
    offsets = np.array([0, 5, 9, 12, 13, 15])
    gaps = find_gaps(numbers, offsets)
    assert gaps.clip.tolist() == [0, 1] and gaps.after.tolist() == [2, 2] and gaps.missing.tolist() == [1, 1]


def test_windows_never_span_a_gap(gappy_root, tmp_path):
    store = open_store(gappy_root)
    gaps = store.names.gaps()
    assert len(gaps) == 1 and gaps.describe(store.names) == "clip_a after frame_3.jpg (2 missing)"
    dataset = WindowDataset(store, WindowSpec(3), 32, NO_AUGMENT)
    assert dataset.table.splits == 1
    numbers = store.names.frame_numbers()
    for index in range(len(dataset)):
        frames = dataset.window_frames(index)[0]
        assert np.all(np.diff(numbers[frames]) == 1), [store.frame_name(f) for f in frames]
    # clip_a: 3 frames then 7 -> 1 + 5 windows of 3; clip_b: 7
    assert len(dataset) == 13
    assert len(WindowDataset(store, WindowSpec(3), 32, NO_AUGMENT, gaps="ignore")) == 15
    packed = open_store(pack_folder(gappy_root, tmp_path / "store").store)  # a store numbers frames the same
    assert np.array_equal(WindowDataset(packed, WindowSpec(3), 32, NO_AUGMENT).table.start, dataset.table.start)
    assert build_windows(store.frame_counts, WindowSpec(3), gaps).clips_skipped == 0


def test_index_reports_gaps_and_folders_named_like_frames(gappy_root, tmp_path):
    result = invoke_in_process(main, ["index", gappy_root, "data.window_size=3", "--verify"], tmp_path)
    assert result.exit_code == 0, result.output
    assert "1 in 1 clip(s); windows are cut there" in result.output
    assert f"{gappy_root}/clip_b/frame_10.jpg is a folder named like a frame; it is not read as one" in result.output
    assert "gap clip_a: 2 frame(s) missing between frame_3.jpg and frame_6.jpg" in result.output
    assert "13  (window_size 3" in result.output


def test_training_cuts_at_gaps_or_stops_when_asked(gappy_root, tmp_path):
    common = ["train", QUICKSTART, f"data.root={gappy_root}", "data.window_size=3", "data.image_size=32",
              "model.backbone=tiny_cnn", "train.batch_size=4", "train.epochs=1", "data.num_workers=0"]
    result = invoke_in_process(main, [*common, "train.name=split"], tmp_path)
    assert result.exit_code == 0, result.output
    assert "1 gap(s) in the frame numbering: windows are cut there (data.gaps=split)" in result.output
    one_line_error(invoke_in_process(main, [*common, "train.name=error", "data.gaps=error"], tmp_path),
                   "1 gap(s) in the frame numbering", "clip_a after frame_3.jpg (2 missing)", "data.gaps=ignore")


def test_corrupt_frames_are_counted_once_per_epoch(tmp_path):
    root = tmp_path / "frames"
    for clip in ("clip_a", "clip_b"):
        write_clip(root, clip, 10)
    bad = root / "clip_a" / "frame_5.jpg"
    bad.write_bytes(bad.read_bytes()[:200])
    result = invoke_in_process(main, ["train", QUICKSTART, f"data.root={root}", "data.window_size=3",
                                      "data.image_size=32", "model.backbone=tiny_cnn", "train.batch_size=4",
                                      "train.epochs=2", "data.num_workers=0"], tmp_path)
    assert result.exit_code == 0, result.output
    for epoch in (1, 2):
        assert f"epoch {epoch}: " in result.output
    lines = [line for line in result.output.splitlines() if "sample(s) replaced by the next because of corrupt frames" in line]
    assert len(lines) == 2 and all("cltt index" in line for line in lines)
