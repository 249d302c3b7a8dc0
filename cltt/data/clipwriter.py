"""Write one clip of frames so that a killed run never leaves half a clip behind.

Frames go to a hidden folder ``OUT/.<clip>.partial/`` (ignored by indexing), then a marker file
``.cltt_clip.json`` records where the clip came from and with which options (its
*fingerprint*), and only then is the folder renamed to ``OUT/<clip>/``. A rename is atomic, so
``OUT/<clip>/`` either holds a finished clip or does not exist. A rerun skips finished clips
whose fingerprint matches, redoes half-written ones, and never rewrites a finished clip.

    status = clip_status(out, "clip_0001", fingerprint)
    if status == "missing":
        with ClipWriter(out, "clip_0001", fingerprint) as writer:
            for image in frames:
                writer.write(image)                # RGB uint8 [H, W, 3]; with (image, source_index, seconds)
                                                   # the clip gets a timestamps.csv (cltt.data.timestamps)
            writer.write_array("masks", masks)     # optional side data, masks.npz
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from cltt.data.timestamps import TIMESTAMPS_FILE, write_timestamps

MARKER = ".cltt_clip.json"

ClipStatus = Literal["missing", "complete", "different", "foreign"]


@dataclass
class ClipResult:
    """What happened to one clip in an extraction run."""

    clip: str
    source: str
    status: Literal["done", "skipped", "failed"]
    frames: int = 0
    message: str = ""
    seconds: float = 0.0


def frame_file_name(number: int, extension: str = ".jpg") -> str:
    """``frame_000001.jpg`` for ``number`` 1: 1-based, zero-padded so plain sorting works too."""
    return f"frame_{number:06d}{extension}"


def clip_status(out: Path, clip: str, fingerprint: dict[str, Any]) -> ClipStatus:
    """State of ``OUT/<clip>``: missing, complete (same fingerprint), different options, or foreign."""
    folder = Path(out) / clip
    if not folder.exists():
        return "missing"
    marker = folder / MARKER
    if not marker.is_file():
        return "foreign"
    try:
        recorded = json.loads(marker.read_text())
    except (OSError, ValueError):
        return "foreign"
    return "complete" if recorded.get("fingerprint") == _jsonable(fingerprint) else "different"


def read_marker(out: Path, clip: str) -> dict[str, Any]:
    """The marker of a finished clip: ``fingerprint``, ``frames`` and any ``extra`` fields."""
    return json.loads((Path(out) / clip / MARKER).read_text())


def describe_status(status: ClipStatus, out: Path, clip: str) -> str:
    """One line for a clip that cannot be written because something is already there."""
    if status == "different":
        return f"{Path(out) / clip} was extracted earlier with other options; delete it or choose another --out"
    return f"{Path(out) / clip} exists and was not written by cltt; move it or choose another --out"


class ClipWriter:
    """Context manager that writes frames into a partial folder and publishes it on success."""

    def __init__(self, out: Path, clip: str, fingerprint: dict[str, Any], jpeg_quality: int = 95, extension: str = ".jpg"):
        self.out = Path(out)
        self.clip = clip
        self.fingerprint = fingerprint
        self.extension = extension
        self.jpeg_quality = int(jpeg_quality)
        self.final = self.out / clip
        self.partial = self.final.with_name(f".{self.final.name}.partial")
        self.frames = 0
        self.extra: dict[str, Any] = {}
        self.times: list[tuple[str, int | None, float]] = []  # (frame name, source index, seconds)

    def __enter__(self) -> "ClipWriter":
        if self.partial.exists():  # left by a run that was killed: redo from scratch
            shutil.rmtree(self.partial)
        self.partial.mkdir(parents=True)
        return self

    def write(self, image: np.ndarray, source_index: int | None = None, seconds: float | None = None) -> str:
        """Write the next frame (RGB ``uint8`` [H, W, 3]); returns its file name.

        ``seconds`` (since the start of the source) and ``source_index`` (0-based source frame)
        go to the clip's ``timestamps.csv``; give them for every frame of a clip or for none.
        """
        import cv2  # here, not at the top: the frame stores read MARKER and import no OpenCV

        self.frames += 1
        name = frame_file_name(self.frames, self.extension)
        params = [cv2.IMWRITE_JPEG_QUALITY, self.jpeg_quality] if self.extension == ".jpg" else []
        ok = cv2.imwrite(str(self.partial / name), cv2.cvtColor(image, cv2.COLOR_RGB2BGR), params)
        if not ok:
            raise OSError(f"could not write {self.partial / name}")
        if seconds is not None:
            self.times.append((name, source_index, seconds))
        return name

    def write_array(self, name: str, array: np.ndarray) -> None:
        """Save side data (instance masks, say) as ``<clip>/<name>.npz`` with one array ``name``."""
        np.savez_compressed(self.partial / f"{name}.npz", **{name: array})

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            shutil.rmtree(self.partial, ignore_errors=True)
            return
        if self.times:
            if len(self.times) != self.frames:
                raise ValueError(f"clip {self.clip}: {len(self.times)} of {self.frames} frames were given a time")
            write_timestamps(self.partial / TIMESTAMPS_FILE, *zip(*self.times))
        marker = {"fingerprint": _jsonable(self.fingerprint), "frames": self.frames, "extra": _jsonable(self.extra)}
        tmp = self.partial / (MARKER + ".tmp")
        tmp.write_text(json.dumps(marker, indent=1, sort_keys=True))
        os.replace(tmp, self.partial / MARKER)
        os.rename(self.partial, self.final)


def _jsonable(value: Any) -> Any:
    """Round-trip through JSON so tuples and lists (and numpy scalars) compare equal."""
    return json.loads(json.dumps(value, default=lambda v: v.item() if hasattr(v, "item") else str(v)))
