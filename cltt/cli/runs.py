"""``cltt runs``: the runs of a folder, what each is and where it stands."""

from __future__ import annotations

from pathlib import Path

import click
from rich.markup import escape
from rich.table import Table

from cltt.cli.common import console, err_console, fmt_number
from cltt.errors import CLTTError

STYLES = {"finished": "green", "running": "cyan", "failed": "red", "stopped": "yellow", "new": "dim"}


@click.command(
    name="runs",
    epilog="""\b
Examples:
  cltt runs                  # the run dirs under runs/
  cltt runs sweeps/egocentric/runs""",
)
@click.argument("folder", type=click.Path(path_type=Path), default="runs", required=False)
def command(folder: Path) -> None:
    """A table of the runs in FOLDER (default runs/): method, backbone, epochs, last loss, best
    probe accuracies and state (finished, running, stopped, failed), from each run dir's files."""
    from cltt.engine.run_table import run_summaries

    if not folder.is_dir():
        raise CLTTError(f"{folder} is not a folder of runs; give the train.out_dir runs were written to (default runs)")
    summaries = run_summaries(folder)
    if not summaries:
        raise CLTTError(f"no run dirs in {folder} (a run dir holds recipe.yaml); train one with cltt train RECIPE")
    table = Table(title=str(folder), title_justify="left")
    for name, justify in (("run", "left"), ("method", "left"), ("backbone", "left"), ("epochs", "right"),
                          ("last loss", "right"), ("val acc", "right"), ("test acc", "right"), ("state", "left")):
        table.add_column(name, justify=justify, no_wrap=True, min_width=8 if name == "state" else None)
    for s in summaries:
        epochs = f"{s.epochs_done}/{s.epochs}" if s.epochs else str(s.epochs_done)
        table.add_row(escape(s.run), escape(s.method), escape(s.backbone), epochs, fmt_number(s.last_loss, ".4f"),
                      fmt_number(s.best_val_acc, ".3f"), fmt_number(s.best_test_acc, ".3f"), f"[{STYLES[s.state]}]{s.state}[/]")
    console.print(table)
    for s in summaries:
        if s.note and s.state != "finished":
            err_console.print(f"[dim]{escape(s.run)}:[/] {escape(s.note)}", soft_wrap=True)
