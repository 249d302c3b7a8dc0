"""Issue 24, scanning and data faults: synthetic data written only where the recipe says (8),
--fps with --synthetic (10), symlink loops (11), an image too large to decode (15), frame and
video formats (16, 17), captions at 48 px (22).

Each case runs the real ``cltt`` in a subprocess on real files; pure functions (header
readers, caption layout) are checked in process against OpenCV itself.
"""

from __future__ import annotations

import os
import re
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

from cltt.data.decode import header_dimensions
from cltt.data.formats import FRAME_EXTENSIONS, VIDEO_EXTENSIONS
from cltt.data.manifest import scan_frames
from tests.conftest import write_clip
from tests.helpers.docs import hooks


def cltt(*args, cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess:
    """``python -m cltt ARGS`` in a real process; stdout and stderr as text."""
    env = {**os.environ, "COLUMNS": "200", "WANDB_MODE": "offline"}
    return subprocess.run([sys.executable, "-m", "cltt", *map(str, args)], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env=env)


def one_error_line(result: subprocess.CompletedProcess) -> str:
    """The one ``error:`` line of a refused command (exit 2, no traceback)."""
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


def table_value(output: str, row: str) -> str:
    """The value cell of ``row`` in a rich table printed by ``cltt index``."""
    match = re.search(rf"{row}\s*│\s*([^│]+?)\s*│", output)
    assert match, output
    return match.group(1)


def huge_blank_png(path: Path, side: int) -> Path:
    """A valid grey PNG of ``side`` x ``side`` zeros, written without holding it in memory.

    Every row is filter byte 0 and ``side`` zeros. A block of rows is deflated once with a full
    flush, which leaves a byte-aligned piece with no history, so repeating the piece is a valid
    raw deflate stream of all rows; the zlib trailer is Adler-32 of n zero bytes, which is
    ``(n mod 65521) << 16 | 1`` (sum a stays 1, sum b adds 1 per byte).
    """
    rows_per_block = 100
    assert side % rows_per_block == 0
    block = bytes((side + 1) * rows_per_block)
    deflate = zlib.compressobj(9, zlib.DEFLATED, -15)
    piece = deflate.compress(block) + deflate.flush(zlib.Z_FULL_FLUSH)
    stream = piece * (side // rows_per_block) + deflate.flush()
    adler = ((side + 1) * side % 65521) << 16 | 1
    idat = b"\x78\xda" + stream + struct.pack(">I", adler)

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)  # 8-bit greyscale, no interlace
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b""))
    return path


# --------------------------------------------------------------------------- 8 and 10: built-in data


def test_case_8_a_mistyped_root_override_is_refused_not_filled_with_synthetic_frames(tmp_path):
    recipe = tmp_path / "quick.yaml"
    recipe.write_text(yaml.safe_dump({"data": {"root": str(tmp_path / "digits"), "synthetic": "moving-digits"},
                                      "model": {"backbone": "tiny_cnn"}, "train": {"epochs": 1, "device": "cpu"}}))
    typo = tmp_path / "my_frmaes"
    line = one_error_line(cltt("train", recipe, f"data.root={typo}", cwd=tmp_path))
    assert str(typo) in line and "data.synthetic=null" in line
    assert not typo.exists() and not (tmp_path / "digits").exists() and not (tmp_path / "runs").exists()
    # the same root given as the index command's positional ROOT is an override too
    assert "data.synthetic=null" in one_error_line(cltt("index", recipe, typo, cwd=tmp_path))
    # with data.synthetic=null the user's own frames are asked for, and their absence said plainly
    line = one_error_line(cltt("index", recipe, f"data.root={typo}", "data.synthetic=null", cwd=tmp_path))
    assert "does not exist" in line and "synthetic=null" not in line
    assert not typo.exists()


def test_case_8_the_rule_holds_for_every_command_that_overrides_a_saved_recipe(tmp_path):
    """resume, probe, export and visualize --mode slots apply overrides to a checkpoint's recipe
    with the same function as train does."""
    from cltt.errors import RecipeError
    from cltt.recipe import apply_overrides

    saved = {"data": {"root": str(tmp_path / "digits"), "synthetic": "moving-digits"}}
    with pytest.raises(RecipeError, match="add data.synthetic=null"):
        apply_overrides(yaml.safe_load(yaml.safe_dump(saved)), [f"data.root={tmp_path / 'typo'}"])
    asked = yaml.safe_load(yaml.safe_dump(saved))  # built-in data asked for on the command line itself
    apply_overrides(asked, [f"data.root={tmp_path / 'elsewhere'}", "data.synthetic=bouncing-balls"])
    assert asked["data"] == {"root": str(tmp_path / "elsewhere"), "synthetic": "bouncing-balls"}
    existing = yaml.safe_load(yaml.safe_dump(saved))
    apply_overrides(existing, [f"data.root={tmp_path}"])  # an existing folder: the user's frames
    assert existing["data"]["root"] == str(tmp_path)


def test_case_10_fps_with_synthetic_is_named_as_ignored(tmp_path):
    result = cltt("extract", "--synthetic", "moving-digits", "--clips", 3, "--frames", 4, "--size", 32, "--fps", 5,
                  "--out", tmp_path / "digits", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "warning: --fps is for videos and ignored with --synthetic" in " ".join(result.stderr.split())
    assert len(list((tmp_path / "digits" / "clip_0000").glob("*.jpg"))) == 4  # the frames asked for, no more


# --------------------------------------------------------------------------- 11: symlink loops


def test_case_11_two_symlink_loops_index_quickly(tmp_path):
    root = tmp_path / "frames"
    write_clip(root, "clip", 6, size=(32, 32))
    (root / "self").symlink_to(".")
    (root / "clip" / "up").symlink_to("..")
    started = time.perf_counter()
    manifest = scan_frames(root)
    seconds = time.perf_counter() - started
    assert seconds < 1.0, seconds
    assert manifest.clips == ["clip"] and manifest.num_frames == 6
    result = cltt("index", root, cwd=tmp_path, timeout=60)
    assert result.returncode == 0, result.stderr
    assert table_value(result.stdout, "clips") == "1" and table_value(result.stdout, "frames") == "6"


def test_case_11_a_linked_clip_folder_outside_the_root_is_still_read(tmp_path):
    elsewhere = write_clip(tmp_path / "elsewhere", "recording", 5, size=(32, 32))
    root = tmp_path / "frames"
    write_clip(root, "clip", 4, size=(32, 32))
    (root / "linked").symlink_to(elsewhere)
    manifest = scan_frames(root)
    assert manifest.clips == ["clip", "linked"] and manifest.frame_counts.tolist() == [4, 5]


# --------------------------------------------------------------------------- 15: an image too large


def test_case_15_a_huge_png_is_refused_by_verify_from_its_header(tmp_path):
    root = tmp_path / "frames"
    write_clip(root, "clip", 6, size=(32, 32))
    huge_blank_png(root / "clip" / "frame_7.png", 20000)
    assert (root / "clip" / "frame_7.png").stat().st_size < 2_000_000
    started = time.perf_counter()
    result = cltt("index", root, "--verify", cwd=tmp_path, timeout=120)
    assert result.returncode == 1, result.stdout + result.stderr
    stderr = " ".join(result.stderr.split())
    assert "corrupt" in stderr and "frame_7.png: 20000 x 20000 pixels, more than data.max_pixels=50_000_000" in stderr
    assert "1 of 7 frames are corrupt" in stderr
    assert time.perf_counter() - started < 60  # decoding it would take 1.2 GB and many seconds; the header costs nothing
    # a limit that admits it is a recipe key; one that refuses every 32 px frame lists all seven
    result = cltt("index", root, "--verify", "data.max_pixels=1000", cwd=tmp_path)
    assert result.returncode == 1 and "7 of 7 frames are corrupt" in " ".join(result.stderr.split())


def test_case_15_training_counts_a_huge_frame_as_corrupt_without_decoding_it(tmp_path):
    from cltt.data.build import open_frames, windows_dataset
    from cltt.recipe import load_recipe

    root = tmp_path / "frames"
    write_clip(root, "clip", 8, size=(32, 32))
    (root / "clip" / "frame_5.jpg").unlink()
    huge_blank_png(root / "clip" / "frame_5.png", 20000)  # frame 4 of 0..7
    recipe = load_recipe(None, [f"data.root={root}", "data.window_size=3", "data.image_size=32", "data.num_workers=0"])
    dataset = windows_dataset(recipe.data, open_frames(recipe.data))
    started = time.perf_counter()
    samples = [dataset[i] for i in range(len(dataset))]
    seconds = time.perf_counter() - started
    windows_with_it = [i for i in range(len(dataset)) if 4 in dataset.window_frames(i)[0]]
    assert windows_with_it and all(samples[i]["replaced"] > 0 for i in windows_with_it)
    assert all(4 not in dataset.window_frames(s["index"])[0] for s in samples)
    assert seconds < 5, seconds  # one decode of it alone takes seconds and 1.2 GB


@pytest.mark.parametrize("extension", sorted(FRAME_EXTENSIONS))
def test_case_15_every_frame_format_is_sized_from_its_header(tmp_path, extension):
    rng = np.random.default_rng(0)
    for height, width in ((30, 50), (77, 13)):
        image = rng.integers(0, 255, (height, width, 3), dtype=np.uint8)
        path = tmp_path / f"frame{extension}"
        assert cv2.imwrite(str(path), image[..., 0] if extension in (".pbm", ".pgm") else image)
        encoded = np.fromfile(path, np.uint8)
        assert header_dimensions(encoded) == cv2.imdecode(encoded, cv2.IMREAD_COLOR).shape[:2] == (height, width)


# --------------------------------------------------------------------------- 16 and 17: formats


def test_case_16_pgm_ppm_tiff_bmp_webp_frames_are_read(tmp_path):
    root = tmp_path / "frames"
    source = write_clip(tmp_path / "jpeg", "clip", 5, size=(32, 48))
    for extension in (".pgm", ".ppm", ".tif", ".tiff", ".bmp", ".webp"):
        for frame in sorted(source.iterdir()):
            image = cv2.imread(str(frame))
            image = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY) if extension == ".pgm" else image
            (root / extension[1:]).mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(root / extension[1:] / (frame.stem + extension)), image)
    result = cltt("index", root, "--verify", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert table_value(result.stdout, "clips") == "6" and table_value(result.stdout, "frames") == "30"
    assert "all 30 frames decode" in result.stdout


def test_case_16_gpu_decode_reads_the_formats_torchvision_does_not(tmp_path):
    """data.decode=gpu: JPEGs go to the device decoder, TIFF/PGM/BMP/PPM by OpenCV (torchvision
    refuses them); the samples match the CPU path's as closely as for JPEG frames."""
    import torch

    from cltt.data.dataset import WindowDataset
    from cltt.data.device_augment import DeviceAugment, collate_encoded
    from cltt.data.stores import open_store
    from cltt.data.windows import WindowSpec
    from cltt.recipe import AugmentConfig

    root = tmp_path / "frames"
    source = write_clip(tmp_path / "jpeg", "clip", 6, size=(40, 40))
    for extension in (".tif", ".pgm", ".bmp", ".ppm"):
        (root / extension[1:]).mkdir(parents=True)
        for frame in sorted(source.iterdir()):
            image = cv2.imread(str(frame))
            image = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY) if extension == ".pgm" else image
            cv2.imwrite(str(root / extension[1:] / (frame.stem + extension)), image)
    store = open_store(root)
    centre = AugmentConfig(enabled=False)
    cpu = WindowDataset(store, WindowSpec(3), 32, centre)
    encoded = WindowDataset(store, WindowSpec(3), 32, centre, encoded=True)
    keys = [(i, 0) for i in range(len(cpu))]
    views = DeviceAugment(32, torch.device("cpu"), store.locate)(collate_encoded([encoded[k] for k in keys]))
    reference = torch.stack([cpu[k]["views"] for k in keys])
    assert views.shape == reference.shape
    assert (views.int() - reference.int()).abs().float().mean() < 4


def test_case_16_no_frames_says_what_was_found_and_skipped(tmp_path):
    notes = tmp_path / "notes"
    (notes / "clip").mkdir(parents=True)
    for i in range(12):
        (notes / "clip" / f"frame_{i}.txt").write_text("not a frame")
    line = one_error_line(cltt("index", notes, cwd=tmp_path))
    assert "found 12 files, none a frame: 12 .txt" in line and "png" in line and "tiff" in line
    assert "extract" not in line  # extract takes videos; these are not videos
    videos = tmp_path / "videos"
    (videos / "day1").mkdir(parents=True)
    (videos / "day1" / "morning.mp4").write_bytes(b"\0" * 64)
    assert "videos become frames with cltt extract" in one_error_line(cltt("index", videos, cwd=tmp_path))


def test_case_16_17_the_accepted_formats_are_listed_in_help_and_docs(tmp_path):
    listed = hooks().formats_page()  # the formats reference of the docs site, generated from cltt.data.formats
    index_help = " ".join(cltt("index", "--help", cwd=tmp_path).stdout.split())
    extract_help = " ".join(cltt("extract", "--help", cwd=tmp_path).stdout.split())
    for extension in FRAME_EXTENSIONS:
        assert re.search(rf"\b{extension[1:]}\b", index_help), extension
        assert re.search(rf"\b{extension[1:]}\b", listed), extension
    for extension in VIDEO_EXTENSIONS:
        assert re.search(rf"\b{extension[1:]}\b", extract_help), extension
        assert re.search(rf"\b{extension[1:]}\b", listed), extension


def mpeg1_video(path: Path, frames: int = 6) -> Path:
    """An MPEG-1 program stream written by OpenCV's FFmpeg backend (fourcc mpg1; PIM1 is refused
    by this build's muxer)."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mpg1"), 25, (64, 48))
    assert writer.isOpened()
    for i in range(frames):
        image = np.full((48, 64, 3), 20, np.uint8)
        image[:, 8 * i:8 * i + 8] = 230
        writer.write(image)
    writer.release()
    return path


@pytest.mark.slow  # three cltt processes, about 25 s on 2 shared cores
def test_case_17_an_explicitly_named_mpeg_is_extracted(tmp_path):
    video = mpeg1_video(tmp_path / "lab session.mpeg")
    renamed = mpeg1_video(tmp_path / "recording.mpeg").rename(tmp_path / "recording.dat")  # judged by content
    for source, clip in ((video, "lab session"), (renamed, "recording")):
        result = cltt("extract", source, "--out", tmp_path / "frames", cwd=tmp_path)
        assert result.returncode == 0, result.stdout + result.stderr
        assert len(list((tmp_path / "frames" / clip).glob("frame_*.jpg"))) == 6
    (tmp_path / "notes.txt").write_text("not a video")
    line = one_error_line(cltt("extract", tmp_path / "notes.txt", "--out", tmp_path / "more", cwd=tmp_path))
    assert "not a video OpenCV can open" in line and "mpeg" in line


def test_case_17_folders_are_searched_for_mpeg_files(tmp_path):
    from cltt.data.extract import find_videos

    folder = tmp_path / "videos"
    folder.mkdir()
    mpeg1_video(folder / "a.mpg")
    mpeg1_video(folder / "b.MPEG")
    (folder / "c.txt").write_text("no")
    assert [p.name for p in find_videos(folder)] == ["a.mpg", "b.MPEG"]


# --------------------------------------------------------------------------- 22: captions


def test_case_22_captions_fit_their_tiles_at_48_px(tmp_path):
    from cltt.data.tiles import BAND_GREY, CAPTION, MIN_TILE, caption_lines, caption_width

    root = tmp_path / "frames"
    write_clip(root, "recording_session_2024_cam1", 12, size=(48, 48))
    out = tmp_path / "sample.png"
    result = cltt("visualize", "--mode", "sample", f"data.root={root}", "data.image_size=48", "data.num_workers=0",
                  "data.window_size=5", "--index", 6, "--no-augment", "--out", out, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    image = cv2.imread(str(out))
    tile = MIN_TILE  # 48 px frames are drawn twice as large
    assert image.shape[1] == 5 * tile + 4 * 4
    band = image[:image.shape[0] - tile]  # the captions, above the frames
    assert band.shape[0] == 2 * CAPTION
    for k in range(5):  # no caption reaches its tile's right edge: nothing is cut off
        assert (band[:, k * (tile + 4) + tile - 2:k * (tile + 4) + tile] == BAND_GREY).all(), k
    for number in range(7, 12):  # the window from frame 7: numbers 9 and 10 have different widths
        lines = caption_lines(f"recording_session_2024_cam1 #{number}", tile)
        assert lines[-1] == f"#{number}"
        assert all(caption_width(line) <= tile for line in lines)
    assert caption_lines("clip_0001 #12", tile) == ["clip_0001 #12"]  # what fits stays on one line
    assert [caption_width(line) <= tile for line in caption_lines("clip_0001 #12345", tile)] == [True, True]
