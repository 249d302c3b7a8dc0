"""``cltt index``: scan a frames root into a manifest (or open a packed store) and count its windows."""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

import click
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from cltt.cli.common import console, err_console, show_option, show_recipe, split_arguments
from cltt.data.formats import FRAME_EXTENSIONS, listed
from cltt.data.stores import open_store
from cltt.data.timestamps import format_clock
from cltt.data.verify import verify_frames
from cltt.data.windows import WindowSpec, build_windows
from cltt.errors import CLTTError
from cltt.eval.labels import LABELS_FILE
from cltt.eval.segments import is_segments_file, load_segments
from cltt.eval.tasks.frames import SEGMENTS_FILE


@click.command(
    name="index",
    epilog="""\b
Examples:
  cltt index data/digits
  cltt index recipes/quickstart.yaml data.window_size=8 data.frame_step=2
  cltt index /scratch/frames --verify        # also decode every frame, list corrupt ones

\b
Frame files: """ + listed(FRAME_EXTENSIONS) + """
Other files are skipped. A frame whose header says it has more than
data.max_pixels pixels counts as corrupt.""",
)
@click.argument("args", nargs=-1)
@click.option("--verify", is_flag=True, help="Decode every frame and list corrupt or unreadable ones (exit 1 if any).")
@click.option("--rebuild", is_flag=True, help="Rescan even if the stored manifest is up to date.")
@show_option
def command(args: tuple[str, ...], verify: bool, rebuild: bool, show: bool) -> None:
    """Index a frames root or packed store: clips, frames in natural order, and the windows a recipe gives.

    ARGS: [RECIPE] [ROOT] [key.sub=value ...]. ROOT defaults to the recipe's data.root. A
    folder's manifest is stored in the cache folder (data.cache_dir, else $CLTT_CACHE, else
    ~/.cache/cltt), never inside ROOT, so other tools reading ROOT see only frames and a
    read-only ROOT works; training reuses it while it is fresh. A packed store (cltt pack)
    carries its own index; --verify also checks its CRCs.
    """
    parsed = split_arguments(args)
    if len(parsed.paths) > 1:
        raise CLTTError(f"cltt index takes one frames root, got {len(parsed.paths)}: {' '.join(map(str, parsed.paths))}")
    if parsed.paths:
        parsed.overrides.insert(0, f"data.root={parsed.paths[0]}")
    recipe = parsed.recipe()
    if show:
        show_recipe(recipe)
        return
    started = time.perf_counter()
    with console.status(f"indexing {recipe.data.root} ..."):
        store = open_store(recipe.data.root, recipe.data.cache_dir, rebuild=rebuild, max_pixels=recipe.data.max_pixels)
    seconds = time.perf_counter() - started
    spec = WindowSpec.from_recipe(recipe.data)
    gaps = store.names.gaps()
    windows = build_windows(store.frame_counts, spec, gaps if recipe.data.gaps == "split" else None)

    table = Table(title=f"{store.root}", show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column(justify="right")
    table.add_row("clips", f"{store.num_clips:,}")
    table.add_row("frames", f"{store.num_frames:,}")
    counts = store.frame_counts
    table.add_row("frames per clip", f"{counts.min():,} to {counts.max():,} (mean {counts.mean():,.1f})")
    table.add_row("windows", f"{len(windows):,}  ({spec.describe()})")
    for label, text in _time_rows(store, recipe.probe.labels) + _segments_rows(store, recipe.probe):
        table.add_row(label, text)
    if windows.clips_skipped:
        table.add_row("clips too short", f"[yellow]{windows.clips_skipped:,}[/] (need {spec.reach} frames)")
    if len(gaps):
        what = {"split": "windows are cut there", "ignore": "windows span them (data.gaps=ignore)",
                "error": "training stops (data.gaps=error)"}[recipe.data.gaps]
        table.add_row("gaps in numbering", f"[yellow]{len(gaps):,}[/] in {len(set(gaps.clip.tolist())):,} clip(s); {what}")
    label, where = store.index_row()
    table.add_row(label, f"{where} in {seconds:.2f} s")
    console.print(table)
    if len(windows) == 0:
        err_console.print(
            f"[yellow]warning:[/] no clip is long enough for one window ({spec.reach} frames needed); "
            "lower data.window_size, data.frame_step or data.two_view_offset"
        )

    for text in store.warnings():
        err_console.print(f"[yellow]warning:[/] {escape(text)}", soft_wrap=True)
    if len(gaps):
        err_console.print(f"[yellow]warning:[/] frames are missing from the numbering: {escape(gaps.describe(store.names))}"
                          + ("" if verify else "; cltt index --verify lists every gap"), soft_wrap=True)
    if verify:
        for clip, after, missing in zip(gaps.clip.tolist(), gaps.after.tolist(), gaps.missing.tolist()):
            first = int(store.clip_offsets[clip]) + after
            err_console.print(f"[yellow]gap[/] {escape(store.clips[clip])}: {missing} frame(s) missing between "
                              f"{escape(store.frame_name(first))} and {escape(store.frame_name(first + 1))}", soft_wrap=True)
        _verify(store)


def _time_rows(store, labels: str | None) -> list[tuple[str, str]]:
    """``duration`` (all clips, shortest to longest) and ``frame times``: how many clips have
    recorded times and where the others' nominal ones come from (:mod:`cltt.data.timestamps`);
    and ``labels by time`` when the labels file (``probe.labels``, default ``ROOT/labels.csv``)
    gives segments, mapped onto the frames here so that a bad segment is refused now."""
    times = [store.clip_times(clip) for clip in range(store.num_clips)]
    if not times:
        return []
    durations = [t.duration for t in times]
    recorded = sum(t.recorded for t in times)
    nominal = Counter(t.source for t in times if not t.recorded)
    parts = [f"recorded in {recorded:,} of {len(times):,} clips (timestamps.csv)"] if recorded else []
    parts += [f"{source} in {count:,} clip(s)" for source, count in nominal.most_common()]
    rows = [("duration", f"{format_clock(sum(durations))} ({format_clock(min(durations))} to "
                         f"{format_clock(max(durations))} per clip)"),
            ("frame times", "; ".join(parts))]
    path = Path(labels) if labels else store.root_file(LABELS_FILE)
    if is_segments_file(path):
        rows.append(("labels by time", _describe_segments(load_segments(store, path))))
    return rows


def _segments_rows(store, probe) -> list[tuple[str, str]]:
    """``segments (frames task)``: the labels by time of ``probe.task=frames``
    (``probe.frames.segments``, default ``ROOT/segments.csv``), read with the probe's own loader
    so that a bad segment is refused now, in the same line. Checked with ``probe.task=frames``
    (a missing file is a warning), and whatever the task when the file has the header
    ``clip,start,end,label`` (``cltt extract --synthetic playroom`` writes one)."""
    path = Path(probe.frames.segments) if probe.frames.segments else store.root_file(SEGMENTS_FILE)
    if probe.task != "frames" and not is_segments_file(path):
        return []
    if not (path.is_file() or probe.frames.segments):
        err_console.print(f"[yellow]warning:[/] probe.task=frames needs labels by time in {escape(str(path))} "
                          "(clip,start,end,label); there is none", soft_wrap=True)
        return []
    return [("segments (frames task)", _describe_segments(load_segments(store, path)))]


def _describe_segments(segments) -> str:
    nominal = f"; [yellow]{len(segments.nominal):,} of them with nominal times[/]" if segments.nominal else ""
    return (f"{segments.segments:,} segments, {len(segments.names):,} labels, "
            f"{segments.frames_labelled:,} frames in {len(segments.clips):,} clip(s){nominal}")


def _verify(store) -> None:
    columns = (TextColumn("verifying"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=console, transient=True) as progress:
        task = progress.add_task("verify", total=store.num_frames)
        bad = verify_frames(store, on_progress=lambda n: progress.advance(task, n))
    if not bad:
        console.print(f"[green]all {store.num_frames:,} frames decode[/]")
        return
    for path, why in bad:
        err_console.print(f"[red]corrupt[/] {path}: {why}", soft_wrap=True)
    err_console.print(f"[bold red]{len(bad)} of {store.num_frames:,} frames are corrupt[/]; re-extract or delete them")
    raise SystemExit(1)
