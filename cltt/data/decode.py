"""Decode frames from disk, at reduced size when the output is small.

JPEG can be decoded at 1/2, 1/4 or 1/8 of its size directly in the DCT domain, which is several
times faster than decoding in full and resizing. :func:`reduction_for` picks the largest factor
that still leaves the short side at least as large as the output, so quality is kept.
"""

from __future__ import annotations

import re

import numpy as np

from cltt.errors import CLTTError
from cltt.recipe import DEFAULT_MAX_PIXELS

# OpenCV is imported where frames are decoded: it costs 0.3 s, and listing or indexing frames
# (cltt index, cltt runs, a store's index) needs none.
_REDUCED_FLAG_NAMES = {1: "IMREAD_COLOR", 2: "IMREAD_REDUCED_COLOR_2", 4: "IMREAD_REDUCED_COLOR_4",
                       8: "IMREAD_REDUCED_COLOR_8"}


def reduced_flags() -> dict[int, int]:
    """OpenCV's ``imdecode`` flag for each reduction factor (1, 2, 4, 8)."""
    import cv2

    return {factor: getattr(cv2, name) for factor, name in _REDUCED_FLAG_NAMES.items()}


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


def read_rgb(path: str, reduction: int = 1, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Decode an image file to an RGB ``uint8`` array ``[H, W, 3]``, shrunk by ``reduction``.

    Raises :class:`CorruptFrameError` for a missing, unreadable or truncated file, or one whose
    header says it has more than ``max_pixels`` pixels (``data.max_pixels``).
    """
    try:
        encoded = np.fromfile(path, dtype=np.uint8)
    except OSError as err:
        raise CorruptFrameError(path, err.strerror or str(err)) from None
    return decode_rgb(encoded, reduction, path, max_pixels)


def decode_rgb(encoded: np.ndarray, reduction: int = 1, where: str = "frame", max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Decode the bytes of an image file (``uint8 [N]``) to RGB ``uint8 [H, W, 3]``.

    ``where`` names the frame in errors. A JPEG without its end-of-image marker decodes to grey
    garbage, and an image of more than ``max_pixels`` pixels costs ``3 * H * W`` bytes at every
    read (3 GB for 20000 x 20000), so both are refused with :class:`CorruptFrameError`, not
    trained on.
    """
    import cv2

    check_encoded(encoded, where, max_pixels)
    image = cv2.imdecode(encoded, getattr(cv2, _REDUCED_FLAG_NAMES[reduction]))
    if image is None:
        raise CorruptFrameError(where, "not a decodable image")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def check_encoded(encoded: np.ndarray, where: str = "frame", max_pixels: int = DEFAULT_MAX_PIXELS) -> None:
    """The checks that need no decoding: not empty, a JPEG ends with its end-of-image marker, and
    the header's ``H * W <= max_pixels`` (a header this module cannot read is not judged)."""
    if encoded.size == 0:
        raise CorruptFrameError(where, "empty file")
    if is_jpeg(encoded) and not _has_jpeg_end(encoded):
        raise CorruptFrameError(where, "truncated JPEG (no end-of-image marker)")
    size = header_dimensions(encoded)
    if size is not None and size[0] * size[1] > max_pixels:
        raise CorruptFrameError(where, f"{size[1]} x {size[0]} pixels, more than data.max_pixels={max_pixels:_}; "
                                       "shrink it, or raise data.max_pixels")


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


def header_dimensions(encoded: np.ndarray | bytes) -> tuple[int, int] | None:
    """``(height, width)`` from the header of any frame format cltt reads
    (:data:`cltt.data.formats.FRAME_EXTENSIONS`), without decoding: JPEG and PNG by
    :func:`header_size`, then BMP, WebP, TIFF, PBM/PGM/PPM and Sun raster. None when
    the header is none of those or is damaged. Only TIFF may need more than the first 64 KB (its
    directory can sit at the end of the file).
    """
    head = bytes(encoded[:65536])
    size = header_size(head)
    if size is not None:
        return size
    if head[:2] == b"BM" and len(head) >= 26:
        if int.from_bytes(head[14:18], "little") == 12:  # OS/2 BITMAPCOREHEADER: 16-bit sides
            return int.from_bytes(head[20:22], "little"), int.from_bytes(head[18:20], "little")
        return abs(int.from_bytes(head[22:26], "little", signed=True)), int.from_bytes(head[18:22], "little", signed=True)
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP" and len(head) >= 30:
        chunk = head[12:16]
        if chunk == b"VP8X":  # canvas sides minus one, 24-bit little-endian
            return int.from_bytes(head[27:30], "little") + 1, int.from_bytes(head[24:27], "little") + 1
        if chunk == b"VP8L":  # after the 0x2f signature: 14 bits width - 1, 14 bits height - 1
            bits = int.from_bytes(head[21:25], "little")
            return ((bits >> 14) & 0x3FFF) + 1, (bits & 0x3FFF) + 1
        if chunk == b"VP8 ":  # key frame: 3-byte tag, start code 9d 01 2a, then 14-bit sides
            return int.from_bytes(head[28:30], "little") & 0x3FFF, int.from_bytes(head[26:28], "little") & 0x3FFF
        return None
    if head[:4] in (b"II*\0", b"MM\0*"):
        return _tiff_dimensions(bytes(encoded))
    if len(head) >= 3 and head[0:1] == b"P" and head[1:2] in b"123456" and head[2:3].isspace():
        words = re.sub(rb"#[^\n]*", b" ", head[2:64]).split()  # comments may sit between the numbers
        if len(words) >= 2 and words[0].isdigit() and words[1].isdigit():
            return int(words[1]), int(words[0])
        return None
    if head[:4] == b"\x59\xa6\x6a\x95" and len(head) >= 12:  # Sun raster
        return int.from_bytes(head[8:12], "big"), int.from_bytes(head[4:8], "big")
    return None


def _tiff_dimensions(data: bytes) -> tuple[int, int] | None:
    """ImageLength and ImageWidth (tags 257, 256) of a TIFF's first image directory."""
    order = "little" if data[:2] == b"II" else "big"
    start = int.from_bytes(data[4:8], order)
    count = int.from_bytes(data[start:start + 2], order)
    sides = {}
    for entry in range(start + 2, min(start + 2 + 12 * count, len(data) - 11), 12):
        tag, kind = int.from_bytes(data[entry:entry + 2], order), int.from_bytes(data[entry + 2:entry + 4], order)
        if tag in (256, 257):  # SHORT (3) or LONG (4), held in the entry's value field
            sides[tag] = int.from_bytes(data[entry + 8:entry + (10 if kind == 3 else 12)], order)
    return (sides[257], sides[256]) if len(sides) == 2 else None


def is_jpeg(encoded: np.ndarray) -> bool:
    return encoded.size > 1 and encoded[0] == 0xFF and encoded[1] == 0xD8


def shrink(image: np.ndarray, reduction: int) -> np.ndarray:
    """``image`` ``[H, W, 3]`` made ``reduction`` times smaller (area averaging); as is for 1."""
    import cv2

    if reduction == 1:
        return image
    height, width = image.shape[:2]
    size = (max(1, -(-width // reduction)), max(1, -(-height // reduction)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)


def _has_jpeg_end(encoded: np.ndarray) -> bool:
    tail = encoded[-32:].tobytes()
    return b"\xff\xd9" in tail
