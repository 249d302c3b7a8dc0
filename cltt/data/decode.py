"""Decode frames from disk, at reduced size when the output is small.

JPEG can be decoded at 1/2, 1/4 or 1/8 of its size directly in the DCT domain, which is several
times faster than decoding in full and resizing. :func:`reduction_for` picks the largest factor
that still leaves the short side at least as large as the output, so quality is kept.
"""

from __future__ import annotations

import cv2
import numpy as np

from cltt.errors import CLTTError

_REDUCED_FLAGS = {
    1: cv2.IMREAD_COLOR,
    2: cv2.IMREAD_REDUCED_COLOR_2,
    4: cv2.IMREAD_REDUCED_COLOR_4,
    8: cv2.IMREAD_REDUCED_COLOR_8,
}


class CorruptFrameError(CLTTError):
    """A frame file cannot be decoded (unreadable, not an image, or a truncated JPEG)."""

    def __init__(self, path: str, why: str):
        super().__init__(f"corrupt frame {path}: {why}")
        self.path = path
        self.why = why


def reduction_for(short_side: int, output_size: int) -> int:
    """Largest factor in 8, 4, 2 with ``short_side / factor >= output_size``, else 1."""
    for factor in (8, 4, 2):
        if short_side // factor >= output_size:
            return factor
    return 1


def read_rgb(path: str, reduction: int = 1) -> np.ndarray:
    """Decode an image file to an RGB ``uint8`` array ``[H, W, 3]``, shrunk by ``reduction``.

    Raises :class:`CorruptFrameError` for a missing, unreadable or truncated file.
    """
    try:
        encoded = np.fromfile(path, dtype=np.uint8)
    except OSError as err:
        raise CorruptFrameError(path, err.strerror or str(err)) from None
    return decode_rgb(encoded, reduction, path)


def decode_rgb(encoded: np.ndarray, reduction: int = 1, where: str = "frame") -> np.ndarray:
    """Decode the bytes of an image file (``uint8 [N]``) to RGB ``uint8 [H, W, 3]``.

    ``where`` names the frame in errors. A JPEG without its end-of-image marker decodes to grey
    garbage, so it is refused with :class:`CorruptFrameError`, not trained on.
    """
    if encoded.size == 0:
        raise CorruptFrameError(where, "empty file")
    if encoded[0] == 0xFF and encoded[1:2].tolist() == [0xD8] and not _has_jpeg_end(encoded):
        raise CorruptFrameError(where, "truncated JPEG (no end-of-image marker)")
    image = cv2.imdecode(encoded, _REDUCED_FLAGS[reduction])
    if image is None:
        raise CorruptFrameError(where, "not a decodable image")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def shrink(image: np.ndarray, reduction: int) -> np.ndarray:
    """``image`` ``[H, W, 3]`` made ``reduction`` times smaller (area averaging); as is for 1."""
    if reduction == 1:
        return image
    height, width = image.shape[:2]
    size = (max(1, -(-width // reduction)), max(1, -(-height // reduction)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)


def _has_jpeg_end(encoded: np.ndarray) -> bool:
    tail = encoded[-32:].tobytes()
    return b"\xff\xd9" in tail
