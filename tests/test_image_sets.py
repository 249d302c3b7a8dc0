"""Probes on labelled image sets (probe.task=image_set, issue 21 item 3): the published layouts of
Labeled-S, Konkle objects, Toybox and CORe50, built small with real JPEG/PNG files, probed by
``cltt probe`` with intervals for trained, random init and pixels; every bad layout is one line."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import cv2
import numpy as np
import pytest

from cltt.cli import main
from cltt.errors import CLTTError
from cltt.eval.image_set import load_image_set, prepare_image_set
from tests.conftest import invoke_in_process
from tests.helpers.commands import one_line_error
from tests.helpers.training import tiny_run

COLOURS = [(220, 40, 40), (40, 200, 60), (50, 60, 230), (230, 220, 40), (200, 60, 210), (40, 210, 220)]


def write_image(path: Path, colour: tuple[int, int, int], rng: np.random.Generator, size=(40, 32)) -> Path:
    """A real image file (JPEG or PNG by its suffix) of ``size`` (width, height): ``colour`` plus noise."""
    width, height = size
    rgb = np.clip(np.array(colour, np.float64) + rng.normal(0, 25, (height, width, 3)), 0, 255).astype(np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), rgb[..., ::-1])
    return path


def write_csv(path: Path, header: list[str], rows: list[list[str]]) -> Path:
    with open(path, "w", newline="") as handle:
        csv.writer(handle).writerows([header, *rows])
    return path


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    """One epoch of tiny_cnn at 32 px on 4 built-in clips: the checkpoint every test probes."""
    return tiny_run(tmp_path_factory.mktemp("run"), "bouncing-balls", clips=4)


def probe(run_dir: Path, image_set: Path, *overrides: str):
    return invoke_in_process(main, ["probe", str(run_dir), "probe.task=image_set", f"probe.image_set.path={image_set}",
                                    "probe.bootstrap_rounds=200", "probe.logistic_c=[0.1,1.0]", "probe.knn_k=3",
                                    *overrides], cwd=run_dir.parent)


def probed(run_dir: Path, image_set: Path, *overrides: str) -> dict:
    """``cltt probe`` of the image set, which must succeed: its report, checked to hold every
    readout of probe.probes on trained, random_init and pixels, each test figure with an interval."""
    result = probe(run_dir, image_set, *overrides)
    assert result.exit_code == 0, result.output
    report = json.loads((run_dir / "probe_image_set.json").read_text())
    assert report["level"] == "image" and report["eval_row"] is None
    sources = {s["features"] for s in report["scores"]}
    assert sources == {"trained", "random_init", "pixels"}
    assert {"linear", "logistic", "knn"} <= {s["probe"] for s in report["scores"]}
    for score in report["scores"]:
        low, high = score["intervals"]["test"]
        assert 0 <= low <= score["test"] <= high <= 1, score
    assert f"interval over {report['unit']}" in " ".join(result.stdout.split())  # the table's title, wrapped
    return report


def score(report: dict, features: str, readout: str) -> dict:
    return next(s for s in report["scores"] if s["features"] == features and s["probe"] == readout)


# --------------------------------------------------------------------------- the four layouts


def test_labeled_s_category_folders_draw_splits_per_image(run_dir, tmp_path):
    """Labeled-S: ROOT/<category>/<frame>.jpeg (26 categories in the real set), no splits: drawn
    per image with probe.split_seed, stratified, every category in train; images resampled."""
    rng = np.random.default_rng(0)
    root = tmp_path / "S_labeled"
    categories = ["ball", "car", "cat", "crib"]
    for c, category in enumerate(categories):
        for i in range(10):
            write_image(root / category / f"img_{i:04d}.jpeg", COLOURS[c], rng, size=(40 + 8 * (i % 2), 32))
    report = probed(run_dir, root, "probe.split_fractions=[0.5,0.2,0.3]")
    assert report["unit"] == "images" and report["classes"] == categories
    assert sum(report["counts"][s]["images"] for s in ("train", "val", "test")) == 40
    assert report["counts"]["test"]["images"] == 12 and report["counts"]["test"]["samples"] == 12
    assert score(report, "pixels", "logistic")["test"] == 1.0  # the colours tell the classes apart
    setup = prepare_image_set(load_image_set(root), [0.5, 0.2, 0.3], seed=0)
    for split in ("train", "val", "test"):  # stratified: each class is split like the whole
        assert len(set(np.bincount(setup.targets[setup.splits == split]))) == 1
    other = prepare_image_set(load_image_set(root), [0.5, 0.2, 0.3], seed=1)
    assert (other.splits != setup.splits).any()  # probe.split_seed draws them


def test_konkle_objects_with_split_folders(run_dir, tmp_path):
    """Konkle objects: ROOT/<category>/*.jpg as published; a fixed split moves them into
    ROOT/train/<category>/ and ROOT/test/<category>/, which are read as the splits."""
    rng = np.random.default_rng(1)
    root = tmp_path / "konkle"
    for c, category in enumerate(["abacus", "backpack", "bagel"]):
        for i in range(8):
            write_image(root / ("train" if i < 5 else "test") / category / f"{category}_{i:02d}.jpg", COLOURS[c], rng)
    report = probed(run_dir, root)
    assert report["counts"]["train"]["images"] == 15 and report["counts"]["test"]["images"] == 9
    assert report["counts"]["val"]["images"] == 0 and score(report, "trained", "logistic")["val"] is None


def test_toybox_frames_csv_grouped_by_object(run_dir, tmp_path):
    """Toybox: frames extracted from <category>/<category>_<object>_pivothead_<transformation>.mp4,
    listed in a CSV with group = the object instance; splits are drawn by object (stratified by
    category) and the bootstrap resamples objects."""
    rng = np.random.default_rng(2)
    rows = []
    categories = ["car", "cup", "duck"]
    for c, category in enumerate(categories):
        for obj in range(1, 6):
            for transformation in ("rxplus", "tzminus"):
                clip = f"{category}_{obj:02d}_pivothead_{transformation}"
                for frame in (1, 2):
                    name = f"frames/{clip}/frame_{frame:06d}.jpg"
                    write_image(tmp_path / "toybox" / name, COLOURS[c], rng)
                    rows.append([name, category, f"{category}_{obj:02d}"])
    table = write_csv(tmp_path / "toybox" / "toybox.csv", ["path", "label", "group"], rows)
    report = probed(run_dir, table)
    assert report["unit"] == "groups"
    assert sum(report["counts"][s]["groups"] for s in ("train", "val", "test")) == 15
    assert sum(report["counts"][s]["samples"] for s in ("train", "val", "test")) == 60
    setup = prepare_image_set(load_image_set(table), [0.6, 0.2, 0.2], seed=0)
    for group in set(setup.unit.tolist()):  # an object never sits on two sides
        assert len(set(setup.splits[setup.unit == group])) == 1
    for split in ("train", "val", "test"):  # objects of every category on every side
        assert set(setup.targets[setup.splits == split]) == {0, 1, 2}


def core50_csv(root: Path, group: str) -> Path:
    """CORe50's layout, small: s<session>/o<object>/C_<ss>_<oo>_<fff>.png, objects o1-o5 of one
    category and o6-o10 of the next (5 a category, as in the real 50 objects in 10 categories);
    sessions 1 2 4 train, 3 7 test (the real test sessions are 3, 7, 10). ``group``: session_object or object."""
    rng = np.random.default_rng(3)
    rows = []
    for session in (1, 2, 3, 4, 7):
        for obj in range(1, 11):
            category = ["plug_adapter", "mobile_phone"][(obj - 1) // 5]
            for frame in range(2):
                name = f"core50_350x350/s{session}/o{obj}/C_{session:02d}_{obj:02d}_{frame:03d}.png"
                write_image(root / name, COLOURS[(obj - 1) // 5], rng, size=(35, 35))
                split = "test" if session in (3, 7, 10) else "train"
                rows.append([name, category, split, f"s{session}_o{obj}" if group == "session_object" else f"o{obj}"])
    return write_csv(root / "core50.csv", ["path", "label", "split", "group"], rows)


def test_core50_sessions_split_groups_are_object_sessions(run_dir, tmp_path):
    """CORe50: split from the session (train 1,2,4,5,6,8,9,11; test 3,7,10), group = one object in
    one session (one video); the bootstrap resamples those."""
    report = probed(run_dir, core50_csv(tmp_path / "core50", "session_object"))
    assert report["counts"]["train"]["groups"] == 30 and report["counts"]["test"]["groups"] == 20
    assert report["counts"]["test"]["samples"] == 40 and report["counts"]["val"]["samples"] == 0


def test_the_bootstrap_resamples_groups_not_images(run_dir, tmp_path):
    """Four copies of each image, grouped: the copies are one unit, so the intervals of the grouped
    CSV are wider than those of the same rows read as independent images (no group column)."""
    rng = np.random.default_rng(8)
    rows = []
    for group in range(16):  # noise images, two classes: the readouts score near chance
        colour = tuple(int(v) for v in rng.integers(60, 200, 3))
        image = write_image(tmp_path / "copies" / f"g{group:02d}.jpg", colour, rng)
        for copy in range(4):
            name = f"g{group:02d}_copy{copy}.jpg"
            (tmp_path / "copies" / name).write_bytes(image.read_bytes())
            rows.append([name, ["ball", "car"][group % 2], "train" if group < 10 else "test", f"g{group:02d}"])
    grouped = write_csv(tmp_path / "copies" / "grouped.csv", ["path", "label", "split", "group"], rows)
    single = write_csv(tmp_path / "copies" / "images.csv", ["path", "label", "split"], [r[:3] for r in rows])
    fixed = ("probe.logistic_c=[1.0]", "probe.ridge=[1.0]")  # nothing chosen on folds, which differ by unit
    by_group, by_image = probed(run_dir, grouped, *fixed), probed(run_dir, single, *fixed)
    assert by_group["counts"]["test"] == {"groups": 6, "samples": 24}
    assert by_image["counts"]["test"] == {"images": 24, "samples": 24}
    compared = 0
    for a in by_group["scores"]:
        b = score(by_image, a["features"], a["probe"])
        assert a["test"] == pytest.approx(b["test"])  # the same fit, the same test images
        if 0 < a["test"] < 1:
            compared += 1
            width = {name: s["intervals"]["test"][1] - s["intervals"]["test"][0] for name, s in (("g", a), ("i", b))}
            assert width["g"] > width["i"], (a, b)
    assert compared >= 3


# --------------------------------------------------------------------------- bad layouts: one line, exit 2


def test_a_group_split_across_sides_is_one_line(run_dir, tmp_path):
    """CORe50 with group = object and the session split: each object is in train and test."""
    result = probe(run_dir, core50_csv(tmp_path / "core50", "object"))
    one_line_error(result, "group 'o1'", "has images in train and test", "a group must stay on one side")


def test_class_names_that_look_like_numbers_but_are_not_are_ordered_as_text(tmp_path):
    """Class folders '--5' and '²' passed str.isdigit() (after stripping '-'; '²' is a digit to
    Python) and then failed int(): a ValueError traceback from cltt probe. Integers sort by value
    first, every other name after them as text."""
    rng = np.random.default_rng(0)
    for name in ("--5", "²", "10", "2", "-3", "b"):
        for i in range(2):
            write_image(tmp_path / "set" / name / f"{i}.jpg", COLOURS[i], rng)
    setup = prepare_image_set(load_image_set(tmp_path / "set"), [0.5, 0.25, 0.25], seed=0)
    assert setup.classes == ["-3", "2", "10", "--5", "b", "²"]


def test_images_without_class_folders_are_one_line(run_dir, tmp_path):
    rng = np.random.default_rng(4)
    for i in range(3):
        write_image(tmp_path / "flat" / f"{i}.jpg", COLOURS[0], rng)
    one_line_error(probe(run_dir, tmp_path / "flat"), "3 image(s) but no class folder", "<class>/*.jpg")


def test_one_class_is_one_line(run_dir, tmp_path):
    rng = np.random.default_rng(5)
    for i in range(4):
        write_image(tmp_path / "one" / "ball" / f"{i}.jpg", COLOURS[0], rng)
    one_line_error(probe(run_dir, tmp_path / "one"), "has one class ('ball'", "give two or more")


def test_a_class_missing_from_train_is_one_line(run_dir, tmp_path):
    rng = np.random.default_rng(6)
    for split, classes in (("train", ["ball", "car"]), ("test", ["ball", "car", "cat"])):
        for c, name in enumerate(classes):
            for i in range(2):
                write_image(tmp_path / "sets" / split / name / f"{i}.jpg", COLOURS[c], rng)
    one_line_error(probe(run_dir, tmp_path / "sets"), "class 'cat' (test) has val/test images but no train image",
                   "train/<class>/")


def test_a_csv_naming_a_missing_image_and_no_path_are_one_line(run_dir, tmp_path):
    write_image(tmp_path / "a.jpg", COLOURS[0], np.random.default_rng(7))
    table = write_csv(tmp_path / "set.csv", ["path", "label"], [["a.jpg", "ball"], ["gone/b.jpg", "car"]])
    one_line_error(probe(run_dir, table), "1 image(s) that do not exist", "row 3: gone/b.jpg")
    one_line_error(invoke_in_process(main, ["probe", str(run_dir), "probe.task=image_set"], cwd=tmp_path),
                   "set probe.image_set.path")


def test_cache_key_changes_when_an_image_is_replaced_at_the_same_size(tmp_path):
    """Uncompressed PNGs of one size swapped in place kept the key (paths and sizes), so the
    probe reused stale features: logistic 100% on labels that no longer matched the pixels."""
    from PIL import Image

    from cltt.eval.image_set import ImageFiles

    red, blue = tmp_path / "red.png", tmp_path / "blue.png"
    for path, colour in ((red, (220, 40, 40)), (blue, (40, 40, 220))):
        Image.new("RGB", (32, 32), colour).save(path, compress_level=0)
        os.utime(path, ns=(1, 1))
    assert red.stat().st_size == blue.stat().st_size
    before = ImageFiles([red, blue]).identity()
    assert ImageFiles([red, blue]).identity() == before  # unchanged: the cache is reused
    red_bytes, blue_bytes = red.read_bytes(), blue.read_bytes()
    red.write_bytes(blue_bytes)
    blue.write_bytes(red_bytes)
    assert ImageFiles([red, blue]).identity() != before
    # swapped by renaming, the two files sharing an mtime (as an archive's files do): the inodes differ
    for path in (red, blue):
        os.utime(path, ns=(1, 1))
    before = ImageFiles([red, blue]).identity()
    red.rename(tmp_path / "swap.png")
    blue.rename(red)
    (tmp_path / "swap.png").rename(blue)
    assert ImageFiles([red, blue]).identity() != before


def class_folders(root: Path, classes=("cat", "dog"), per_class: int = 3) -> Path:
    """``root/<class>/img<i>.jpg``: a small ImageFolder, each class one colour."""
    rng = np.random.default_rng(8)
    for c, name in enumerate(classes):
        for i in range(per_class):
            write_image(root / name / f"img{i}.jpg", COLOURS[c], rng)
    return root


def test_one_image_listed_twice_is_one_line(run_dir, tmp_path):
    """A CSV listing an image twice (even as cat and dog), or 18 rows of one file, was read as
    that many images; a class folder linked back to the root made a class of the same files."""
    root = class_folders(tmp_path / "imgs")
    rows = [[f"imgs/{name}/img{i}.jpg", name] for name in ("cat", "dog") for i in range(3)]
    twice = write_csv(tmp_path / "twice.csv", ["path", "label"], [*rows, ["imgs/cat/img0.jpg", "dog"]])
    one_line_error(probe(run_dir, twice), "lists one image twice, on row 2 ('cat') and row 8 ('dog')", "drop the other")
    same = write_csv(tmp_path / "same.csv", ["path", "label"], [["imgs/cat/img0.jpg", "cat"]] * 18)
    with pytest.raises(CLTTError, match="on row 2 .* and row 3"):
        load_image_set(same)
    (root / "loop").symlink_to(".")
    with pytest.raises(CLTTError, match="holds one image twice: .*/cat/img0.jpg and .*loop/cat/img0.jpg"):
        load_image_set(root)


def test_all_in_one_group_counts_groups_not_group_class_pairs(tmp_path):
    """18 rows of 3 classes in one group g said 'every labelled group (3)': it counted pairs."""
    rng = np.random.default_rng(9)
    rows = [[str(write_image(tmp_path / f"{c}_{i}.jpg", COLOURS[c], rng).name), f"class{c}", "g"]
            for c in range(3) for i in range(6)]
    images = load_image_set(write_csv(tmp_path / "one_group.csv", ["path", "label", "group"], rows))
    with pytest.raises(CLTTError, match=r"every labelled group \(1\) is in the train split"):
        prepare_image_set(images, [0.6, 0.2, 0.2], seed=0)


def test_class_folders_and_csv_read_the_same_files_and_say_what_they_skip(run_dir, tmp_path):
    """A .gif was skipped in class folders and read from a CSV; a linked sub-folder of a class
    was skipped silently while linked class folders were followed. Both layouts read one list of
    types, the folders note what they leave out, and links below a class folder are followed
    (a link back to its own class folder is walked once, and /proc never)."""
    root = class_folders(tmp_path / "imgs")
    (root / "cat" / "odd.gif").write_bytes(b"GIF89a")
    (root / "dog" / "notes.txt").write_text("x")
    more = class_folders(tmp_path / "more", ("dog",), per_class=2)
    (root / "dog" / "linked").symlink_to(more / "dog")
    (root / "cat" / "self").symlink_to(root / "cat")
    (root / "cat" / "proc").symlink_to("/proc")
    images = load_image_set(root)
    assert len(images.paths) == 3 + 5 and images.labels.count("dog") == 5
    assert any("2 file(s) in class folders are not images cltt reads (.gif 1, .txt 1) and are left out" in n
               for n in images.notes), images.notes
    table = write_csv(tmp_path / "set.csv", ["path", "label"], [["imgs/cat/img0.jpg", "cat"], ["imgs/cat/odd.gif", "cat"]])
    one_line_error(probe(run_dir, table), "row 3 of", "imgs/cat/odd.gif, not an image type cltt reads",
                   "in a CSV and in class folders alike")
    one_line_error(probe(run_dir, Path("/")), "is the root of the file system, not an image set")


def test_nothing_held_out_says_where_the_layout_puts_held_out_images(run_dir, tmp_path):
    """An empty test/ of split folders was told to 'mark some images val or test in the split
    column' (there is none); a class only in test said 'move a image'."""
    rng = np.random.default_rng(10)
    for c, name in enumerate(("ball", "car")):
        for i in range(2):
            write_image(tmp_path / "sets" / "train" / name / f"{i}.jpg", COLOURS[c], rng)
    (tmp_path / "sets" / "test").mkdir()
    one_line_error(probe(run_dir, tmp_path / "sets"), "every labelled image (4) is in the train split",
                   f"put images in {tmp_path / 'sets'}/test/<class>/")
    write_image(tmp_path / "sets" / "test" / "cat" / "0.jpg", COLOURS[2], rng)
    with pytest.raises(CLTTError, match="move an image of it to train"):
        prepare_image_set(load_image_set(tmp_path / "sets"), [0.6, 0.2, 0.2], seed=0)


def test_a_probe_level_the_task_does_not_use_is_noted(run_dir, tmp_path):
    """probe.level=clip passed image_set without a word: images have no clips."""
    result = probe(run_dir, class_folders(tmp_path / "set"), "probe.level=clip", "probe.split_fractions=[0.5,0.2,0.3]")
    assert result.exit_code == 0, result.output
    assert "probe.level=clip is not used by probe.task=image_set" in " ".join(result.output.split())
