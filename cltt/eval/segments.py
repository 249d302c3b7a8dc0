"""Labels by time: segments ``clip,start,end,label`` of a recording, mapped onto its frames.

    clip,start,end,label
    day1_morning,08:12,08:40,playing with the ball
    day1_morning,8:40.5,9:02,reading

Times are seconds since the start of the clip's video: ``75.5``, ``m:ss`` or ``h:mm:ss`` (with
decimals), as annotation tools write them. A frame at time ``t`` (:meth:`FrameStore.frame_times`)
takes the label of the segment with ``start <= t < end``; frames in no segment, and clips the
file does not list, are unlabelled. A labels file (``probe.labels``, default ``ROOT/labels.csv``)
in this form labels frames, where ``clip,label[,split]`` labels whole clips.

Refused, each in one line naming the file and line: a clip the root lacks, a time that does not
parse, ``end <= start``, two segments of a clip that overlap, and a segment outside the clip's
time span (:func:`~cltt.data.timestamps.clip_span`) by more than :data:`SLACK` seconds, the
rounding of annotations made to the second.

    segments = load_segments(store, path)
    segments.label[k]                  # int64 [n_k] into segments.names, -1 unlabelled, for clip segments.clips[k]
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cltt.data.manifest import natural_key
from cltt.data.stores.base import FrameStore
from cltt.data.timestamps import clip_span, format_clock, parse_clock
from cltt.errors import CLTTError

SEGMENT_COLUMNS = ("clip", "start", "end", "label")
SLACK = 1.0  # seconds a segment may reach past either end of its clip


@dataclass
class FrameSegments:
    """Per-frame labels of the clips a segments file lists, in store order.

    ``label[k]`` ``[n_k]`` int64 into :attr:`names` (-1: in no segment) for every frame of clip
    ``clips[k]`` (store number ``clip_index[k]``); ``segments`` counts the file's segments;
    ``nominal`` names the listed clips whose frame times are nominal, not recorded.
    """

    source: str
    names: list[str]
    clips: list[str]
    clip_index: np.ndarray
    label: list[np.ndarray]
    segments: int
    nominal: list[str]

    @property
    def frames_labelled(self) -> int:
        return int(sum((labels >= 0).sum() for labels in self.label))


def is_segments_header(header: Sequence[str]) -> bool:
    """Whether a CSV header (cells as read) is ``clip,start,end,label``."""
    return tuple(cell.strip().lower() for cell in header) == SEGMENT_COLUMNS


def is_segments_file(path: Path) -> bool:
    """Whether ``path`` is a readable CSV file whose header is ``clip,start,end,label``."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            return is_segments_header(next(csv.reader(handle), []))
    except (OSError, UnicodeDecodeError, csv.Error):
        return False


def unreadable_csv(what: str, path: Path, err: Exception) -> CLTTError:
    """The one line for a CSV that cannot be read: a file not in UTF-8 (a spreadsheet's Latin-1
    or Windows-1252 export) is told to be saved as UTF-8, other errors are given as they are."""
    if isinstance(err, UnicodeDecodeError):
        return CLTTError(f"cannot read {what} {path}: byte {err.start} is not UTF-8 (saved as Latin-1 or "
                         "Windows-1252?); save it as UTF-8 (a spreadsheet's 'CSV UTF-8')")
    return CLTTError(f"cannot read {what} {path} ({err})")


def _segment_time(path: Path, line: int, text: str) -> float:
    """Seconds of a start or end cell (:func:`parse_clock`), or one line saying what is wrong:
    a negative time, digits grouped with ``_`` (Python's float reads ``1_0`` as 10), other text."""
    where = f"labels file {path} line {line}"
    if text.startswith("-"):
        raise CLTTError(f"{where}: time {text!r} is negative; times are seconds from the start of the video "
                        "(0 or more), as seconds, m:ss or h:mm:ss")
    try:
        return parse_clock(text)
    except ValueError:
        raise CLTTError(f"{where}: time {text!r} is not seconds, m:ss or h:mm:ss (such as 75.5, 1:15.5 or "
                        "0:01:15.5)") from None


def load_segments(store: FrameStore, path: Path) -> FrameSegments:
    """Read a ``clip,start,end,label`` file and label the frames of ``store`` it covers (see the module)."""
    path = Path(path)
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            rows = list(csv.reader(handle))
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise unreadable_csv("labels file", path, err) from None
    if not rows or not is_segments_header(rows[0]):
        raise CLTTError(f"labels file {path} must start with the header {','.join(SEGMENT_COLUMNS)} to give segments "
                        f"by time; got {','.join(rows[0]) if rows else 'nothing'}")
    by_clip: dict[str, list[tuple[float, float, str, int]]] = {}
    for line, row in enumerate(rows[1:], start=2):
        if not any(cell.strip() for cell in row):
            continue
        if len(row) != 4:
            raise CLTTError(f"labels file {path} line {line}: expected clip,start,end,label, got {','.join(row)}")
        clip, start_text, end_text, label = (cell.strip() for cell in row)
        start, end = (_segment_time(path, line, text) for text in (start_text, end_text))
        if end <= start:
            raise CLTTError(f"labels file {path} line {line}: segment of {clip} ends at {end_text} but starts at "
                            f"{start_text}; the end must come after the start")
        if not label:
            raise CLTTError(f"labels file {path} line {line}: segment {start_text} to {end_text} of {clip} has no label")
        by_clip.setdefault(clip.strip("/"), []).append((start, end, label, line))
    known = set(store.clips)
    unknown = [clip for clip in by_clip if clip not in known]
    if unknown:
        raise CLTTError(f"labels file {path} names clip(s) {', '.join(unknown[:3])} that {store.root} does not have; "
                        "fix the file or point data.root at the frames it describes")
    if not by_clip:
        raise CLTTError(f"labels file {path} gives no segment")
    names = sorted({label for segments in by_clip.values() for _, _, label, _ in segments}, key=natural_key)
    number = {name: i for i, name in enumerate(names)}
    clips = sorted(by_clip, key=store.clip_index)
    labels = []
    for clip in clips:
        index = store.clip_index(clip)
        times = store.frame_times(index)
        segments = sorted(by_clip[clip])
        _check_segments(path, clip, segments, times, store.times_recorded(index))
        frame_label = np.full(len(times), -1, dtype=np.int64)
        for start, end, label, _ in segments:
            frame_label[(times >= start) & (times < end)] = number[label]
        labels.append(frame_label)
    nominal = [clip for clip in clips if not store.times_recorded(store.clip_index(clip))]
    return FrameSegments(str(path), names, clips, np.array([store.clip_index(c) for c in clips], dtype=np.int64),
                         labels, sum(len(s) for s in by_clip.values()), nominal)


def _check_segments(path: Path, clip: str, segments: list[tuple[float, float, str, int]], times: np.ndarray,
                    recorded: bool) -> None:
    """Refuse overlapping segments (sorted by start) and segments outside the clip's span."""
    for (_, end, label, line), (start, _, other, other_line) in zip(segments, segments[1:]):
        if start < end:
            raise CLTTError(f"labels file {path}: segments of {clip} overlap: line {line} ({label!r}) ends at "
                            f"{format_clock(end)}, after line {other_line} ({other!r}) starts at {format_clock(start)}; "
                            "a frame takes one label")
    first, last = clip_span(times)
    for start, end, label, line in segments:
        if start < first - SLACK or end > last + SLACK:
            kind = "recorded" if recorded else "nominal"
            raise CLTTError(f"labels file {path} line {line}: segment {format_clock(start)} to {format_clock(end)} "
                            f"({label!r}) lies outside clip {clip}, whose frames span {format_clock(first)} to "
                            f"{format_clock(last)} ({kind} times); fix the times or the clip name")
