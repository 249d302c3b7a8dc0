"""The whole of ``cltt extract`` as one call: videos, or a built-in synthetic dataset, to a
frames root or straight into a packed store.

    report = extract_frames("data/frames", ExtractConfig(fps=5, short_side=256), source="recordings/")
    print(len(report.done), report.frames_written, [c.message for c in report.failed])

    report = extract_frames("data/digits.store", ExtractConfig(), synthetic="moving-digits", pack=True)

To follow the work as it goes (the CLI's progress bar), plan first and run with callbacks:
:func:`plan_extraction` says how many clips there are to do, :meth:`Extraction.run` calls
``on_frames(n)`` as frames are written and ``on_clip(result)`` as each clip ends.

With ``pack``, each clip is extracted into ``OUT/.staging/``, packed as soon as it is finished
and deleted, so only the clips in flight ever exist as files; videos whose clips the store
already holds, extracted with the same options, are not decoded again.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from cltt.errors import CLTTError

if TYPE_CHECKING:  # both import cv2, which planning a run does not need
    from cltt.data.clipwriter import ClipResult
    from cltt.data.pack import PackSummary, StoreWriter
    from cltt.recipe import ExtractConfig

STAGING_DIR = ".staging"  # inside a store being written by extract --pack


@dataclass
class ExtractionReport:
    """What one extraction did: every clip's :class:`ClipResult` (those a store already held
    first), the pack's summary when it wrote a store, and the seconds it took."""

    out: Path
    clips: list[ClipResult]
    seconds: float
    pack: PackSummary | None = None

    def with_status(self, status: str) -> list[ClipResult]:
        return [clip for clip in self.clips if clip.status == status]

    @property
    def done(self) -> list[ClipResult]:
        return self.with_status("done")

    @property
    def skipped(self) -> list[ClipResult]:
        return self.with_status("skipped")

    @property
    def failed(self) -> list[ClipResult]:
        return self.with_status("failed")

    @property
    def frames_written(self) -> int:
        return sum(clip.frames for clip in self.done)


@dataclass
class Extraction:
    """One planned extraction: ``total`` clips to work through (``label`` says what they are);
    :meth:`run` does it. Made by :func:`plan_extraction`."""

    out: Path
    config: ExtractConfig
    label: str
    total: int
    source: Path | None = None
    synthetic: str | None = None
    videos: list[Path] = field(default_factory=list)
    already_packed: list[ClipResult] = field(default_factory=list)
    writer: StoreWriter | None = None

    def run(self, on_frames: Callable[[int], None] | None = None,
            on_clip: Callable[[ClipResult], None] | None = None) -> ExtractionReport:
        """Extract (and pack); ``on_frames(n)`` after frames are written, ``on_clip(result)`` as
        each clip is finished, skipped or failed."""
        target = self.out / STAGING_DIR if self.writer is not None else self.out
        if self.synthetic is not None:
            from cltt.data.synthetic import write_synthetic

            results = write_synthetic(self.synthetic, target, self.config.synthetic, workers=self.config.workers,
                                      on_frames=on_frames)
        else:
            from cltt.data.extract import extract_videos

            root = self.source if self.source.is_dir() else self.source.parent
            results = extract_videos(self.videos, target, self.config, root, on_frames=on_frames)
        summary = None
        if self.writer is not None:
            from cltt.data.pack import PackSummary, pack_as_extracted

            summary = PackSummary(self.writer.out, clips_present=len(self.already_packed))
            results = pack_as_extracted(results, target, self.writer, summary, workers=self.config.workers)
        started = time.perf_counter()
        finished = list(_reported(results, on_clip))
        return ExtractionReport(self.out, self.already_packed + finished, time.perf_counter() - started, summary)


def plan_extraction(out: str | Path, config: ExtractConfig, source: str | Path | None = None,
                    synthetic: str | None = None, pack: bool = False, raw: int | None = None,
                    shard_size: str | int = "1G") -> Extraction:
    """Plan extracting the videos of ``source`` (a video file, or a folder searched recursively)
    or writing the synthetic dataset ``synthetic`` into ``out``: a frames root, or with
    ``pack`` a packed store (``raw``: raw uint8 frames with this short side instead of the
    JPEG bytes; ``shard_size``: bytes, or ``"64M"``, ``"1G"``). Opens the store, so a store
    that is not one fails here, before anything is decoded."""
    out = Path(out)
    if (source is None) == (synthetic is None):
        raise CLTTError("give either a video file or folder to extract, or a synthetic dataset's name, not both")
    if synthetic is not None:
        from cltt.data.synthetic import get_generator

        get_generator(synthetic)  # an unknown name before any folder is made
    writer = None
    if pack:
        from cltt.data.pack import StoreWriter, parse_size

        writer = StoreWriter(out, raw, shard_size if isinstance(shard_size, int) else parse_size(shard_size))
    elif raw is not None:
        raise CLTTError("raw frames are a packed store's; pack=True (--pack) to write one")
    if synthetic is not None:
        return Extraction(out, config, f"writing {synthetic}", config.synthetic.clips, synthetic=synthetic, writer=writer)

    from cltt.data.clipwriter import ClipResult
    from cltt.data.extract import clip_names, find_videos, fingerprint

    source = Path(source)
    videos = find_videos(source)
    already_packed = []
    if writer is not None:  # clips packed from the same video and options are not extracted again
        root = source if source.is_dir() else source.parent
        names = clip_names(videos, root)
        todo = [video for video in videos if not writer.holds(names[video], fingerprint(video, config))]
        if clip_names(todo, root) == {video: names[video] for video in todo}:  # when that keeps the names
            already_packed = [ClipResult(names[video], str(video), "skipped") for video in videos if video not in todo]
            videos = todo
    label = f"extracting {len(videos)} video{'s' * (len(videos) != 1)}"
    return Extraction(out, config, label, len(videos), source=source, videos=videos, already_packed=already_packed,
                      writer=writer)


def extract_frames(out: str | Path, config: ExtractConfig, source: str | Path | None = None,
                   synthetic: str | None = None, pack: bool = False, raw: int | None = None,
                   shard_size: str | int = "1G") -> ExtractionReport:
    """:func:`plan_extraction` and run it, quietly."""
    return plan_extraction(out, config, source, synthetic, pack, raw, shard_size).run()


def _reported(results: Iterator[ClipResult], on_clip: Callable[[ClipResult], None] | None) -> Iterator[ClipResult]:
    for result in results:
        if on_clip is not None:
            on_clip(result)
        yield result
