"""Object focus: blur the background outside an object's box, so the loss sees the object.

Boxes come from a CSV ``clip,frame,x1,y1,x2,y2`` in pixels of the original frame (``frame`` is
the frame's file name, with or without extension; several rows for one frame give several
boxes). The built-in generators write one as ``ROOT/boxes.csv``. With ``boxes_or_center``,
a frame without a box gets a centred box ``center_box_fraction`` of each side, the fallback the
lab's original code used.
"""

from __future__ import annotations

import csv
import math
import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from cltt.data.stores.base import FrameStore
from cltt.errors import CLTTError

BOX_COLUMNS = ("clip", "frame", "x1", "y1", "x2", "y2")


@dataclass
class FrameBoxes:
    """Boxes per global frame number, stored compressed-row: frame i owns ``coords[first[i]:first[i+1]]``."""

    first: np.ndarray  # [num_frames + 1] int64
    coords: np.ndarray  # [num_boxes, 4] float32, x1 y1 x2 y2

    def of_frame(self, global_frame: int) -> np.ndarray:
        return self.coords[self.first[global_frame] : self.first[global_frame + 1]]


def load_boxes(path: str | Path, store: FrameStore) -> FrameBoxes:
    """Read a boxes CSV and attach each row to its frame of ``store``."""
    path = Path(path)
    if not path.is_file():
        raise CLTTError(f"boxes file {path} does not exist; set data.boxes or data.object_focus=none")
    frames, coords = [], []
    lookup: dict[str, dict[str, int]] = {}
    with open(path, newline="") as handle:
        reader = csv.DictReader(handle)
        missing = [c for c in BOX_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise CLTTError(f"boxes file {path} lacks column(s) {', '.join(missing)}; expected header {','.join(BOX_COLUMNS)}")
        for line, row in enumerate(reader, start=2):
            clip = row["clip"]
            if clip not in lookup:
                try:
                    c = store.clip_index(clip)
                except KeyError:
                    raise CLTTError(f"{path} line {line}: clip '{clip}' is not under {store.root}") from None
                offset = int(store.clip_offsets[c])
                names = store.frame_names(c)
                lookup[clip] = {n: offset + i for i, n in enumerate(names)}
                lookup[clip].update({os.path.splitext(n)[0]: offset + i for i, n in enumerate(names)})
            frame = lookup[clip].get(row["frame"])
            if frame is None:
                raise CLTTError(f"{path} line {line}: clip '{clip}' has no frame '{row['frame']}'")
            try:
                coords.append([float(row[k]) for k in ("x1", "y1", "x2", "y2")])
            except (TypeError, ValueError):
                raise CLTTError(f"{path} line {line}: box coordinates must be numbers") from None
            frames.append(frame)
    frames_arr = np.asarray(frames, dtype=np.int64)
    order = np.argsort(frames_arr, kind="stable")
    coords_arr = np.asarray(coords, dtype=np.float32).reshape(-1, 4)[order]
    first = np.searchsorted(frames_arr[order], np.arange(store.num_frames + 1))
    return FrameBoxes(first.astype(np.int64), coords_arr)


def center_box(height: int, width: int, fraction: float) -> np.ndarray:
    """A centred box of ``fraction`` of each side, as ``[1, 4]`` x1 y1 x2 y2."""
    dy, dx = height * (1 - fraction) / 2, width * (1 - fraction) / 2
    return np.array([[dx, dy, width - dx, height - dy]], dtype=np.float32)


def blur_outside(frame: np.ndarray, boxes: np.ndarray, sigma: float) -> np.ndarray:
    """``frame`` [H, W, 3] with everything outside the union of ``boxes`` [k, 4] blurred."""
    if len(boxes) == 0:
        return frame
    radius = max(1, int(math.ceil(3 * sigma)))
    out = cv2.GaussianBlur(frame, (2 * radius + 1, 2 * radius + 1), sigma)
    height, width = frame.shape[:2]
    for x1, y1, x2, y2 in boxes:
        top, bottom = max(0, int(math.floor(y1))), min(height, int(math.ceil(y2)))
        left, right = max(0, int(math.floor(x1))), min(width, int(math.ceil(x2)))
        out[top:bottom, left:right] = frame[top:bottom, left:right]
    return out
