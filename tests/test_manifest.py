"""Indexing a frames root: natural order, ignored files, nested clips, freshness, read-only roots."""

from __future__ import annotations

import os
import random
import stat
import time

import pytest

from cltt.data.manifest import Manifest, index_frames, natural_sorted, scan_frames
from cltt.errors import CLTTError
from tests.conftest import write_clip


def test_natural_order():
    names = ["frame_10.jpg", "frame_2.jpg", "frame_1.jpg", "Frame_3.png", "frame_100.jpg", "frame_020.jpg"]
    assert natural_sorted(names) == ["frame_1.jpg", "frame_2.jpg", "Frame_3.png", "frame_10.jpg", "frame_020.jpg", "frame_100.jpg"]
    shuffled = [f"f{i}.jpg" for i in range(200)]
    random.Random(0).shuffle(shuffled)
    assert natural_sorted(shuffled) == [f"f{i}.jpg" for i in range(200)]


def test_scan_orders_frames_and_ignores_sidecars(tmp_path):
    root = tmp_path / "frames"
    folder = write_clip(root, "clip_b", 12)
    write_clip(root, "clip_a", 3, name="img{}.png")
    (folder / "._frame_1.jpg").write_bytes(b"\x00\x05junk")
    (folder / ".DS_Store").write_bytes(b"junk")
    (folder / "notes.txt").write_text("not a frame")
    (folder / "masks.npz").write_bytes(b"not a frame either")
    (root / "labels.csv").write_text("clip,label\n")
    (root / ".hidden_clip").mkdir()
    write_clip(root / ".hidden_clip", "inner", 3)
    manifest = scan_frames(root)
    assert manifest.clips == ["clip_a", "clip_b"]
    assert manifest.frame_counts.tolist() == [3, 12]
    assert manifest.frame_names(1)[:3] == ["frame_1.jpg", "frame_2.jpg", "frame_3.jpg"]
    assert manifest.frame_names(1)[-1] == "frame_12.jpg"
    assert manifest.frame_path(0, 2) == str(root / "clip_a" / "img3.png")
    assert manifest.clip_of_frame(3) == 1 and manifest.clip_of_frame(2) == 0


def test_mixed_extensions_in_one_clip(tmp_path):
    root = tmp_path / "frames"
    write_clip(root, "c", 4, name="f{}.jpg")
    write_clip(root, "c", 2, name="f{}0.png")  # f10.png, f20.png
    manifest = scan_frames(root)
    assert manifest.frame_names(0) == ["f1.jpg", "f2.jpg", "f3.jpg", "f4.jpg", "f10.png", "f20.png"]


def test_nested_clips_are_named_by_relative_path(tmp_path):
    root = tmp_path / "frames"
    write_clip(root / "dog", "clip_2", 3)
    write_clip(root / "dog", "clip_10", 3)
    write_clip(root / "cat", "clip_1", 4)
    manifest = scan_frames(root)
    assert manifest.clips == ["cat/clip_1", "dog/clip_2", "dog/clip_10"]


def test_index_reuses_fresh_and_rebuilds_stale(frames_root, tmp_path):
    first = index_frames(frames_root, cache_dir=tmp_path / "cache")
    assert first.status == "built" and first.path.parent == tmp_path / "cache" / "manifests"
    again = index_frames(frames_root, cache_dir=tmp_path / "cache")
    assert again.status == "reused"
    assert again.manifest.frame_counts.tolist() == first.manifest.frame_counts.tolist()

    time.sleep(0.01)
    write_clip(frames_root, "clip0", 14)  # two more frames in an existing clip
    stale = index_frames(frames_root, cache_dir=tmp_path / "cache")
    assert stale.status == "rebuilt"
    assert stale.manifest.frame_counts.tolist() == [14, 17, 22]

    write_clip(frames_root, "clip3", 5)  # a new clip
    assert index_frames(frames_root, cache_dir=tmp_path / "cache").manifest.num_clips == 4
    assert index_frames(frames_root, cache_dir=tmp_path / "cache").status == "reused"


def test_manifest_round_trip(frames_root, tmp_path):
    manifest = scan_frames(frames_root)
    manifest.save(tmp_path / "m.npz")
    loaded = Manifest.load(tmp_path / "m.npz")
    assert loaded.clips == manifest.clips
    assert all(loaded.frame_names(c) == manifest.frame_names(c) for c in range(manifest.num_clips))
    (tmp_path / "junk.npz").write_bytes(b"not a manifest")
    assert Manifest.load(tmp_path / "junk.npz") is None


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores file permissions")
def test_read_only_root_goes_to_cache(frames_root, tmp_path):
    frames_root.chmod(stat.S_IRUSR | stat.S_IXUSR)
    try:
        result = index_frames(frames_root, cache_dir=tmp_path / "cache")
        assert result.path.parent == tmp_path / "cache" / "manifests"
        assert index_frames(frames_root, cache_dir=tmp_path / "cache").status == "reused"
    finally:
        frames_root.chmod(0o755)


def test_unwritable_root_location_falls_back_to_cache(frames_root, tmp_path):
    # a file where the manifest folder would go makes the root location unusable, as a read-only mount does
    (frames_root / ".cltt").write_text("in the way")
    result = index_frames(frames_root, cache_dir=tmp_path / "cache")
    assert result.path.parent == tmp_path / "cache" / "manifests"
    assert index_frames(frames_root, cache_dir=tmp_path / "cache").status == "reused"


def test_missing_and_empty_roots(tmp_path):
    with pytest.raises(CLTTError, match="does not exist; extract frames first"):
        index_frames(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CLTTError, match="no frames under"):
        index_frames(tmp_path / "empty")
    (tmp_path / "file").write_text("x")
    with pytest.raises(CLTTError, match="is a file"):
        index_frames(tmp_path / "file")
