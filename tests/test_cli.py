"""The ``cltt`` command end to end: real processes, real files, one-line errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

from cltt import __version__
from cltt.cli import SUBCOMMANDS
from tests.conftest import write_clip
from tests.helpers.commands import QUICKSTART, assert_one_line_error


def cltt(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """Run the installed entry point's code in a fresh interpreter, as a user would."""
    return subprocess.run([sys.executable, "-m", "cltt", *map(str, args)], capture_output=True, text=True, cwd=cwd)


def test_help_and_version():
    result = cltt("--help")
    assert result.returncode == 0
    positions = [result.stdout.index(f"  {name} ") for name in SUBCOMMANDS]
    assert positions == sorted(positions)
    assert cltt("--version").stdout.strip() == f"cltt, version {__version__}"


def test_quickstart_workflow(tmp_path):
    """The README's first steps: synthetic data, index, a batch picture."""
    extract = ("extract", "--synthetic", "rotating-objects", "--out", "data/objects", "--clips", "6", "--frames", "10")
    result = cltt(*extract, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "6 │" in result.stdout or "6 " in result.stdout
    assert len(list((tmp_path / "data/objects").glob("clip_*/frame_*.jpg"))) == 60

    result = cltt("index", QUICKSTART, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "60" in result.stdout and "windows" in result.stdout
    # 10 frames, window 4, stride 2 -> starts 0, 2, 4, 6 -> 4 windows per clip
    assert "24  (window_size 4" in result.stdout

    result = cltt("visualize", QUICKSTART, "--mode", "batch", "--out", "batch.png", "--batch-size", "3", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    image = cv2.imread(str(tmp_path / "batch.png"))
    assert image is not None and image.shape[0] > 3 * 48 and image.std() > 10  # frames, not a blank canvas

    again = cltt(*extract, cwd=tmp_path)
    assert again.returncode == 0 and "skipped" in again.stdout


def test_extract_video_at_requested_fps(tmp_path):
    video = tmp_path / "walk.mp4"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"mp4v"), 30.0, (64, 48))
    for i in range(60):
        frame = np.zeros((48, 64, 3), np.uint8)
        frame[:, i % 64] = 255
        writer.write(frame)
    writer.release()
    result = cltt("extract", video, "--out", tmp_path / "frames", "--fps", "10")
    assert result.returncode == 0, result.stderr
    assert len(list((tmp_path / "frames" / "walk").glob("frame_*.jpg"))) == 20


def test_extract_failure_exits_1_and_keeps_the_rest(tmp_path):
    videos = tmp_path / "videos"
    videos.mkdir()
    (videos / "broken.mp4").write_bytes(b"\x00" * 4096)
    writer = cv2.VideoWriter(str(videos / "good.avi"), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (32, 32))
    for _ in range(5):
        writer.write(np.full((32, 32, 3), 128, np.uint8))
    writer.release()
    result = cltt("extract", videos, "--out", tmp_path / "frames")
    assert result.returncode == 1
    assert "broken.mp4" in result.stdout + result.stderr and "Traceback" not in result.stderr
    assert len(list((tmp_path / "frames" / "good").glob("*.jpg"))) == 5


def test_show_prints_the_resolved_recipe():
    result = cltt("index", QUICKSTART, "data.window_size=7", "--show")
    assert result.returncode == 0
    assert yaml.safe_load(result.stdout)["data"]["window_size"] == 7


def test_index_verify_lists_corrupt_frames(frames_root):
    bad = frames_root / "clip1" / "frame_3.jpg"
    bad.write_bytes(bad.read_bytes()[:100])
    result = cltt("index", frames_root, "--verify")
    assert result.returncode == 1
    assert str(bad) in result.stderr and "1 of 51 frames are corrupt" in result.stderr


def test_index_warns_when_no_window_fits(frames_root):
    result = cltt("index", frames_root, "data.window_size=30")
    assert result.returncode == 0
    assert "no clip is long enough" in result.stderr


def test_visualize_curves(tmp_path):
    (tmp_path / "metrics.csv").write_text("epoch,loss,learning_rate,decay_rate\n1,5.0,0.1,1.0\n2,4.0,0.05,0.5\n")
    result = cltt("visualize", tmp_path, "--mode", "curves", "--out", tmp_path / "c.png")
    assert result.returncode == 0, result.stderr
    assert cv2.imread(str(tmp_path / "c.png")) is not None


@pytest.mark.parametrize(
    "args, fragments",
    [
        (["index", "{root}", "data.windw_size=3"], ["'data.windw_size' is not known", "did you mean 'data.window_size'"]),
        (["index", "{root}", "data.window_size=big"], ["'data.window_size' must be an int"]),
        (["index", "{missing}"], ["does not exist"]),
        (["index", "{empty}"], ["no frames under"]),
        (["visualize", "data.root={root}", "data.window_size=40"], ["long enough for one window"]),
        (["visualize", "data.root={root}", "--index", "999"], ["out of range"]),
        (["extract", "{missing}", "--out", "{out}"], ["does not exist"]),
        (["extract", "--synthetic", "moving-digit", "--out", "{out}"], ["did you mean 'moving-digits'"]),
        (["extract", "--synthetic", "moving-digits"], ["--out"]),
        (["index", "nope.yaml"], ["recipe file nope.yaml does not exist"]),
    ],
)
def test_bad_input_gives_one_line(frames_root, tmp_path, args, fragments):
    (tmp_path / "empty").mkdir()
    values = {"root": frames_root, "missing": tmp_path / "missing", "empty": tmp_path / "empty", "out": tmp_path / "out"}
    assert_one_line_error(cltt(*[a.format(**values) for a in args]), *fragments)


def test_write_clip_fixture_makes_real_jpegs(tmp_path):
    folder = write_clip(tmp_path, "c", 2)
    assert cv2.imread(str(folder / "frame_1.jpg")).shape == (48, 64, 3)
