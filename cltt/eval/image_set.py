"""Probes on labelled image sets (``probe.task: image_set``, ``probe.image_set.path``).

The field judges self-supervised models of video on labelled images (Labeled-S, Konkle
objects, Toybox, CORe50), not on labelled clips. An image set is one of two layouts:

    ROOT/<class>/**/*.jpg                    ImageFolder: one folder per class (images in
                                             sub-folders of a class folder count too)
    ROOT/{train,val,test}/<class>/**/*.jpg   the same with its splits as folders
    SET.csv   path,label[,split][,group]     one image a row; paths relative to the CSV's folder

The *unit* is what is independent: each image of an ImageFolder, each ``group`` of a CSV
that has one (an object instance, a session, a child). Splits never divide a unit; given by
folders or a split column (a group on two sides is refused, named), else drawn with
``probe.split_seed`` in ``probe.split_fractions``: stratified by class where every group has
one class (:func:`cltt.eval.labels.draw_splits`), else whole groups dealt in a seeded order.
Every figure's 95% interval resamples units (:mod:`cltt.eval.bootstrap`), and the readouts
choose C and the ridge without val on folds grouped by unit (:mod:`cltt.eval.folds`).

Images are decoded as frames are (:mod:`cltt.data.decode`, at the coarsest JPEG scale that
covers the size needed) and fed to the same feature sources as clips: the trained encoder,
random init and pixels (:func:`cltt.eval.probe.probe_sources`), cached in ``RUN_DIR/features/``.

    images = load_image_set(Path("labeled_s"))               # an ImageSet (one line if unusable)
    setup = prepare_image_set(images, [0.6, 0.2, 0.2], seed=0)
    report = probe_image_set(recipe, checkpoint)             # a ProbeReport, unit "images" or "groups"
"""

from __future__ import annotations

import csv
import hashlib
import os
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from cltt.data.decode import CorruptFrameError, decode_rgb, header_dimensions, reduction_for
from cltt.data.formats import FRAME_EXTENSIONS, listed
from cltt.errors import CLTTError
from cltt.eval.labels import (
    SPLITS,
    _largest_remainder,
    check_held_out,
    check_splits,
    class_order,
    draw_splits,
)
from cltt.eval.segments import unreadable_csv
from cltt.recipe import DEFAULT_MAX_PIXELS

CSV_COLUMNS = ("path", "label", "split", "group")
LAYOUTS = "a folder ROOT/<class>/*.jpg (or ROOT/{train,val,test}/<class>/) or a CSV path,label[,split][,group]"


@dataclass
class ImageSet:
    """The labelled images of one set, as read: ``paths[i]`` has class ``labels[i]``, the split
    ``splits[i]`` its layout gives (None: none given) and the group ``groups[i]`` (None: each
    image is its own)."""

    source: str  # the folder or CSV, for messages and the report
    layout: str  # "folders", "split folders" or "csv"
    paths: list[Path]
    labels: list[str]
    splits: list[str] | None = None
    groups: list[str] | None = None
    notes: list[str] = field(default_factory=list)
    skipped: Counter = field(default_factory=Counter)  # files in class folders left out, by extension

    @property
    def unit(self) -> str:
        """What is independent, and so resampled: ``groups`` or ``images``."""
        return "groups" if self.groups is not None else "images"

    @property
    def fix(self) -> str:
        """Where a user moves an image to another split, for messages."""
        if self.layout == "split folders":
            return f"under {self.source}/train/<class>/"
        if self.layout == "csv" and self.splits is not None:
            return "in the CSV's split column, or drop the column to draw splits per class with probe.split_seed"
        return "(draw other splits with probe.split_seed, or give more images of the class)"

    @property
    def held_out_fix(self) -> str:
        """How a user holds some units out of train, for the message that none is."""
        unit = self.unit
        if self.layout == "split folders":
            return f"put images in {self.source}/test/<class>/ (or val/<class>/)"
        if self.splits is not None:
            return (f"mark some {unit} val or test in the CSV's split column, or drop the column to draw splits "
                    "with probe.split_seed")
        return (f"give more than one {unit[:-1]} per class, with val and test probe.split_fractions above 0, "
                "so some are held out")


def _is_image(path: Path) -> bool:
    return path.is_file() and _image_name(path.name)


def _image_name(name: str) -> bool:
    """A file of class folders named as an image (:func:`_image_type`), not hidden."""
    return not name.startswith(".") and _image_type(name)


def _image_type(name: str) -> bool:
    """An image type both layouts read, class folders and CSV rows alike (:data:`FRAME_EXTENSIONS`)."""
    return os.path.splitext(name)[1].lower() in FRAME_EXTENSIONS


def _special_devices() -> frozenset[int]:
    """Devices of the kernel's pseudo file systems (``/proc``, ``/sys``, ``/dev``) where they are
    mounted apart from ``/``: never walked (an image set of ``/`` would read ``/proc``)."""
    try:
        rootfs = os.stat("/").st_dev
    except OSError:
        return frozenset()
    found = set()
    for name in ("/proc", "/sys", "/dev"):
        try:
            device = os.stat(name).st_dev
        except OSError:
            continue
        if device != rootfs:
            found.add(device)
    return frozenset(found)


def _walkable(path: Path, special: frozenset[int]) -> bool:
    """A visible folder (a symlink to one counts) that is not on a pseudo file system."""
    try:
        return path.is_dir() and not path.name.startswith(".") and os.stat(path).st_dev not in special
    except OSError:
        return False


def _folders(root: Path) -> list[Path]:
    special = _special_devices()
    return sorted((p for p in root.iterdir() if _walkable(p, special)), key=lambda p: p.name)


def _images_under(folder: Path, skipped: Counter | None = None) -> list[Path]:
    """Every image file at any depth under ``folder``, in path order. Linked sub-folders are
    followed as linked class folders are (each real folder once, so a link to an ancestor
    does not loop); hidden names and pseudo file systems are not. Other files are counted in
    ``skipped`` by extension."""
    special, seen, found = _special_devices(), set(), []
    for where, dirs, files in os.walk(folder, followlinks=True):
        real = os.path.realpath(where)
        if real in seen:
            dirs[:] = []
            continue
        seen.add(real)
        dirs[:] = [d for d in dirs if _walkable(Path(where, d), special)]
        for name in files:
            path = Path(where, name)
            if _image_name(name):
                if path.is_file():
                    found.append(path)
            elif skipped is not None and not name.startswith("."):
                skipped[os.path.splitext(name)[1].lower() or "no extension"] += 1
    return sorted(found)


def load_image_set(path: Path) -> ImageSet:
    """The image set at ``path`` (a folder or a ``.csv``), or one line saying what is wrong."""
    path = Path(path).expanduser()
    if path.is_dir():
        real = path.resolve()
        if real.parent == real or os.stat(real).st_dev in _special_devices():
            what = "the root of the file system" if real.parent == real else "on a kernel pseudo file system"
            raise CLTTError(f"image set {path} is {what}, not an image set; give {LAYOUTS}")
        return _from_folders(path)
    if path.is_file():
        return _from_csv(path)
    raise CLTTError(f"image set {path} (probe.image_set.path) does not exist; give {LAYOUTS}")


def _from_folders(root: Path) -> ImageSet:
    folders = _folders(root)
    split_folders = [f for f in folders if f.name in SPLITS]
    if split_folders:
        others = [f.name for f in folders if f.name not in SPLITS]
        if others:
            raise CLTTError(f"image set {root} has split folders ({', '.join(f.name for f in split_folders)}) beside "
                            f"other folders ({', '.join(others[:3])}); put every class folder under "
                            f"{root}/train/, val/ or test/, or drop the split folders")
        if not any(f.name == "train" for f in split_folders):
            raise CLTTError(f"image set {root} has {', '.join(f.name + '/' for f in split_folders)} but no train/ "
                            f"folder to fit the probes on; add {root}/train/<class>/")
        images = ImageSet(str(root), "split folders", [], [], splits=[])
        for split_folder in split_folders:
            _add_classes(images, split_folder, split_folder.name)
    else:
        images = ImageSet(str(root), "folders", [], [])
        _add_classes(images, root, None)
    _refuse_twice(images.paths, root)
    if images.skipped:
        kinds = ", ".join(f"{kind} {n}" for kind, n in images.skipped.most_common(4))
        images.notes.append(f"{sum(images.skipped.values())} file(s) in class folders are not images cltt reads "
                            f"({kinds}) and are left out; it reads {listed(FRAME_EXTENSIONS)}")
    loose = [p for p in root.iterdir() if _is_image(p)]
    if not images.paths:
        found = f"{len(loose)} image(s) but no class folder" if loose else "no class folder with images"
        raise CLTTError(f"image set {root} has {found}; lay it out as {root}/<class>/*.jpg "
                        f"(or {root}/train/<class>/...), or give a CSV path,label[,split][,group]")
    if loose:
        images.notes.append(f"{len(loose)} image(s) directly in {root} are in no class folder and are left out")
    return images


def _refuse_twice(paths: list[Path], root: Path) -> None:
    """One line naming two paths of ``paths`` that are the same file (through a symlink, or a
    class folder linked back into the set): it would count twice, perhaps in two classes."""
    first: dict[Path, Path] = {}
    for path in paths:
        real = path.resolve()
        if real in first:
            raise CLTTError(f"image set {root} holds one image twice: {first[real]} and {path} are the same file "
                            f"({real}; a symlink, or a folder linked back into the set); keep one of them")
        first[real] = path


def _add_classes(images: ImageSet, parent: Path, split: str | None) -> None:
    """The images of every class folder of ``parent`` (in split ``split``), appended to ``images``."""
    empty = []
    for folder in _folders(parent):
        found = _images_under(folder, images.skipped)
        if not found:
            empty.append(folder.name)
        images.paths += found
        images.labels += [folder.name] * len(found)
        if split is not None:
            images.splits += [split] * len(found)
    if empty:
        images.notes.append(f"{len(empty)} class folder(s) of {parent} hold no image and are left out "
                            f"({', '.join(empty[:3])})")


def _from_csv(path: Path) -> ImageSet:
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            rows = [row for row in csv.reader(handle) if any(cell.strip() for cell in row)]
    except UnicodeDecodeError as err:
        raise unreadable_csv("image set", path, err) from None
    except (OSError, csv.Error) as err:
        raise CLTTError(f"cannot read image set {path} ({err}); give {LAYOUTS}") from None
    header = [h.strip().lower() for h in rows[0]] if rows else []
    if "path" not in header or "label" not in header or any(h not in CSV_COLUMNS for h in header) \
            or len(set(header)) != len(header):
        raise CLTTError(f"image set {path} must start with the header path,label[,split][,group]; "
                        f"got {','.join(header) or 'nothing'}")
    column = {name: header.index(name) for name in header}
    images = ImageSet(str(path), "csv", [], [], splits=[] if "split" in column else None,
                      groups=[] if "group" in column else None)
    missing, unlabelled, rows_of = [], 0, {}
    for number, row in enumerate(rows[1:], start=2):
        if len(row) != len(header):
            raise CLTTError(f"row {number} of {path} has {len(row)} cells, the header {len(header)}; "
                            f"give {','.join(header)} on every row")
        cell = {name: row[i].strip() for name, i in column.items()}
        if not cell["label"]:
            unlabelled += 1
            continue
        image = Path(cell["path"]).expanduser()
        image = image if image.is_absolute() else path.parent / image
        if not image.is_file():
            missing.append((number, cell["path"]))
            continue
        if not _image_type(image.name):
            raise CLTTError(f"row {number} of {path} names {cell['path']}, not an image type cltt reads (it reads "
                            f"{listed(FRAME_EXTENSIONS)}, in a CSV and in class folders alike); convert it or drop the row")
        real = image.resolve()
        if real in rows_of:
            was, was_label = rows_of[real]
            raise CLTTError(f"image set {path} lists one image twice, on row {was} ({was_label!r}) and row {number} "
                            f"({cell['label']!r}): {real}; one image must have one row: drop the other")
        rows_of[real] = (number, cell["label"])
        if images.splits is not None:
            if cell["split"] not in SPLITS:
                raise CLTTError(f"row {number} of {path} has split {cell['split']!r}; use train, val or test")
            images.splits.append(cell["split"])
        if images.groups is not None:
            if not cell["group"]:
                raise CLTTError(f"row {number} of {path} has no group; name what must stay together (an object, "
                                "a session) on every row, or drop the group column")
            images.groups.append(cell["group"])
        images.paths.append(image)
        images.labels.append(cell["label"])
    if missing:
        number, name = missing[0]
        raise CLTTError(f"image set {path} names {len(missing)} image(s) that do not exist, the first on row {number}: "
                        f"{name} (relative paths are read from {path.parent}); fix the paths or drop the rows")
    if not images.paths:
        raise CLTTError(f"image set {path} lists no labelled image; give rows path,label[,split][,group]")
    if unlabelled:
        images.notes.append(f"{unlabelled} row(s) of {path} have no label and are left out")
    return images


# --------------------------------------------------------------------------- units and splits


@dataclass
class ImageSetup:
    """An image set ready to probe: classes, units and one split per unit, checked.

    ``targets [N]`` class number per image into ``classes``; ``unit [N]`` the unit (image or
    group) of each image, numbers into ``unit_names``; ``unit_splits [K]`` split per unit and
    ``splits [N]`` per image.
    """

    images: ImageSet
    classes: list[str]
    targets: np.ndarray
    unit: np.ndarray
    unit_names: list[str]
    unit_splits: np.ndarray
    drawn: bool

    @property
    def splits(self) -> np.ndarray:
        return self.unit_splits[self.unit]

    def unit_classes(self) -> tuple[np.ndarray, np.ndarray]:
        """``(targets [P], splits [P])`` of each distinct (unit, class) pair: how many units of
        each class a split holds (a session group holds many classes)."""
        pairs = np.unique(np.stack([self.unit, self.targets]), axis=1)
        return pairs[1], self.unit_splits[pairs[0]]


def prepare_image_set(images: ImageSet, fractions: list[float], seed: int) -> ImageSetup:
    """Classes, units and splits of ``images`` (given, or drawn with ``seed`` in ``fractions``),
    checked: two classes or more, every class in train, something held out, no group on two sides."""
    classes = class_order(images.labels)
    if len(classes) < 2:
        raise CLTTError(f"image set {images.source} has one class ({classes[0]!r}, {len(images.paths)} image"
                        f"{'s' if len(images.paths) != 1 else ''}); "
                        "a probe tells classes apart: give two or more")
    number = {name: i for i, name in enumerate(classes)}
    targets = np.array([number[label] for label in images.labels], dtype=np.int64)
    names = images.groups if images.groups is not None else [str(p) for p in images.paths]
    unit_names, unit = np.unique(np.array(names, dtype=object), return_inverse=True)
    unit = unit.astype(np.int64)
    if images.splits is not None:
        unit_splits = _given_splits(images, unit, unit_names)
    else:
        unit_splits = _drawn_splits(targets, unit, len(unit_names), classes, fractions, seed)
    setup = ImageSetup(images, classes, targets, unit, [str(n) for n in unit_names], unit_splits,
                       drawn=images.splits is None)
    pair_targets, pair_splits = setup.unit_classes()
    singular = images.unit[:-1]
    pair_labels = [classes[t] for t in pair_targets]
    check_splits(pair_labels, pair_splits.tolist(), images.source, singular, images.fix)
    check_held_out(unit_splits.tolist(), images.source, singular, images.held_out_fix)  # per unit: a group of 3 classes is one group
    return setup


def _given_splits(images: ImageSet, unit: np.ndarray, unit_names: np.ndarray) -> np.ndarray:
    """The split of each unit as the layout gives it; a group with images on two sides is refused."""
    splits = np.array(images.splits, dtype=object)
    unit_splits = np.empty(len(unit_names), dtype=object)
    unit_splits[unit] = splits
    split_apart = np.flatnonzero(unit_splits[unit] != splits)
    if len(split_apart):
        group = unit[split_apart[0]]
        sides = sorted(set(splits[unit == group]), key=SPLITS.index)
        count = len(np.unique(unit[split_apart]))
        raise CLTTError(f"group {unit_names[group]!r} of {images.source} has images in {' and '.join(sides)} "
                        f"({count} group(s) are split across sides); a group must stay on one side: give all its "
                        "rows one split, or drop the split column to draw splits by group")
    return unit_splits.astype(str)


def _drawn_splits(targets: np.ndarray, unit: np.ndarray, units: int, classes: list[str], fractions: list[float],
                  seed: int) -> np.ndarray:
    """A split per unit drawn with ``seed``: stratified by class when every unit holds one class,
    else whole units dealt in a seeded order towards ``fractions`` of the units."""
    per_unit = [set() for _ in range(units)]
    for u, t in zip(unit.tolist(), targets.tolist()):
        per_unit[u].add(t)
    if all(len(held) == 1 for held in per_unit):
        return np.array(draw_splits([classes[next(iter(held))] for held in per_unit], fractions, seed))
    order = np.random.default_rng(seed).permutation(units)
    totals = _largest_remainder(units, fractions)
    if totals[0] == 0:  # train fits the probes: it gets a unit first
        totals[int(np.argmax(totals[1:])) + 1] -= 1
        totals[0] = 1
    splits = np.empty(units, dtype=object)
    splits[order] = np.repeat(np.array(SPLITS), totals)
    return splits.astype(str)


# --------------------------------------------------------------------------- pixels


class ImageFiles:
    """The images of a set as :func:`cltt.eval.features.extract_features` reads frames.

    Image ``j`` is ``paths[j]``, decoded to RGB ``uint8 [H, W, 3]``; each at its own coarsest
    JPEG scale that keeps its short side at least the size asked (images of a set differ in size).
    """

    def __init__(self, paths: Sequence[Path], max_pixels: int = DEFAULT_MAX_PIXELS):
        self.paths = [Path(p) for p in paths]
        self.max_pixels = max_pixels
        self._identity: dict | None = None

    @property
    def num_frames(self) -> int:
        return len(self.paths)

    def read(self, j: int, short_side: int = 0) -> np.ndarray:
        """Image ``j`` decoded no smaller than ``short_side`` on its short side (full size for 0)."""
        where = str(self.paths[j])
        try:
            encoded = np.fromfile(where, dtype=np.uint8)
        except OSError as err:
            raise CorruptFrameError(where, err.strerror or str(err)) from None
        size = header_dimensions(encoded)
        reduction = reduction_for(min(size), short_side) if size and short_side else 1
        return decode_rgb(encoded, reduction, where, self.max_pixels)

    def reader(self, short_side: int) -> Callable[[int], np.ndarray]:
        return lambda j: self.read(j, short_side)

    def identity(self) -> dict:
        """What the images are, for feature caches: their resolved paths, byte sizes, mtimes (ns)
        and inodes: an image rewritten in place at the same size, as uncompressed PNGs are,
        changes its mtime; one renamed over another (files of one archive share an mtime) its inode."""
        if self._identity is None:
            digest = hashlib.sha256()
            for path in self.paths:
                info = path.stat()
                digest.update(f"{path.resolve()}\t{info.st_size}\t{info.st_mtime_ns}\t{info.st_ino}\n".encode())
            self._identity = {"images": len(self.paths), "content": digest.hexdigest()}
        return self._identity


# --------------------------------------------------------------------------- probe


def probe_image_set(recipe, checkpoint: Path, state: dict | None = None, cache_dir: Path | None = None,
                    on_progress: Callable[[int, int], None] | None = None):
    """The readouts of ``probe.probes`` on the image set ``probe.image_set.path``, for the
    checkpoint's encoder and the baselines of ``probe.baselines``; a
    :class:`~cltt.eval.report.ProbeReport` (``level`` "image", ``unit`` images or groups), unwritten.

    Features are cached in ``cache_dir`` (default the checkpoint's folder ``/features``).
    """
    from cltt.engine.checkpoint import load_checkpoint
    from cltt.engine.run_files import FEATURES_DIR
    from cltt.eval.features import extract_features
    from cltt.eval.probe import image_sources, score_features, small_sample_warnings
    from cltt.eval.report import ProbeReport, unused_level_note
    from cltt.eval.samples import Samples

    config = recipe.probe
    if not config.image_set.path:
        raise CLTTError(f"probe.task=image_set needs the image set: set probe.image_set.path to {LAYOUTS}")
    setup = prepare_image_set(load_image_set(Path(config.image_set.path)), config.split_fractions, config.split_seed)
    checkpoint = Path(checkpoint)
    state = state if state is not None else load_checkpoint(checkpoint)
    sources = image_sources(recipe, checkpoint, state, "an image set")
    files = ImageFiles(setup.images.paths, recipe.data.max_pixels)
    cache_dir = Path(cache_dir) if cache_dir is not None else checkpoint.parent / FEATURES_DIR
    result = extract_features(files, sources, cache_dir=cache_dir, batch_size=config.batch_size,
                              workers=max(1, recipe.data.num_workers), on_progress=on_progress,
                              decode_at_least=recipe.data.image_size)
    splits = setup.splits
    scores = []
    for source in sources:
        samples = Samples(result.features[source.name], setup.unit)
        scores += score_features(source.name, samples, setup.targets, splits, len(setup.classes), recipe,
                                 config.probes)
    unit = setup.images.unit
    counts = {s: {unit: int(len(np.unique(setup.unit[splits == s]))), "samples": int((splits == s).sum())}
              for s in SPLITS}
    how = (f"splits drawn per {unit[:-1]} with probe.split_seed={config.split_seed}" if setup.drawn
           else f"splits from the {'folders' if setup.images.layout == 'split folders' else 'split column'}")
    groups = f", {len(setup.unit_names)} groups" if unit == "groups" else ""
    notes = [f"{setup.images.layout} {setup.images.source}: {len(files.paths)} images{groups}, {len(setup.classes)} "
             f"classes; {how}; intervals resample {unit}", *setup.images.notes,
             *unused_level_note(config.level, "image_set", "images")]
    pair_targets, pair_splits = setup.unit_classes()
    notes += small_sample_warnings(pair_targets, pair_splits, setup.classes, scores, unit, counts["test"][unit])
    epoch = state.get("progress", {}).get("epoch")
    return ProbeReport(
        checkpoint=str(checkpoint),
        epoch=int(epoch) if epoch is not None else None,
        level="image",
        labels=setup.images.source,
        classes=setup.classes,
        counts=counts,
        feature_dims={name: int(f.shape[1]) for name, f in result.features.items()},
        scores=scores,
        eval_row=None,  # metrics_eval.csv holds task classes' figures, on the run's own clips
        cache={s.name: f"{'reused' if s.name in result.reused else 'computed'} {result.paths.get(s.name, '')}".strip()
               for s in sources},
        notes=notes,
        unit=unit,
    )
