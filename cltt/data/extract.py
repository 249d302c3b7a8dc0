"""Turn videos into folders of JPEG frames with OpenCV.

    videos = find_videos(Path("recordings"))                 # a file, or a folder searched recursively
    for result in extract_videos(videos, Path("frames"), recipe.extract, Path("recordings")):
        print(result.clip, result.status, result.frames, result.message)

Each video becomes ``OUT/<clip>/frame_000001.jpg, ...`` plus ``timestamps.csv`` (each kept frame's
source index and time in seconds, :mod:`cltt.data.timestamps`) through :class:`ClipWriter`, so a clip
folder either holds a finished clip or does not exist; its marker records a *fingerprint* (the
source's absolute path, size and mtime, and the options that change the output). A rerun skips
finished clips with the same fingerprint, redoes clips a killed run left half-written, and never
touches a finished clip made from another source or with other options (that clip is reported
as failed, with what to do).

A problem with one video (cannot be opened, no frame decodes, decoding stops well before the
frame count in its header) is reported as a ``failed`` result and leaves no folder behind; only
bad arguments raise :class:`CLTTError`.
"""

from __future__ import annotations

import math
import multiprocessing
import os
import time
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from cltt.data.clipwriter import (
    ClipResult,
    ClipWriter,
    clip_status,
    describe_status,
    read_marker,
)
from cltt.data.formats import VIDEO_EXTENSIONS, listed
from cltt.data.manifest import natural_key
from cltt.errors import CLTTError
from cltt.recipe import ExtractConfig

ASSUMED_FPS = 30.0  # used when the container does not say its frame rate
FINGERPRINT_OPTIONS = ("fps", "every_nth", "short_side", "center_crop", "jpeg_quality", "start", "end")
_PROGRESS_EVERY = 8  # frames between on_frames calls with one worker
_EPS = 1e-6  # slack for float timestamps: frame 3 of 30 fps is exactly target 1 of 10 fps


class _Rejected(Exception):
    """A per-video problem, raised inside ClipWriter so that the partial folder is removed."""


# --------------------------------------------------------------------------- finding videos


def is_video_file(path: Path) -> bool:
    """True for a file with a video extension (any case) that is not hidden or a ``._`` sidecar."""
    return not path.name.startswith(".") and path.suffix.lower() in VIDEO_EXTENSIONS


def find_videos(path: Path) -> list[Path]:
    """The video at ``path``, or every video under the folder ``path`` in natural order.

    A file named explicitly is a video if it has a video extension or OpenCV's FFmpeg backend
    opens it (a ``.mpeg``, ``.dv`` or extension-less recording is judged by its content).
    Folders are searched recursively for :data:`~cltt.data.formats.VIDEO_EXTENSIONS` (following
    symlinks, each real folder once); hidden files and folders and macOS ``._*`` sidecars are
    ignored. Raises :class:`CLTTError` when ``path`` does not exist, is a file that is not a
    video, or is a folder without videos.
    """
    path = Path(path)
    extensions = listed(VIDEO_EXTENSIONS)
    if not path.exists():
        raise CLTTError(f"{path} does not exist; pass a video file or a folder of videos")
    if path.is_file():
        if path.suffix.lower() not in VIDEO_EXTENSIONS and not _opens_as_video(path):
            raise CLTTError(f"{path} is not a video OpenCV can open; pass a video file or a folder of videos ({extensions})")
        return [path]
    found: list[Path] = []
    seen: set[str] = set()
    for folder, dirs, files in os.walk(path, followlinks=True):
        real = os.path.realpath(folder)
        if real in seen:  # a symlink loop, or two links to one folder
            dirs[:] = []
            continue
        seen.add(real)
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        found.extend(Path(folder, f) for f in files if is_video_file(Path(f)))
    if not found:
        raise CLTTError(f"no videos ({extensions}) found under {path}; check the folder and the file extensions")
    return sorted(found, key=lambda p: natural_key(p.relative_to(path).as_posix()))


def _opens_as_video(path: Path) -> bool:
    """True when OpenCV's FFmpeg backend opens ``path`` and decodes a first frame."""
    capture = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
    try:
        return capture.isOpened() and capture.read()[0]
    finally:
        capture.release()


def clip_names(videos: list[Path], input_root: Path) -> dict[Path, str]:
    """Output folder name of each video: its stem, or, when two videos share a stem, its path
    relative to ``input_root`` without extension and with ``/`` replaced by ``__``
    (``a/clip.mp4`` -> ``a__clip``). Raises :class:`CLTTError` if names still collide or a video
    that needs a relative name is not under ``input_root``."""
    root = Path(input_root)
    if root.is_file():
        root = root.parent
    stems: dict[str, int] = {}
    for video in videos:
        stems[video.stem] = stems.get(video.stem, 0) + 1
    names: dict[Path, str] = {}
    owner: dict[str, Path] = {}
    for video in videos:
        name = video.stem
        if stems[name] > 1:
            try:
                relative = Path(video).relative_to(root)
            except ValueError:
                raise CLTTError(f"{video} is not under {root}; pass the folder that holds all videos") from None
            name = relative.with_suffix("").as_posix().replace("/", "__")
        if name in owner and owner[name] != video:
            raise CLTTError(f"{owner[name]} and {video} would both be written to clip '{name}'; rename one of them")
        owner[name] = video
        names[video] = name
    return names


# --------------------------------------------------------------------------- one clip


def fingerprint(video: Path, options: ExtractConfig) -> dict[str, Any]:
    """What a finished clip must match to be skipped: the source file and the output options."""
    stat = os.stat(video)
    source = {"source": str(Path(video).resolve()), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
    return source | {name: getattr(options, name) for name in FINGERPRINT_OPTIONS}


def extract_clip(
    video: Path,
    out: Path,
    clip: str,
    options: ExtractConfig,
    on_frames: Callable[[int], None] | None = None,
) -> ClipResult:
    """Extract one video into ``OUT/<clip>/`` and say what happened; never raises for a bad video.

    Status ``skipped`` when the clip is already finished with the same fingerprint, ``failed``
    (with a one-line reason, and nothing left on disk) when the video is unreadable or truncated or
    a different clip already sits at ``OUT/<clip>``, else ``done``. ``on_frames(n)`` is called
    every few written frames for a progress bar.
    """
    began = time.perf_counter()
    result = ClipResult(clip=clip, source=str(video), status="failed")
    try:
        wanted = fingerprint(video, options)
        status = clip_status(out, clip, wanted)
        if status == "complete":
            result.status, result.frames = "skipped", int(read_marker(out, clip).get("frames", 0))
        elif status != "missing":
            result.message = describe_status(status, out, clip)
        else:
            result.frames, result.message = _write_clip(video, Path(out), clip, wanted, options, on_frames)
            result.status = "done"
    except _Rejected as problem:
        result.message = str(problem)
    except (OSError, cv2.error) as error:
        result.message = " ".join(f"{type(error).__name__}: {error}".split())
    result.seconds = time.perf_counter() - began
    return result


def _write_clip(
    video: Path,
    out: Path,
    clip: str,
    wanted: dict[str, Any],
    options: ExtractConfig,
    on_frames: Callable[[int], None] | None,
) -> tuple[int, str]:
    """Decode, select, resize and write the frames; returns (frames written, note for the user)."""
    # FFmpeg explicitly: CAP_ANY would read a name like clip%03d.mp4 as an image sequence
    cap = cv2.VideoCapture(str(video), cv2.CAP_FFMPEG)
    try:
        if not cap.isOpened():
            raise _Rejected(_why_unopenable(video))
        src_fps = cap.get(cv2.CAP_PROP_FPS)
        assumed = not (math.isfinite(src_fps) and src_fps > 0)
        if assumed:
            src_fps = ASSUMED_FPS
        note = f"source fps unknown; assumed {ASSUMED_FPS:g}" if assumed else ""
        header_frames = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        # frame i is shown at i / src_fps; keep i in [first, stop) so that start <= t < end
        first = math.ceil(options.start * src_fps - _EPS) if options.start else 0
        stop = math.ceil(options.end * src_fps - _EPS) if options.end is not None else None
        keep = _frame_selector(src_fps, options)
        with ClipWriter(out, clip, wanted, jpeg_quality=options.jpeg_quality) as writer:
            writer.extra = {"source_fps": src_fps, "fps_assumed": assumed, "first_source_frame": first}
            decoded = unreported = 0
            while stop is None or decoded < stop:
                if not cap.grab():  # grab without retrieve: skipped frames are never converted
                    break
                index, decoded = decoded, decoded + 1
                if index < first or not keep(index - first):
                    continue
                ok, frame = cap.retrieve()
                if not ok:
                    break
                # the presentation time of the frame just grabbed, ms from the start of the video
                seconds = cap.get(cv2.CAP_PROP_POS_MSEC) / 1000
                writer.write(cv2.cvtColor(_resize_and_crop(frame, options), cv2.COLOR_BGR2RGB), index, seconds)
                unreported += 1
                if on_frames is not None and unreported >= _PROGRESS_EVERY:
                    on_frames(unreported)
                    unreported = 0
            if on_frames is not None and unreported:
                on_frames(unreported)
            _check_decoded(decoded, first, stop, header_frames, src_fps)
            if not _container_times_usable(writer.times):
                writer.times = [(name, index, index / src_fps) for name, index, _ in writer.times]
                note = "; ".join(filter(None, [note, "the container gives no frame times; times are frame number / fps"]))
            return writer.frames, note
    finally:
        cap.release()


def _frame_selector(src_fps: float, options: ExtractConfig) -> Callable[[int], bool]:
    """Predicate on ``j``, the frame's index counted from the first frame in range.

    With ``fps``, frame ``j`` is kept when it is the first frame at or after a target time
    ``k / fps``, i.e. when ``floor(j * fps / src_fps)`` steps up at ``j``; 30 fps at fps=10 keeps
    0, 3, 6, ... and fps >= src_fps keeps every frame. Without ``fps``, every ``every_nth``.
    """
    if options.fps is None:
        nth = options.every_nth
        return lambda j: j % nth == 0
    ratio = options.fps / src_fps
    if ratio >= 1:
        return lambda j: True
    return lambda j: math.floor(j * ratio + _EPS) != math.floor((j - 1) * ratio + _EPS)


def _container_times_usable(times: list[tuple[str, int, float]]) -> bool:
    """Whether the container's times (``(name, source index, seconds)`` per kept frame) can be
    kept: finite, not negative and increasing. A stream without timestamps reads as 0 for every frame."""
    seconds = np.array([t for _, _, t in times], dtype=np.float64)
    return bool(np.all(np.isfinite(seconds)) and np.all(seconds >= 0) and np.all(np.diff(seconds) > 0))


def _check_decoded(decoded: int, first: int, stop: int | None, header_frames: int, src_fps: float) -> None:
    """Raise :class:`_Rejected` when nothing decoded, decoding stopped early, or the range is empty."""
    if decoded == 0:
        raise _Rejected("no frame could be decoded (corrupt file or unsupported codec)")
    in_range = max(0, decoded - first)
    if header_frames > 0:
        expected = max(0, (header_frames if stop is None else min(stop, header_frames)) - first)
        # the header's count can be an estimate (duration x fps): tolerate a few frames' error
        if expected - in_range > max(2, 0.05 * expected):
            raise _Rejected(f"truncated: decoded {in_range} of {expected} frames")
    if in_range == 0:
        length = max(decoded, header_frames) / src_fps
        raise _Rejected(f"start is past the end of the video ({length:.2f}s long); lower start")


def _resize_and_crop(frame: np.ndarray, options: ExtractConfig) -> np.ndarray:
    """Scale so the short side is ``short_side`` (aspect kept), then crop the centre square if asked."""
    height, width = frame.shape[:2]
    short = min(height, width)
    if options.short_side is not None and options.short_side != short:
        scale = options.short_side / short
        if height <= width:
            size = (int(width * scale + 0.5), options.short_side)
        else:
            size = (options.short_side, int(height * scale + 0.5))
        interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
        frame = cv2.resize(frame, size, interpolation=interpolation)
        height, width = frame.shape[:2]
    if options.center_crop and height != width:
        side = min(height, width)
        top, left = (height - side) // 2, (width - side) // 2
        frame = frame[top : top + side, left : left + side]
    return frame


def _why_unopenable(video: Path) -> str:
    """One line on why FFmpeg could not open ``video``; names the usual cause for an mp4/mov."""
    size = os.path.getsize(video)
    if size == 0:
        return "cannot open: the file is empty"
    with open(video, "rb") as file:
        head = file.read(12)
    if head[4:8] == b"ftyp" and not _has_moov(video, size):
        # writers put the 'moov' index last, so a recording cut off mid-write has none
        return "cannot open: the mp4/mov has no 'moov' index, so it is probably truncated (recording cut off)"
    return "cannot open: not a video OpenCV/FFmpeg can read (corrupt file or unsupported format)"


def _has_moov(video: Path, size: int) -> bool:
    """Whether the top-level boxes of an ISO-BMFF file (mp4, mov) include a complete ``moov``."""
    with open(video, "rb") as file:
        offset = 0
        while offset + 8 <= size:
            file.seek(offset)
            header = file.read(16)
            length, kind = int.from_bytes(header[:4], "big"), header[4:8]
            if length == 1 and len(header) == 16:  # 64-bit size follows the type
                length = int.from_bytes(header[8:16], "big")
            elif length == 0:  # box runs to the end of the file
                length = size - offset
            if length < 8:
                return False
            if kind == b"moov":
                return offset + length <= size
            offset += length
    return False


# --------------------------------------------------------------------------- many clips


def extract_videos(
    videos: list[Path],
    out: Path,
    options: ExtractConfig,
    input_root: Path,
    on_frames: Callable[[int], None] | None = None,
) -> Iterator[ClipResult]:
    """Extract every video into ``OUT/<clip>/`` and yield one :class:`ClipResult` per video.

    Clip names come from :func:`clip_names`. With ``options.workers == 1`` videos are done in
    order in this process and ``on_frames(n)`` is called every few frames; with more, a pool of
    that many processes runs them, results arrive as clips finish and ``on_frames`` gets each
    finished clip's frame count. Per-video problems are ``failed`` results; bad arguments (an
    ``out`` that is a file, names that collide, workers < 1) raise :class:`CLTTError` before
    anything is written, at the call (not at the first ``next``).
    """
    out = Path(out)
    if options.workers < 1:
        raise CLTTError(f"workers must be >= 1, got {options.workers}")
    if out.exists() and not out.is_dir():
        raise CLTTError(f"--out {out} is a file; pass a folder for the frames")
    names = clip_names(list(videos), input_root)
    out.mkdir(parents=True, exist_ok=True)
    if options.workers == 1 or len(names) <= 1:
        return (extract_clip(video, out, clip, options, on_frames) for video, clip in names.items())
    return _extract_in_pool(names, out, options, on_frames)


def _extract_in_pool(
    names: dict[Path, str],
    out: Path,
    options: ExtractConfig,
    on_frames: Callable[[int], None] | None,
) -> Iterator[ClipResult]:
    # spawn, not fork: forking after OpenCV or torch started threads can deadlock the child
    pool = ProcessPoolExecutor(
        max_workers=min(options.workers, len(names)),
        mp_context=multiprocessing.get_context("spawn"),
        initializer=cv2.setNumThreads,
        initargs=(1,),  # the processes are the parallelism; OpenCV threads on top only contend
    )
    pending = {pool.submit(extract_clip, video, out, clip, options): (video, clip) for video, clip in names.items()}
    try:
        while pending:
            finished, _ = wait(pending, return_when=FIRST_COMPLETED)
            for future in finished:
                video, clip = pending.pop(future)
                try:
                    result = future.result()
                except BrokenProcessPool:
                    # a decoder crash or the OOM killer took a worker: every unfinished clip is
                    # lost, and its partial folder is redone by the next run
                    why = "worker process died (out of memory or a decoder crash); rerun to retry"
                    result = ClipResult(clip, str(video), "failed", message=why)
                if on_frames is not None and result.status == "done":
                    on_frames(result.frames)
                yield result
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
