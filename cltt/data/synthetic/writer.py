"""Writing a synthetic dataset: every clip of a generator atomically, then its tables.

``OUT/clip_0000/frame_000001.jpg ...`` per clip, each with ``masks.npz`` (instance ids per
pixel), ``timestamps.csv`` (frame t at t / the generator's ``fps``) and a marker whose
``extra`` has the clip's label, split and objects; beside the clips ``labels.csv``
(``clip,label,split``; splits are by clip, stratified by label), ``boxes.csv``
(``clip,frame,x1,y1,x2,y2``, one row per visible object per frame, x2/y2 exclusive), the
generator's frame table if it has one (``phases.csv``) and, for a generator whose frame table
starts with a class label per frame, the same labels by time (``segments.csv``,
``clip,start,end,label`` in seconds, the form :mod:`cltt.eval.segments` reads).

A clip depends only on the config and its index, so runs are reproducible byte for byte and
a rerun skips finished clips (see :mod:`cltt.data.clipwriter`).
"""

from __future__ import annotations

import csv
import os
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cltt.data.clipwriter import (
    ClipResult,
    ClipWriter,
    clip_status,
    describe_status,
    frame_file_name,
)
from cltt.data.focus import BOX_COLUMNS
from cltt.data.synthetic.base import ClipPlan, Generator, Scene, mask_boxes, render
from cltt.data.synthetic.registry import get_generator
from cltt.errors import CLTTError
from cltt.recipe import SyntheticConfig

FORMAT_VERSION = 1  # bump when a generator's output changes, so old clips read as "different"
LABEL_COLUMNS = ("clip", "label", "split")
LABELS_FILE = "labels.csv"
BOXES_FILE = "boxes.csv"
SEGMENT_COLUMNS = ("clip", "start", "end", "label")  # labels by time, as cltt.eval.segments reads them (a layer above)


def fingerprint(name: str, config: SyntheticConfig, index: int) -> dict[str, Any]:
    """What a clip was made from; a finished clip with the same fingerprint is skipped."""
    return {"generator": name, "format": FORMAT_VERSION, **asdict(config), "clip": index}


def write_synthetic(
    name: str,
    out: Path,
    config: SyntheticConfig,
    workers: int = 1,
    on_frames: Callable[[int], None] | None = None,
) -> Iterator[ClipResult]:
    """Write dataset ``name`` under ``out``; yields one :class:`ClipResult` per clip.

    A clip already finished with the same fingerprint is ``skipped``; a folder in its place
    that cltt did not write, or wrote with other options, makes it ``failed`` (left untouched).
    ``on_frames(n)`` is called in this process once per written clip with its frame count.
    Once every clip is through, ``labels.csv`` and ``boxes.csv`` (and ``phases.csv`` for
    ``phases``) are (re)written, covering all clips except failed ones. Bad arguments raise :class:`CLTTError` here, before any writing.
    """
    generator = get_generator(name)
    config.validate("extract.synthetic")
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise CLTTError(f"--out {out} is a file; give a folder to write the clips into")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise CLTTError(f"cannot create {out} ({err.strerror}); choose another --out") from None
    return _write(generator, out, config, max(1, int(workers)), on_frames)


def _write(
    generator: Generator,
    out: Path,
    config: SyntheticConfig,
    workers: int,
    on_frames: Callable[[int], None] | None,
) -> Iterator[ClipResult]:
    plans = generator.plan(config)
    tables: dict[str, ClipTables] = {}  # clip -> its rows of boxes.csv (and the frame table), for clips on disk
    todo = []
    for plan in plans:
        status = clip_status(out, plan.clip, fingerprint(generator.name, config, plan.index))
        source = f"{generator.name} {plan.clip}"
        if status == "missing":
            todo.append(plan)
        elif status == "complete":
            scene = generator.scene(config, plan)
            _, masks = render(scene, images=False)
            tables[plan.clip] = _clip_tables(plan, scene, masks)
            yield ClipResult(plan.clip, source, "skipped", frames=config.frames)
        else:
            yield ClipResult(plan.clip, source, "failed", message=describe_status(status, out, plan.clip))

    def finished(result: ClipResult, rows: ClipTables | None):
        if rows is not None:
            tables[result.clip] = rows
            if on_frames is not None:
                on_frames(result.frames)
        return result

    if workers > 1 and len(todo) > 1:
        with ProcessPoolExecutor(min(workers, len(todo))) as pool:
            futures = [pool.submit(_make_clip, generator.name, config, plan, out) for plan in todo]
            for future in as_completed(futures):
                yield finished(*future.result())
    else:
        for plan in todo:
            yield finished(*_make_clip(generator.name, config, plan, out))

    written = [plan for plan in plans if plan.clip in tables]
    _write_csv(out / LABELS_FILE, LABEL_COLUMNS, [[p.clip, tables[p.clip].label, p.split] for p in written])
    _write_csv(out / BOXES_FILE, BOX_COLUMNS, [row for p in written for row in tables[p.clip].boxes])
    if generator.frame_table is not None:
        name, columns = generator.frame_table
        _write_csv(out / name, columns, [row for p in written for row in tables[p.clip].frames])
    if generator.segments_file is not None:
        _write_csv(out / generator.segments_file, SEGMENT_COLUMNS,
                   [row for p in written for row in _segment_rows(tables[p.clip].frames, generator.fps)])


@dataclass
class ClipTables:
    """One clip's rows of ``boxes.csv`` and of the generator's frame table (none for most), and its
    label in ``labels.csv`` (the plan's, or the one its drawn frames give)."""

    boxes: list[list[Any]]
    frames: list[list[Any]]
    label: str


def _make_clip(name: str, config: SyntheticConfig, plan: ClipPlan, out: Path) -> tuple[ClipResult, ClipTables | None]:
    """Simulate, render and write one clip (runs in a worker process); returns its result and table rows."""
    started = time.perf_counter()
    source = f"{name} {plan.clip}"
    generator = get_generator(name)
    scene = generator.scene(config, plan)
    frames, masks = render(scene)
    tables = _clip_tables(plan, scene, masks)
    try:
        with ClipWriter(out, plan.clip, fingerprint(name, config, plan.index)) as writer:
            for t, image in enumerate(frames):
                writer.write(image, t, t / generator.fps)
            writer.write_array("masks", masks)
            writer.extra = scene.extra if scene.clip_label is None else {**scene.extra, "label": tables.label}
    except OSError as err:  # disk full, permissions: report the clip, keep going with the rest
        return ClipResult(plan.clip, source, "failed", message=f"could not write {out / plan.clip}: {err}"), None
    done = ClipResult(plan.clip, source, "done", frames=len(frames), seconds=time.perf_counter() - started)
    return done, tables


def _clip_tables(plan: ClipPlan, scene: Scene, masks: np.ndarray) -> ClipTables:
    labels = scene.frame_labels if scene.label_frames is None else scene.label_frames(masks)
    frames = [[plan.clip, frame_file_name(t + 1), *row] for t, row in enumerate(labels or [])]
    label = plan.label if scene.clip_label is None else scene.clip_label(labels)
    return ClipTables(_box_rows(plan, masks), frames, label)


def _segment_rows(frame_rows: list[list[Any]], fps: float) -> list[list[Any]]:
    """One clip's frame-table rows ``[clip, frame, label, ...]`` (frame t at t / fps s) as labels by
    time: each run of frames t0..t1-1 with one non-empty label becomes ``[clip, start, end, label]``,
    start = max(0, (t0 - 1/2) / fps), end = (t1 - 1/2) / fps seconds: the boundaries lie half way
    between frames, so no rounding moves a frame into the next segment. Unlabelled frames get none."""
    rows: list[list[Any]] = []
    for t, (clip, _, label, *_) in enumerate(frame_rows):
        if label == "":
            continue
        if rows and rows[-1][3] == label and rows[-1][4] == t - 1:
            rows[-1][4] = t
        else:
            rows.append([clip, t, None, label, t])
    return [[clip, round(max(0.0, (first - 0.5) / fps), 6), round((last + 0.5) / fps, 6), label]
            for clip, first, _, label, last in rows]


def _box_rows(plan: ClipPlan, masks: np.ndarray) -> list[list[Any]]:
    return [[plan.clip, frame_file_name(t + 1), *box] for t, _, *box in mask_boxes(masks, plan.objects)]


def _write_csv(path: Path, header: Sequence[str], rows: list[list[Any]]) -> None:
    """Write a CSV atomically: readers see the old file or the new one, never half of one."""
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)
    os.replace(tmp, path)
