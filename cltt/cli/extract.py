"""``cltt extract``: videos (or built-in synthetic data) to a folder of frames per clip."""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import TYPE_CHECKING

import click
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from cltt.cli.common import console, err_console, show_option, show_recipe, split_arguments
from cltt.cli.pack import check_raw, raw_option, shard_size_option, show_summary
from cltt.data.formats import VIDEO_EXTENSIONS, listed
from cltt.errors import CLTTError

if TYPE_CHECKING:
    from cltt.data.clipwriter import ClipResult
    from cltt.data.extraction import ExtractionReport

# option name -> recipe key; an option given on the command line wins over the recipe
OPTION_KEYS = {
    "fps": "extract.fps",
    "every_nth": "extract.every_nth",
    "short_side": "extract.short_side",
    "center_crop": "extract.center_crop",
    "quality": "extract.jpeg_quality",
    "start": "extract.start",
    "end": "extract.end",
    "workers": "extract.workers",
    "clips": "extract.synthetic.clips",
    "frames": "extract.synthetic.frames",
    "size": "extract.synthetic.size",
    "max_objects": "extract.synthetic.max_objects",
    "seed": "extract.synthetic.seed",
}
# options that shape frames taken from a video; the built-in data has no source to take them from
VIDEO_ONLY_OPTIONS = ("fps", "every_nth", "short_side", "center_crop", "quality", "start", "end")


class GeneratorsOption(click.Option):
    """``--synthetic``, whose help names the generators of the registry when help is shown:
    importing them costs OpenCV, which every other command (and ``cltt --help``) goes without."""

    def get_help_record(self, ctx: click.Context):
        from cltt.data.synthetic import registered_generators

        self.help = "Write built-in data instead: " + ", ".join(registered_generators()) + "."
        return super().get_help_record(ctx)


@click.command(
    name="extract",
    epilog="""\b
Examples:
  cltt extract --synthetic moving-digits --out data/digits
  cltt extract recordings/ --out data/frames --fps 5 --short-side 256 --workers 8
  cltt extract clevrer/video_train/ --out data/clevrer --every-nth 2 --short-side 128

\b
Video extensions searched in folders: """ + listed(VIDEO_EXTENSIONS),
)
@click.argument("args", nargs=-1)
@click.option("--out", "-o", type=click.Path(path_type=Path), required=False, help="Frames root to write OUT/<clip>/frame_000001.jpg into.")
@click.option("--synthetic", metavar="NAME", cls=GeneratorsOption)
@click.option("--fps", type=float, help="Target frames per second (default: the video's own rate).")
@click.option("--every-nth", type=int, help="Keep every n-th frame (when --fps is not given).")
@click.option("--short-side", type=int, help="Resize so the short side has this many pixels.")
@click.option("--center-crop/--no-center-crop", default=None, help="Crop the centre square after resizing.")
@click.option("--quality", type=int, help="JPEG quality, 1-100 (default 95).")
@click.option("--start", type=float, help="Start time in seconds.")
@click.option("--end", type=float, help="End time in seconds.")
@click.option("--workers", "-j", type=int, help="Videos decoded in parallel (processes).")
@click.option("--clips", type=int, help="Synthetic: number of clips.")
@click.option("--frames", type=int, help="Synthetic: frames per clip.")
@click.option("--size", type=int, help="Synthetic: frame side in pixels.")
@click.option("--max-objects", type=int, help="Synthetic: at most this many objects per clip.")
@click.option("--seed", type=int, help="Synthetic: seed of the generator.")
@click.option("--pack", is_flag=True, help="Write a packed store at OUT instead of a folder per clip (see cltt pack).")
@raw_option
@shard_size_option
@show_option
def command(args: tuple[str, ...], out: Path | None, synthetic: str | None, show: bool, pack: bool, raw: int | None,
            shard_size: str, **options) -> None:
    """Extract frames from videos, or write built-in synthetic data.

    ARGS: [RECIPE] [VIDEO_OR_FOLDER] [key.sub=value ...]. A video file named explicitly is
    extracted if OpenCV opens it, whatever its extension; a folder is searched recursively for
    the video extensions listed below. Resumable: finished clips are skipped, a clip cut short
    by a kill is redone, nothing finished is rewritten. Exits 1 if any video failed.

    With --pack, OUT is a packed store: each clip is extracted into OUT/.staging/, packed into
    the shards as soon as it is finished and deleted, so only the clips in flight ever exist as
    files. A rerun skips clips the store already holds.
    """
    parsed = split_arguments(args)
    for name, value in options.items():
        if value is not None:
            parsed.overrides.append(f"{OPTION_KEYS[name]}={str(value).lower() if isinstance(value, bool) else value}")
    recipe = parsed.recipe()
    if show:
        show_recipe(recipe)
        return
    if out is None:
        raise CLTTError("say where the frames go with --out DIR, e.g. --out data/frames")
    if (raw is not None or shard_size != "1G") and not pack:
        raise CLTTError("--raw and --shard-size describe a packed store; add --pack")
    if pack:
        check_raw(raw)
    if synthetic is not None:
        if parsed.paths:
            raise CLTTError("give either videos or --synthetic NAME, not both")
        ignored = [f"--{name.replace('_', '-')}" for name in VIDEO_ONLY_OPTIONS if options.get(name) is not None]
        if ignored:
            err_console.print(f"[yellow]warning:[/] {', '.join(ignored)} {'is' if len(ignored) == 1 else 'are'} for videos and "
                              "ignored with --synthetic: the built-in data are drawn, not decoded from a video "
                              "(--frames and --size set their length and side; each generator has its own frame rate)", soft_wrap=True)
    elif len(parsed.paths) != 1:
        raise CLTTError("give one video file or folder to extract (or --synthetic NAME for built-in data)")
    from cltt.data.extraction import plan_extraction

    extraction = plan_extraction(out, recipe.extract, source=None if synthetic else parsed.paths[0], synthetic=synthetic,
                                 pack=pack, raw=raw, shard_size=shard_size)
    frames_done = 0
    started = time.perf_counter()
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("clips · {task.fields[frames]:,} frames · {task.fields[rate]:,.0f} frames/s"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console) as progress:
        task = progress.add_task(extraction.label, total=extraction.total, frames=0, rate=0.0)

        def on_frames(n: int) -> None:
            nonlocal frames_done
            frames_done += n
            rate = frames_done / max(time.perf_counter() - started, 1e-6)
            progress.update(task, frames=frames_done, rate=rate)

        def on_clip(result: ClipResult) -> None:
            if result.status == "failed":
                progress.console.print(f"[red]failed[/] {result.source}: {result.message}", soft_wrap=True)
            elif result.message:  # what a finished clip's extraction assumed (a source rate, frame times)
                progress.console.print(f"[dim]note:[/] {escape(result.clip)}: {escape(result.message)}", soft_wrap=True)
            progress.advance(task)

        report = extraction.run(on_frames=on_frames, on_clip=on_clip)
    if report.pack is not None:
        show_summary(report.pack, exit_on_corrupt=False)
    if recipe.extract.fps is not None and synthetic is None:
        _note_slower_sources(report, recipe.extract.fps)
    _summarize(report)


def _note_slower_sources(report: ExtractionReport, fps: float) -> None:
    """One note line when ``--fps`` asks for more frames a second than some videos have: those
    clips keep every source frame, so their rate is the source's, not ``fps``."""
    import cv2

    rates = []
    for clip in report.done:
        capture = cv2.VideoCapture(clip.source, cv2.CAP_FFMPEG)
        rate = capture.get(cv2.CAP_PROP_FPS) if capture.isOpened() else 0.0
        capture.release()
        if math.isfinite(rate) and 0 < rate < fps:
            rates.append(rate)
    if rates:
        low, high = min(rates), max(rates)
        shown = f"{low:g} fps" if low == high else f"{low:g}-{high:g} fps"
        count = f"{len(rates)} clip{'s' if len(rates) > 1 else ''}"
        err_console.print(f"[dim]note:[/] --fps {fps:g} is above the source rate of {count} ({shown}): "
                          "every source frame is kept, so the rate is the source's", soft_wrap=True)


def _summarize(report: ExtractionReport) -> None:
    written, seconds, failed = report.frames_written, report.seconds, report.failed
    table = Table(title=f"extracted into {report.out}", title_justify="left")
    for column in ("done", "skipped", "failed", "frames written", "seconds", "frames/s"):
        table.add_column(column, justify="right")
    table.add_row(
        str(len(report.done)),
        str(len(report.skipped)),
        f"[red]{len(failed)}[/]" if failed else "0",
        f"{written:,}",
        f"{seconds:.1f}",
        f"{written / max(seconds, 1e-9):,.0f}",
    )
    console.print(table)
    if failed:
        err_console.print(f"[bold red]{len(failed)} clip(s) failed[/]; the others are complete and a rerun skips them")
        raise SystemExit(1)
