"""Decode every frame of a manifest and list the ones that cannot be read."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Callable

from cltt.data.decode import CorruptFrameError, read_rgb
from cltt.data.manifest import Manifest


def _check(path: str) -> tuple[str, str] | None:
    try:
        read_rgb(path)
    except CorruptFrameError as err:
        return path, err.why
    return None


def verify_frames(
    manifest: Manifest, threads: int = 8, on_progress: Callable[[int], None] | None = None
) -> list[tuple[str, str]]:
    """Decode every frame (OpenCV releases the GIL, so threads decode in parallel).

    Returns ``(path, reason)`` for each corrupt or unreadable frame, in manifest order.
    """
    bad = []
    with ThreadPoolExecutor(max_workers=threads) as pool:
        for done, result in enumerate(pool.map(_check, map(manifest.path_of, range(manifest.num_frames)), chunksize=64), start=1):
            if result is not None:
                bad.append(result)
            if on_progress is not None and done % 256 == 0:
                on_progress(256)
        if on_progress is not None:
            on_progress(manifest.num_frames % 256)
    return bad
