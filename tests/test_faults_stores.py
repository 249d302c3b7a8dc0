"""Issue 24, cases 5, 7, 21 and 25: frame stores verify what they read and what they append,
report true figures, and keep cltt's caches out of the frames root.

Case 5: a packed frame whose bytes no longer match its CRC-32 was trained on (libjpeg's
"Corrupt JPEG data" the only sign). Now every read checks the CRC-32: the frame is replaced,
named and counted like a corrupt file, and the epoch ends with a one-line count.
Case 7: packing a root into a store packed from another root with the same clip names said
"already there" and skipped them. Clips are now compared by their frames' names, byte sizes and
CRC-32s; a clip of the same name with other frames is refused in one line, nothing written.
Case 21: ``extract --pack`` printed "MB 0.0" and, on a rerun, "skipped 0" for skipped clips.
Case 25: ``ROOT/.cltt/`` (the manifest) made torchvision's ImageFolder refuse the root.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

from cltt.data.stores import open_store
from cltt.data.stores.packed import SHARDS_DIR, STORE_FILE
from tests.conftest import write_clip

TINY = {"data": {"window_size": 3, "window_stride": 1, "image_size": 32, "num_workers": 0},
        "model": {"backbone": "tiny_cnn", "projection_dim": 16},
        "train": {"epochs": 1, "batch_size": 4, "lr": 1e-3, "device": "cpu", "checkpoint_minutes": None}}


def run_cltt(*args, cwd: Path) -> subprocess.CompletedProcess:
    """``python -m cltt ARGS`` in a process of its own, with the test session's cache folder."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_")} | {"OMP_NUM_THREADS": "1", "COLUMNS": "300"}
    return subprocess.run([sys.executable, "-m", "cltt", *map(str, args)], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=300)


def error_line(result: subprocess.CompletedProcess) -> str:
    """The one line a refused command prints on stderr (exit 2, no traceback)."""
    assert result.returncode == 2 and "Traceback" not in result.stdout + result.stderr, result.stdout + result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), result.stdout + result.stderr
    return lines[0]


def table_row(output: str, first_column: str) -> dict[str, str]:
    """The one data row of the rich table whose header starts with ``first_column``, by column."""
    lines = output.splitlines()
    header = next(i for i, line in enumerate(lines) if line.strip("┃ ").startswith(first_column))
    names = [cell.strip() for cell in lines[header].strip("┃").split("┃")]
    cells = [cell.strip() for cell in lines[header + 2].strip("│").split("│")]
    return dict(zip(names, cells))


def store_state(store: Path) -> dict[str, bytes]:
    """Every file of a store and its bytes, to show a refused command wrote nothing."""
    return {str(p.relative_to(store)): p.read_bytes() for p in sorted(store.rglob("*")) if p.is_file()}


# --------------------------------------------------------------------------- case 5


def test_case_05_crc_mismatch_is_replaced_named_and_counted_in_training(frames_root, tmp_path):
    assert run_cltt("pack", frames_root, "--out", tmp_path / "store", cwd=tmp_path).returncode == 0
    store = open_store(tmp_path / "store")
    frame = store.frame_number(store.clip_index("clip1"), 4)  # clip1/frame_5.jpg
    shard = tmp_path / "store" / SHARDS_DIR / f"{store.shard_names[int(store.shard[frame])]}.bin"
    middle = int(store.offset[frame] + store.length[frame] // 2)  # inside the entropy-coded data: it still decodes
    data = bytearray(shard.read_bytes())
    data[middle] ^= 0x5A
    shard.write_bytes(bytes(data))

    tree = json.loads(json.dumps(TINY))
    tree["data"]["root"] = str(tmp_path / "store")
    tree["train"]["out_dir"] = str(tmp_path / "runs")
    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump(tree))
    trained = run_cltt("train", tmp_path / "tiny.yaml", cwd=tmp_path)
    output = trained.stdout + trained.stderr
    assert trained.returncode == 0, output
    where = f"{tmp_path / 'store'}:clip1/frame_5.jpg"
    assert f"corrupt frame {where}: bytes differ from the CRC-32 recorded when packing" in output
    # window_size 3, stride 1: the windows starting at frames 3, 4 and 5 of clip1 hold it, each named when drawn
    named = re.findall(r"frame_5\.jpg: bytes differ from the CRC-32 recorded when packing; sample (\d+) replaced", output)
    assert {int(s) - int(named[0]) for s in named} <= {0, 1, 2} and len(named) >= 3, output
    assert re.search(r"epoch 1: \d+ sample\(s\) replaced by the next because of corrupt frames", output), output
    assert "Corrupt JPEG data" not in output  # never handed to libjpeg

    verified = run_cltt("index", tmp_path / "store", "--verify", cwd=tmp_path)
    assert verified.returncode == 1 and "clip1/frame_5.jpg" in verified.stdout + verified.stderr


def test_case_05_crc_checked_on_every_read_path(frames_root, tmp_path):
    """CPU decoding, the bytes handed to GPU decoding, and raw stores all refuse changed bytes."""
    from cltt.data.decode import CorruptFrameError
    from cltt.data.pack import pack_folder

    for raw_size in (None, 32):
        out = tmp_path / f"store{raw_size}"
        pack_folder(frames_root, out, raw_size=raw_size, workers=1)
        store = open_store(out)
        shard = out / SHARDS_DIR / f"{store.shard_names[0]}.bin"
        data = bytearray(shard.read_bytes())
        data[int(store.offset[7] + store.length[7] // 2)] ^= 0x01  # frame 8 of clip0, one bit
        shard.write_bytes(bytes(data))
        store = open_store(out)
        readers = [store.read] + ([store.encoded_bytes] if raw_size is None else [])
        for read in readers:
            try:
                read(7)
            except CorruptFrameError as err:
                assert err.path == f"{out}:clip0/frame_8.jpg" and "CRC-32" in err.why
            else:
                raise AssertionError(f"{read.__name__} of a changed frame did not raise")
            read(6)  # its neighbours are fine


# --------------------------------------------------------------------------- case 7


def write_other_clip(root: Path, clip: str, num_frames: int) -> None:
    """A clip with the names ``write_clip`` gives but other pictures (noise)."""
    folder = root / clip
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(len(clip))
    for i in range(1, num_frames + 1):
        cv2.imwrite(str(folder / f"frame_{i}.jpg"), rng.integers(0, 255, (48, 64, 3), dtype=np.uint8))


def test_case_07_same_names_other_frames_are_refused_in_one_line(tmp_path):
    first, second = tmp_path / "first", tmp_path / "second"
    for clip in ("clip0", "clip1"):
        write_clip(first, clip, 6)
        write_other_clip(second, clip, 6)
    for raw in ([], ["--raw", "32"]):
        out = tmp_path / f"store{len(raw)}"
        assert run_cltt("pack", first, "--out", out, *raw, cwd=tmp_path).returncode == 0
        before = store_state(out)
        line = error_line(run_cltt("pack", second, "--out", out, *raw, cwd=tmp_path))
        assert "already holds a clip 'clip0' with other frames" in line and "6 of 6 frames differ" in line, line
        assert "(and 1 more clip(s))" in line and "nothing was packed: pack into another --out, or add --force" in line, line
        assert store_state(out) == before
        # the same pack again still skips its finished clips
        again = run_cltt("pack", first, "--out", out, *raw, cwd=tmp_path)
        row = table_row(again.stdout, "clips packed")
        assert again.returncode == 0 and (row["clips packed"], row["already there"]) == ("0", "2"), again.stdout


def test_case_07_force_replaces_the_clips_that_differ(tmp_path):
    first, second = tmp_path / "first", tmp_path / "second"
    for clip in ("clip0", "clip1", "clip2"):
        write_clip(first, clip, 6)
    np.savez(first / "clip0" / "masks.npz", masks=np.zeros((6, 4, 4), np.uint8))  # a side file of the old clip
    shutil.copytree(first / "clip2", second / "clip2")  # the same clip
    write_other_clip(second, "clip0", 7)
    write_other_clip(second, "clip1", 5)
    store = tmp_path / "store"
    assert run_cltt("pack", first, "--out", store, "--shard-size", "4k", cwd=tmp_path).returncode == 0
    forced = run_cltt("pack", second, "--out", store, "--force", cwd=tmp_path)
    assert forced.returncode == 0, forced.stdout + forced.stderr
    row = table_row(forced.stdout, "clips packed")
    assert (row["clips packed"], row["already there"]) == ("2", "1"), forced.stdout
    assert "replaced 2 clip(s) the store held with other frames (--force): clip0, clip1" in forced.stdout
    packed, folder = open_store(store), open_store(second)
    assert packed.clips == folder.clips and packed.frame_counts.tolist() == [7, 5, 6]
    assert all(np.array_equal(packed.read(f), folder.read(f)) for f in range(folder.num_frames))
    assert not packed.clip_file(0, "masks.npz").exists()  # the replaced clip's side file went with it
    again = run_cltt("pack", second, "--out", store, cwd=tmp_path)
    assert again.returncode == 0 and table_row(again.stdout, "clips packed")["already there"] == "3"
    assert "'clip0'" in error_line(run_cltt("pack", first, "--out", store, cwd=tmp_path))


def test_case_07_force_replaces_the_clips_rows_in_the_roots_side_files(tmp_path):
    """boxes.csv and labels.csv describe clips row by row: a clip replaced with --force gets the
    new root's rows in the store's copy (they kept the old frames' boxes), a clip appended gets
    its rows, and every other clip keeps the store's."""
    for seed in (0, 1):
        made = run_cltt("extract", "--synthetic", "bouncing-balls", "--out", f"seed{seed}", "--clips", "3",
                        "--frames", "4", "--size", "32", "--seed", seed, cwd=tmp_path)
        assert made.returncode == 0, made.stdout + made.stderr
    first, other = tmp_path / "seed0", tmp_path / "seed1"

    def rows(root: Path, name: str, clips=None) -> list[str]:
        lines = (root / name).read_text().splitlines()
        return lines[:1] + [line for line in lines[1:] if clips is None or line.split(",")[0] in clips]

    second = tmp_path / "second"  # first's clips, but clip_0001 re-extracted with other frames and boxes
    shutil.copytree(first, second)
    shutil.rmtree(second / "clip_0001")
    shutil.copytree(other / "clip_0001", second / "clip_0001")
    for name in ("boxes.csv", "labels.csv"):
        kept = rows(first, name)
        new = rows(other, name, {"clip_0001"})[1:]
        at = next(i for i, line in enumerate(kept) if line.startswith("clip_0001,"))
        after = [line for line in kept[at:] if not line.startswith("clip_0001,")]
        (second / name).write_text("\n".join(kept[:at] + new + after) + "\n")
    assert rows(second, "boxes.csv") != rows(first, "boxes.csv")  # the boxes really moved

    store = tmp_path / "store"
    assert run_cltt("pack", first, "--out", store, cwd=tmp_path).returncode == 0
    forced = run_cltt("pack", second, "--out", store, "--force", cwd=tmp_path)
    assert forced.returncode == 0, forced.stdout + forced.stderr
    assert "replaced 1 clip(s) the store held with other frames (--force): clip_0001" in forced.stdout
    assert "differs from the store's copy" not in forced.stderr, forced.stderr
    for name in ("boxes.csv", "labels.csv"):
        assert rows(store, name) == rows(second, name), name  # no stale clip_0001 row, none missing
    assert rows(store, "boxes.csv", {"clip_0001"}) == rows(other, "boxes.csv", {"clip_0001"})

    third = tmp_path / "third"  # one more clip, appended: its rows join the store's
    shutil.copytree(other / "clip_0002", third / "clip_0009")
    for name in ("boxes.csv", "labels.csv"):
        (third / name).write_text("\n".join(rows(other, name, {"clip_0002"})).replace("clip_0002,", "clip_0009,") + "\n")
    appended = run_cltt("pack", third, "--out", store, cwd=tmp_path)
    assert appended.returncode == 0 and "differs from the store's copy" not in appended.stderr, appended.stderr
    assert rows(store, "boxes.csv") == rows(second, "boxes.csv") + rows(third, "boxes.csv")[1:]
    assert open_store(store).clips == ["clip_0000", "clip_0001", "clip_0002", "clip_0009"]



def test_unchanged_clips_side_files_and_rows_are_never_kept_silently(tmp_path):
    """Found by the hostile-user pass: repacking a root whose frames were unchanged but whose
    clip_0003/timestamps.csv and clip_0002 label were rewritten kept the store's old times
    silently and its labels.csv row with a 'merge them by hand' warning, --force or not. Now
    each difference is a warning naming the clip and file and --force; with --force the root's
    side files and rows are taken."""
    made = run_cltt("extract", "--synthetic", "playroom", "--out", "root", "--clips", "4", "--frames", "4",
                    "--size", "32", cwd=tmp_path)
    assert made.returncode == 0, made.stdout + made.stderr
    root, store = tmp_path / "root", tmp_path / "store"
    assert run_cltt("pack", root, "--out", store, cwd=tmp_path).returncode == 0
    times = root / "clip_0003" / "timestamps.csv"
    lines = times.read_text().splitlines()
    times.write_text("\n".join(lines[:1] + [f"{line.rsplit(',', 1)[0]},{2 * i:.6f}" for i, line in enumerate(lines[1:])]) + "\n")
    (root / "clip_0001" / "masks.npz").unlink()
    labels = (root / "labels.csv").read_text().splitlines()
    at = next(i for i, line in enumerate(labels) if line.startswith("clip_0002,"))
    clip, label, split = labels[at].split(",")
    labels[at] = ",".join((clip, "sphere" if label != "sphere" else "cube", split))
    (root / "labels.csv").write_text("\n".join(labels) + "\n")
    before = store_state(store)

    kept = run_cltt("pack", root, "--out", store, cwd=tmp_path)
    assert kept.returncode == 0, kept.stdout + kept.stderr
    warnings = [line for line in kept.stderr.splitlines() if line.startswith("warning:")]
    assert warnings == [
        "warning: clip_0001/masks.npz differs from the store's copy (the clip's frames are the same); kept the "
        "store's: add --force to take the root's",
        "warning: clip_0003/timestamps.csv differs from the store's copy (the clip's frames are the same); kept the "
        "store's: add --force to take the root's",
        "warning: labels.csv: the rows of clip_0002 differ from the store's copy; kept the store's: add --force to "
        "take the root's rows of its clips"], kept.stderr
    assert store_state(store) == before

    forced = run_cltt("pack", root, "--out", store, "--force", cwd=tmp_path)
    assert forced.returncode == 0 and "warning" not in forced.stderr, forced.stdout + forced.stderr
    assert ("replaced 2 side file(s) of clips whose frames are unchanged (--force): clip_0001/masks.npz, "
            "clip_0003/timestamps.csv") in forced.stdout
    assert (store / "clips" / "clip_0003" / "timestamps.csv").read_bytes() == times.read_bytes()
    assert not (store / "clips" / "clip_0001" / "masks.npz").exists()
    assert (store / "labels.csv").read_text() == (root / "labels.csv").read_text()
    packed = open_store(store)
    assert packed.frame_times(packed.clip_index("clip_0003")).tolist() == [0.0, 2.0, 4.0, 6.0]
    again = run_cltt("pack", root, "--out", store, cwd=tmp_path)
    assert again.returncode == 0 and "warning" not in again.stderr and "replaced" not in again.stdout, again.stderr

def test_case_07_identity_is_by_content_not_size_names_or_count(tmp_path):
    first = tmp_path / "first"
    write_clip(first, "clip0", 6)
    write_clip(first, "clip1", 6)
    assert run_cltt("pack", first, "--out", tmp_path / "store", cwd=tmp_path).returncode == 0

    same_sizes = tmp_path / "same_sizes"  # one byte changed in place: names, count and sizes all agree
    shutil.copytree(first, same_sizes)
    frame = same_sizes / "clip1" / "frame_3.jpg"
    data = bytearray(frame.read_bytes())
    data[len(data) // 2] ^= 0x10
    frame.write_bytes(bytes(data))
    line = error_line(run_cltt("pack", same_sizes, "--out", tmp_path / "store", cwd=tmp_path))
    assert "'clip1'" in line and "1 of 6 frames differ in content, first frame_3.jpg" in line, line

    longer = tmp_path / "longer"  # one more frame
    shutil.copytree(first, longer)
    write_clip(longer, "clip0", 7)
    line = error_line(run_cltt("pack", longer, "--out", tmp_path / "store", cwd=tmp_path))
    assert "'clip0'" in line and "7 frames in the root, 6 in the store; frame_7.jpg is not in the store" in line, line


def test_case_07_a_frame_left_out_as_corrupt_still_counts_as_the_same_clip(tmp_path):
    root = tmp_path / "frames"
    write_clip(root, "clip0", 6)
    (root / "clip0" / "frame_4.jpg").write_bytes(b"not a jpeg")
    first = run_cltt("pack", root, "--out", tmp_path / "store", cwd=tmp_path)
    assert first.returncode == 1 and "frame_4.jpg" in first.stderr  # listed, left out
    again = run_cltt("pack", root, "--out", tmp_path / "store", cwd=tmp_path)
    assert again.returncode == 0, again.stdout + again.stderr
    assert table_row(again.stdout, "clips packed")["already there"] == "1"
    (root / "clip0" / "frame_4.jpg").write_bytes((root / "clip0" / "frame_5.jpg").read_bytes())  # repaired: now it differs
    assert "frame_4.jpg is not in the store" in error_line(run_cltt("pack", root, "--out", tmp_path / "store", cwd=tmp_path))


# --------------------------------------------------------------------------- case 21


def test_case_21_extract_pack_reports_the_store_size_and_skipped_clips(tmp_path):
    from tests.helpers.videos import write_video

    for k in range(4):
        write_video(tmp_path / "videos" / f"v{k}.mp4", frames=30, size=(320, 240))
    first = run_cltt("extract", tmp_path / "videos", "--out", tmp_path / "store", "--pack", "--fps", "10", cwd=tmp_path)
    assert first.returncode == 0, first.stdout + first.stderr
    shard_bytes = sum(p.stat().st_size for p in (tmp_path / "store" / SHARDS_DIR).glob("*.bin"))
    assert shard_bytes > 100_000
    packed = table_row(first.stdout, "clips packed")
    assert packed["MB"] == f"{shard_bytes / 1e6:.1f}" and packed["clips packed"] == "4", first.stdout
    assert table_row(first.stdout, "done")["done"] == "4"

    again = run_cltt("extract", tmp_path / "videos", "--out", tmp_path / "store", "--pack", "--fps", "10", cwd=tmp_path)
    assert again.returncode == 0, again.stdout + again.stderr
    extracted = table_row(again.stdout, "done")
    assert (extracted["done"], extracted["skipped"]) == ("0", "4"), again.stdout
    packed = table_row(again.stdout, "clips packed")
    assert (packed["clips packed"], packed["already there"], packed["MB"]) == ("0", "4", f"{shard_bytes / 1e6:.1f}")

    # another video under a packed clip's name is extracted again and compared, not skipped by name
    write_video(tmp_path / "videos" / "v1.mp4", frames=20, size=(320, 240))
    line = error_line(run_cltt("extract", tmp_path / "videos", "--out", tmp_path / "store", "--pack", "--fps", "10",
                               cwd=tmp_path))
    assert f"already holds a clip 'v1' with other frames than {tmp_path / 'videos' / 'v1.mp4'} gives" in line, line
    assert "extract that video into another --out, or rename it" in line, line
    assert open_store(tmp_path / "store").frame_counts.tolist() == [10, 10, 10, 10]


def test_case_21_synthetic_rerun_counts_its_clips_as_skipped(tmp_path):
    args = ["extract", "--synthetic", "bouncing-balls", "--out", tmp_path / "balls", "--pack", "--clips", "3",
            "--frames", "4", "--size", "32"]
    assert run_cltt(*args, cwd=tmp_path).returncode == 0
    again = run_cltt(*args, cwd=tmp_path)
    assert again.returncode == 0, again.stdout + again.stderr
    assert (table_row(again.stdout, "done")["done"], table_row(again.stdout, "done")["skipped"]) == ("0", "3")
    assert table_row(again.stdout, "clips packed")["MB"] != "0.000"
    assert json.loads((tmp_path / "balls" / STORE_FILE).read_text())["frames"] == 12


# --------------------------------------------------------------------------- case 25


def tree_of(root: Path) -> dict[str, int]:
    """Every path under ``root``, hidden ones too, with its size (0 for folders)."""
    return {str(p.relative_to(root)): p.stat().st_size if p.is_file() else 0 for p in sorted(root.rglob("*"))}


def test_case_25_an_indexed_root_still_opens_in_imagefolder(frames_root, tmp_path, cltt_cache_dir):
    from torchvision.datasets import ImageFolder

    before = tree_of(frames_root)
    indexed = run_cltt("index", frames_root, cwd=tmp_path)
    assert indexed.returncode == 0, indexed.stdout + indexed.stderr
    assert tree_of(frames_root) == before  # nothing of cltt's inside the root
    assert str(cltt_cache_dir / "manifests") in indexed.stdout and "(built)" in indexed.stdout, indexed.stdout
    again = run_cltt("index", frames_root, cwd=tmp_path)
    assert "(reused)" in again.stdout, again.stdout
    images = ImageFolder(str(frames_root))
    assert images.classes == ["clip0", "clip1", "clip2"] and len(images) == 12 + 17 + 22
    assert images[0][0].size == (64, 48)

    from lightly.data import LightlyDataset  # the other reader the issue names

    lightly_set = LightlyDataset(input_dir=str(frames_root))
    assert len(lightly_set) == 12 + 17 + 22
    assert sorted({name.split("/")[0] for name in lightly_set.get_filenames()}) == ["clip0", "clip1", "clip2"]


def test_case_25_a_manifest_an_earlier_cltt_left_in_the_root_is_read_and_named(frames_root, tmp_path):
    from cltt.data.manifest import LEGACY_MANIFEST_DIR, index_frames

    legacy = frames_root / LEGACY_MANIFEST_DIR  # made before scanning, as earlier versions did
    legacy.mkdir()
    built = index_frames(frames_root, cache_dir=tmp_path / "old")
    shutil.move(built.path, legacy / "manifest.npz")
    reused = index_frames(frames_root, cache_dir=tmp_path / "new")
    assert (reused.status, reused.path) == ("reused", legacy / "manifest.npz")
    assert reused.manifest.frame_counts.tolist() == [12, 17, 22]
    indexed = run_cltt("index", frames_root, cwd=tmp_path)
    output = " ".join((indexed.stdout + indexed.stderr).split())  # rich wraps the warning
    assert indexed.returncode == 0 and f"delete {legacy}, which torchvision's ImageFolder takes for an empty class" in output


def test_case_25_a_read_only_root_is_indexed_and_trained_on(frames_root, tmp_path, cltt_cache_dir):
    """A real read-only root: a read-only bind mount when running as root (root ignores file
    modes), else the folders' write bits removed."""
    tree = json.loads(json.dumps(TINY))
    tree["data"]["root"] = str(frames_root)
    tree["train"]["out_dir"] = str(tmp_path / "runs")
    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump(tree))
    commands = [f"{sys.executable} -m cltt index {frames_root}", f"{sys.executable} -m cltt index {frames_root}",
                f"{sys.executable} -m cltt train {tmp_path / 'tiny.yaml'}", f"touch {frames_root}/written"]
    before = tree_of(frames_root)
    if os.geteuid() == 0:
        mount = f"mount --bind {frames_root} {frames_root} && mount -o remount,bind,ro {frames_root}"
        if subprocess.run(["unshare", "-m", "sh", "-c", mount], capture_output=True).returncode != 0:
            pytest.skip("running as root without a mount namespace: cannot make a read-only root")
        argv = ["unshare", "-m", "sh", "-c", f"{mount} && " + " && ".join(commands[:3]) + f"; {commands[3]}"]
    else:
        for folder in [frames_root, *(p for p in frames_root.rglob("*") if p.is_dir())]:
            folder.chmod(0o555)
        argv = ["sh", "-c", " && ".join(commands[:3]) + f"; {commands[3]}"]
    env = os.environ | {"OMP_NUM_THREADS": "1", "COLUMNS": "300"}
    try:
        result = subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    finally:
        for folder in [frames_root, *(p for p in frames_root.rglob("*") if p.is_dir())]:
            folder.chmod(0o755)
    output = result.stdout + result.stderr
    assert "touch: cannot touch" in result.stderr, output  # the root really was read-only
    assert output.count(str(cltt_cache_dir / "manifests")) == 2 and "(built)" in output and "(reused)" in output, output
    assert "trained 1 epochs" in output, output
    assert tree_of(frames_root) == before
