"""Tiny real test videos whose frames encode their own index.

Every test video is 30 fps; frame ``i`` shows the bits of ``i`` as white cells in a band across
its top half (above a fixed texture), so a test can read back which source frames were kept,
even after resizing and JPEG compression.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

BITS = 6  # enough for the 60 frames of a test video
SRC_FPS = 30
_TEXTURE = np.random.default_rng(0).integers(0, 256, (24, 64, 3), dtype=np.uint8)


def frame_image(index: int, width: int = 64, height: int = 48) -> np.ndarray:
    """BGR frame whose top half shows the bits of ``index`` and bottom half a fixed texture."""
    image = np.zeros((height, width, 3), np.uint8)
    image[height // 2 :] = cv2.resize(_TEXTURE, (width, height - height // 2))
    for bit in range(BITS):
        if index >> bit & 1:
            image[: height // 2, bit * width // BITS : (bit + 1) * width // BITS] = 255
    return image


def frame_index(path: Path) -> int:
    """Read back the index drawn by :func:`frame_image`, sampling the middle of each bit cell."""
    image = cv2.imread(str(path))
    height, width = image.shape[:2]
    band = image[height // 16 : height * 6 // 16]
    cells = [band[:, (4 * b + 1) * width // (4 * BITS) : (4 * b + 3) * width // (4 * BITS)] for b in range(BITS)]
    return sum(1 << b for b, cell in enumerate(cells) if cell.mean() > 128)


def write_video(path: Path, frames: int = 60, size: tuple[int, int] = (64, 48)) -> Path:
    """A 30 fps video: mp4v for .mp4, MJPG for everything else."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fourcc = cv2.VideoWriter_fourcc(*("mp4v" if path.suffix.lower() == ".mp4" else "MJPG"))
    writer = cv2.VideoWriter(str(path), fourcc, SRC_FPS, size)
    assert writer.isOpened(), f"cannot write {path}"
    for i in range(frames):
        writer.write(frame_image(i, *size))
    writer.release()
    return path


def truncate(path: Path, fraction: float) -> Path:
    """Cut ``path`` to ``fraction`` of its bytes, as a recording stopped mid-write would be."""
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * fraction)])
    return path
