"""Frame stores: every kind of frames root, behind one interface (:class:`FrameStore`).

    store = open_store(root, cache_dir)        # the first registered kind that recognises root

A kind is one module in this package that decorates its class with :func:`register_store`; the
class says whether a path is its kind (``detect``) and opens it (``open``). Kinds are asked in
order of ``priority`` (lowest first), so the folder of clip folders, which accepts any folder,
is asked last. Adding a format is one new file here plus its tests.
"""

from __future__ import annotations

import importlib
import pkgutil
from pathlib import Path

from cltt.data.stores.base import FrameStore

_KINDS: dict[str, type[FrameStore]] = {}


def register_store(kind: str, priority: int = 50):
    """Class decorator: make ``cls`` the store of ``kind``; lower ``priority`` is asked first."""

    def register(cls):
        cls.kind = kind
        cls.priority = priority
        _KINDS[kind] = cls
        return cls

    return register


def store_kinds() -> dict[str, type[FrameStore]]:
    """Every registered kind, in the order they are asked."""
    _load_all()
    return dict(sorted(_KINDS.items(), key=lambda item: item[1].priority))


def open_store(root: str | Path, cache_dir: str | Path | None = None, rebuild: bool = False,
               max_pixels: int | None = None) -> FrameStore:
    """The store at ``root``: a packed store, else a folder of clip folders (indexed, cached).

    ``max_pixels`` (``data.max_pixels``; the default when None): a frame whose header says it
    has more pixels is refused as corrupt before it is decoded.
    """
    root = Path(root).absolute()
    for cls in store_kinds().values():
        if cls.detect(root):
            store = cls.open(root, cache_dir=cache_dir, rebuild=rebuild)
            if max_pixels is not None:
                store.max_pixels = max_pixels
            return store
    raise AssertionError("the folder store accepts every path")  # pragma: no cover


def _load_all() -> None:
    for module in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{module.name}")


__all__ = ["FrameStore", "open_store", "register_store", "store_kinds"]
