"""Tests of cltt.data.extract on tiny real videos whose frames encode their own index.

Every test video is 30 fps; frame ``i`` shows the bits of ``i`` as white cells in a band across
its top half (above a fixed texture), so a test can read back which source frames were kept,
even after resizing and JPEG compression.
"""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from cltt.data.extract import clip_names, extract_clip, extract_videos, find_videos
from cltt.errors import CLTTError
from cltt.recipe import ExtractConfig
from tests.helpers.videos import SRC_FPS, frame_index, truncate, write_video


def kept_indices(folder: Path) -> list[int]:
    return [frame_index(f) for f in sorted(folder.glob("frame_*.jpg"))]


def tree(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` (hidden ones included) by relative path, with its bytes."""
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def mtimes(root: Path) -> dict[str, int]:
    return {p.relative_to(root).as_posix(): p.stat().st_mtime_ns for p in root.rglob("*")}


def extract_all(src: Path, out: Path, **options) -> dict[str, object]:
    """Run extract_videos over every video under ``src``; results by clip name."""
    results = extract_videos(find_videos(src), out, ExtractConfig(**options), src)
    return {r.clip: r for r in results}


@pytest.fixture(params=[".mp4", ".avi"])
def video(request, tmp_path) -> Path:
    """One 60-frame 64x48 video, mp4v-in-mp4 and MJPG-in-avi."""
    return write_video(tmp_path / "src" / f"clip{request.param}")


def run_one(video: Path, out: Path, **options):
    result = extract_clip(video, out, "clip", ExtractConfig(**options))
    assert result.status == "done", result.message
    return result, kept_indices(out / "clip")


# --------------------------------------------------------------------------- frame selection


@pytest.mark.parametrize(
    "options, expected",
    [
        ({"fps": 10}, list(range(0, 60, 3))),
        # first frame at or after each target k/7 s: frame ceil(30 k / 7)
        ({"fps": 7}, [math.ceil(SRC_FPS * k / 7) for k in range(14)]),
        ({"fps": 30}, list(range(60))),
        ({"fps": 100}, list(range(60))),
        ({"every_nth": 4}, list(range(0, 60, 4))),
        ({"start": 0.5, "end": 1.5}, list(range(15, 45))),
        ({"start": 0.5, "end": 1.5, "fps": 10}, list(range(15, 45, 3))),
        ({"start": 1.0}, list(range(30, 60))),
        ({"end": 0.4, "every_nth": 2}, list(range(0, 12, 2))),
    ],
    ids=lambda value: str(value) if isinstance(value, dict) else "",
)
def test_keeps_the_right_source_frames(video, tmp_path, options, expected):
    result, kept = run_one(video, tmp_path / "out", **options)
    assert result.frames == len(expected)
    assert kept == expected


def test_progress_reports_every_written_frame(video, tmp_path):
    calls: list[int] = []
    result = extract_clip(video, tmp_path / "out", "clip", ExtractConfig(), on_frames=calls.append)
    assert sum(calls) == result.frames == 60
    assert len(calls) > 1  # during the clip, not once at the end


class NoFps:
    """cv2.VideoCapture whose container gives no frame rate (a wrapper: subclassing
    cv2.VideoCapture corrupts memory in OpenCV 5.0); monkeypatched in for cv2.VideoCapture."""

    real = cv2.VideoCapture

    def __init__(self, *args):
        self.capture = NoFps.real(*args)

    def get(self, prop):
        return 0.0 if prop == cv2.CAP_PROP_FPS else self.capture.get(prop)

    def __getattr__(self, name):
        return getattr(self.capture, name)


def test_unknown_source_fps_is_taken_as_30(tmp_path, monkeypatch):
    source = write_video(tmp_path / "clip.avi")
    monkeypatch.setattr(cv2, "VideoCapture", NoFps)
    result = extract_clip(source, tmp_path / "out", "clip", ExtractConfig(fps=10, end=1.0))
    assert result.status == "done" and "assumed 30" in result.message
    assert kept_indices(tmp_path / "out" / "clip") == list(range(0, 30, 3))


# --------------------------------------------------------------------------- size and quality


@pytest.mark.parametrize(
    "size, options, expected",
    [
        ((64, 48), {"short_side": 24}, (24, 32)),
        ((64, 48), {"short_side": 96}, (96, 128)),
        ((64, 48), {"short_side": 24, "center_crop": True}, (24, 24)),
        ((64, 48), {"center_crop": True}, (48, 48)),
        ((48, 64), {"short_side": 24}, (32, 24)),
        ((48, 64), {"short_side": 16, "center_crop": True}, (16, 16)),
    ],
)
def test_resize_and_center_crop(tmp_path, size, options, expected):
    source = write_video(tmp_path / "src" / "clip.avi", frames=6, size=size)
    result = extract_clip(source, tmp_path / "out", "clip", ExtractConfig(**options))
    assert result.status == "done" and result.frames == 6
    shapes = {cv2.imread(str(f)).shape[:2] for f in (tmp_path / "out" / "clip").glob("*.jpg")}
    assert shapes == {expected}


def test_resized_frames_keep_their_content(video, tmp_path):
    _, kept = run_one(video, tmp_path / "out", short_side=24, fps=10)
    assert kept == list(range(0, 60, 3))


def test_jpeg_quality_changes_file_size(video, tmp_path):
    sizes = {}
    for quality in (20, 95):
        run_one(video, tmp_path / f"q{quality}", jpeg_quality=quality)
        files = tree(tmp_path / f"q{quality}")
        sizes[quality] = sum(len(data) for name, data in files.items() if name.endswith(".jpg"))
    assert sizes[20] < 0.7 * sizes[95]


# --------------------------------------------------------------------------- finding videos


def test_find_videos_recursive_with_clevrer_nesting_and_duplicate_stems(tmp_path):
    src = tmp_path / "src"
    for relative in [
        "video_01000-02000/video_01000.mp4",
        "video_00000-01000/video_00010.mp4",
        "video_00000-01000/video_00002.mp4",
        "a/take.avi",
        "b/take.MP4",
    ]:
        write_video(src / relative, frames=3)
    for ignored in [".hidden/video_5.mp4", "video_00000-01000/._video_00002.mp4", ".video_9.mp4"]:
        write_video(src / ignored, frames=3)
    (src / "notes.txt").write_text("not a video")

    videos = find_videos(src)
    assert [v.relative_to(src).as_posix() for v in videos] == [
        "a/take.avi",
        "b/take.MP4",
        "video_00000-01000/video_00002.mp4",
        "video_00000-01000/video_00010.mp4",
        "video_01000-02000/video_01000.mp4",
    ]
    names = clip_names(videos, src)
    assert list(names.values()) == ["a__take", "b__take", "video_00002", "video_00010", "video_01000"]

    results = extract_all(src, tmp_path / "out")
    assert {r.status for r in results.values()} == {"done"}
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(names.values())


def test_cltt_extract_of_a_clevrer_tree_names_clips_by_video_and_counts_their_frames(tmp_path):
    """CLEVRER ships video_train/video_00000-01000/video_00000.mp4, ...: the command line finds the
    nested mp4s, names each clip after its (unique) video, and a later folder adds clips without
    renaming the ones already there."""
    from cltt.cli import main
    from cltt.data.stores import open_store
    from tests.conftest import invoke_in_process

    src = tmp_path / "clevrer"
    lengths = {"video_train/video_00000-01000/video_00000.mp4": 5,
               "video_train/video_00000-01000/video_00001.mp4": 7,
               "video_train/video_01000-02000/video_01000.mp4": 6,
               "video_validation/video_10000-11000/video_10000.mp4": 4}
    for relative, frames in lengths.items():
        write_video(src / relative, frames=frames)
    out = tmp_path / "frames"

    def extract(folder: str):
        result = invoke_in_process(main, ["extract", src / folder, "--out", out], cwd=tmp_path)
        assert result.exit_code == 0, result.output
        return result

    extract("video_train")
    expected = {"video_00000": 5, "video_00001": 7, "video_01000": 6}
    manifest = open_store(out)
    assert dict(zip(manifest.clips, manifest.frame_counts.tolist())) == expected
    for clip, frames in expected.items():
        assert kept_indices(out / clip) == list(range(frames))  # every source frame, in order
    before = tree(out)

    extract("video_train")  # a rerun skips every finished clip: nothing on disk changes
    assert tree(out) == before
    extract("video_validation")
    manifest = open_store(out)
    assert dict(zip(manifest.clips, manifest.frame_counts.tolist())) == expected | {"video_10000": 4}
    clips_before = {name: data for name, data in before.items() if not name.startswith(".cltt/")}
    assert {name: data for name, data in tree(out).items() if name in clips_before} == clips_before


def test_find_videos_follows_symlinks_once(tmp_path):
    video = write_video(tmp_path / "src" / "real" / "a.avi", frames=2)
    (tmp_path / "src" / "loop").symlink_to(tmp_path / "src", target_is_directory=True)
    (tmp_path / "linked").symlink_to(tmp_path / "src" / "real", target_is_directory=True)
    assert find_videos(tmp_path / "src") == [video]
    assert find_videos(tmp_path / "linked") == [tmp_path / "linked" / "a.avi"]


def test_find_videos_single_file_and_errors(tmp_path):
    single = write_video(tmp_path / "one.mkv", frames=2)
    assert find_videos(single) == [single]
    (tmp_path / "empty" / "sub").mkdir(parents=True)
    (tmp_path / "empty" / "._x.mp4").write_bytes(b"sidecar")
    (tmp_path / "note.txt").write_text("x")
    with pytest.raises(CLTTError, match="does not exist"):
        find_videos(tmp_path / "missing")
    with pytest.raises(CLTTError, match="not a video"):
        find_videos(tmp_path / "note.txt")
    with pytest.raises(CLTTError, match="no videos"):
        find_videos(tmp_path / "empty")


# --------------------------------------------------------------------------- bad videos


def test_unreadable_and_truncated_videos_fail_without_leftovers(tmp_path):
    src = tmp_path / "src"
    write_video(src / "good.mp4")
    (src / "noise.mp4").write_bytes(np.random.default_rng(1).integers(0, 256, 5000, dtype=np.uint8).tobytes())
    (src / "empty.avi").write_bytes(b"")
    truncate(write_video(src / "cut_mp4.mp4"), 0.6)
    truncate(write_video(src / "cut_avi.avi"), 0.6)
    write_video(src / "zz_good.avi")

    results = extract_all(src, tmp_path / "out", fps=10)
    assert {c: r.status for c, r in results.items()} == {
        "good": "done",
        "noise": "failed",
        "empty": "failed",
        "cut_mp4": "failed",
        "cut_avi": "failed",
        "zz_good": "done",
    }
    assert "cannot open" in results["noise"].message
    assert "empty" in results["empty"].message
    assert "moov" in results["cut_mp4"].message and "truncated" in results["cut_mp4"].message
    assert results["cut_avi"].message.startswith("truncated: decoded ")
    assert results["cut_avi"].message.endswith(" of 60 frames")
    assert all("\n" not in r.message for r in results.values())
    assert sorted(os.listdir(tmp_path / "out")) == ["good", "zz_good"]  # no clip nor .partial folder
    assert kept_indices(tmp_path / "out" / "zz_good") == list(range(0, 60, 3))


def test_truncated_range_is_judged_on_the_requested_range(tmp_path):
    source = truncate(write_video(tmp_path / "cut.avi"), 0.6)
    # frames before the cut decode fine, so a range that ends before it is not truncated
    early = extract_clip(source, tmp_path / "out", "early", ExtractConfig(end=0.3))
    assert early.status == "done" and early.frames == 9
    late = extract_clip(source, tmp_path / "out", "late", ExtractConfig(start=1.5))
    assert late.status == "failed" and late.message == "truncated: decoded 0 of 15 frames"
    past = extract_clip(write_video(tmp_path / "ok.avi"), tmp_path / "out", "past", ExtractConfig(start=5))
    assert past.status == "failed" and "past the end" in past.message
    assert sorted(os.listdir(tmp_path / "out")) == ["early"]


# --------------------------------------------------------------------------- reruns


def test_rerun_skips_finished_clips_untouched(tmp_path):
    src = tmp_path / "src"
    for name in ("a.mp4", "b.avi"):
        write_video(src / name)
    first = extract_all(src, tmp_path / "out", fps=10)
    before = mtimes(tmp_path / "out")
    time.sleep(0.01)
    second = extract_all(src, tmp_path / "out", fps=10)
    assert {r.status for r in second.values()} == {"skipped"}
    assert {c: r.frames for c, r in second.items()} == {c: r.frames for c, r in first.items()} == {"a": 20, "b": 20}
    assert mtimes(tmp_path / "out") == before


def test_existing_clip_with_other_options_or_foreign_is_left_alone(tmp_path):
    src = tmp_path / "src"
    write_video(src / "a.mp4")
    write_video(src / "b.avi")
    extract_all(src, tmp_path / "out", fps=10)
    (tmp_path / "out" / "b").rename(tmp_path / "out" / "mine")
    (tmp_path / "out" / "b").mkdir()  # someone else's folder where clip b goes
    (tmp_path / "out" / "b" / "keep.txt").write_text("not cltt's")
    before, contents = mtimes(tmp_path / "out"), tree(tmp_path / "out")

    results = extract_all(src, tmp_path / "out", fps=5)
    assert results["a"].status == "failed" and "other options" in results["a"].message
    assert results["b"].status == "failed" and "not written by cltt" in results["b"].message
    assert str(tmp_path / "out" / "a") in results["a"].message
    assert mtimes(tmp_path / "out") == before and tree(tmp_path / "out") == contents


def test_touched_source_counts_as_other_options(tmp_path):
    source = write_video(tmp_path / "src" / "a.avi")
    extract_all(tmp_path / "src", tmp_path / "out")
    os.utime(source, ns=(source.stat().st_atime_ns, source.stat().st_mtime_ns + 10**9))
    (result,) = extract_all(tmp_path / "src", tmp_path / "out").values()
    assert result.status == "failed"


_KILLABLE_RUN = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from cltt.data.extract import extract_videos, find_videos
    from cltt.recipe import ExtractConfig

    src, out = Path(sys.argv[1]), Path(sys.argv[2])
    slow = lambda frames: time.sleep(0.05)  # so the test can kill it inside a clip
    for _ in extract_videos(find_videos(src), out, ExtractConfig(fps=15, short_side=32), src, on_frames=slow):
        pass
    """
)


def test_killed_run_resumes_to_the_same_result(tmp_path):
    src = tmp_path / "src"
    for i in range(4):
        write_video(src / f"clip_{i}{'.mp4' if i % 2 else '.avi'}")
    out = tmp_path / "killed"
    process = subprocess.Popen([sys.executable, "-c", _KILLABLE_RUN, str(src), str(out)])
    try:
        deadline = time.monotonic() + 60
        # killed once clip_0 is finished and clip_1 is being written
        while not ((out / "clip_0").is_dir() and (out / ".clip_1.partial").is_dir()):
            assert process.poll() is None, "the run ended before it could be killed"
            assert time.monotonic() < deadline, "the run never finished its first clip"
            time.sleep(0.005)
        process.send_signal(signal.SIGKILL)
    finally:
        process.kill()
        process.wait()
    assert not (out / "clip_3").exists()

    resumed = extract_all(src, out, fps=15, short_side=32)
    assert resumed["clip_0"].status == "skipped"
    assert {resumed[c].status for c in ("clip_1", "clip_2", "clip_3")} == {"done"}
    extract_all(src, tmp_path / "clean", fps=15, short_side=32)
    assert tree(out) == tree(tmp_path / "clean")


def test_two_workers_write_the_same_as_one(tmp_path):
    src = tmp_path / "src"
    for i in range(3):
        write_video(src / f"clip_{i}.avi", frames=30)
    progress: list[int] = []
    results = extract_videos(find_videos(src), tmp_path / "two", ExtractConfig(fps=10, workers=2), src, progress.append)
    assert sorted(r.clip for r in results if r.status == "done") == ["clip_0", "clip_1", "clip_2"]
    assert sum(progress) == 30
    extract_all(src, tmp_path / "one", fps=10)
    assert tree(tmp_path / "two") == tree(tmp_path / "one")


def test_bad_arguments_raise_at_the_call(tmp_path):
    source = write_video(tmp_path / "src" / "a.avi", frames=2)
    (tmp_path / "file").write_text("x")
    with pytest.raises(CLTTError, match="is a file"):
        extract_videos([source], tmp_path / "file", ExtractConfig(), tmp_path / "src")
    elsewhere = write_video(tmp_path / "other" / "a.avi", frames=2)
    with pytest.raises(CLTTError, match="not under"):
        extract_videos([source, elsewhere], tmp_path / "out", ExtractConfig(), tmp_path / "src")
    assert not (tmp_path / "out").exists()


def test_fps_above_the_source_rate_is_said_in_one_note(tmp_path):
    """Found by the hostile-user pass: --fps 100 on a 30 fps video kept every frame, at 30 fps,
    and said nothing."""
    from cltt.cli import main
    from tests.conftest import invoke_in_process

    write_video(tmp_path / "src" / "a.mp4", frames=6)
    write_video(tmp_path / "src" / "b.avi", frames=6)
    result = invoke_in_process(main, ["extract", tmp_path / "src", "--out", tmp_path / "fast", "--fps", "100"],
                               cwd=tmp_path)
    assert result.exit_code == 0, result.output
    notes = [line for line in result.stderr.splitlines() if "--fps" in line]
    assert notes == [f"note: --fps 100 is above the source rate of 2 clips ({SRC_FPS:g} fps): every source frame "
                     "is kept, so the rate is the source's"], result.stderr
    assert len(kept_indices(tmp_path / "fast" / "a")) == 6
    slower = invoke_in_process(main, ["extract", tmp_path / "src", "--out", tmp_path / "slow", "--fps", "10"],
                               cwd=tmp_path)
    assert slower.exit_code == 0 and "--fps" not in slower.stderr, slower.output


def test_what_a_finished_clip_assumed_is_printed(tmp_path, monkeypatch):
    """The per-clip note of a finished extraction (a source rate taken as 30 fps) reached
    ClipResult.message, but cltt extract printed only failed clips' messages."""
    from cltt.cli import main
    from tests.conftest import invoke_in_process

    write_video(tmp_path / "src" / "a.avi", frames=6)
    monkeypatch.setattr(cv2, "VideoCapture", NoFps)
    result = invoke_in_process(main, ["extract", tmp_path / "src", "--out", tmp_path / "out", "-j", "1"], cwd=tmp_path)
    assert result.exit_code == 0, result.output
    assert "note: a: " in result.output and "assumed 30" in result.output, result.output
