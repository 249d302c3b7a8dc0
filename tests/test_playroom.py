"""Built-in ``playroom``: toys on a floor seen by a walking head camera; its renderer pieces, its
per-frame labels (``centre.csv``, ``segments.csv``) and per-clip labels, read back as the probes do."""

from __future__ import annotations

import csv
import hashlib
import math
from collections import Counter
from pathlib import Path

import cv2
import numpy as np
import pytest

from cltt.data.clipwriter import read_marker
from cltt.data.render3d import MESHES, box, head_camera, orbit_camera, rasterise, rasterise_all
from cltt.data.synthetic import write_synthetic
from cltt.recipe import SyntheticConfig

CONFIG = SyntheticConfig(clips=6, frames=16, size=32, max_objects=3, seed=0)
CLIPS = [f"clip_{i:04d}" for i in range(CONFIG.clips)]


def rows_of(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def masks_of(out: Path, clip: str) -> np.ndarray:
    with np.load(out / clip / "masks.npz") as data:
        return data["masks"]


def frames_of(out: Path, clip: str) -> np.ndarray:
    return np.stack([cv2.imread(str(p)) for p in sorted((out / clip).glob("frame_*.jpg"))]).astype(np.float64)


def digest(out: Path) -> str:
    files = sorted(p for p in out.rglob("*") if p.is_file())
    return hashlib.sha256(b"".join(str(p.relative_to(out)).encode() + p.read_bytes() for p in files)).hexdigest()


@pytest.fixture(scope="module")
def room(tmp_path_factory):
    out = tmp_path_factory.mktemp("playroom")
    results = list(write_synthetic("playroom", out, CONFIG))
    assert [r.status for r in results] == ["done"] * CONFIG.clips
    return out


# --------------------------------------------------------------------------- the renderer's new pieces


def test_head_camera_looks_where_it_is_told():
    position = np.array([0.4, 1.1, -0.3])
    for target in ([1.0, 0.2, 2.0], [-2.0, 0.3, -1.0], [0.5, -1.0, -3.0]):
        to = np.array(target) - position
        yaw, pitch = math.degrees(math.atan2(to[0], to[2])), math.degrees(math.atan2(to[1], math.hypot(to[0], to[2])))
        camera = head_camera(position, yaw, pitch)
        x, y, z = camera.to_camera(np.array([target]))[0]
        assert abs(x) < 1e-9 and abs(y) < 1e-9 and z == pytest.approx(np.linalg.norm(to))
        centre_ray = camera.rays(2).mean((0, 1))  # the four central rays average to the optical axis
        assert centre_ray / np.linalg.norm(centre_ray) == pytest.approx(to / np.linalg.norm(to))
    up = head_camera(position, 0.0, 30.0).to_camera(position[None] + [[0.0, 1.0, 1.0]])[0]
    assert up[1] > 0  # a point above the line of sight is above the image centre (y up)


def test_one_z_buffer_for_several_objects_and_nothing_behind_the_camera():
    background = np.full((32, 32, 3), 50.0)
    camera = head_camera((0.0, 0.0, 0.0), 0.0, 0.0)
    near, far = box((0.6, 0.6, 0.6)).moved((0, 0, 2.0)), box((2.0, 2.0, 0.5)).moved((0, 0, 4.0))
    for order in ([(far, (0, 200, 0)), (near, (200, 0, 0))], [(near, (200, 0, 0)), (far, (0, 200, 0))]):
        image, ids = rasterise_all(order, camera, 32, background)
        near_id = 1 + [m is near for m, _ in order].index(True)
        assert ids[16, 16] == near_id and image[16, 16, 0] > image[16, 16, 1]  # the near box hides the far one
        assert ids[16, 9] == 3 - near_id and ids[16, 3] == 0  # the far box shows around it
        assert ids[0, 0] == 0 and tuple(image[0, 0]) == (50, 50, 50)
    behind = box().moved((0, 0, -3.0))
    straddling = box((0.5, 0.5, 6.0)).moved((2.0, 0, 0))  # from behind the camera to in front of it, off to the side
    image, ids = rasterise_all([(behind, (255, 255, 255)), (straddling, (255, 255, 255))], camera, 32, background)
    assert not (ids == 1).any() and (ids == 2).sum() < 32 * 32 / 2
    # one object: rasterise is rasterise_all's first id
    mesh, orbit = MESHES["torus"]().normalised(), orbit_camera(30, 20, 3.2)
    single, mask = rasterise(mesh, orbit, (200, 80, 60), 32, background)
    both, ids = rasterise_all([(mesh, (200, 80, 60))], orbit, 32, background)
    assert np.array_equal(single, both) and np.array_equal(mask, ids == 1) and mask.any()


# --------------------------------------------------------------------------- the data set


def test_layout_and_per_clip_labels(room):
    names = sorted(p.name for p in room.iterdir())
    assert names == sorted([*CLIPS, "boxes.csv", "centre.csv", "labels.csv", "segments.csv"])
    labels = rows_of(room / "labels.csv")
    assert [r["clip"] for r in labels] == CLIPS
    assert {r["label"] for r in labels} == set(list(MESHES)[:3])  # kinds balanced over clips
    assert {r["split"] for r in labels} == {"train", "val", "test"}
    for clip in CLIPS:
        image = cv2.imread(str(room / clip / "frame_000001.jpg"))
        assert image.shape == (32, 32, 3) and masks_of(room, clip).shape == (16, 32, 32)


def test_centre_csv_is_the_toy_nearest_the_image_centre(room):
    """Recomputed here by brute force from the masks: each toy's pixel centre nearest (16, 16)."""
    rows = rows_of(room / "centre.csv")
    assert list(rows[0]) == ["clip", "frame", "label", "object", "distance"]
    assert len(rows) == CONFIG.clips * CONFIG.frames
    for clip in CLIPS:
        mine = [r for r in rows if r["clip"] == clip]
        assert [r["frame"] for r in mine] == [f"frame_{t:06d}.jpg" for t in range(1, CONFIG.frames + 1)]
        kinds = read_marker(room, clip)["extra"]["kinds"]
        for row, mask in zip(mine, masks_of(room, clip)):
            nearest = {}
            for y in range(32):
                for x in range(32):
                    if mask[y, x]:
                        d = math.hypot(x + 0.5 - 16, y + 0.5 - 16)
                        d = 0.0 if d < 0.75 else d
                        nearest[int(mask[y, x])] = min(d, nearest.get(int(mask[y, x]), math.inf))
            if not nearest:
                assert row["label"] == "" and row["object"] == "0"
                continue
            best = min(nearest.values())
            assert float(row["distance"]) == pytest.approx(best, abs=0.01)
            assert nearest[int(row["object"])] == best and row["label"] == kinds[int(row["object"]) - 1]


def test_the_clip_label_is_the_toy_seen_most_and_time_shows_other_toys(room):
    rows = rows_of(room / "centre.csv")
    labels = {r["clip"]: r["label"] for r in rows_of(room / "labels.csv")}
    others, moved = 0, 0
    for clip in CLIPS:
        per_frame = [r["label"] for r in rows if r["clip"] == clip]
        assert Counter(per_frame).most_common(1)[0][0] == labels[clip]
        others += sum(label != labels[clip] for label in per_frame)
        masks = masks_of(room, clip)
        seen = np.array([[(m == k).any() for k in range(1, 6)] for m in masks])
        moved += int((seen[1:] != seen[:-1]).sum())  # a toy enters or leaves the view
    assert others > 0 and moved >= CONFIG.clips  # the focus toy is not all there is: toys come and go
    distances = [float(r["distance"]) for r in rows if r["distance"]]
    assert max(distances) > 1  # the toy looked at is not always on the centre


def test_the_camera_moves_smoothly(room):
    for clip in CLIPS[:3]:
        frames = frames_of(room, clip)
        step = np.abs(np.diff(frames, axis=0)).mean()
        apart = np.abs(frames[8:] - frames[:-8]).mean()
        assert 0.3 < step < apart  # every frame moves a little; frames 0.8 s apart differ more


def test_segments_give_the_same_frame_labels_through_the_segments_reader(room, tmp_path):
    from cltt.data.stores import open_store
    from cltt.eval.labels import load_labels
    from cltt.eval.segments import load_segments

    store = open_store(room, cache_dir=tmp_path / "cache")
    segments = load_segments(store, room / "segments.csv")
    centre = rows_of(room / "centre.csv")
    for k, clip in enumerate(segments.clips):
        got = [segments.names[i] if i >= 0 else "" for i in segments.label[k]]
        assert got == [r["label"] for r in centre if r["clip"] == clip]
    assert sorted(segments.clips) == CLIPS
    table = load_labels(store)  # what the classes task reads
    assert table.clips == CLIPS and table.file_splits is not None


def test_written_bytes_do_not_depend_on_workers_or_runs(room, tmp_path):
    config = SyntheticConfig(clips=4, frames=6, size=32, max_objects=2, seed=3)
    digests = []
    for run, workers in (("a", 1), ("b", 2)):
        list(write_synthetic("playroom", tmp_path / run, config, workers=workers))
        digests.append(digest(tmp_path / run))
    assert digests[0] == digests[1]
    for table in ("labels.csv", "centre.csv", "segments.csv", "boxes.csv"):  # a rerun skips the clips and
        (tmp_path / "a" / table).unlink()  # rebuilds the tables from their masks alone
    assert {r.status for r in write_synthetic("playroom", tmp_path / "a", config)} == {"skipped"}
    assert digest(tmp_path / "a") == digests[0]
    list(write_synthetic("playroom", tmp_path / "c", SyntheticConfig(clips=4, frames=6, size=32, max_objects=2, seed=4)))
    assert digest(tmp_path / "c") != digests[0]


def test_many_kinds_fit_in_the_room(tmp_path):
    """Twelve kinds: twelve toys, the room still has a clear place to start and the walk keeps clear."""
    from cltt.data.synthetic import get_generator

    generator, config = get_generator("playroom"), SyntheticConfig(clips=24, frames=4, size=32, max_objects=12)
    plans = generator.plan(config)
    assert sorted({p.label for p in plans}) == sorted(MESHES)
    scene = generator.scene(config, plans[5])
    places = np.array(scene.extra["places"])
    assert len(places) == 12 and len(set(scene.extra["kinds"])) == 12
    assert min(np.hypot(*(a - b)) for i, a in enumerate(places) for b in places[i + 1:]) > 0.5
