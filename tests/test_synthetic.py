"""Built-in synthetic datasets: real files on disk, read back with cv2."""

from __future__ import annotations

import csv
import os
from pathlib import Path

import cv2
import numpy as np
import pytest

from cltt.data.clipwriter import read_marker
from cltt.data.render3d import MESHES
from cltt.data.synthetic import PHASE_NAMES, digit_samples, phase_timeline, registered_generators, write_synthetic
from cltt.errors import CLTTError
from cltt.recipe import SyntheticConfig

TINY = SyntheticConfig(clips=6, frames=8, size=32, max_objects=3, seed=0)
NAMES = sorted(registered_generators())


def write(name: str, out: Path, config: SyntheticConfig = TINY, workers: int = 1) -> list:
    return list(write_synthetic(name, out, config, workers=workers))


def read_csv(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    with open(path, newline="") as handle:
        reader = csv.DictReader(handle)
        return list(reader.fieldnames or []), list(reader)


def masks_of(out: Path, clip: str) -> np.ndarray:
    with np.load(out / clip / "masks.npz") as data:
        return data["masks"]


def all_files(out: Path) -> dict[str, bytes]:
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module", params=NAMES)
def written(request, tmp_path_factory):
    """(name, out, results) of one run of each generator with the tiny config."""
    out = tmp_path_factory.mktemp(request.param)
    return request.param, out, write(request.param, out)


def test_layout_and_file_counts(written):
    name, out, results = written
    clips = [f"clip_{i:04d}" for i in range(TINY.clips)]
    assert sorted(r.clip for r in results) == clips
    assert all(r.status == "done" and r.frames == TINY.frames for r in results)
    generator = registered_generators()[name]
    tables = [f for f in (generator.frame_table and generator.frame_table[0], generator.segments_file) if f]
    assert sorted(p.name for p in out.iterdir()) == sorted(["boxes.csv", *clips, "labels.csv", *tables])
    for clip in clips:
        frames = sorted((out / clip).glob("frame_*.jpg"))
        assert [p.name for p in frames] == [f"frame_{t:06d}.jpg" for t in range(1, TINY.frames + 1)]
        image = cv2.imread(str(frames[0]))
        assert image.shape == (TINY.size, TINY.size, 3)
        masks = masks_of(out, clip)
        assert masks.shape == (TINY.frames, TINY.size, TINY.size) and masks.dtype == np.uint8
        assert read_marker(out, clip)["frames"] == TINY.frames


def test_labels_match_masks(written):
    name, out, _ = written
    header, rows = read_csv(out / "labels.csv")
    assert header == ["clip", "label", "split"]
    assert [r["clip"] for r in rows] == [f"clip_{i:04d}" for i in range(TINY.clips)]
    for row in rows:
        extra = read_marker(out, row["clip"])["extra"]
        ids = set(np.unique(masks_of(out, row["clip"]))) - {0}
        assert extra["label"] == row["label"] and extra["split"] == row["split"]
        if name == "playroom":  # toys come and go: not every toy of the room need be seen
            assert ids <= set(range(1, extra["objects"] + 1)) and extra["objects"] == max(TINY.max_objects, 5)
            assert row["label"] in extra["kinds"]
            continue
        assert ids == set(range(1, extra["objects"] + 1)), "every object is visible somewhere"
        assert 1 <= extra["objects"] <= TINY.max_objects
        if name == "bouncing-balls":
            assert row["label"] == str(len(ids))
        elif name == "phases":
            assert extra["objects"] == 1 and row["label"] == str(len(PHASE_NAMES))
        elif name == "rotating-objects":
            assert extra["objects"] == 1 and row["label"] == extra["object"] in MESHES
        else:
            assert len(extra["digits"]) == len(ids)
            assert row["label"] == (str(extra["digits"][0]) if len(ids) == 1 else "")
    if name == "moving-digits":
        assert sum(r["label"] != "" for r in rows) >= TINY.clips // 2


def test_digit_pixels_match_masks(tmp_path):
    out = tmp_path / "d"
    write("moving-digits", out)
    for clip in ("clip_0000", "clip_0003"):
        gray = cv2.imread(str(out / clip / "frame_000004.jpg"), cv2.IMREAD_GRAYSCALE).astype(int)
        mask = masks_of(out, clip)[3]
        assert gray[mask > 0].mean() > 150 and gray[mask == 0].mean() < 30


def test_boxes_are_mask_bounding_boxes(written):
    _, out, _ = written
    header, rows = read_csv(out / "boxes.csv")
    assert header == ["clip", "frame", "x1", "y1", "x2", "y2"]
    expected = []
    for i in range(TINY.clips):
        clip = f"clip_{i:04d}"
        for t, mask in enumerate(masks_of(out, clip)):
            for k in sorted(set(np.unique(mask)) - {0}):
                ys, xs = np.nonzero(mask == k)
                expected.append([clip, f"frame_{t + 1:06d}.jpg", xs.min(), ys.min(), xs.max() + 1, ys.max() + 1])
    got = [[r["clip"], r["frame"], *(int(r[k]) for k in ("x1", "y1", "x2", "y2"))] for r in rows]
    assert got == [[c, f, *map(int, box)] for c, f, *box in expected]
    for r in rows:
        assert (out / r["clip"] / r["frame"]).is_file()


def test_splits_hold_out_whole_clips(written):
    name, out, _ = written
    _, rows = read_csv(out / "labels.csv")
    splits = [r["split"] for r in rows]
    # rotating-objects splits each object's clips: with 2 per object, one train and one test
    assert set(splits) == ({"train", "test"} if name == "rotating-objects" else {"train", "val", "test"})
    assert len({r["clip"] for r in rows}) == len(rows), "one split per clip"
    assert splits.count("train") > splits.count("val")


def test_stratified_splits_on_more_clips(tmp_path):
    config = SyntheticConfig(clips=60, frames=2, size=24, max_objects=3, seed=1)
    list(write_synthetic("bouncing-balls", tmp_path, config))
    _, rows = read_csv(tmp_path / "labels.csv")
    for label in ("1", "2", "3"):
        splits = [r["split"] for r in rows if r["label"] == label]
        assert (splits.count("train"), splits.count("val"), splits.count("test")) == (14, 3, 3)


def test_train_digits_never_in_test(tmp_path):
    config = SyntheticConfig(clips=20, frames=2, size=24, max_objects=3, seed=3)
    list(write_synthetic("moving-digits", tmp_path, config))
    used = {"train": set(), "val": set(), "test": set()}
    for clip in sorted(p.name for p in tmp_path.glob("clip_*")):
        extra = read_marker(tmp_path, clip)["extra"]
        used[extra["split"]].update(extra["samples"])
    assert used["train"] and used["test"]
    assert not used["train"] & used["test"] and not used["train"] & used["val"] and not used["val"] & used["test"]
    _, _, pools = digit_samples()
    assert not set(pools["train"]) & set(pools["test"])
    for split, samples in used.items():
        assert samples <= set(pools[split].tolist())


@pytest.mark.parametrize("name", NAMES)
def test_two_runs_are_byte_identical(name, tmp_path):
    write(name, tmp_path / "a")
    write(name, tmp_path / "b", workers=2)
    a, b = all_files(tmp_path / "a"), all_files(tmp_path / "b")
    assert a.keys() == b.keys() and a == b


def test_seed_changes_the_data(tmp_path):
    write("bouncing-balls", tmp_path / "a")
    write("bouncing-balls", tmp_path / "b", SyntheticConfig(clips=6, frames=8, size=32, max_objects=3, seed=1))
    frame = "clip_0000/frame_000001.jpg"
    assert (tmp_path / "a" / frame).read_bytes() != (tmp_path / "b" / frame).read_bytes()


def test_rerun_skips_finished_clips(tmp_path):
    write("bouncing-balls", tmp_path)
    first = all_files(tmp_path)
    clip_paths = [*tmp_path.glob("clip_*"), *tmp_path.glob("clip_*/*")]
    stamps = {p: p.stat().st_mtime_ns for p in clip_paths}
    os.remove(tmp_path / "labels.csv")
    os.remove(tmp_path / "boxes.csv")
    frames = []
    results = list(write_synthetic("bouncing-balls", tmp_path, TINY, on_frames=frames.append))
    assert [r.status for r in results] == ["skipped"] * TINY.clips
    assert frames == []
    assert {p: p.stat().st_mtime_ns for p in clip_paths} == stamps
    assert all_files(tmp_path) == first, "labels.csv and boxes.csv come back identical"


def test_partial_clip_is_redone(tmp_path):
    write("moving-digits", tmp_path)
    before = all_files(tmp_path)
    clip = tmp_path / "clip_0001"
    partial = tmp_path / ".clip_0001.partial"
    clip.rename(partial)
    for frame in sorted(partial.glob("frame_*.jpg"))[3:]:  # as if killed after 3 frames
        frame.unlink()
    frames = []
    results = list(write_synthetic("moving-digits", tmp_path, TINY, on_frames=frames.append))
    assert {r.clip: r.status for r in results}["clip_0001"] == "done"
    assert sum(r.status == "skipped" for r in results) == TINY.clips - 1
    assert frames == [TINY.frames]
    assert not partial.exists()
    assert all_files(tmp_path) == before


def test_foreign_or_different_folders_fail_without_damage(tmp_path):
    (tmp_path / "clip_0002").mkdir(parents=True)
    (tmp_path / "clip_0002" / "mine.txt").write_text("keep me")
    results = {r.clip: r for r in write("bouncing-balls", tmp_path)}
    assert results["clip_0002"].status == "failed" and "not written by cltt" in results["clip_0002"].message
    assert (tmp_path / "clip_0002" / "mine.txt").read_text() == "keep me"
    _, rows = read_csv(tmp_path / "labels.csv")
    assert "clip_0002" not in {r["clip"] for r in rows} and len(rows) == TINY.clips - 1

    other = SyntheticConfig(clips=6, frames=8, size=32, max_objects=3, seed=5)
    results = write("bouncing-balls", tmp_path, other)
    assert {r.status for r in results} == {"failed"}
    assert "other options" in results[0].message


def test_unknown_generator_suggests_a_name(tmp_path):
    with pytest.raises(CLTTError, match="did you mean 'moving-digits'"):
        write_synthetic("moving-digit", tmp_path, TINY)
    with pytest.raises(CLTTError, match="bouncing-balls, moving-digits"):
        write_synthetic("clevr", tmp_path, TINY)
    assert not any(tmp_path.iterdir()), "nothing written"


def test_bad_config_is_a_clear_error(tmp_path):
    with pytest.raises(CLTTError, match="clips"):
        write_synthetic("bouncing-balls", tmp_path, SyntheticConfig(clips=2))


def test_single_object_digits_are_all_labelled(tmp_path):
    config = SyntheticConfig(clips=4, frames=2, size=24, max_objects=1, seed=0)
    list(write_synthetic("moving-digits", tmp_path, config))
    _, rows = read_csv(tmp_path / "labels.csv")
    assert all(r["label"].isdigit() for r in rows)


# --------------------------------------------------------------------------- phases

PHASES = SyntheticConfig(clips=6, frames=40, size=48, seed=2)


@pytest.fixture(scope="module")
def phases_data(tmp_path_factory):
    out = tmp_path_factory.mktemp("phases")
    write("phases", out, PHASES)
    _, rows = read_csv(out / "phases.csv")
    return out, rows


def test_phase_timeline_is_a_monotone_warp():
    for seed in range(20):
        timeline = phase_timeline(np.random.default_rng(seed), 60)
        shares = np.diff(timeline.boundaries)
        assert timeline.boundaries[0] == 0 and timeline.boundaries[-1] == 1 and (shares >= 0.1 - 1e-9).all()
        assert (np.diff(timeline.phase) >= 0).all() and set(timeline.phase.tolist()) == {0, 1, 2, 3}
        assert (np.diff(timeline.progress) > 0).all(), "the task only moves forward"
        assert (timeline.within >= 0).all() and (timeline.within <= 1).all()
        # frame t lies in the phase whose time span holds (t + 0.5) / T
        centre = (np.arange(60) + 0.5) / 60
        assert (timeline.boundaries[timeline.phase] <= centre).all()
        assert (centre < timeline.boundaries[timeline.phase + 1]).all()
    a, b = (phase_timeline(np.random.default_rng(s), 60) for s in (0, 1))
    assert not np.array_equal(a.phase, b.phase), "each clip has its own warp"


def test_phases_csv_labels_every_frame(phases_data):
    out, rows = phases_data
    header, _ = read_csv(out / "phases.csv")
    assert header == ["clip", "frame", "phase", "progress"]
    assert [(r["clip"], r["frame"]) for r in rows] == [
        (f"clip_{c:04d}", f"frame_{t:06d}.jpg") for c in range(PHASES.clips) for t in range(1, PHASES.frames + 1)]
    boundaries = set()
    for c in range(PHASES.clips):
        clip_rows = [r for r in rows if r["clip"] == f"clip_{c:04d}"]
        phase = np.array([int(r["phase"]) for r in clip_rows])
        progress = np.array([float(r["progress"]) for r in clip_rows])
        assert (np.diff(phase) >= 0).all() and set(phase.tolist()) == {0, 1, 2, 3}
        assert (np.diff(progress) > 0).all() and 0 <= progress[0] and progress[-1] <= 1
        # progress = (phase + fraction of the phase done) / 4: its quarter is the phase
        assert (np.floor(progress * 4).clip(0, 3) == phase).all()
        boundaries.add(tuple(np.flatnonzero(np.diff(phase)).tolist()))
        extra = read_marker(out, f"clip_{c:04d}")["extra"]
        assert extra["phases"] == list(PHASE_NAMES)
    assert len(boundaries) == PHASES.clips, "phase changes fall on different frames in every clip"


def test_phase_shows_in_the_frame(phases_data):
    """Warm disc growing, disc crossing, turning into a cool square, square shrinking."""
    out, rows = phases_data
    for c in range(PHASES.clips):
        clip = f"clip_{c:04d}"
        phase = np.array([int(r["phase"]) for r in rows if r["clip"] == clip])
        masks = masks_of(out, clip)
        area = masks.reshape(len(masks), -1).sum(axis=1).astype(float)
        x = np.array([np.nonzero(m)[1].mean() if m.any() else np.nan for m in masks])
        grow, cross, leave = (np.flatnonzero(phase == k) for k in (0, 1, 3))
        assert area[grow[-1]] > area[grow[0]] and area[leave[-1]] < area[leave[0]]
        assert abs(x[cross[-1]] - x[cross[0]]) > 0.2 * PHASES.size, "the object crosses the frame"
        for t, warm in ((cross[0], True), (leave[0], False)):
            image = cv2.cvtColor(cv2.imread(str(out / clip / f"frame_{t + 1:06d}.jpg")), cv2.COLOR_BGR2RGB)
            red, _, blue = image[masks[t] > 0].astype(float).mean(axis=0)
            assert (red > blue + 40) if warm else (blue > red + 40), (clip, t)


def test_phases_rerun_rewrites_phases_csv(tmp_path):
    write("phases", tmp_path)
    first = all_files(tmp_path)
    os.remove(tmp_path / "phases.csv")
    assert {r.status for r in write("phases", tmp_path)} == {"skipped"}
    assert all_files(tmp_path) == first


# --------------------------------------------------------------------------- rotating objects


@pytest.fixture(scope="module")
def objects_data(tmp_path_factory):
    out = tmp_path_factory.mktemp("objects")
    write("rotating-objects", out, SyntheticConfig(clips=36, frames=6, size=32, max_objects=6, seed=0), workers=2)
    _, rows = read_csv(out / "labels.csv")
    return out, rows, {r["clip"]: read_marker(out, r["clip"])["extra"] for r in rows}


def test_every_object_has_train_val_and_test_clips_and_held_out_views_are_new(objects_data):
    out, rows, extras = objects_data
    names = list(MESHES)[:6]
    assert sorted({r["label"] for r in rows}) == sorted(names)
    for name in names:
        splits = sorted(r["split"] for r in rows if r["label"] == name)
        assert splits.count("test") == 1 and splits.count("val") == 1 and splits.count("train") == 4
    orbits = {tuple(extras[r["clip"]][k] for k in ("elevation", "azimuth", "distance")) for r in rows}
    assert len(orbits) == len(rows)  # every clip its own orbit
    train = [cv2.imread(str(p)) for r in rows if r["split"] == "train" for p in sorted((out / r["clip"]).glob("*.jpg"))]
    for row in (r for r in rows if r["split"] == "test"):
        for path in sorted((out / row["clip"]).glob("*.jpg")):
            frame = cv2.imread(str(path)).astype(int)
            assert min(np.abs(frame - other).mean() for other in train) > 0.5  # no test frame is a train frame


def test_colour_says_nothing_about_the_object(objects_data):
    """Hues come from three families that every object shares, drawn per clip."""
    _, rows, extras = objects_data
    families = np.array(registered_generators()["rotating-objects"].hues)
    by_object: dict[str, set[int]] = {}
    for row in rows:
        hue = extras[row["clip"]]["hue"]
        family = int(np.argmin(np.abs((hue - families + 0.5) % 1.0 - 0.5)))
        by_object.setdefault(row["label"], set()).add(family)
    assert all(len(found) >= 2 for found in by_object.values()), by_object
    assert set().union(*by_object.values()) == {0, 1, 2}


def test_the_object_turns_and_the_mask_is_the_object(objects_data):
    out, rows, _ = objects_data
    clip = rows[0]["clip"]
    frames = [cv2.imread(str(out / clip / f"frame_{t:06d}.jpg")).astype(int) for t in (1, 6)]
    masks = masks_of(out, clip)
    assert np.abs(frames[0] - frames[1]).mean() > 1  # the view changes through the clip
    for frame, mask in zip(frames, masks[[0, 5]]):
        assert 0.05 < (mask > 0).mean() < 0.8
        inside, outside = frame[mask > 0].mean(axis=0), frame[mask == 0].mean(axis=0)
        assert np.abs(inside - outside).max() > 20  # a shaded object on a dim background


def test_too_few_clips_per_object_is_one_line(tmp_path):
    with pytest.raises(CLTTError, match="at least 2 clips per object"):
        write("rotating-objects", tmp_path / "o", SyntheticConfig(clips=5, frames=4, size=32, max_objects=3))


def test_every_module_of_the_package_is_one_registered_generator():
    import importlib
    import pkgutil

    import cltt.data.synthetic as package

    shared = {"base", "registry", "writer"}
    modules = {m.name for m in pkgutil.iter_modules(package.__path__)} - shared
    generators = registered_generators()
    assert {type(g).__module__.rpartition(".")[2] for g in generators.values()} == modules
    assert {"bouncing-balls", "moving-digits", "phases", "rotating-objects"} <= set(generators)
    assert len({g.id for g in generators.values()}) == len(generators)  # every generator seeds its own clips
    assert importlib.import_module("cltt.data.synthetic.registry").get_generator("phases") is generators["phases"]


def test_a_second_generator_under_a_taken_name_or_id_is_refused():
    from cltt.data.synthetic import Generator, register_generator

    for name, seed_id in (("phases", 99), ("another", registered_generators()["phases"].id)):
        with pytest.raises(CLTTError, match="clashes with 'phases'"):
            register_generator(name, id=seed_id)(type("Clash", (Generator,), {"__module__": "elsewhere"}))
    assert type(registered_generators()["phases"]).__module__ == "cltt.data.synthetic.phases"


def test_the_recipe_and_extract_help_take_their_names_from_the_registry(tmp_path):
    from click.testing import CliRunner

    from cltt.cli import main
    from cltt.data.build import open_frames
    from cltt.errors import RecipeError
    from cltt.recipe import load_recipe

    for name in registered_generators():
        assert load_recipe(None, [f"data.synthetic={name}"]).data.synthetic == name
    mistyped = load_recipe(None, ["data.synthetic=bouncing-ball", f"data.root={tmp_path / 'frames'}"])
    with pytest.raises(RecipeError, match="data.synthetic.*did you mean 'bouncing-balls'.*rotating-objects"):
        open_frames(mistyped.data)  # the data layer, which owns the registry, checks the name before any frame
    assert not (tmp_path / "frames").exists()
    helped = " ".join(CliRunner().invoke(main, ["extract", "--help"], terminal_width=400).output.split())
    assert all(name in helped for name in registered_generators()), helped
