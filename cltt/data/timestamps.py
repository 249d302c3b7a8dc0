"""When each frame was taken: seconds since the start of its source video.

``cltt extract`` writes one ``timestamps.csv`` per clip, beside the frames::

    frame,source_index,seconds
    frame_000001.jpg,0,0.000000
    frame_000002.jpg,3,0.100000

``source_index`` is the 0-based number of the decoded source frame, ``seconds`` its
presentation time in the video (the container's timestamp, as OpenCV's ``CAP_PROP_POS_MSEC``
gives it; ``source_index / fps`` when the container has none). Built-in data write their
generator's nominal rate. A folder of frames from elsewhere may carry such a file too (the
``source_index`` column may be left empty). Image readers (torchvision's ImageFolder, lightly)
skip it as a non-image, and packing copies it like any side file, so a packed store carries it.

A clip without the file has *nominal* times: frame ``k`` (from the number in its name
``frame_%06d``, else its position) at ``start + k / rate``, with the rate and start from the
clip marker an earlier ``cltt extract`` left (``.cltt_clip.json``: the target fps, or the
source fps over ``every_nth``), else :data:`DEFAULT_FPS`. :class:`ClipTimes` says which.
"""

from __future__ import annotations

import csv
import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cltt.errors import CLTTError

TIMESTAMPS_FILE = "timestamps.csv"
COLUMNS = ("frame", "source_index", "seconds")
DEFAULT_FPS = 30.0  # nominal rate of frames from elsewhere: the commonest camera rate
_NUMBERED = re.compile(r"frame_(\d+)\.[A-Za-z]+$")  # the names cltt extract writes, 1-based
_CLOCK = re.compile(r"^(?:(\d+):)?(\d+):(\d+(?:\.\d*)?)$")


@dataclass
class ClipTimes:
    """The times of one clip's frames, in store order.

    ``seconds`` ``[n]`` float64 seconds since the start of the source video; ``recorded``: read
    from the clip's ``timestamps.csv`` (False: nominal, from a frame rate); ``source`` says
    where they came from, for messages and ``cltt index``.
    """

    seconds: np.ndarray
    recorded: bool
    source: str

    @property
    def duration(self) -> float:
        """Seconds the clip spans: first frame to one frame interval past the last (0 for no frames)."""
        start, end = clip_span(self.seconds)
        return end - start


def write_timestamps(path: Path, names: Sequence[str], source_index: Sequence[int | None], seconds: Sequence[float]) -> None:
    """Write ``timestamps.csv`` rows ``name,source_index,seconds`` (seconds to the microsecond)."""
    with open(path, "w", newline="") as handle:
        out = csv.writer(handle)
        out.writerow(COLUMNS)
        for name, index, second in zip(names, source_index, seconds):
            out.writerow([name, "" if index is None else int(index), f"{float(second):.6f}"])


def read_timestamps(path: Path) -> dict[str, tuple[int | None, float]]:
    """``frame name -> (source_index or None, seconds)`` from a ``timestamps.csv`` (CLTTError if malformed)."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            rows = list(csv.reader(handle))
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise CLTTError(f"cannot read {path} ({err}); fix or delete it (frames then get nominal times)") from None
    header = tuple(h.strip().lower() for h in rows[0]) if rows else ()
    if header != COLUMNS:
        raise CLTTError(f"{path} must start with the header {','.join(COLUMNS)}; got {','.join(header) or 'nothing'}")
    times: dict[str, tuple[int | None, float]] = {}
    for line, row in enumerate(rows[1:], start=2):
        if not any(cell.strip() for cell in row):
            continue
        try:
            name, index, second = (cell.strip() for cell in row)
            value = float(second)
            times[name] = (int(index) if index else None, value)
        except ValueError:
            value = math.nan
        if not math.isfinite(value):
            raise CLTTError(f"{path} line {line}: expected frame,source_index,seconds with seconds a number, "
                            f"got {','.join(row)}")
    return times


def clip_times(frame_names: Sequence[str], timestamps: Path, marker: Path, default_fps: float = DEFAULT_FPS) -> ClipTimes:
    """Times of the frames ``frame_names`` (one clip, store order): from ``timestamps`` when that
    file exists, else nominal from the clip ``marker`` or ``default_fps``.

    A ``timestamps.csv`` lacking a row for one of the frames, or whose times do not increase
    with the frames, is refused (CLTTError): guessing would put labels by time on the wrong frames.
    """
    if timestamps.is_file():
        table = read_timestamps(timestamps)
        missing = [name for name in frame_names if name not in table]
        if missing:
            raise CLTTError(f"{timestamps} has no row for {len(missing)} frame(s) of the clip (first: {missing[0]}); "
                            "add them, or delete the file to use nominal times")
        seconds = np.array([table[name][1] for name in frame_names], dtype=np.float64)
        if len(seconds) > 1 and not np.all(np.diff(seconds) > 0):
            first = int(np.flatnonzero(np.diff(seconds) <= 0)[0])
            raise CLTTError(f"{timestamps}: {frame_names[first + 1]} is at {seconds[first + 1]:g} s, not after "
                            f"{frame_names[first]} at {seconds[first]:g} s; frame times must increase in frame order")
        return ClipTimes(seconds, True, TIMESTAMPS_FILE)
    fps, start, source = nominal_rate(marker, default_fps)
    steps = np.array([_frame_step(name, k) for k, name in enumerate(frame_names)], dtype=np.float64)
    return ClipTimes(start + steps / fps, False, source)


def nominal_rate(marker: Path, default_fps: float = DEFAULT_FPS) -> tuple[float, float, str]:
    """``(frames per second, seconds of the first frame, where from)`` of a clip without timestamps.

    From an extract marker: the fps asked for (when below the source's), else the source fps
    over ``every_nth``, starting at the first source frame extracted; else ``default_fps`` from 0.
    """
    try:
        recorded = json.loads(marker.read_text())
        options, extra = recorded["fingerprint"], recorded["extra"]
        source_fps = float(extra["source_fps"])
        first = int(extra.get("first_source_frame", 0)) / source_fps
        if options.get("fps"):
            return min(float(options["fps"]), source_fps), first, f"nominal {min(float(options['fps']), source_fps):g} fps (extract --fps)"
        nth = int(options.get("every_nth") or 1)
        return source_fps / nth, first, f"nominal {source_fps / nth:g} fps (source fps / every_nth)"
    except (OSError, ValueError, KeyError, TypeError, ZeroDivisionError):
        return float(default_fps), 0.0, f"nominal {default_fps:g} fps (default)"


def _frame_step(name: str, position: int) -> int:
    """0-based step of a frame: from its number when cltt named it (a frame left out when packing
    keeps the others in place), else its position in the clip."""
    match = _NUMBERED.fullmatch(name)
    return int(match.group(1)) - 1 if match else position


def clip_span(seconds: np.ndarray) -> tuple[float, float]:
    """``(start, end)`` seconds of a clip with frame times ``seconds``: the last frame lasts the
    mean interval between frames (a single frame: none). The mean, since 25 fps kept at 10 fps
    alternates intervals of 0.12 and 0.08 s."""
    if len(seconds) == 0:
        return 0.0, 0.0
    interval = float(seconds[-1] - seconds[0]) / (len(seconds) - 1) if len(seconds) > 1 else 0.0
    return float(seconds[0]), float(seconds[-1]) + interval


def parse_clock(text: str) -> float:
    """Seconds from ``"75.5"``, ``"1:15.5"`` (m:ss) or ``"0:01:15.5"`` (h:mm:ss); ValueError otherwise
    (also for digits grouped with ``_``, which Python's float reads: ``"1_0"`` is not 10 s)."""
    text = text.strip()
    if "_" in text:
        raise ValueError(f"{text!r} is not a time")
    match = _CLOCK.match(text)
    if match:
        hours, minutes, seconds = match.groups()
        if int(minutes) >= 60 and hours is not None or float(seconds) >= 60:
            raise ValueError(f"{text!r}: minutes and seconds run from 0 to 59")
        return int(hours or 0) * 3600 + int(minutes) * 60 + float(seconds)
    value = float(text)
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{text!r} is not a time")
    return value


def format_clock(seconds: float) -> str:
    """``75.5`` -> ``1:15.50``, ``3675`` -> ``1:01:15.00``: for messages."""
    minutes, rest = divmod(float(seconds), 60)
    hours, minutes = divmod(int(minutes), 60)
    return f"{hours}:{minutes:02d}:{rest:05.2f}" if hours else f"{minutes}:{rest:05.2f}"
