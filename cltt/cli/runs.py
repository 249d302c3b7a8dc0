"""``cltt runs``: the runs of a folder, what each is and where it stands."""

from __future__ import annotations

import csv
import dataclasses
import io
import json
from pathlib import Path

import click
from rich.markup import escape
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text

from cltt.cli.common import STATE_STYLES, console, err_console, fmt_number
from cltt.engine.run_files import FINISHED
from cltt.errors import CLTTError

COLUMNS = (("run", "left"), ("method", "left"), ("backbone", "left"), ("epochs", "right"), ("last loss", "right"),
           ("val acc", "right"), ("test acc", "right"), ("state", "left"))
# a narrow terminal loses whole columns, least telling first (a sweep's names often say method
# and backbone), never letters of a name or a state: "timm_r…" could be any of several runs
DROP_ORDER = ("backbone", "method", "last loss", "epochs", "test acc", "val acc")


@click.command(
    name="runs",
    epilog="""\b
Examples:
  cltt runs                  # the run dirs under runs/
  cltt runs sweeps/egocentric/runs""",
)
@click.argument("folder", type=click.Path(path_type=Path), default="runs", required=False)
@click.option("--csv", "as_csv", is_flag=True, help="Write CSV to stdout: every column, full values, no table.")
@click.option("--json", "as_json", is_flag=True, help="Write a JSON list to stdout: every column, full values, no table.")
def command(folder: Path, as_csv: bool, as_json: bool) -> None:
    """A table of the runs in FOLDER (default runs/): method, backbone, epochs, last loss, best
    probe accuracies and state (finished, running, failed, interrupted, stopped, not started),
    from each run dir's files.

    A terminal too narrow for every column loses whole columns (backbone first, then method, last
    loss, epochs, test and val accuracy) and says which; names and states are never cut. --csv
    and --json give every field of every run for scripts: run, path, method, backbone,
    epochs_done, epochs, last_loss, best_val_acc, best_test_acc, state, note (empty / null when
    unknown; an empty folder of runs gives a header or [])."""
    from cltt.engine.run_table import run_summaries

    if as_csv and as_json:
        raise CLTTError("cltt runs takes one of --csv and --json")
    if not folder.is_dir():
        raise CLTTError(f"{folder} is not a folder of runs; give the train.out_dir runs were written to (default runs)")
    summaries = run_summaries(folder)
    if as_csv or as_json:
        records = [{"run": s.run, "path": str(folder / s.run)} | {k: v for k, v in dataclasses.asdict(s).items() if k != "run"}
                   for s in summaries]
        click.echo(_csv_text(records) if as_csv else json.dumps(records, indent=2), nl=not as_csv)
        return
    if not summaries:
        raise CLTTError(f"no run dirs in {folder} (a run dir holds recipe.yaml); train one with cltt train RECIPE")
    table, dropped = fitting_table(str(folder), [_cells(s) for s in summaries], console.width)
    console.print(table)
    if dropped:
        err_console.print(f"[dim]left out at {console.width} columns: {', '.join(dropped)} (--csv or --json has every "
                          "column)[/]", soft_wrap=True)
    for s in summaries:
        if s.note and s.state != FINISHED:
            err_console.print(f"[dim]{escape(s.run)}:[/] {escape(s.note)}", soft_wrap=True)


def _cells(s) -> dict[str, str]:
    """One run's table cells by column name, as rich markup."""
    return {"run": escape(s.run), "method": escape(s.method), "backbone": escape(s.backbone),
            "epochs": f"{s.epochs_done}/{s.epochs}" if s.epochs else str(s.epochs_done),
            "last loss": fmt_number(s.last_loss, ".4f"), "val acc": fmt_number(s.best_val_acc, ".3f"),
            "test acc": fmt_number(s.best_test_acc, ".3f"), "state": f"[{STATE_STYLES.get(s.state, 'bold')}]{escape(s.state)}[/]"}


def fitting_table(title: str | None, rows: list[dict[str, str]], width: int, columns=COLUMNS,
                  drop_order=DROP_ORDER) -> tuple[Table, list[str]]:
    """The table of ``rows`` (cells by column name, rich markup) with as many of ``columns``
    (``(name, justify)``) as fit ``width`` at their natural width, leaving out whole columns in
    ``drop_order`` (those of ``drop_order`` whose every cell is ``-`` go first: they say
    nothing), and the columns left out. With what is left still too wide, long run names
    wrap (fold) whole (:func:`table_fits` tells); no other cell is ever cut. ``cltt runs`` and
    ``cltt sweep status``."""
    state_width = max((Text.from_markup(row["state"]).cell_len for row in rows), default=0)  # never squeezed
    drop_order = [name for name in drop_order if name in dict(columns)]
    empty = [name for name in drop_order if rows and all(Text.from_markup(row[name]).plain.strip() in ("", "-")
                                                         for row in rows)]
    drop_order = empty + [name for name in drop_order if name not in empty]
    for leave_out in range(len(drop_order) + 1):
        dropped = list(drop_order[:leave_out])
        table = Table(title=title, title_justify="left")
        for name, justify in columns:
            if name not in dropped:
                table.add_column(name, justify=justify, no_wrap=name != "run", overflow="fold",
                                 min_width=state_width if name == "state" else None)
        for row in rows:
            table.add_row(*(row[name] for name, _ in columns if name not in dropped))
        if table_fits(table, width):
            break
    return table, dropped


def table_fits(table: Table, width: int) -> bool:
    """Whether ``table`` fits ``width`` columns at its natural width (no cell folded)."""
    return table_width(table) <= width


def table_width(table: Table) -> int:
    """The columns ``table`` takes at its natural width (measured unclamped)."""
    return Measurement.get(console, console.options.update_width(1 << 16), table).maximum


def _csv_text(records: list[dict]) -> str:
    """``records`` as CSV with a header of their fields; None as an empty cell."""
    from cltt.engine.run_table import RunSummary

    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=["run", "path"] + [f.name for f in dataclasses.fields(RunSummary)][1:],
                            lineterminator="\n")
    writer.writeheader()
    writer.writerows({k: "" if v is None else v for k, v in r.items()} for r in records)
    return buffer.getvalue()
