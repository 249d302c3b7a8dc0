"""``cltt pack``: a frames folder into a packed store of a few large shard files."""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

import click
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from cltt.cli.common import console, err_console
from cltt.errors import CLTTError

shard_size_option = click.option("--shard-size", default="1G", show_default=True,
                                 help="Seal a shard once it holds this much (k, M, G).")
raw_option = click.option("--raw", "raw", type=int, metavar="SIZE",
                          help="Store raw uint8 RGB with the short side SIZE instead of the JPEG bytes (fastest reads).")


@click.command(
    name="pack",
    epilog="""\b
Examples:
  cltt pack data/frames --out data/frames.store
  cltt pack data/frames --out data/frames112.store --raw 112
  cltt pack more_frames/ --out data/frames.store       # appends the clips the store lacks
  cltt train recipes/quickstart.yaml data.root=data/frames.store""",
)
@click.argument("root", type=click.Path(path_type=Path))
@click.option("--out", "-o", type=click.Path(path_type=Path), required=True, help="Store folder (new, empty, or a store to append to).")
@raw_option
@shard_size_option
@click.option("--workers", "-j", type=int, default=8, show_default=True, help="Threads reading and checking frames.")
@click.option("--force", is_flag=True, help="Replace clips the store holds under ROOT's clip names but with other frames "
                                            "(their old bytes stay in the shards, unreferenced).")
def command(root: Path, out: Path, raw: int | None, shard_size: str, workers: int, force: bool) -> None:
    """Pack the frames root ROOT into a store: shards of frames plus an index, in temporal order.

    Every frame is decoded once; corrupt ones are listed, left out and counted (exit 1). The
    JPEG bytes are kept exactly (training gives the same batches as from ROOT), or with --raw
    stored decoded at training size. Resumable: a killed pack is finished by the same command,
    and packing into an existing store appends the clips it lacks; a clip it holds under the same
    name with other frames (names, sizes, CRC-32) is refused before anything is written, or
    with --force replaced. Side files (labels.csv, boxes.csv, phases.csv, each clip's
    masks.npz, timestamps.csv and extract marker) come along; a packed or replaced clip's rows
    in the root's CSVs take the place of the store's rows for it. For a clip the store holds
    with the same frames, side files or CSV rows that differ are a warning (the store's are
    kept), or with --force taken from the root.
    """
    from cltt.data.pack import pack_folder, parse_size

    check_raw(raw)
    if workers < 1:
        raise CLTTError(f"--workers must be at least 1, got {workers}")
    if not Path(root).is_dir():
        raise CLTTError(f"frames root {root} is not a folder; pass the folder cltt extract wrote")
    shard_bytes = parse_size(shard_size)
    try:
        with frames_progress("packing") as advance:
            summary = pack_folder(root, out, raw, shard_bytes, workers=workers, on_frames=advance, replace=force)
    except OSError as err:  # an unwritable or full destination; sealed shards stay, a rerun continues
        raise CLTTError(f"cannot write the store {out}: {err.strerror or err}; the shards sealed so far are kept: "
                        f"fix that and rerun the same command to continue") from None
    show_summary(summary)


def check_raw(raw: int | None) -> None:
    if raw is not None and not 8 <= raw <= 4096:
        raise CLTTError(f"--raw {raw} is not a frame size; give the training size in pixels, e.g. --raw 112")


@contextmanager
def frames_progress(label: str):
    """A frames counter on screen: ``with frames_progress(label) as advance: advance(n)``."""
    columns = (TextColumn(label), BarColumn(), MofNCompleteColumn(), TextColumn("frames"), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=True) as progress:
        task = progress.add_task("pack", total=None)
        yield lambda n: progress.advance(task, n)


def show_summary(summary, exit_on_corrupt: bool = True) -> None:
    """The pack's table; corrupt frames one per line, then (``exit_on_corrupt``) exit 1 if there were any."""
    table = Table(title=f"packed into {summary.store} (shards and MB: the whole store)", title_justify="left")
    for column in ("clips packed", "already there", "frames", "corrupt", "shards", "MB", "seconds", "frames/s"):
        table.add_column(column, justify="right")
    table.add_row(f"{summary.clips_packed:,}", f"{summary.clips_present:,}", f"{summary.frames:,}",
                  f"[red]{len(summary.corrupt)}[/]" if summary.corrupt else "0", str(summary.shards),
                  f"{summary.bytes / 1e6:,.{1 if summary.bytes >= 100_000 else 3}f}", f"{summary.seconds:.1f}",
                  f"{summary.frames / max(summary.seconds, 1e-9):,.0f}")
    console.print(table)
    if summary.clips_replaced:
        console.print(f"replaced {len(summary.clips_replaced)} clip(s) the store held with other frames (--force): "
                      f"{escape(', '.join(summary.clips_replaced))}", soft_wrap=True)
    if summary.clip_files_replaced:
        console.print(f"replaced {len(summary.clip_files_replaced)} side file(s) of clips whose frames are unchanged "
                      f"(--force): {escape(', '.join(summary.clip_files_replaced))}", soft_wrap=True)
    for where in summary.clip_files_kept:
        err_console.print(f"[yellow]warning:[/] {escape(where)} differs from the store's copy (the clip's frames are "
                          "the same); kept the store's: add --force to take the root's", soft_wrap=True)
    for name, clips in summary.rows_kept:
        shown = ", ".join(clips[:5]) + (f" and {len(clips) - 5} more" if len(clips) > 5 else "")
        err_console.print(f"[yellow]warning:[/] {escape(name)}: the rows of {escape(shown)} differ from the store's "
                          "copy; kept the store's: add --force to take the root's rows of its clips", soft_wrap=True)
    for name in summary.side_files_kept:
        err_console.print(f"[yellow]warning:[/] {escape(name)} differs from the store's copy and has no clip column "
                          "(or another header) to merge by; kept the store's, merge them by hand", soft_wrap=True)
    if summary.corrupt:
        for where, why in summary.corrupt:
            err_console.print(f"[red]corrupt[/] {escape(where)}: {escape(why)}", soft_wrap=True)
        err_console.print(f"[bold red]{len(summary.corrupt)} corrupt frame(s) left out[/]; the store holds every other "
                          "frame; re-extract those clips and pack them into a new store, or train without them")
        if exit_on_corrupt:
            raise SystemExit(1)
