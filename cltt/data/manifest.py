"""Index a frames root into a compact manifest, and keep it up to date.

Layout on disk: ``root/<clip>/<frame>.jpg|png|...``. A clip is any directory that directly holds
image files, so ``root/<label>/<clip>/`` and CLEVRER-style nesting work too; the clip's name is
its path relative to the root (``/``-separated). Frames sort in natural order of their names
(``frame_2`` before ``frame_10``); hidden files, macOS ``._*`` sidecars and non-images are
ignored, and one clip may mix extensions.

The manifest is one ``.npz`` file: clip names, frame counts, every frame name in one UTF-8 blob
(``\\n``-separated), and the modification time of every directory scanned. Adding, removing or
renaming a frame or clip changes a directory's mtime, so checking freshness costs one ``stat``
per directory, not a rescan. What the frames *are* (the content key of feature caches) is
their names and byte sizes, never an mtime: :meth:`FrameNames.content_key`, with the sizes
read when the key is asked for. A million frame names take about 20 MB of memory in this form,
against hundreds of MB as Python lists of paths.

It is written to the cache folder, ``cache_dir/manifests/<root name>-<hash of the root path>.npz``
(:func:`default_cache_dir`), never into the root: researchers point several tools at one frames
folder, and a folder cltt added (``ROOT/.cltt/``, where earlier versions kept the manifest) is
an empty class to torchvision's ``ImageFolder``, which then refuses the root. A read-only root
(project storage) indexes the same way. A manifest an earlier cltt left in ``ROOT/.cltt/`` is
still read while it is fresh.
"""

from __future__ import annotations

import hashlib
import os
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from cltt.data.formats import FRAME_EXTENSIONS, VIDEO_EXTENSIONS, listed
from cltt.errors import CLTTError

LEGACY_MANIFEST_DIR = ".cltt"  # ROOT/.cltt/: where earlier versions kept the manifest; read, never written
FORMAT_VERSION = 1
_DIGITS = re.compile(r"(\d+)")


def natural_key(name: str) -> tuple:
    """Sort key that orders embedded numbers by value: ``frame_2`` < ``frame_10``.

    Text parts compare case-insensitively; the name itself breaks ties so the order is total.
    """
    parts = _DIGITS.split(name)
    return tuple(int(p) if i % 2 else p.casefold() for i, p in enumerate(parts)) + (name,)


def natural_sorted(names: list[str]) -> list[str]:
    """``names`` in natural order (see :func:`natural_key`)."""
    return sorted(names, key=natural_key)


def is_frame_file(name: str) -> bool:
    """True for image files that count as frames (not hidden, not a macOS ``._`` sidecar)."""
    if name.startswith("."):
        return False
    return os.path.splitext(name)[1].lower() in FRAME_EXTENSIONS


def default_cache_dir() -> Path:
    """``$CLTT_CACHE``, else ``$XDG_CACHE_HOME/cltt``, else ``~/.cache/cltt``."""
    if os.environ.get("CLTT_CACHE"):
        return Path(os.environ["CLTT_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "cltt"


@dataclass
class FrameNames:
    """Clips and frame names, in natural order: the naming every frame store shares.

    Frames are numbered globally: clip ``c`` holds global frames
    ``clip_offsets[c] .. clip_offsets[c] + frame_counts[c] - 1``.
    """

    clips: list[str]
    frame_counts: np.ndarray  # [num_clips] int64
    names_blob: np.ndarray  # [bytes] uint8, frame names joined by b"\n"

    def __post_init__(self) -> None:
        self.clip_offsets = np.concatenate([[0], np.cumsum(self.frame_counts)]).astype(np.int64)
        ends = np.flatnonzero(self.names_blob == ord("\n"))
        self._name_starts = np.concatenate([[0], ends + 1]).astype(np.int64)
        self._name_ends = np.concatenate([ends, [len(self.names_blob)]]).astype(np.int64)
        if self.num_frames == 0:
            self._name_starts = self._name_ends = np.zeros(0, dtype=np.int64)
        self._clip_index = {name: i for i, name in enumerate(self.clips)}

    @property
    def num_clips(self) -> int:
        return len(self.clips)

    @property
    def num_frames(self) -> int:
        return int(self.clip_offsets[-1])

    def clip_index(self, clip: str) -> int:
        """Index of a clip by name; KeyError if the root has no such clip."""
        return self._clip_index[clip]

    def frame_name(self, global_frame: int) -> str:
        """File name of frame number ``global_frame`` (global numbering)."""
        start, end = self._name_starts[global_frame], self._name_ends[global_frame]
        return self.names_blob[start:end].tobytes().decode("utf-8")

    def frame_names(self, clip: int) -> list[str]:
        """All frame file names of clip number ``clip``, in order."""
        first, last = self.clip_offsets[clip], self.clip_offsets[clip + 1]
        return [self.frame_name(i) for i in range(first, last)]

    def clip_of_frame(self, global_frame: int) -> int:
        """Clip number holding frame ``global_frame``."""
        return int(np.searchsorted(self.clip_offsets, global_frame, side="right") - 1)

    def frame_numbers(self) -> np.ndarray:
        """``[num_frames]`` int64: the last number in each frame name (``frame_000012.jpg`` -> 12), -1 if none.

        Computed on first use (about a second per million names) and kept.
        """
        if getattr(self, "_numbers", None) is None:
            names = self.names_blob.tobytes().split(b"\n") if self.num_frames else []
            self._numbers = np.fromiter(((int(m.group(1)) if (m := _LAST_NUMBER.search(n)) else -1) for n in names),
                                        dtype=np.int64, count=len(names))
        return self._numbers

    def gaps(self) -> "Gaps":
        """Where the numbering of frames breaks inside a clip (:func:`find_gaps`)."""
        if getattr(self, "_gaps", None) is None:
            self._gaps = find_gaps(self.frame_numbers(), self.clip_offsets)
        return self._gaps

    def content_key(self, clips, frame_sizes) -> str:
        """SHA-256 over clip names, frame names and frame byte sizes of ``clips`` (all if None);
        ``frame_sizes(first, last)`` gives the sizes of global frames ``first .. last - 1``.

        Re-extracting, re-encoding, adding or removing a frame changes it; touching a file does not.
        """
        digest = hashlib.sha256()
        for clip in range(self.num_clips) if clips is None else clips:
            first, last = int(self.clip_offsets[clip]), int(self.clip_offsets[clip + 1])
            start = int(self._name_starts[first]) if last > first else 0
            end = int(self._name_ends[last - 1]) if last > first else 0
            digest.update(self.clips[clip].encode() + b"\0" + self.names_blob[start:end].tobytes() + b"\0")
            digest.update(np.asarray(frame_sizes(first, last), dtype="<i8").tobytes())
        return digest.hexdigest()


_LAST_NUMBER = re.compile(rb"(\d+)\D*$")


@dataclass
class Gaps:
    """Breaks in the numbering of frames inside clips: gap ``g`` follows frame ``after[g]``
    (0-based, within clip ``clip[g]``), where ``missing[g]`` numbered frames are absent."""

    clip: np.ndarray  # [G] int64
    after: np.ndarray  # [G] int64
    missing: np.ndarray  # [G] int64

    def __len__(self) -> int:
        return len(self.clip)

    def describe(self, names: "FrameNames", limit: int = 3) -> str:
        """``clip_a after frame_000002.jpg (1 missing), ...`` for the first ``limit`` gaps."""
        shown = [f"{names.clips[c]} after {names.frame_name(int(names.clip_offsets[c]) + int(a))} ({m} missing)"
                 for c, a, m in zip(self.clip[:limit].tolist(), self.after[:limit].tolist(), self.missing[:limit].tolist())]
        return ", ".join(shown) + (", ..." if len(self) > limit else "")


def find_gaps(numbers: np.ndarray, clip_offsets: np.ndarray) -> Gaps:
    """Gaps in ``numbers`` (the last number in each frame name, -1 for none), clip by clip.

    A clip's step is its most common difference between consecutive numbers (1 for
    frame_000001, frame_000002, ...; 5 for frames numbered every fifth); a difference larger
    than the step is a gap. Clips with a name without a number, or whose numbers do not rise,
    are not judged.
    """
    counts = np.diff(clip_offsets)
    clip_of = np.repeat(np.arange(len(counts)), counts)
    diff = np.diff(numbers)
    inside = clip_of[1:] == clip_of[:-1] if len(numbers) > 1 else np.zeros(0, bool)
    judged = np.ones(len(counts), bool)
    bad = inside & ((diff <= 0) | (numbers[1:] < 0) | (numbers[:-1] < 0))
    judged[clip_of[1:][bad]] = False
    judged[clip_of[numbers < 0]] = False
    keep = inside & judged[clip_of[1:]] if len(numbers) > 1 else inside
    if not keep.any():
        return Gaps(*(np.zeros(0, np.int64) for _ in range(3)))
    pair_clip, pair_diff = clip_of[1:][keep], diff[keep]
    values, tally = np.unique(np.stack([pair_clip, pair_diff]), axis=1, return_counts=True)
    order = np.lexsort((values[1], -tally, values[0]))  # per clip: most frequent, then smallest
    first = np.concatenate([[True], values[0][order][1:] != values[0][order][:-1]])
    step = np.zeros(len(counts), np.int64)
    step[values[0][order][first]] = values[1][order][first]
    at = np.flatnonzero(keep & (diff > step[clip_of[1:]]))  # diff index i: between frame i and i + 1
    clips = clip_of[at]
    missing = np.rint(diff[at] / step[clips]).astype(np.int64) - 1
    return Gaps(clips.astype(np.int64), (at - clip_offsets[clips]).astype(np.int64), np.maximum(missing, 1))


@dataclass
class Manifest(FrameNames):
    """The :class:`FrameNames` of one frames root, with what tells whether it is still fresh."""

    root: Path = Path(".")
    dirs: list[str] = field(default_factory=list)  # every directory scanned, relative to root ("" is the root)
    dir_mtimes: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))  # [len(dirs)] int64 ns
    skipped: dict[str, int] = field(default_factory=dict)  # files that are not frames, by extension (scan only, not saved)

    def path_of(self, global_frame: int) -> str:
        """Path of frame number ``global_frame`` (global numbering)."""
        clip = self.clip_of_frame(global_frame)
        return os.path.join(self.root, self.clips[clip], self.frame_name(global_frame))

    def frame_path(self, clip: int, frame: int) -> str:
        """Path of frame ``frame`` (0-based, within the clip) of clip number ``clip``."""
        name = self.frame_name(int(self.clip_offsets[clip]) + frame)
        return os.path.join(self.root, self.clips[clip], name)

    def is_fresh(self) -> bool:
        """True when no scanned directory changed since the manifest was built."""
        for rel, mtime in zip(self.dirs, self.dir_mtimes):
            try:
                if os.stat(os.path.join(self.root, rel)).st_mtime_ns != mtime:
                    return False
            except OSError:
                return False
        return True

    # ---------------------------------------------------------------- persistence

    def save(self, path: Path) -> None:
        """Write atomically: a temp file in the same folder, then rename."""
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        with open(tmp, "wb") as handle:
            np.savez_compressed(
                handle,
                version=np.int64(FORMAT_VERSION),
                root=np.array(str(self.root)),
                clips=np.array("\n".join(self.clips)),
                frame_counts=self.frame_counts,
                names_blob=self.names_blob,
                dirs=np.array("\n".join(self.dirs)),
                dir_mtimes=self.dir_mtimes,
            )
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: Path) -> "Manifest | None":
        """Read a manifest; None if it is missing, unreadable or of another format version."""
        try:
            with np.load(path, allow_pickle=False) as data:
                if int(data["version"]) != FORMAT_VERSION:
                    return None
                clips = str(data["clips"])
                dirs = str(data["dirs"])
                return cls(
                    root=Path(str(data["root"])),
                    clips=clips.split("\n") if clips else [],
                    frame_counts=data["frame_counts"].astype(np.int64),
                    names_blob=data["names_blob"].astype(np.uint8),
                    dirs=dirs.split("\n"),
                    dir_mtimes=data["dir_mtimes"].astype(np.int64),
                )
        except (OSError, ValueError, KeyError, EOFError):
            return None


# --------------------------------------------------------------------------- scanning


@dataclass
class _Listing:
    """One directory's entries: frame names, subdirectory names, other file names; its mtime
    and ``(st_dev, st_ino)``, which names the directory whatever path (symlink) reached it."""

    frames: list[str]
    subdirs: list[str]
    others: list[str]
    mtime: int
    identity: tuple[int, int]


def _scan_dir(path: str) -> _Listing:
    """List ``path`` (hidden entries left out)."""
    frames, subdirs, others = [], [], []
    stat = os.stat(path)
    with os.scandir(path) as entries:
        for entry in entries:
            if entry.name.startswith("."):
                continue
            if entry.is_dir():
                subdirs.append(entry.name)
            elif is_frame_file(entry.name):
                frames.append(entry.name)
            else:
                others.append(entry.name)
    return _Listing(frames, subdirs, others, stat.st_mtime_ns, (stat.st_dev, stat.st_ino))


def scan_frames(root: str | Path, threads: int = 16) -> Manifest:
    """Walk ``root`` and build a manifest of every clip directory and its frames.

    Directories are listed by a thread pool, which hides the latency of network file systems.
    Symlinks are followed, but each directory is read once, by ``(st_dev, st_ino)``, at the
    first path that reached it (breadth first): a link to a folder already seen (``self -> .``,
    ``clip/up -> ..``) adds nothing. Files that are not frames are counted by extension in
    ``skipped`` (for the error when no frame is found).
    """
    root = Path(root).absolute()
    check_root(root)
    clips: dict[str, list[str]] = {}
    dirs: dict[str, int] = {}
    seen: set[tuple[int, int]] = set()
    skipped: dict[str, int] = {}
    with ThreadPoolExecutor(max_workers=threads) as pool:
        pending = {pool.submit(_scan_dir, str(root)): ""}
        while pending:
            done = next(iter(pending))
            rel = pending.pop(done)
            listing = done.result()
            if listing.identity in seen:
                continue
            seen.add(listing.identity)
            dirs[rel] = listing.mtime
            frames, subdirs = listing.frames, listing.subdirs
            if frames:
                clips[rel or "."] = frames
            for name in listing.others:
                extension = os.path.splitext(name)[1].lower() or "(no extension)"
                skipped[extension] = skipped.get(extension, 0) + 1
            for sub in subdirs:
                sub_rel = f"{rel}/{sub}" if rel else sub
                pending[pool.submit(_scan_dir, str(root / sub_rel))] = sub_rel
    clip_names = natural_sorted([c for c in clips])
    ordered = [natural_sorted(clips[c]) for c in clip_names]
    blob = "\n".join("\n".join(names) for names in ordered).encode("utf-8")
    dir_names = sorted(dirs)
    return Manifest(
        root=root,
        clips=clip_names,
        frame_counts=np.array([len(n) for n in ordered], dtype=np.int64),
        names_blob=np.frombuffer(blob, dtype=np.uint8).copy(),
        dirs=dir_names,
        dir_mtimes=np.array([dirs[d] for d in dir_names], dtype=np.int64),
        skipped=skipped,
    )


def check_root(root: Path) -> None:
    """One clear error for a root that is missing or not a folder."""
    if not root.exists():
        raise CLTTError(
            f"frames root {root} does not exist; extract frames first "
            f"(cltt extract VIDEOS --out {root}, or cltt extract --synthetic moving-digits --out {root})"
        )
    if not root.is_dir():
        raise CLTTError(f"frames root {root} is a file, not a folder of clip folders")


def no_frames_message(root: Path, skipped: dict[str, int]) -> str:
    """Why ``root`` holds no frame: what was found instead, and what to do about it."""
    expected = f"frames are {root}/<clip>/<frame> files of {listed(FRAME_EXTENSIONS)}"
    if not skipped:
        return f"no frames under {root}: the folder holds no files; {expected} (cltt extract VIDEOS --out {root} writes them)"
    total = sum(skipped.values())
    kinds = ", ".join(f"{count} {extension}" for extension, count in sorted(skipped.items(), key=lambda item: (-item[1], item[0])))
    found = f"no frames under {root}: found {total} file{'s' * (total != 1)}, none a frame: {kinds}; {expected}"
    if VIDEO_EXTENSIONS & skipped.keys():
        return found + f"; videos become frames with cltt extract VIDEOS --out {root}"
    return found + "; convert them to one of those"


def manifest_locations(root: Path, cache_dir: str | Path | None) -> list[Path]:
    """Where the manifest of ``root`` may be read: the cache folder (``cache_dir``, else
    :func:`default_cache_dir`), keyed by the root's absolute path, which is also where it is
    written; then ``ROOT/.cltt/``, where an earlier cltt wrote it."""
    digest = hashlib.sha1(str(root.absolute()).encode()).hexdigest()[:16]
    cache = Path(cache_dir) if cache_dir else default_cache_dir()
    return [cache / "manifests" / f"{root.name}-{digest}.npz", root / LEGACY_MANIFEST_DIR / "manifest.npz"]


@dataclass
class IndexResult:
    manifest: Manifest
    path: Path | None  # where it was stored (None: could not store it anywhere)
    status: str  # "reused", "built" or "rebuilt"


def index_frames(root: str | Path, cache_dir: str | Path | None = None, rebuild: bool = False) -> IndexResult:
    """Return an up-to-date manifest of ``root``, reusing a stored one when it is still fresh."""
    root = Path(root).absolute()
    check_root(root)
    locations = manifest_locations(root, cache_dir)
    existed = False
    if not rebuild:
        for path in locations:
            stored = Manifest.load(path) if path.is_file() else None
            existed = existed or path.is_file()
            if stored is not None and stored.root == root and stored.is_fresh():
                return IndexResult(stored, path, "reused")
    manifest = scan_frames(root)
    if manifest.num_clips == 0:
        raise CLTTError(no_frames_message(root, manifest.skipped))
    try:
        manifest.save(locations[0])
        saved_to = locations[0]
    except OSError:  # an unwritable cache: the manifest serves this process only
        saved_to = None
    return IndexResult(manifest, saved_to, "rebuilt" if existed else "built")
