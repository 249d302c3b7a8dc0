"""Write a packed store (:mod:`cltt.data.stores.packed`) from a folder of frames, resumably (``cltt pack``).

    summary = pack_folder(Path("data/frames"), Path("data/frames.store"), raw_size=None, workers=8)

Frames are appended to the open shard clip by clip; a shard is *sealed* (its ``.bin`` synced,
then its index written atomically, then the header's shard list updated atomically) once it
passes ``shard_bytes``, and at the end. A killed pack therefore leaves sealed shards, which are
intact, and at most one unsealed ``.bin`` that no index points to; the rerun deletes it and
packs the clips it held again. The header says ``complete: false`` until a pack finishes, and
readers refuse such a store. Packing into an existing store appends the clips it lacks; a clip
it already holds is skipped when its frames are the same (:func:`clip_difference`: names, byte
sizes, CRC-32s) and refused, before anything is written, when they are not (or, with
``replace``, dropped and packed anew). The root's CSVs with a ``clip`` column follow the clips
packed: their rows for those clips replace the store's (:func:`copy_root_files`).

Every frame is decoded once while packing: a frame that does not decode is reported, left
out and counted, never stored.
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import time
import zlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

import cv2
import numpy as np

from cltt.data.clipwriter import MARKER, clip_status
from cltt.data.decode import CorruptFrameError, decode_rgb
from cltt.data.manifest import is_frame_file
from cltt.data.stores.folder import FolderStore
from cltt.data.stores.packed import (
    CLIPS_DIR,
    SHARDS_DIR,
    STORE_FILE,
    STORE_FORMAT,
    STORE_VERSION,
    PackedStore,
    is_store,
    load_shard_index,
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
    clips_present: int = 0  # already in the store with the same frames, skipped
    frames: int = 0
    bytes: int = 0  # the store's shards, all of them
    corrupt: list[tuple[str, str]] = field(default_factory=list)  # (frame, why), left out
    side_files_kept: list[str] = field(default_factory=list)  # root files that differ from the store's copy
    rows_kept: list[tuple[str, list[str]]] = field(default_factory=list)  # (root CSV, clips whose rows differ), kept
    clip_files_kept: list[str] = field(default_factory=list)  # clip/file of an unchanged clip that differs, kept
    clip_files_replaced: list[str] = field(default_factory=list)  # the same, replaced by the root's (--force)
    clips_written: list[str] = field(default_factory=list)  # names of the clips this run packed (new or replaced)
    clips_replaced: list[str] = field(default_factory=list)  # held with other frames, dropped and packed anew (--force)
    shards: int = 0
    seconds: float = 0.0


@dataclass
class PackedFrame:
    """One frame to store: ``data`` as stored, its CRC-32 (computed when None), and the byte size
    and CRC-32 of the file it came from (None: ``data`` is that file's bytes)."""

    name: str
    data: bytes
    height: int
    width: int
    crc32: int | None = None
    source_size: int | None = None
    source_crc32: int | None = None


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
    """Appends clips to a new or existing store; :meth:`close` seals it and marks it complete.

    ``existing`` is the store as its sealed shards hold it when the writer opened (what a rerun
    compares the root's clips against); ``packed`` the names of every clip in it, this run's too.
    """

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
        self.existing = PackedStore.from_parts(self.out, self.header, [load_shard_index(self.out, shard)
                                                                       for shard in self.header["shards"]])
        self.packed = set(self.existing.clips)
        self.handle = None  # the open shard's .bin; opened by the first clip written, so a refused pack leaves no file

    # ------------------------------------------------------------------ state on disk

    def holds(self, clip: str, fingerprint: dict) -> bool:
        """``clip`` is in the store and was extracted with ``fingerprint`` (a video's file and the
        extract options, :mod:`cltt.data.clipwriter`), by its marker kept at pack time."""
        return clip in self.packed and clip_status(self.out / CLIPS_DIR, clip, fingerprint) == "complete"

    def _remove_unsealed(self) -> None:
        """Delete shard files no header entry names (the open shard of a killed pack), and temp files."""
        sealed = set(self.header["shards"])
        for path in (self.out / SHARDS_DIR).iterdir():
            if path.stem not in sealed or path.name.startswith("."):
                path.unlink()

    def _write_header(self) -> None:
        atomic_write(self.out / STORE_FILE, (json.dumps(self.header, indent=2) + "\n").encode())

    def _open_shard(self) -> None:
        self.shard_name = f"shard-{len(self.header['shards']):06d}"
        self.handle = open(self.out / SHARDS_DIR / f"{self.shard_name}.bin", "wb")
        self.position = 0
        self.entries: dict[str, list] = {k: [] for k in ("names", "offset", "length", "crc32", "height", "width",
                                                          "source_length", "source_crc32")}
        self.shard_clips: list[str] = []
        self.shard_counts: list[int] = []

    def _seal(self) -> None:
        """Make the open shard permanent: data synced, index written, header updated, in that order."""
        if self.handle is None:
            return
        self.handle.flush()
        os.fsync(self.handle.fileno())
        self.handle.close()
        self.handle = None
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
        if self.header["encoding"] == "raw":  # what a rerun compares the root's files against
            index["source_length"] = np.array(self.entries["source_length"], dtype=np.int64)
            index["source_crc32"] = np.array(self.entries["source_crc32"], dtype=np.uint32)
        self._write_index(self.shard_name, index)
        self.header["shards"].append(self.shard_name)
        self._write_header()

    def _write_index(self, shard: str, index: dict[str, np.ndarray]) -> None:
        path = self.out / SHARDS_DIR / f"{shard}.npz"
        tmp = path.with_name(f".{path.name}.tmp")
        with open(tmp, "wb") as handle:
            np.savez(handle, **index)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)

    def drop_clips(self, clips: set[str]) -> None:
        """Take ``clips`` out of the store so they can be packed again (``cltt pack --force``).

        Each sealed shard that holds one gets its index rewritten without that clip's rows
        (atomically; the frames' bytes stay in the ``.bin``, referenced by nothing), and the
        clip's side files go. The header says incomplete first: a kill before this pack closes
        leaves the clips missing, and the rerun packs them.
        """
        self.header["complete"] = False
        self._write_header()
        per_frame = ("offset", "length", "crc32", "height", "width", "source_length", "source_crc32")
        for shard in self.header["shards"]:
            index = load_shard_index(self.out, shard)
            names = str(index["clips"]).split("\n") if str(index["clips"]) else []
            if not clips & set(names):
                continue
            keep = np.array([name not in clips for name in names], dtype=bool)
            keep_frames = np.repeat(keep, index["frame_counts"])
            frame_names = index["names_blob"].tobytes().decode().split("\n") if len(keep_frames) else []
            index |= {key: index[key][keep_frames] for key in per_frame if key in index}
            index |= {"clips": np.array("\n".join(np.array(names)[keep])), "frame_counts": index["frame_counts"][keep],
                      "names_blob": np.frombuffer("\n".join(np.array(frame_names)[keep_frames]).encode(), dtype=np.uint8)}
            self._write_index(shard, index)
        for clip in clips:
            shutil.rmtree(self.out / CLIPS_DIR / clip, ignore_errors=True)
        self.existing = PackedStore.from_parts(self.out, self.header, [load_shard_index(self.out, shard)
                                                                       for shard in self.header["shards"]])
        self.packed -= clips

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
        if self.handle is None:
            self._open_shard()
        count = 0
        for frame in frames:
            self.handle.write(frame.data)
            crc32 = zlib.crc32(frame.data) if frame.crc32 is None else frame.crc32
            source_size = len(frame.data) if frame.source_size is None else frame.source_size
            source_crc32 = crc32 if frame.source_crc32 is None else frame.source_crc32
            for key, value in (("names", frame.name), ("offset", self.position), ("length", len(frame.data)),
                               ("crc32", crc32), ("height", frame.height), ("width", frame.width),
                               ("source_length", source_size), ("source_crc32", source_crc32)):
                self.entries[key].append(value)
            self.position += len(frame.data)
            count += 1
        if count:
            self.shard_clips.append(clip)
            self.shard_counts.append(count)
            self.packed.add(clip)
        if self.position >= self.shard_bytes:
            self._seal()
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
                summary: PackSummary | None = None, replace: bool = False) -> PackSummary:
    """Pack the frames root ``root`` into the store ``out`` (appending to it when it exists).

    ``clips`` limits packing to those clip names; a given ``writer`` is left open (the caller
    closes it), else one is made and closed. ``on_frames(n)`` counts frames read; a given
    ``summary`` is added to and returned. A clip the store holds with other frames is refused
    (:class:`OtherClipError`), or with ``replace`` dropped from the store and packed anew. A clip
    the store holds with the same frames keeps them; its side files and rows in the root's CSVs
    that differ from the store's are, with ``replace``, taken from the root, else kept and listed
    in the summary (:func:`sync_clip_files`, :func:`copy_root_files`).
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
    chosen = set(clips) if clips is not None else None
    wanted = [c for c, clip in enumerate(source.clips) if chosen is None or clip in chosen]
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        # every clip the store already has is compared before anything is written, so a refusal leaves it as it was
        sealed = set(writer.existing.clips)  # packed before this run (the rest of writer.packed is this run's)
        present = {c for c in wanted if source.clips[c] in writer.packed}
        differing = other_clips_of_the_same_name(source, sorted(c for c in present if source.clips[c] in sealed),
                                                 writer.existing, pool)
        if differing and not replace:
            clip, why = differing[0]
            raise OtherClipError(writer.out, clip, source.root / clip, why, len(differing) - 1)
        if differing:
            writer.drop_clips({clip for clip, _ in differing})
            summary.clips_replaced += [clip for clip, _ in differing]
            present = {c for c in present if source.clips[c] in writer.packed}
        summary.clips_present += len(present)
        sync_clip_files(root, writer.out, sorted(source.clips[c] for c in present if source.clips[c] in sealed),
                        replace, summary)
        for c in wanted:
            if c in present:
                continue
            first, count = int(source.clip_offsets[c]), int(source.frame_counts[c])
            frames = _clip_frames(source, range(first, first + count), raw_size, pool, summary, on_frames)
            written = writer.add_clip(source.clips[c], frames, side_files_of(root / source.clips[c]))
            if written:
                keep_marker(root, writer, source.clips[c])
                summary.clips_written.append(source.clips[c])
            summary.frames += written
            summary.clips_packed += bool(written)
    # with --force the root's rows of every clip it holds are taken, the unchanged ones' included
    copy_root_files(root, out, summary, {source.clips[c] for c in wanted} if replace else None)
    if own_writer:
        writer.close()
    count_shards(writer, summary)
    summary.seconds += time.perf_counter() - started
    return summary


def keep_marker(root: Path, writer: StoreWriter, clip: str) -> None:
    """Copy the hidden marker of ``root/clip`` (what ``cltt extract`` made it from) into the
    store, when there is one: the clip's nominal frame times (:mod:`cltt.data.timestamps`) read
    it, as from the folder, and ``extract --pack`` knows the clip (:meth:`StoreWriter.holds`)."""
    marker = root / clip / MARKER
    if marker.is_file():
        copy_atomic(marker, writer.out / CLIPS_DIR / clip / MARKER)


def count_shards(writer: StoreWriter, summary: PackSummary) -> None:
    """The summary's shards and bytes: those of the store's sealed shards (all of them after close)."""
    summary.shards = len(writer.header["shards"])
    summary.bytes = sum((writer.out / SHARDS_DIR / f"{shard}.bin").stat().st_size for shard in writer.header["shards"])


class OtherClipError(CLTTError):
    """The store holds a clip of this name with other frames; ``why`` says what differs."""

    def __init__(self, store: Path, clip: str, source: Path, why: str, more: int):
        more_text = f" (and {more} more clip(s))" if more else ""
        super().__init__(f"the store {store} already holds a clip {clip!r} with other frames than {source}: "
                         f"{why}{more_text}; nothing was packed: pack into another --out, or add --force to "
                         "replace the store's clips of those names")
        self.clip, self.why = clip, why


def other_clips_of_the_same_name(source: FolderStore, clips: list[int], store: PackedStore, pool) -> list[tuple[str, str]]:
    """``(name, what differs)`` of each of ``clips`` (numbers in ``source``, each also in
    ``store``) whose frames differ from the store's clip of that name (:func:`clip_difference`)."""
    return [(source.clips[c], why) for c in clips if (why := clip_difference(source, c, store, pool))]


def clip_difference(source: FolderStore, clip: int, store: PackedStore, pool) -> str | None:
    """What differs between clip number ``clip`` of the frames root ``source`` and the clip of the
    same name in ``store``; None when packing it again would store the same frames.

    Compared: frame names, then each file's byte size and CRC-32 against those recorded when it
    was packed (names only for a raw store packed before cltt recorded them). Reading the files
    for their CRC-32 costs a read of the clip, far less than the decode that packing it costs. A
    frame the store lacks was left out as corrupt when packing: the same while it still fails.
    """
    stored = store.clip_index(source.clips[clip])
    root_names, stored_names = source.frame_names(clip), store.frame_names(stored)
    position = {name: i for i, name in enumerate(root_names)}
    counts = f"{len(root_names)} frames in the root, {len(stored_names)} in the store"
    extra = [name for name in stored_names if name not in position]
    if extra:
        return f"{counts}, the store's include {extra[0]}"
    first = int(source.clip_offsets[clip])
    frames = first + np.array([position[name] for name in stored_names], dtype=np.int64)
    recorded = store.packed_from(stored)
    if recorded is not None and len(frames):
        sizes = source.frame_sizes(first, first + len(root_names))[frames - first]
        changed = np.flatnonzero(sizes != recorded[0])
        if not len(changed):
            changed = np.flatnonzero(np.fromiter(pool.map(_file_crc32, [source] * len(frames), frames.tolist()),
                                                 dtype=np.int64, count=len(frames)) != recorded[1])
        if len(changed):
            return f"{len(changed)} of {len(frames)} frames differ in content, first {stored_names[changed[0]]}"
    stored_set = set(stored_names)
    for name in (name for name in root_names if name not in stored_set):
        try:
            frame_payload(source.encoded_bytes(first + position[name]), name, None)
        except CorruptFrameError:
            continue  # left out as corrupt when packing, and still corrupt
        return f"{counts}; {name} is not in the store"
    return None


def _file_crc32(source: FolderStore, frame: int) -> int:
    """CRC-32 of a frame file's bytes, -1 when it cannot be read (matches no recorded CRC)."""
    try:
        return zlib.crc32(source.encoded_bytes(frame))
    except CorruptFrameError:
        return -1


def clip_files(folder: Path) -> dict[str, Path]:
    """A clip folder's side files (:func:`side_files_of`) and its extract marker, when it has one."""
    files = side_files_of(folder)
    if (folder / MARKER).is_file():
        files[MARKER] = folder / MARKER
    return files


def sync_clip_files(root: Path, out: Path, clips: list[str], replace: bool, summary: PackSummary) -> None:
    """Compare the side files of ``clips`` (held by the store with the same frames) in ``root``
    with the store's copies (``timestamps.csv``, ``masks.npz``, the extract marker, ...).

    A file that differs, or is on one side only, is with ``replace`` made as the root has it
    (copied, or removed from the store) and listed in ``summary.clip_files_replaced``; else the
    store's is kept and listed in ``summary.clip_files_kept`` as ``clip/name``. Never silent:
    the store's frame times come from its ``timestamps.csv``.
    """
    for clip in clips:
        ours, theirs = clip_files(root / clip), clip_files(out / CLIPS_DIR / clip)
        for name in sorted(set(ours) | set(theirs)):
            if name in ours and name in theirs and ours[name].read_bytes() == theirs[name].read_bytes():
                continue
            if not replace:
                summary.clip_files_kept.append(f"{clip}/{name}")
                continue
            if name in ours:
                copy_atomic(ours[name], out / CLIPS_DIR / clip / name)
            else:
                theirs[name].unlink()
            summary.clip_files_replaced.append(f"{clip}/{name}")


def copy_root_files(root: Path, out: Path, summary: PackSummary, clips: set[str] | None = None) -> None:
    """Copy the root's side files the store lacks, and bring the store's copies up to date.

    A CSV with a ``clip`` column (boxes.csv, labels.csv, phases.csv, ...) describes clips row by
    row: the rows of each of ``clips`` (default: those this run packed, ``summary.clips_written``:
    appended, or replaced by ``--force``; ``cltt pack --force`` passes every clip of the root)
    are taken from the root's file in place of the store's, which would describe the old frames
    (:func:`merge_clip_rows`); every other clip keeps the store's rows. Where the root's rows of
    another clip still differ from the store's, they are kept and the clips listed in
    ``summary.rows_kept``; a file that cannot be merged (no clip column, another header) is kept
    as the store has it and named in ``summary.side_files_kept``.
    """
    taken = set(summary.clips_written) | (clips or set())
    for name, path in side_files_of(root).items():
        target = out / name
        if not target.exists():
            copy_atomic(path, target)
            continue
        source_bytes, target_bytes = path.read_bytes(), target.read_bytes()
        if source_bytes == target_bytes:
            continue
        merged = merge_clip_rows(target_bytes, source_bytes, taken)
        if merged is not None and merged != target_bytes:
            atomic_write(target, merged)
        if merged is None:
            if name not in summary.side_files_kept:
                summary.side_files_kept.append(name)
        elif merged != source_bytes:
            differing = _clips_with_other_rows(merged, source_bytes)
            if differing and name not in (kept for kept, _ in summary.rows_kept):
                summary.rows_kept.append((name, differing))


def _csv_rows(data: bytes) -> list[list[str]] | None:
    """The rows of a CSV file's bytes (header first), None when they are not UTF-8 text."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    return list(csv.reader(io.StringIO(text, newline="")))


def merge_clip_rows(store: bytes, root: bytes, clips: set[str]) -> bytes | None:
    """The store's CSV with the rows of ``clips`` taken from the root's CSV instead.

    Both files need the same header with a ``clip`` column, else None (they cannot be merged).
    The store's row order is kept: a clip's rows from the root stand where the store's first row
    of that clip stood; clips the store's file lacks follow at the end, in the root's order.
    """
    store_rows, root_rows = _csv_rows(store), _csv_rows(root)
    if not store_rows or not root_rows or store_rows[0] != root_rows[0] or "clip" not in store_rows[0]:
        return None
    column = store_rows[0].index("clip")
    incoming: dict[str, list[list[str]]] = {}
    for row in root_rows[1:]:
        if len(row) > column and row[column] in clips:
            incoming.setdefault(row[column], []).append(row)
    merged, placed = [store_rows[0]], set()
    for row in store_rows[1:]:
        clip = row[column] if len(row) > column else None
        if clip not in clips:
            merged.append(row)
        elif clip not in placed:
            merged += incoming.get(clip, [])
            placed.add(clip)
    merged += [row for clip, rows in incoming.items() if clip not in placed for row in rows]
    out = io.StringIO(newline="")
    csv.writer(out, lineterminator="\n").writerows(merged)
    return out.getvalue().encode("utf-8")


def _clips_with_other_rows(store: bytes, root: bytes) -> list[str]:
    """The clips the root's CSV gives rows for that the store's gives other rows for (in the
    root's order; the store may describe more clips). Both have one header with a ``clip`` column."""
    store_rows, root_rows = _csv_rows(store) or [[]], _csv_rows(root) or [[]]
    column = root_rows[0].index("clip")

    def by_clip(rows: list[list[str]]) -> dict[str, list[list[str]]]:
        grouped: dict[str, list[list[str]]] = {}
        for row in rows[1:]:
            grouped.setdefault(row[column] if len(row) > column else "", []).append(row)
        return grouped

    ours, theirs = by_clip(root_rows), by_clip(store_rows)
    return [clip for clip, rows in ours.items() if theirs.get(clip) != rows]


def pack_as_extracted(results, staging: Path, writer: StoreWriter, summary: PackSummary, workers: int = 4):
    """Pass on extraction ``results`` (:class:`ClipResult`), packing each finished clip from
    ``staging`` into ``writer``'s store and deleting its folder, so only the clips in flight
    exist as files; a clip the store already held (the same frames) is passed on as ``skipped``.
    Each packed clip's marker goes along (``STORE/clips/<clip>/``), so a rerun knows which video
    and options it came from (:meth:`StoreWriter.holds`). At the end the root's side files are
    copied and the store is sealed."""
    for result in results:
        if result.status != "failed" and (staging / result.clip).is_dir():
            present = summary.clips_present
            try:
                pack_folder(staging, writer.out, clips=[result.clip], writer=writer, summary=summary, workers=workers)
            except OtherClipError as err:  # the clips packed before it stay readable: seal them
                writer.close()
                raise CLTTError(f"the store {writer.out} already holds a clip {err.clip!r} with other frames than "
                                f"{result.source} gives ({err.why}); the clips before it are packed: extract that "
                                "video into another --out, or rename it") from None
            if result.clip in writer.packed:  # also when the store held the clip already
                keep_marker(staging, writer, result.clip)
            shutil.rmtree(staging / result.clip)
            if summary.clips_present > present:
                result = replace(result, status="skipped")
        yield result
    if staging.is_dir():
        copy_root_files(staging, writer.out, summary)
        shutil.rmtree(staging)
    writer.close()
    count_shards(writer, summary)


def _clip_frames(source: FolderStore, frames: range, raw_size, pool, summary: PackSummary, on_frames):
    """:class:`PackedFrame` of each frame that decodes, in order; corrupt ones go to ``summary``."""

    def load(frame: int) -> PackedFrame | tuple[str, str]:
        try:
            data = source.encoded_bytes(frame)
            payload, height, width = frame_payload(data, source.path_of(frame), raw_size)
        except CorruptFrameError as err:
            return err.path, err.why
        crc32 = zlib.crc32(payload)  # here, in the pool's threads (zlib releases the GIL)
        if payload is data:
            return PackedFrame(source.frame_name(frame), payload, height, width, crc32)
        return PackedFrame(source.frame_name(frame), payload, height, width, crc32, len(data), zlib.crc32(data))

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
