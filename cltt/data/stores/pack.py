"""Write a packed store (:mod:`cltt.data.stores.packed`) from a folder of frames, resumably.

    summary = pack_folder(Path("data/frames"), Path("data/frames.store"), raw_size=None, workers=8)

Frames are appended to the open shard clip by clip; a shard is *sealed* (its ``.bin`` synced,
then its index written atomically, then the header's shard list updated atomically) once it
passes ``shard_bytes``, and at the end. A killed pack therefore leaves sealed shards, which are
intact, and at most one unsealed ``.bin`` that no index points to; the rerun deletes it and
packs the clips it held again. The header says ``complete: false`` until a pack finishes, and
readers refuse such a store. Packing into an existing store appends the clips it lacks.

Every frame is decoded once while packing: a frame that does not decode is reported, left
out and counted, never stored.
"""

from __future__ import annotations

import json
import os
import shutil
import time
import zlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import cv2
import numpy as np

from cltt.data.decode import CorruptFrameError, decode_rgb
from cltt.data.manifest import is_frame_file
from cltt.data.stores.folder import FolderStore
from cltt.data.stores.packed import (
    CLIPS_DIR,
    SHARDS_DIR,
    STORE_FILE,
    STORE_FORMAT,
    STORE_VERSION,
    is_store,
    read_header,
)
from cltt.errors import CLTTError

DEFAULT_SHARD_BYTES = 1 << 30
_CHUNK = 256  # frames decoded per batch of the thread pool


@dataclass
class PackSummary:
    """What one pack run did."""

    store: Path
    clips_packed: int = 0
    clips_present: int = 0  # already in the store, skipped
    frames: int = 0
    bytes: int = 0
    corrupt: list[tuple[str, str]] = field(default_factory=list)  # (frame, why), left out
    side_files_kept: list[str] = field(default_factory=list)  # root files that differ from the store's copy
    shards: int = 0
    seconds: float = 0.0


@dataclass
class PackedFrame:
    name: str
    data: bytes
    height: int
    width: int


def parse_size(text: str) -> int:
    """``"64M"``, ``"1G"``, ``"500k"`` or a plain byte count to bytes (CLTTError if not a size)."""
    units = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}
    value = str(text).strip().lower().removesuffix("b")
    factor = units.get(value[-1:], 1)
    number = value[:-1] if value[-1:] in units else value
    try:
        size = int(float(number) * factor)
    except ValueError:
        size = 0
    if size <= 0:
        raise CLTTError(f"--shard-size {text!r} is not a size; give bytes or a number with k, M or G, e.g. 1G")
    return size


class StoreWriter:
    """Appends clips to a new or existing store; :meth:`close` seals it and marks it complete."""

    def __init__(self, out: Path, raw_size: int | None = None, shard_bytes: int = DEFAULT_SHARD_BYTES):
        self.out = Path(out)
        self.shard_bytes = shard_bytes
        encoding = "raw" if raw_size else "encoded"
        if is_store(self.out):
            self.header = read_header(self.out)
            have = self.header.get("raw_size")
            if (self.header["encoding"], have) != (encoding, raw_size):
                def setting(size):
                    return f"--raw {size}" if size else "no --raw"
                raise CLTTError(f"store {self.out} was packed with {setting(have)}, this pack asks for "
                                f"{setting(raw_size)}; pack with {setting(have)} or into a new folder")
        elif self.out.exists() and (not self.out.is_dir() or any(self.out.iterdir())):
            raise CLTTError(f"{self.out} exists and is not a cltt store; pack into a new or empty folder")
        else:
            self.header = {"format": STORE_FORMAT, "version": STORE_VERSION, "encoding": encoding,
                           "raw_size": raw_size, "shards": [], "complete": False}
        try:
            (self.out / SHARDS_DIR).mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise CLTTError(f"cannot create the store {self.out}: {err.strerror or err}; pick a writable folder") from None
        self._remove_unsealed()
        if not self.header["shards"]:  # a new store says at once that it is not finished
            self._write_header()
        self.packed = self._packed_clips()
        self._open_shard()

    # ------------------------------------------------------------------ state on disk

    def _remove_unsealed(self) -> None:
        """Delete shard files no header entry names (the open shard of a killed pack), and temp files."""
        sealed = set(self.header["shards"])
        for path in (self.out / SHARDS_DIR).iterdir():
            if path.stem not in sealed or path.name.startswith("."):
                path.unlink()

    def _packed_clips(self) -> set[str]:
        clips: set[str] = set()
        for shard in self.header["shards"]:
            with np.load(self.out / SHARDS_DIR / f"{shard}.npz", allow_pickle=False) as data:
                names = str(data["clips"])
                clips.update(names.split("\n") if names else [])
        return clips

    def _write_header(self) -> None:
        atomic_write(self.out / STORE_FILE, (json.dumps(self.header, indent=2) + "\n").encode())

    def _open_shard(self) -> None:
        self.shard_name = f"shard-{len(self.header['shards']):06d}"
        self.handle = open(self.out / SHARDS_DIR / f"{self.shard_name}.bin", "wb")
        self.position = 0
        self.entries: dict[str, list] = {k: [] for k in ("names", "offset", "length", "crc32", "height", "width")}
        self.shard_clips: list[str] = []
        self.shard_counts: list[int] = []

    def _seal(self) -> None:
        """Make the open shard permanent: data synced, index written, header updated, in that order."""
        self.handle.flush()
        os.fsync(self.handle.fileno())
        self.handle.close()
        if not self.shard_clips:
            (self.out / SHARDS_DIR / f"{self.shard_name}.bin").unlink()
            return
        index = {
            "clips": np.array("\n".join(self.shard_clips)),
            "frame_counts": np.array(self.shard_counts, dtype=np.int64),
            "names_blob": np.frombuffer("\n".join(self.entries["names"]).encode(), dtype=np.uint8),
            "offset": np.array(self.entries["offset"], dtype=np.int64),
            "length": np.array(self.entries["length"], dtype=np.int64),
            "crc32": np.array(self.entries["crc32"], dtype=np.uint32),
            "height": np.array(self.entries["height"], dtype=np.uint16),
            "width": np.array(self.entries["width"], dtype=np.uint16),
            "bin_bytes": np.int64(self.position),
        }
        path = self.out / SHARDS_DIR / f"{self.shard_name}.npz"
        tmp = path.with_name(f".{path.name}.tmp")
        with open(tmp, "wb") as handle:
            np.savez(handle, **index)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
        self.header["shards"].append(self.shard_name)
        self._write_header()

    # ------------------------------------------------------------------ writing

    def add_clip(self, clip: str, frames, side_files: dict[str, Path] | None = None) -> int:
        """Append a clip (an iterable of :class:`PackedFrame`, in order) and copy its side files.

        Returns the frames written; a clip already in the store or without frames writes nothing.
        """
        if clip in self.packed:
            return 0
        if self.header["complete"]:  # appending: readers wait until this pack finishes
            self.header["complete"] = False
            self._write_header()
        for name, source in (side_files or {}).items():
            copy_atomic(source, self.out / CLIPS_DIR / clip / name)
        count = 0
        for frame in frames:
            self.handle.write(frame.data)
            for key, value in (("names", frame.name), ("offset", self.position), ("length", len(frame.data)),
                               ("crc32", zlib.crc32(frame.data)), ("height", frame.height), ("width", frame.width)):
                self.entries[key].append(value)
            self.position += len(frame.data)
            count += 1
        if count:
            self.shard_clips.append(clip)
            self.shard_counts.append(count)
            self.packed.add(clip)
        if self.position >= self.shard_bytes:
            self._seal()
            self._open_shard()
        return count

    def close(self) -> None:
        """Seal the open shard and mark the store complete."""
        self._seal()
        self.header["complete"] = True
        self.header["frames"] = int(sum(_count_frames(self.out, s) for s in self.header["shards"]))
        self._write_header()


def _count_frames(out: Path, shard: str) -> int:
    with np.load(out / SHARDS_DIR / f"{shard}.npz", allow_pickle=False) as data:
        return int(data["frame_counts"].sum())


def atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def copy_atomic(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    shutil.copyfile(source, tmp)
    os.replace(tmp, target)


# --------------------------------------------------------------------------- from a folder


def frame_payload(data: bytes, where: str, raw_size: int | None) -> tuple[bytes, int, int]:
    """Check that ``data`` decodes; return what to store and its full height and width.

    Encoded: the bytes as they are. Raw: RGB resized (area) so the short side is ``raw_size``.
    Raises :class:`CorruptFrameError` when the frame does not decode.
    """
    image = decode_rgb(np.frombuffer(data, np.uint8), 1, where)
    height, width = image.shape[:2]
    if raw_size is None:
        return data, height, width
    scale = raw_size / min(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    image = cv2.resize(image, size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    return np.ascontiguousarray(image).tobytes(), image.shape[0], image.shape[1]


def side_files_of(folder: Path) -> dict[str, Path]:
    """Regular, visible files of a folder that are not frames (masks.npz, labels.csv, ...)."""
    if not folder.is_dir():
        return {}
    return {p.name: p for p in sorted(folder.iterdir())
            if p.is_file() and not p.name.startswith(".") and not is_frame_file(p.name)}


def pack_folder(root: Path, out: Path, raw_size: int | None = None, shard_bytes: int = DEFAULT_SHARD_BYTES,
                workers: int = 8, on_frames: Callable[[int], None] | None = None,
                clips: list[str] | None = None, writer: StoreWriter | None = None,
                summary: PackSummary | None = None) -> PackSummary:
    """Pack the frames root ``root`` into the store ``out`` (appending to it when it exists).

    ``clips`` limits packing to those clip names; a given ``writer`` is left open (the caller
    closes it), else one is made and closed. ``on_frames(n)`` counts frames read; a given
    ``summary`` is added to and returned.
    """
    started = time.perf_counter()
    root, out = Path(root).absolute(), Path(out).absolute()
    if is_store(root):
        raise CLTTError(f"{root} is already a packed store; pack the frames folder it was made from")
    if out == root or root in out.parents:
        raise CLTTError(f"the store {out} must not lie inside the frames root {root}; pick a folder outside it")
    source = FolderStore.open(root)
    own_writer = writer is None
    writer = writer or StoreWriter(out, raw_size, shard_bytes)
    summary = summary or PackSummary(out)
    wanted = set(clips) if clips is not None else None
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        for c, clip in enumerate(source.clips):
            if wanted is not None and clip not in wanted:
                continue
            if clip in writer.packed:
                summary.clips_present += 1
                continue
            first, count = int(source.clip_offsets[c]), int(source.frame_counts[c])
            frames = _clip_frames(source, range(first, first + count), raw_size, pool, summary, on_frames)
            written = writer.add_clip(clip, frames, side_files_of(root / clip))
            summary.frames += written
            summary.clips_packed += bool(written)
    copy_root_files(root, out, summary)
    if own_writer:
        writer.close()
    summary.shards = len(writer.header["shards"])
    summary.bytes = sum((out / SHARDS_DIR / f"{s}.bin").stat().st_size for s in writer.header["shards"])
    summary.seconds += time.perf_counter() - started
    return summary


def copy_root_files(root: Path, out: Path, summary: PackSummary) -> None:
    """Copy the root's side files the store lacks; note those whose store copy differs."""
    for name, path in side_files_of(root).items():
        target = out / name
        if not target.exists():
            copy_atomic(path, target)
        elif target.read_bytes() != path.read_bytes() and name not in summary.side_files_kept:
            summary.side_files_kept.append(name)


def pack_as_extracted(results, staging: Path, writer: StoreWriter, summary: PackSummary, workers: int = 4):
    """Pass on extraction ``results`` (:class:`ClipResult`), packing each finished clip from
    ``staging`` into ``writer``'s store and deleting its folder, so only the clips in flight
    exist as files. At the end the root's side files are copied and the store is sealed."""
    for result in results:
        if result.status != "failed" and (staging / result.clip).is_dir():
            pack_folder(staging, writer.out, clips=[result.clip], writer=writer, summary=summary, workers=workers)
            shutil.rmtree(staging / result.clip)
        yield result
    if staging.is_dir():
        copy_root_files(staging, writer.out, summary)
        shutil.rmtree(staging)
    writer.close()
    summary.shards = len(writer.header["shards"])


def _clip_frames(source: FolderStore, frames: range, raw_size, pool, summary: PackSummary, on_frames):
    """:class:`PackedFrame` of each frame that decodes, in order; corrupt ones go to ``summary``."""

    def load(frame: int) -> PackedFrame | tuple[str, str]:
        try:
            payload, height, width = frame_payload(source.encoded_bytes(frame), source.path_of(frame), raw_size)
        except CorruptFrameError as err:
            return err.path, err.why
        return PackedFrame(source.frame_name(frame), payload, height, width)

    for start in range(frames.start, frames.stop, _CHUNK):
        chunk = range(start, min(start + _CHUNK, frames.stop))
        for result in pool.map(load, chunk):
            if isinstance(result, PackedFrame):
                yield result
            else:
                summary.corrupt.append(result)
        if on_frames is not None:
            on_frames(len(chunk))


__all__ = ["PackSummary", "StoreWriter", "pack_folder", "parse_size"]
