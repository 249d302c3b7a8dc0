"""Decode every frame of a store and list the ones that cannot be read."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Callable

from cltt.data.decode import CorruptFrameError
from cltt.data.stores.base import FrameStore


def verify_frames(
    store: FrameStore, threads: int = 8, on_progress: Callable[[int], None] | None = None
) -> list[tuple[str, str]]:
    """Check every frame with :meth:`FrameStore.check` (OpenCV releases the GIL, so threads decode
    in parallel).

    Returns ``(where, reason)`` for each corrupt or unreadable frame, in store order.
    """

    def check(frame: int) -> tuple[str, str] | None:
        try:
            store.check(frame)
        except CorruptFrameError as err:
            return store.locate(frame), err.why
        return None

    bad = []
    with ThreadPoolExecutor(max_workers=threads) as pool:
        for done, result in enumerate(pool.map(check, range(store.num_frames), chunksize=64), start=1):
            if result is not None:
                bad.append(result)
            if on_progress is not None and done % 256 == 0:
                on_progress(256)
        if on_progress is not None:
            on_progress(store.num_frames % 256)
    return bad
