"""The file formats cltt reads, each list in one place: ``--help``, the README and the scanners use these.

Frames are any image OpenCV decodes to 8-bit colour whose size
:func:`cltt.data.decode.header_dimensions` reads from the header (so ``data.max_pixels`` is
checked before decoding). Videos are what ``cltt extract`` looks for when it searches a folder;
a video file named explicitly is tried whatever its extension (OpenCV judges it by content).
"""

from __future__ import annotations

FRAME_EXTENSIONS = frozenset({".jpg", ".jpeg", ".jpe", ".png", ".bmp", ".dib", ".webp", ".tif", ".tiff",
                              ".pbm", ".pgm", ".ppm", ".pnm", ".sr", ".ras"})
VIDEO_EXTENSIONS = frozenset({".mp4", ".m4v", ".mov", ".avi", ".mkv", ".webm", ".mpeg", ".mpg", ".mpe", ".m2v",
                              ".ts", ".mts", ".m2ts", ".wmv", ".asf", ".flv", ".3gp", ".ogv", ".vob", ".mxf"})


def listed(extensions: frozenset[str]) -> str:
    """``jpg, jpeg, png, ...``: the extensions in sorted order, without dots, for messages and ``--help``."""
    return ", ".join(sorted(extension.lstrip(".") for extension in extensions))
