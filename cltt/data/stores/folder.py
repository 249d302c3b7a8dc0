"""Frames as files: ``ROOT/<clip>/<frame>.jpg``, indexed by a cached manifest (:mod:`cltt.data.manifest`)."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from cltt.data.decode import CorruptFrameError, header_dimensions, read_rgb
from cltt.data.manifest import LEGACY_MANIFEST_DIR, IndexResult, Manifest, index_frames, is_frame_file
from cltt.data.stores import register_store
from cltt.data.stores.base import FrameStore


@register_store("folder", priority=100)
class FolderStore(FrameStore):
    """A folder of clip folders. ``index`` says where its manifest lives and whether it was rebuilt."""

    def __init__(self, manifest: Manifest, index: IndexResult | None = None):
        super().__init__(manifest.root, manifest)
        self.manifest = manifest
        self.index = index or IndexResult(manifest, None, "scanned")

    @classmethod
    def detect(cls, root: Path) -> bool:
        return True  # the fallback: index_frames says clearly what is wrong with a path

    @classmethod
    def open(cls, root: Path, cache_dir=None, rebuild: bool = False) -> "FolderStore":
        index = index_frames(root, cache_dir, rebuild=rebuild)
        return cls(index.manifest, index)

    def read(self, global_frame: int, reduction: int = 1) -> np.ndarray:
        return read_rgb(self.manifest.path_of(global_frame), reduction, self.max_pixels)

    def encoded_bytes(self, global_frame: int) -> bytes:
        path = self.manifest.path_of(global_frame)
        try:
            return Path(path).read_bytes()
        except OSError as err:
            raise CorruptFrameError(path, err.strerror or str(err)) from None

    def frame_shape(self, global_frame: int) -> tuple[int, int]:
        """From the file's header (its first 64 KB read, :func:`header_dimensions`), else by decoding it."""
        try:
            with open(self.manifest.path_of(global_frame), "rb") as handle:
                size = header_dimensions(handle.read(65536))
        except OSError:
            size = None
        return size or self.read(global_frame).shape[:2]

    def frame_sizes(self, first: int, last: int) -> np.ndarray:
        """One ``stat`` per frame, now: a frame rewritten in place leaves its folder's mtime (the
        manifest's freshness check) unchanged. Cheap next to decoding the frames, which is what
        the callers (feature caches) do next; ``-1`` for a file that is gone."""
        return self._stats(first, last)[:, 0]

    def frame_stamps(self, first: int, last: int) -> np.ndarray:
        """``[n, 3]`` byte size, mtime (ns) and inode of each frame, one ``stat`` each: a frame
        rewritten in place at the same size (uncompressed PNGs, a fixed-size encoder) changes its
        mtime, one renamed over another (files of one archive share an mtime) its inode. Touching
        a file or copying the root recomputes its features; a root moved within its file system
        keeps them, and so does an unchanged rerun."""
        return self._stats(first, last)

    def _stats(self, first: int, last: int) -> np.ndarray:
        """``[n, 3]`` int64 (byte size, mtime ns, inode) of frames ``first .. last - 1``; ``-1`` each for a file that is gone."""

        def stat(frame: int) -> tuple[int, int, int]:
            try:
                info = os.stat(self.manifest.path_of(frame))
            except OSError:
                return -1, -1, -1
            return info.st_size, info.st_mtime_ns, info.st_ino

        with ThreadPoolExecutor(max_workers=16) as pool:
            found = list(pool.map(stat, range(first, last), chunksize=256))
        return np.array(found, dtype=np.int64).reshape(last - first, 3)

    def path_of(self, global_frame: int) -> str:
        """The file of a frame (the packer copies its bytes)."""
        return self.manifest.path_of(global_frame)

    def warnings(self) -> list[str]:
        """Folders named like frames (``clip/frame_000003.jpg/``): never read as frames, so the
        clip lacks that frame; the gap report shows the hole, this names the cause. And the
        manifest folder an earlier cltt wrote into the root, which other tools' readers trip on."""
        found = [f"{self.root / d} is a folder named like a frame; it is not read as one: rename or remove it"
                 for d in self.manifest.dirs if is_frame_file(os.path.basename(d))]
        if (self.root / LEGACY_MANIFEST_DIR / "manifest.npz").is_file():
            found.append(f"{self.root / LEGACY_MANIFEST_DIR} holds a manifest an earlier cltt wrote; cltt now keeps it in "
                         f"its cache folder: delete {self.root / LEGACY_MANIFEST_DIR}, which torchvision's ImageFolder "
                         "takes for an empty class and refuses the root for")
        return found

    def index_row(self) -> tuple[str, str]:
        where = str(self.index.path) if self.index.path else "[yellow]not stored (no writable location)[/]"
        return "manifest", f"{where} ({self.index.status})"

    def clip_file(self, clip: int, name: str) -> Path:
        return self.root / self.clips[clip] / name
