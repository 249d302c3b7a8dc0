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
    check_encoded(encoded, where)
    image = cv2.imdecode(encoded, _REDUCED_FLAGS[reduction])
    if image is None:
        raise CorruptFrameError(where, "not a decodable image")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def check_encoded(encoded: np.ndarray, where: str = "frame") -> None:
    """The checks that need no decoding: not empty, and a JPEG ends with its end-of-image marker."""
    if encoded.size == 0:
        raise CorruptFrameError(where, "empty file")
    if is_jpeg(encoded) and not _has_jpeg_end(encoded):
        raise CorruptFrameError(where, "truncated JPEG (no end-of-image marker)")


_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}  # start-of-frame markers (not DHT, JPG, DAC)


def header_size(encoded: np.ndarray | bytes) -> tuple[int, int] | None:
    """``(height, width)`` from a JPEG's start-of-frame segment or a PNG's IHDR, without decoding;
    None when the header is not one of those or is damaged."""
    data = bytes(encoded[:65536]) if not isinstance(encoded, bytes) else encoded[:65536]
    if data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) >= 24:
        return int.from_bytes(data[20:24], "big"), int.from_bytes(data[16:20], "big")
    if data[:2] != b"\xff\xd8":
        return None
    position = 2
    while position + 9 <= len(data):
        if data[position] != 0xFF:
            return None
        marker = data[position + 1]
        if marker == 0xFF:  # fill byte
            position += 1
            continue
        length = int.from_bytes(data[position + 2:position + 4], "big")
        if marker in _SOF:
            height = int.from_bytes(data[position + 5:position + 7], "big")
            width = int.from_bytes(data[position + 7:position + 9], "big")
            return (height, width) if height and width else None
        if marker == 0xDA or length < 2:  # start of scan before any frame header
            return None
        position += 2 + length
    return None


def is_jpeg(encoded: np.ndarray) -> bool:
    return encoded.size > 1 and encoded[0] == 0xFF and encoded[1] == 0xD8


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
