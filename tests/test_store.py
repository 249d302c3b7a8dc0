"""Frame stores: a packed store reads exactly as the folder it came from, survives kills, refuses damage."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from cltt.cli import main
from cltt.data.dataset import WindowDataset
from cltt.data.pack import StoreWriter, pack_folder, parse_size
from cltt.data.stores import open_store, store_kinds
from cltt.data.stores.folder import FolderStore
from cltt.data.stores.packed import SHARDS_DIR, STORE_FILE, PackedStore
from cltt.data.windows import WindowSpec
from cltt.errors import CLTTError
from cltt.eval.features import FrameSet
from cltt.recipe import AugmentConfig
from tests.conftest import invoke_in_process, write_clip
from tests.helpers.commands import QUICKSTART, one_line_error


def cltt(args, cwd: Path):
    return invoke_in_process(main, args, cwd)


@pytest.fixture
def labelled_root(tmp_path: Path) -> Path:
    """Five clips in nested folders with labels.csv, boxes.csv and a clip side file."""
    root = tmp_path / "frames"
    for c, n in enumerate((9, 12, 7, 10, 11)):
        write_clip(root, f"group{c % 2}/clip{c}", n)
    (root / "labels.csv").write_text("clip,label\n" + "".join(f"group{c % 2}/clip{c},{'ab'[c % 2]}\n" for c in range(5)))
    (root / "boxes.csv").write_text("clip,frame,x0,y0,x1,y1\ngroup0/clip0,frame_1.jpg,0,0,10,10\n")
    np.savez(root / "group0/clip0/masks.npz", masks=np.zeros((9, 4, 4), np.uint8))
    return root


def test_registry_asks_the_packed_kind_before_the_folder(labelled_root, tmp_path):
    assert list(store_kinds()) == ["packed", "folder"]
    pack_folder(labelled_root, tmp_path / "store", shard_bytes=20_000, workers=2)
    assert isinstance(open_store(labelled_root), FolderStore)
    assert isinstance(open_store(tmp_path / "store"), PackedStore)


def test_packed_store_reads_exactly_as_its_folder(labelled_root, tmp_path):
    summary = pack_folder(labelled_root, tmp_path / "store", shard_bytes=12_000, workers=2)
    folder, store = open_store(labelled_root), open_store(tmp_path / "store")
    assert summary.frames == folder.num_frames == store.num_frames == 49 and summary.shards >= 3
    assert store.clips == folder.clips == [f"group{c % 2}/clip{c}" for c in (0, 2, 4, 1, 3)]
    assert (store.frame_counts == folder.frame_counts).all()
    for frame in range(folder.num_frames):
        assert store.frame_name(frame) == folder.frame_name(frame)
        for reduction in (1, 2):
            assert np.array_equal(store.read(frame, reduction), folder.read(frame, reduction))
    assert store.reduction_for(24) == folder.reduction_for(24) == 2
    # identity: sizes with CRCs here, sizes with mtimes there; each its own cache entry
    assert store.identity() != folder.identity() and store.identity() == open_store(tmp_path / "store").identity()
    assert FrameSet(store, [1, 3]).identity() == FrameSet(store, [1, 3]).identity()
    # side files travel: root files at the store's root, clip files under clips/
    for name in ("labels.csv", "boxes.csv"):
        assert store.root_file(name).read_bytes() == folder.root_file(name).read_bytes()
    assert store.clip_file(0, "masks.npz").read_bytes() == folder.clip_file(0, "masks.npz").read_bytes()
    assert not store.clip_file(1, "masks.npz").exists()
    # a few large files, not one per frame
    assert len(list((tmp_path / "store").rglob("*.jpg"))) == 0


def test_identity_changes_when_a_frame_is_rewritten_at_the_same_size(frames_root):
    """Sizes alone missed a frame replaced in place by one of the same byte size (uncompressed
    PNGs): features were reused, stale. The mtime is part of the key; an unchanged rerun keeps it."""
    before = open_store(frames_root).identity()
    assert open_store(frames_root, rebuild=True).identity() == before  # unchanged: reused
    frame = frames_root / "clip1" / "frame_3.jpg"
    data = frame.read_bytes()
    frame.write_bytes(bytes(reversed(data)))  # other content, same byte size
    os.utime(frame, ns=(1, 1))
    assert open_store(frames_root).identity() != before
    write_clip(frames_root, "clip1", 17, name="frame_{:d}.jpg", size=(40, 64))  # re-extracted at another size
    assert open_store(frames_root).identity() != before


def test_packed_identity_covers_content_by_crc(labelled_root, tmp_path):
    """Two packs of one folder share an identity; a pack whose frame has other bytes of the same size does not."""
    pack_folder(labelled_root, tmp_path / "a", workers=1)
    pack_folder(labelled_root, tmp_path / "b", workers=1)
    first = open_store(tmp_path / "a")
    assert first.identity() == open_store(tmp_path / "b").identity()
    frame = Path(open_store(labelled_root).path_of(4))
    data = bytearray(frame.read_bytes())
    data[len(data) // 2] ^= 0x01  # one bit of the entropy-coded scan: still a JPEG, other bytes
    frame.write_bytes(bytes(data))
    pack_folder(labelled_root, tmp_path / "c", workers=1)
    changed = open_store(tmp_path / "c")
    assert (changed.frame_sizes(0, changed.num_frames) == first.frame_sizes(0, first.num_frames)).all()
    assert changed.identity() != first.identity()


def test_windows_from_a_store_are_the_folders_bit_for_bit_with_workers(labelled_root, tmp_path):
    """The training dataset (augmented, as recipes run it) gives identical batches from both,
    and a store read by two DataLoader worker processes gives what one process reads."""
    pack_folder(labelled_root, tmp_path / "store", shard_bytes=20_000, workers=2)
    spec = WindowSpec(3, frame_step=1, window_stride=2)

    def batches(root, workers):
        data = WindowDataset(open_store(root), spec, 32, AugmentConfig(), views=2, seed=7)
        loader = DataLoader(data, batch_size=4, num_workers=workers, shuffle=False)
        return [batch["views"] for batch in loader]

    folder = batches(labelled_root, 0)
    for store in (batches(tmp_path / "store", 0), batches(tmp_path / "store", 2)):
        assert len(store) == len(folder) and all(torch.equal(a, b) for a, b in zip(folder, store))


def test_training_from_a_store_equals_training_from_its_folder(tmp_path):
    """The default recipe's model (resnet18, BatchNorm head) trained one epoch from each: same weights."""
    assert cltt(["extract", "--synthetic", "moving-digits", "--out", "digits", "--clips", "6", "--frames", "8",
                 "--size", "32"], tmp_path).exit_code == 0
    assert cltt(["pack", "digits", "--out", "digits.store", "--shard-size", "40k"], tmp_path).exit_code == 0
    common = ["data.image_size=32", "data.num_workers=2", "train.epochs=1", "train.batch_size=6"]
    weights = []
    for root, name in (("digits", "folder"), ("digits.store", "store")):
        result = cltt(["train", QUICKSTART, f"data.root={root}", f"train.name={name}", *common], tmp_path)
        assert result.exit_code == 0, result.output
        state = torch.load(sorted((tmp_path / "runs" / name).glob("*.pth"))[-1], map_location="cpu", weights_only=False)
        weights.append(state["model"])
    assert weights[0].keys() == weights[1].keys()
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])


def test_raw_store_holds_frames_at_training_size(labelled_root, tmp_path):
    pack_folder(labelled_root, tmp_path / "raw", raw_size=24, workers=2)
    store, folder = open_store(tmp_path / "raw"), open_store(labelled_root)
    assert store.encoding == "raw" and store.read(5).shape == (24, 32, 3)  # 48x64 with short side 24
    assert store.reduction_for(24) == 1 and store.identity() != folder.identity()
    # area-resized from the full decode: close to the folder's frame at half size
    difference = np.abs(store.read(5).astype(int) - folder.read(5, 2)[:24, :32].astype(int))
    assert difference.mean() < 6
    data = WindowDataset(store, WindowSpec(2), 24, AugmentConfig(enabled=False))
    assert data[0]["views"].shape == (1, 2, 3, 24, 24)


def test_append_clips_in_natural_order(tmp_path):
    first, second, whole = tmp_path / "a", tmp_path / "b", tmp_path / "whole"
    for c in (1, 3, 10):
        write_clip(first, f"clip{c}", 5)
        write_clip(whole, f"clip{c}", 5)
    for c in (2, 20):
        write_clip(second, f"clip{c}", 6)
        write_clip(whole, f"clip{c}", 6)
    pack_folder(first, tmp_path / "store", shard_bytes=10_000)
    summary = pack_folder(second, tmp_path / "store", shard_bytes=10_000)
    assert summary.clips_packed == 2 and summary.clips_present == 0
    again = pack_folder(first, tmp_path / "store")
    assert again.clips_packed == 0 and again.clips_present == 3
    store, folder = open_store(tmp_path / "store"), open_store(whole)
    assert store.clips == ["clip1", "clip2", "clip3", "clip10", "clip20"] == folder.clips
    assert all(np.array_equal(store.read(f), folder.read(f)) for f in range(folder.num_frames))


KILLER = """
import os, signal, sys
from pathlib import Path
from cltt.data import pack

original = pack.StoreWriter.add_clip
calls = 0

def add_clip(self, clip, frames, side_files=None):
    global calls
    calls += 1
    if calls == int(sys.argv[3]):  # the frames of this clip are half written when the process dies
        if self.handle is None:  # a shard is opened by the first clip written into it
            self._open_shard()
        self.handle.write(b"partial frame bytes")
        self.handle.flush()
        os.kill(os.getpid(), signal.SIGKILL)
    return original(self, clip, frames, side_files)

pack.StoreWriter.add_clip = add_clip
pack.pack_folder(Path(sys.argv[1]), Path(sys.argv[2]), shard_bytes=15_000, workers=2)
"""


def test_killed_pack_leaves_sealed_shards_and_a_rerun_finishes_it(tmp_path):
    root = tmp_path / "frames"
    for c in range(8):
        write_clip(root, f"clip{c}", 6 + c)
    store = tmp_path / "store"
    killed = subprocess.run([sys.executable, "-c", KILLER, root, store, "6"], capture_output=True, text=True)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    header = json.loads((store / STORE_FILE).read_text())
    assert not header["complete"] and header["shards"]  # some shards sealed before the kill
    for shard in header["shards"]:  # every sealed shard is whole
        index = np.load(store / SHARDS_DIR / f"{shard}.npz")
        assert (store / SHARDS_DIR / f"{shard}.bin").stat().st_size == int(index["bin_bytes"])
    assert len(list((store / SHARDS_DIR).glob("*.bin"))) == len(header["shards"]) + 1  # the open one
    with pytest.raises(CLTTError, match="incomplete .* rerun the same cltt pack command"):
        open_store(store)

    summary = pack_folder(root, store, shard_bytes=15_000, workers=2)
    assert summary.clips_present > 0 and summary.clips_packed + summary.clips_present == 8
    assert len(list((store / SHARDS_DIR).glob("*.bin"))) == summary.shards
    packed, folder = open_store(store), open_store(root)
    assert packed.clips == folder.clips
    assert all(np.array_equal(packed.read(f), folder.read(f)) for f in range(folder.num_frames))
    assert invoke_in_process(main, ["index", store, "--verify"], tmp_path).exit_code == 0


def test_corrupt_frames_are_reported_skipped_and_counted(tmp_path):
    root = tmp_path / "frames"
    write_clip(root, "clip0", 6)
    write_clip(root, "clip1", 6)
    bad = root / "clip1" / "frame_3.jpg"
    bad.write_bytes(bad.read_bytes()[:300])
    result = cltt(["pack", root, "--out", tmp_path / "store"], tmp_path)
    assert result.exit_code == 1
    assert "corrupt" in result.output and "frame_3.jpg" in result.output and "1 corrupt frame(s) left out" in result.output
    store = open_store(tmp_path / "store")
    assert store.num_frames == 11 and store.frame_names(1) == [f"frame_{i}.jpg" for i in (1, 2, 4, 5, 6)]


def test_verify_catches_bytes_changed_after_packing(frames_root, tmp_path):
    pack_folder(frames_root, tmp_path / "store")
    store = open_store(tmp_path / "store")
    shard = tmp_path / "store" / SHARDS_DIR / f"{store.shard_names[0]}.bin"
    data = bytearray(shard.read_bytes())
    position = int(store.offset[20]) + 400  # inside frame 20's entropy-coded data
    data[position] ^= 0xFF
    shard.write_bytes(bytes(data))
    result = cltt(["index", tmp_path / "store", "--verify"], tmp_path)
    assert result.exit_code == 1
    assert "clip1/frame_9.jpg: bytes differ from the CRC-32 recorded when packing" in result.output
    assert "1 of 51 frames are corrupt" in result.output


@pytest.mark.parametrize("damage, fragments", [
    ("truncate", ("holds", "bytes but its index expects", "repack")),
    ("delete-bin", ("is missing though its index is there",)),
    ("delete-index", ("index of shard", "missing or unreadable")),
    ("newer", ("newer cltt", "store format 99", "upgrade cltt")),
])
def test_damaged_stores_are_refused_in_one_line(frames_root, tmp_path, damage, fragments):
    store = tmp_path / "store"
    pack_folder(frames_root, store, shard_bytes=20_000)
    shard = store / SHARDS_DIR / "shard-000001"
    if damage == "truncate":
        data = shard.with_suffix(".bin").read_bytes()
        shard.with_suffix(".bin").write_bytes(data[:-100])
    elif damage == "delete-bin":
        shard.with_suffix(".bin").unlink()
    elif damage == "delete-index":
        shard.with_suffix(".npz").unlink()
    else:
        header = json.loads((store / STORE_FILE).read_text())
        (store / STORE_FILE).write_text(json.dumps({**header, "version": 99}))
    before = {p: p.read_bytes() for p in store.rglob("*") if p.is_file()}
    for command in (["index", store], ["train", QUICKSTART, f"data.root={store}"]):
        one_line_error(cltt(command, tmp_path), *fragments)
    assert {p: p.read_bytes() for p in store.rglob("*") if p.is_file()} == before  # nothing rewritten


def test_packing_refuses_folders_that_are_not_stores(frames_root, tmp_path):
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "notes.txt").write_text("mine")
    one_line_error(cltt(["pack", frames_root, "--out", busy], tmp_path), "exists and is not a cltt store")
    assert (busy / "notes.txt").read_text() == "mine" and len(list(busy.iterdir())) == 1
    one_line_error(cltt(["pack", frames_root, "--out", frames_root / "inside"], tmp_path), "must not lie inside")
    pack_folder(frames_root, tmp_path / "store")
    one_line_error(cltt(["pack", frames_root, "--out", tmp_path / "store", "--raw", "32"], tmp_path),
                   "was packed with no --raw, this pack asks for --raw 32")
    one_line_error(cltt(["pack", tmp_path / "store", "--out", tmp_path / "again"], tmp_path), "already a packed store")
    one_line_error(cltt(["pack", frames_root, "--out", tmp_path / "s", "--shard-size", "lots"], tmp_path), "is not a size")
    one_line_error(cltt(["pack", frames_root, "--out", tmp_path / "s", "--raw", "2"], tmp_path), "is not a frame size")
    one_line_error(cltt(["pack", tmp_path / "nowhere", "--out", tmp_path / "s"], tmp_path), "is not a folder")
    (tmp_path / "plain-file").write_text("x")
    one_line_error(cltt(["pack", frames_root, "--out", tmp_path / "plain-file" / "store"], tmp_path), "cannot create the store")
    assert parse_size("64M") == 64 << 20 and parse_size("1G") == 1 << 30 and parse_size("500") == 500


def test_writer_refuses_a_store_it_cannot_read(tmp_path):
    (tmp_path / "store").mkdir()
    (tmp_path / "store" / STORE_FILE).write_text(json.dumps({"format": "cltt-store", "version": 99}))
    with pytest.raises(CLTTError, match="newer cltt"):
        StoreWriter(tmp_path / "store")


def test_every_command_reads_a_store_as_its_folder(tmp_path):
    """index, visualize, probe and export --embeddings on a store give what they give on its folder."""
    assert cltt(["extract", "--synthetic", "moving-digits", "--out", "digits", "--clips", "60", "--frames", "4",
                 "--size", "32"], tmp_path).exit_code == 0
    assert cltt(["pack", "digits", "--out", "digits.store", "--shard-size", "20k"], tmp_path).exit_code == 0
    index = cltt(["index", QUICKSTART, "data.root=digits.store", "--verify"], tmp_path)
    assert index.exit_code == 0 and "all 240 frames decode" in index.output and "packed" in index.output
    for root in ("digits", "digits.store"):
        out = tmp_path / f"batch_{root}.png"
        assert cltt(["visualize", QUICKSTART, f"data.root={root}", "--mode", "batch", "--out", out,
                     "--no-augment"], tmp_path).exit_code == 0
    assert (tmp_path / "batch_digits.png").read_bytes() == (tmp_path / "batch_digits.store.png").read_bytes()

    common = ["data.image_size=32", "model.backbone=tiny_cnn", "train.epochs=1", "train.batch_size=4",
              "train.name=run"]
    assert cltt(["train", QUICKSTART, "data.root=digits", *common], tmp_path).exit_code == 0
    def probe(root: str) -> dict:
        result = cltt(["probe", "runs/run", f"data.root={root}", "--out", "probe.json", "--force"], tmp_path)
        assert result.exit_code == 0, result.output
        return json.loads((tmp_path / "probe.json").read_text())

    from_folder = probe("digits")
    shutil.rmtree(tmp_path / "runs/run/features")
    from_store = probe("digits.store")
    assert all(v.startswith("computed") for v in from_store["cache"].values())  # decoded from the shards
    assert from_folder["scores"] and from_folder["scores"] == from_store["scores"]
    again = probe("digits.store")["cache"].values()  # sizes and CRCs there, sizes and mtimes in the folder
    assert all(v.startswith("reused") for v in again) and all(v.startswith("computed") for v in probe("digits")["cache"].values())
    for root in ("digits", "digits.store"):
        result = cltt(["export", "runs/run", "--embeddings", root, "--out", f"emb_{root}.npy"], tmp_path)
        assert result.exit_code == 0, result.output
    assert np.array_equal(np.load(tmp_path / "emb_digits.npy"), np.load(tmp_path / "emb_digits.store.npy"))


def test_extract_pack_writes_a_store_without_a_folder_per_clip(tmp_path):
    from tests.helpers.videos import write_video

    videos = tmp_path / "videos"
    videos.mkdir()
    for k in range(3):
        write_video(videos / f"v{k}.mp4", frames=20 + 5 * k)
    assert cltt(["extract", videos, "--out", "frames", "--fps", "10"], tmp_path).exit_code == 0
    result = cltt(["extract", videos, "--out", "store", "--fps", "10", "--pack", "--shard-size", "50k"], tmp_path)
    assert result.exit_code == 0, result.output
    # staging gone; clips/ keeps each clip's extraction marker (which video, which options)
    assert sorted(p.name for p in (tmp_path / "store").iterdir()) == ["clips", STORE_FILE, SHARDS_DIR]
    store, folder = open_store(tmp_path / "store"), open_store(tmp_path / "frames")
    assert store.clips == folder.clips == ["v0", "v1", "v2"]
    assert all(np.array_equal(store.read(f), folder.read(f)) for f in range(folder.num_frames))
    again = cltt(["extract", videos, "--out", "store", "--fps", "10", "--pack"], tmp_path)
    assert again.exit_code == 0 and open_store(tmp_path / "store").num_frames == folder.num_frames
    synthetic = cltt(["extract", "--synthetic", "bouncing-balls", "--out", "balls", "--pack", "--clips", "3",
                      "--frames", "5", "--size", "32", "--raw", "32"], tmp_path)
    assert synthetic.exit_code == 0, synthetic.output
    balls = open_store(tmp_path / "balls")
    assert balls.num_frames == 15 and balls.encoding == "raw" and balls.root_file("labels.csv").is_file()
    assert balls.clip_file(0, "masks.npz").is_file()
    one_line_error(cltt(["extract", videos, "--out", "x", "--raw", "32"], tmp_path), "add --pack")


def test_a_failed_append_leaves_the_store_readable(frames_root, tmp_path):
    pack_folder(frames_root, tmp_path / "store")
    one_line_error(cltt(["extract", tmp_path / "no-videos", "--out", tmp_path / "store", "--pack"], tmp_path),
                   "does not exist")
    assert open_store(tmp_path / "store").num_frames == 51
    again = pack_folder(frames_root, tmp_path / "store")  # nothing new: the header is left complete
    assert again.clips_packed == 0 and open_store(tmp_path / "store").num_frames == 51
