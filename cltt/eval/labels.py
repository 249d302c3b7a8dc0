"""Clip labels and train/val/test splits for probes, always by clip, never by frame.

Labels come from a CSV file (``probe.labels``, default ``ROOT/labels.csv``) with a header
``clip,label[,split]``, or, when there is no such file, from folders: a root laid out as
``ROOT/<label>/<clip>/<frame>.jpg`` indexes clips named ``<label>/<clip>`` (see
:mod:`cltt.data.stores`), and the first part of the name is the label.

    table = load_labels(store, labels_path=None)         # every labelled clip of the root
    splits = assign_splits(table, fractions=[0.6, 0.2, 0.2], seed=0)
    check_splits(table.labels, splits, table.source)        # a val/test class absent from train: error
    check_held_out(splits, table.source)                    # nothing in val or test: error

A row with an empty label (moving-digits' multi-digit clips) marks the clip unlabelled: it is
left out of the probe, as are clips of the root that the file does not list. A split column
is used as written; without one the splits are drawn with ``seed``, stratified by class and
with every class in train, which never puts frames of one clip on two sides.
:func:`check_no_clip_leak` verifies that per sample, after features are pooled.
"""

from __future__ import annotations

import csv
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cltt.data.stores.base import FrameStore
from cltt.errors import CLTTError
from cltt.eval.segments import is_segments_header, unreadable_csv

SPLITS = ("train", "val", "test")
LABELS_FILE = "labels.csv"


@dataclass
class LabelTable:
    """Labelled clips of one frames root, in store order.

    ``clips[i]`` is a clip name of the store, ``clip_index[i]`` its number there,
    ``labels[i]`` its class as text; ``file_splits[i]`` the split the labels file gives
    (None when it has no split column, or when labels come from folders).
    """

    source: str  # the labels file, or "folders"
    clips: list[str]
    clip_index: np.ndarray  # [num_labelled] int64 store clip numbers
    labels: list[str]
    file_splits: list[str] | None
    unlabelled: int  # clips of the root the probe leaves out

    @property
    def classes(self) -> list[str]:
        """Class names in a stable order: numbers by value, then text."""
        return class_order(self.labels)

    def targets(self) -> np.ndarray:
        """Class number of each labelled clip, ``[num_labelled]`` int64 into :attr:`classes`."""
        number = {name: i for i, name in enumerate(self.classes)}
        return np.array([number[label] for label in self.labels], dtype=np.int64)


_INTEGER = re.compile(r"-?[0-9]+")  # ASCII digits: str.isdigit() also takes '²', which int() refuses


def class_order(labels: Sequence[str]) -> list[str]:
    """The distinct ``labels`` in a stable order: integers (``-?[0-9]+``) by value, then text."""
    return sorted(set(labels), key=lambda n: (0, int(n), n) if _INTEGER.fullmatch(n) else (1, 0, n))


def default_labels_path(root: Path) -> Path:
    return Path(root) / LABELS_FILE


def load_labels(store: FrameStore, labels_path: str | Path | None = None) -> LabelTable:
    """The labelled clips of ``store``'s root, from a CSV file or from label folders."""
    root = Path(store.root)
    path = Path(labels_path) if labels_path else default_labels_path(root)
    if path.is_file():
        return _from_csv(store, path)
    if labels_path:
        raise CLTTError(f"labels file {path} (probe.labels) does not exist; give a CSV with header clip,label[,split]")
    nested = [c.split("/") for c in store.clips]
    if store.clips and all(len(parts) == 2 for parts in nested):
        return LabelTable(
            source="folders",
            clips=list(store.clips),
            clip_index=np.arange(store.num_clips, dtype=np.int64),
            labels=[parts[0] for parts in nested],
            file_splits=None,
            unlabelled=0,
        )
    raise CLTTError(
        f"no labels for {root}: write {path} with header clip,label[,split], arrange clips as "
        f"{root}/<label>/<clip>/, or point probe.labels at a labels file"
    )


def _from_csv(store: FrameStore, path: Path) -> LabelTable:
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:  # -sig: a spreadsheet's BOM
            rows = list(csv.reader(handle))
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise unreadable_csv("labels file", path, err) from None
    header = [h.strip().lower() for h in rows[0]] if rows else []
    if is_segments_header(header):
        raise CLTTError(f"labels file {path} gives segments by time (clip,start,end,label), which label frames; "
                        "this task needs one label per clip: give a file with the header clip,label[,split]")
    if header[:2] != ["clip", "label"] or len(header) > 3 or (len(header) == 3 and header[2] != "split"):
        raise CLTTError(f"labels file {path} must start with the header clip,label or clip,label,split; "
                        f"got {','.join(header) or 'nothing'}")
    has_split = len(header) == 3
    seen: dict[str, tuple[str, str | None]] = {}
    missing: list[str] = []
    for line, row in enumerate(rows[1:], start=2):
        if not row or not any(cell.strip() for cell in row):
            continue
        if len(row) < 2 or len(row) > len(header):
            raise CLTTError(f"labels file {path} line {line}: expected {','.join(header)}, got {','.join(row)}")
        clip = row[0].strip().strip("/")
        label = row[1].strip()
        split = row[2].strip().lower() if has_split and len(row) > 2 else ""
        if split and split not in SPLITS:
            raise CLTTError(f"labels file {path} line {line}: split {split!r} must be train, val or test")
        if not label:
            continue  # an unlabelled clip (e.g. moving-digits clips showing several digits)
        if has_split and not split:
            raise CLTTError(f"labels file {path} line {line}: clip {clip} has no split; fill the split column "
                            "for every labelled clip, or drop the column to draw splits with probe.split_seed")
        entry = (label, split or None)
        if clip in seen and seen[clip] != entry:
            raise CLTTError(f"labels file {path} lists clip {clip} twice, as {_describe(seen[clip])} and "
                            f"{_describe(entry)}; one clip must have one label and one split")
        seen[clip] = entry
        try:
            store.clip_index(clip)
        except KeyError:
            missing.append(clip)
    if missing:
        shown = ", ".join(missing[:3]) + (f" and {len(missing) - 3} more" if len(missing) > 3 else "")
        raise CLTTError(f"labels file {path} names {len(missing)} clip(s) that {store.root} does not have: {shown}; "
                        "fix the file or point data.root at the frames it describes")
    if not seen:
        raise CLTTError(f"labels file {path} labels no clip; every row has an empty label")
    clips = sorted(seen, key=store.clip_index)
    return LabelTable(
        source=str(path),
        clips=clips,
        clip_index=np.array([store.clip_index(c) for c in clips], dtype=np.int64),
        labels=[seen[c][0] for c in clips],
        file_splits=[seen[c][1] for c in clips] if has_split else None,
        unlabelled=store.num_clips - len(clips),
    )


def _describe(entry: tuple[str, str | None]) -> str:
    label, split = entry
    return f"label {label!r}" + (f" in {split}" if split else "")


def assign_splits(table: LabelTable, fractions: list[float], seed: int) -> list[str]:
    """A split per labelled clip: the file's, else drawn with ``seed``, stratified by class.

    Drawn: the split totals are ``n * fractions`` rounded by largest remainder. One random
    clip of every class goes to train first (so every class can be scored); the other clips,
    ordered class by class and shuffled within a class, are dealt along a low-discrepancy
    sequence towards the remaining totals, so each class is split close to ``fractions``
    even when it has only a few clips. Frames never enter here: a clip goes to one split whole.
    """
    if table.file_splits is not None:
        return list(table.file_splits)
    return draw_splits(table.labels, fractions, seed)


def draw_splits(labels: Sequence[str], fractions: list[float], seed: int) -> list[str]:
    """A split per unit (clip, image or group) of class ``labels[i]``, drawn with ``seed`` as
    :func:`assign_splits` describes: stratified, every class in train."""
    rng = np.random.default_rng(seed)
    classes = class_order(labels)
    splits = [""] * len(labels)
    labels = np.array(labels, dtype=object)
    totals = _largest_remainder(len(labels), fractions)
    rest = []
    for name in classes:
        members = np.flatnonzero(labels == name)
        members = members[rng.permutation(len(members))]
        splits[int(members[0])] = "train"
        rest += [int(m) for m in members[1:]]
    remaining = [max(0, totals[0] - len(classes)), totals[1], totals[2]]
    dealt = [0, 0, 0]
    for step, clip in enumerate(rest, start=1):
        open_splits = [s for s in range(3) if dealt[s] < remaining[s]] or [0]
        choice = max(open_splits, key=lambda s: step * remaining[s] / len(rest) - dealt[s])
        dealt[choice] += 1
        splits[clip] = SPLITS[choice]
    return splits


def _largest_remainder(n: int, fractions: list[float]) -> list[int]:
    exact = np.asarray(fractions, dtype=np.float64) * n
    counts = np.floor(exact).astype(np.int64)
    for i in np.argsort(-(exact - counts), kind="stable")[: n - int(counts.sum())]:
        counts[i] += 1
    return counts.tolist()


def check_splits(labels: Sequence[str], splits: Sequence[str], source: str, unit: str = "clip",
                 fix: str = "in the split column, or drop the column to draw splits per class with probe.split_seed") -> None:
    """Refuse splits a probe cannot be fitted on: no train clip, one class in train, or a val/test
    class that train never shows (its accuracy would be zero by construction).

    ``labels`` and ``splits``: one entry per ``unit`` (clip, image, group); ``source`` names the
    labels, ``fix`` says where a unit is moved to train.
    """
    in_train = {label for label, split in zip(labels, splits) if split == "train"}
    if not in_train:
        raise CLTTError(f"no labelled {unit} is in the train split ({source}); raise probe.split_fractions[0]")
    if len(in_train) < 2:
        raise CLTTError(f"the train split holds one class ({source}; train {unit}s per class: "
                        f"{describe_counts(train_clips_per_class(labels, splits))}); a probe needs at least two: put "
                        f"{unit}s of another class in train")
    absent = Counter((label, split) for label, split in zip(labels, splits) if split != "train" and label not in in_train)
    if absent:
        shown = ", ".join(f"{label!r} ({split})" for label, split in list(absent)[:3])
        raise CLTTError(f"class {shown} has val/test {unit}s but no train {unit} ({source}); move {_a(unit)} {unit} of "
                        f"it to train {fix}")


def check_held_out(splits: Sequence[str], source: str, unit: str = "clip", fix: str | None = None) -> None:
    """Refuse splits with no val or test clip (``unit``; ``splits`` one per unit): the probe's
    val and test columns would be empty, and accuracy on the clips a probe was fitted on says
    nothing about the features. ``fix`` says how to hold some out (default: a split column)."""
    if not any(split in ("val", "test") for split in splits):
        fix = fix or (f"mark some {unit}s val or test in the split column, or draw splits (no split column) with val "
                      f"and test probe.split_fractions above 0 and more than one {unit} per class")
        raise CLTTError(f"every labelled {unit} ({len(splits)}) is in the train split ({source}), so the probe has nothing "
                        f"held out to score; {fix}")


def _a(noun: str) -> str:
    """``a`` or ``an`` before ``noun`` (by its first letter: clip, image, group)."""
    return "an" if noun[:1].lower() in "aeiou" else "a"


def train_clips_per_class(labels: Sequence[str], splits: Sequence[str]) -> dict[str, int]:
    """Train clips of each class (one entry of ``labels``/``splits`` per clip), every class of
    ``labels`` in order of first appearance, 0 for a class train lacks."""
    counts = Counter(label for label, split in zip(labels, splits) if split == "train")
    return {label: counts[label] for label in dict.fromkeys(labels)}


def describe_counts(counts: dict[str, int]) -> str:
    """``'a' 4, 'b' 1``, for one-line messages."""
    return ", ".join(f"{label!r} {n}" for label, n in counts.items())


def check_no_clip_leak(sample_clips: np.ndarray, sample_splits: np.ndarray, clip_names: list[str] | None = None) -> None:
    """Refuse an assignment where samples of one clip land in two splits.

    ``sample_clips [M]`` clip number of each sample, ``sample_splits [M]`` its split (any
    labels). Frames of one clip are near-duplicates, so such a split would score memory.
    """
    sample_clips = np.asarray(sample_clips)
    sample_splits = np.asarray(sample_splits)
    if len(sample_clips) == 0:
        return
    pairs = np.unique(np.stack([sample_clips.astype(np.int64), np.unique(sample_splits, return_inverse=True)[1]]), axis=1)
    clips, counts = np.unique(pairs[0], return_counts=True)
    leaking = clips[counts > 1]
    if len(leaking):
        first = int(leaking[0])
        name = clip_names[first] if clip_names is not None else f"number {first}"
        raise CLTTError(f"clip {name} has samples in more than one split ({len(leaking)} clip(s) leak); "
                        "splits must be by clip, never by frame")
