"""A packed store: a few large shard files instead of one file per frame.

Layout (written by :mod:`cltt.data.pack`, ``cltt pack``)::

    STORE/cltt-store.json            format, version, encoding, the sealed shards, complete or not
    STORE/shards/shard-000000.bin    frames back to back: the original JPEG/PNG bytes, or raw RGB
    STORE/shards/shard-000000.npz    that shard's index: clip, frame name, offset, length, CRC-32,
                                     height and width of every frame, and the .bin's byte count
                                     (raw: also each source file's byte count and CRC-32)
    STORE/clips/<clip>/masks.npz     per-clip side files, as in the clip folder
    STORE/labels.csv, boxes.csv ...  the root's side files

``encoding`` is ``encoded`` (the files' bytes exactly as they were, decoded like the folder's
files, so batches are bit-for-bit those of the folder) or ``raw`` (uint8 ``[H, W, 3]`` with the
short side ``raw_size``, no decoding at all). Frames of a clip are contiguous and in order, so
windows are cut as from folders. Every read checks the bytes against their CRC-32 (a mismatch is
a corrupt frame). Reads are ``os.pread`` on file descriptors opened lazily per
process: no shared file position, so any number of DataLoader workers and processes can read.
"""

from __future__ import annotations

import json
import os
import zlib
from pathlib import Path

import numpy as np

from cltt.data.decode import CorruptFrameError, decode_rgb, shrink
from cltt.data.manifest import FrameNames, natural_key
from cltt.data.stores import register_store
from cltt.data.stores.base import FrameStore
from cltt.errors import CLTTError

STORE_FILE = "cltt-store.json"
STORE_FORMAT = "cltt-store"
STORE_VERSION = 1
SHARDS_DIR = "shards"
CLIPS_DIR = "clips"


def is_store(path: Path) -> bool:
    return (Path(path) / STORE_FILE).is_file()


def read_header(root: Path) -> dict:
    """The store's ``cltt-store.json``, checked for format and version (CLTTError if unusable)."""
    path = Path(root) / STORE_FILE
    try:
        header = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise CLTTError(f"cannot read {path} ({err}); the store is damaged: repack it with cltt pack") from None
    if not isinstance(header, dict) or header.get("format") != STORE_FORMAT:
        raise CLTTError(f"{path} is not a cltt store header; repack with cltt pack")
    version = header.get("version")
    if not isinstance(version, int) or version > STORE_VERSION:
        raise CLTTError(f"store {root} was written by a newer cltt (store format {version}, this cltt reads "
                        f"up to {STORE_VERSION}); upgrade cltt (pip install -U cltt)")
    return header


def load_shard_index(root: Path, shard: str) -> dict[str, np.ndarray]:
    """The index arrays of one sealed shard, checked against its ``.bin`` (CLTTError if they differ)."""
    index_path = Path(root) / SHARDS_DIR / f"{shard}.npz"
    data_path = index_path.with_suffix(".bin")
    try:
        with np.load(index_path, allow_pickle=False) as data:
            index = {key: data[key] for key in data.files}
    except (OSError, ValueError, EOFError) as err:
        raise CLTTError(f"store {root}: index of shard {shard} is missing or unreadable ({err}); "
                        "the store is damaged: repack it with cltt pack") from None
    try:
        size = data_path.stat().st_size
    except OSError:
        raise CLTTError(f"store {root}: shard {data_path.name} is missing though its index is there; "
                        "restore it or repack the store with cltt pack") from None
    expected = int(index["bin_bytes"])
    if size != expected:
        raise CLTTError(f"store {root}: shard {data_path.name} holds {size:,} bytes but its index expects "
                        f"{expected:,} (truncated or overwritten); restore it or repack the store with cltt pack")
    return index


@register_store("packed", priority=10)
class PackedStore(FrameStore):
    """Frames in shards; see the module docstring for the layout."""

    def __init__(self, root: Path, header: dict, names: FrameNames, shard: np.ndarray, offset: np.ndarray,
                 length: np.ndarray, crc32: np.ndarray, shape: np.ndarray):
        super().__init__(root, names)
        self.header = header
        self.encoding = header["encoding"]
        self.raw_size = header.get("raw_size")
        self.shard_names = list(header["shards"])
        self.shard = shard  # [N] uint16 shard number of each frame
        self.offset = offset  # [N] int64 byte offset in its shard
        self.length = length  # [N] int64 bytes stored
        self.crc32 = crc32  # [N] uint32 CRC-32 of the stored bytes
        self.shape = shape  # [N, 2] uint16 height, width
        # [N] byte size and CRC-32 of the file each raw frame was packed from (None: encoded, where the
        # stored bytes are that file, or raw from a cltt that did not record them); see packed_from
        self.source_length: np.ndarray | None = None
        self.source_crc32: np.ndarray | None = None
        self.verify_crc = True  # False only to measure what the check costs (benchmarks/data_pipeline.py)
        self._fds: dict[int, int] = {}

    @classmethod
    def detect(cls, root: Path) -> bool:
        return is_store(root)

    @classmethod
    def open(cls, root: Path, cache_dir=None, rebuild: bool = False) -> "PackedStore":
        """Read and check the header and every shard's index; refuse an unfinished store."""
        header = read_header(root)
        if not header.get("complete"):
            raise CLTTError(f"store {root} is incomplete (packing was interrupted); rerun the same "
                            f"cltt pack command to finish it")
        parts = [load_shard_index(root, shard) for shard in header["shards"]]
        return cls.from_parts(Path(root), header, parts)

    @classmethod
    def from_parts(cls, root: Path, header: dict, parts: list[dict[str, np.ndarray]]) -> "PackedStore":
        """Join shard indexes into one, clips in natural order (appended clips fall into place)."""
        clips, spans = [], []  # spans: (part, first frame in part, count, name bytes)
        for p, part in enumerate(parts):
            names = str(part["clips"])
            counts = part["frame_counts"].astype(np.int64)
            starts = np.concatenate([[0], np.cumsum(counts)])
            name_bounds = np.concatenate([[0], np.flatnonzero(part["names_blob"] == ord("\n")) + 1,
                                          [len(part["names_blob"]) + 1]])
            for c, clip in enumerate(names.split("\n") if names else []):
                first, count = int(starts[c]), int(counts[c])
                blob = part["names_blob"][name_bounds[first]:name_bounds[first + count] - 1]
                clips.append(clip)
                spans.append((p, first, count, blob))
        order = sorted(range(len(clips)), key=lambda i: natural_key(clips[i]))
        pick = [np.arange(spans[i][1], spans[i][1] + spans[i][2]) for i in order]

        def gather(key: str, dtype) -> np.ndarray:
            chunks = [parts[spans[i][0]][key][rows] for i, rows in zip(order, pick)]
            return np.concatenate(chunks).astype(dtype) if chunks else np.zeros(0, dtype)

        shard_of = [np.full(spans[i][2], spans[i][0], np.uint16) for i in order]
        blob = b"\n".join(spans[i][3].tobytes() for i in order)
        names = FrameNames(
            clips=[clips[i] for i in order],
            frame_counts=np.array([spans[i][2] for i in order], dtype=np.int64),
            names_blob=np.frombuffer(blob, dtype=np.uint8).copy(),
        )
        shape = np.stack([gather("height", np.uint16), gather("width", np.uint16)], axis=1)
        shard = np.concatenate(shard_of) if shard_of else np.zeros(0, np.uint16)
        store = cls(root, header, names, shard, gather("offset", np.int64), gather("length", np.int64),
                    gather("crc32", np.uint32), shape)
        if parts and all("source_crc32" in part for part in parts):
            store.source_length, store.source_crc32 = gather("source_length", np.int64), gather("source_crc32", np.uint32)
        return store

    # ------------------------------------------------------------------ reading

    def stored_bytes(self, global_frame: int) -> bytes:
        """The frame's bytes as stored (encoded file, or raw RGB), checked against the CRC-32
        recorded when packing: bytes that changed since (bit rot, a shard overwritten in place)
        raise :class:`CorruptFrameError`, so datasets replace and count the frame like a corrupt
        file instead of training on what libjpeg makes of it. The check (zlib.crc32, about 6 µs
        per 10 KB here) costs 2-4% of reading a 640x480 JPEG at 1/4 or 1/2 size, and halves the
        rate of bare raw reads, which decode nothing (benchmarks/data_pipeline.py)."""
        shard = int(self.shard[global_frame])
        fd = self._fds.get(shard)
        if fd is None:
            path = self.root / SHARDS_DIR / f"{self.shard_names[shard]}.bin"
            try:
                fd = self._fds[shard] = os.open(path, os.O_RDONLY)
            except OSError as err:
                raise CorruptFrameError(self.locate(global_frame), f"cannot open {path}: {err.strerror}") from None
        length = int(self.length[global_frame])
        try:
            data = os.pread(fd, length, int(self.offset[global_frame]))
        except OSError as err:
            raise CorruptFrameError(self.locate(global_frame), err.strerror or str(err)) from None
        if len(data) != length:
            raise CorruptFrameError(self.locate(global_frame), f"shard ends after {len(data)} of {length} bytes")
        if self.verify_crc and zlib.crc32(data) != int(self.crc32[global_frame]):
            raise CorruptFrameError(self.locate(global_frame), "bytes differ from the CRC-32 recorded when packing")
        return data

    def read(self, global_frame: int, reduction: int = 1) -> np.ndarray:
        data = self.stored_bytes(global_frame)
        if self.encoding == "raw":
            height, width = (int(v) for v in self.shape[global_frame])
            return shrink(np.frombuffer(data, np.uint8).reshape(height, width, 3).copy(), reduction)
        try:
            return decode_rgb(np.frombuffer(data, np.uint8), reduction, max_pixels=self.max_pixels)
        except CorruptFrameError as err:  # named only on failure: locate() costs a search per frame
            raise CorruptFrameError(self.locate(global_frame), err.why) from None

    def encoded_bytes(self, global_frame: int) -> bytes:
        if self.encoding == "raw":
            raise CLTTError(f"store {self.root} holds raw RGB frames (packed with --raw {self.raw_size}): there is "
                            "nothing to decode; use data.decode=cpu")
        return self.stored_bytes(global_frame)

    def packed_from(self, clip: int) -> tuple[np.ndarray, np.ndarray] | None:
        """Byte sizes and CRC-32s ``[n]`` of the files clip number ``clip``'s frames were packed from:
        what was stored when encoded; recorded beside raw frames (None for a raw store packed
        before cltt recorded them)."""
        first, last = int(self.clip_offsets[clip]), int(self.clip_offsets[clip + 1])
        if self.encoding == "encoded":
            return self.length[first:last], self.crc32[first:last]
        if self.source_length is None:
            return None
        return self.source_length[first:last], self.source_crc32[first:last]

    def frame_shape(self, global_frame: int) -> tuple[int, int]:
        height, width = self.shape[global_frame]
        return int(height), int(width)

    def frame_sizes(self, first: int, last: int) -> np.ndarray:
        return self.length[first:last]

    def frame_stamps(self, first: int, last: int) -> np.ndarray:
        """``[n, 2]`` byte size and CRC-32 of each stored frame, from the index: content, for free
        (shards are written once; a repack with other bytes changes the CRCs)."""
        return np.stack([self.length[first:last].astype(np.int64), self.crc32[first:last].astype(np.int64)], axis=1)

    def identity(self, clips=None) -> str:
        key = super().identity(clips)
        return key if self.encoding == "encoded" else f"raw{self.raw_size}-{key}"

    def locate(self, global_frame: int) -> str:
        clip = self.clip_of_frame(global_frame)
        return f"{self.root}:{self.clips[clip]}/{self.frame_name(global_frame)}"

    def clip_file(self, clip: int, name: str) -> Path:
        return self.root / CLIPS_DIR / self.clips[clip] / name

    def index_row(self) -> tuple[str, str]:
        return "store", f"packed, {len(self.shard_names)} shard(s), {self.encoding} (opened)"

    def describe(self) -> str:
        what = "JPEG/PNG bytes as extracted" if self.encoding == "encoded" else f"raw RGB, short side {self.raw_size}"
        return f"{super().describe()} in {len(self.shard_names)} shard(s), {what}"

    # ------------------------------------------------------------------ processes

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_fds"] = {}  # descriptors do not travel to spawned workers; each opens its own
        return state

    def __del__(self) -> None:
        for fd in getattr(self, "_fds", {}).values():
            try:
                os.close(fd)
            except OSError:
                pass
