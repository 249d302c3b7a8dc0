"""``cltt sweep``: a grid of runs, locally or as a Slurm job array, and ``cltt sweep status``."""

from __future__ import annotations

import time
from pathlib import Path

import click
from rich.markup import escape
from rich.table import Table

from cltt.cli.common import (
    STATE_STYLES,
    OneLineErrors,
    console,
    err_console,
    fmt_number,
    show_option,
    show_recipe,
    split_arguments,
)
from cltt.engine.run_files import FAILED, RUNNING
from cltt.errors import CLTTError

USAGE = ("RECIPE [key.sub=value ...] [--grid KEY=V1,V2 ...] [--local | --slurm [--dry-run]]\n"
         "       cltt sweep status SWEEP_DIR [--csv PATH]")

EXAMPLES = """\b
Examples:
  cltt sweep recipes/quickstart.yaml --grid data.window_size=3,5 --grid train.lr=1e-3,3e-4 --local
  cltt sweep recipes/egocentric.yaml sweep.slurm.partition=gpu sweep.slurm.account=r00000 --slurm --dry-run
  cltt sweep recipes/egocentric.yaml --slurm        # writes sweeps/egocentric/sweep.sbatch, then sbatch
  cltt sweep status sweeps/egocentric --csv sweeps/egocentric/status.csv

\b
In the recipe, the grid and the job settings:
  sweep:
    grid: {data.window_size: [3, 5, 8], train.lr: [1e-3, 3e-4]}
    slurm: {partition: gpu, gpus: 1, time: "2-00:00:00", throttle: 4, apptainer_image: cltt.sif}"""


class SweepGroup(OneLineErrors, click.Group):
    """``cltt sweep RECIPE ...`` runs the default command ``run``; ``cltt sweep status DIR`` reports."""

    default_command = "run"

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ctx.help_option_names:
            args = [self.default_command, *args]
        return super().parse_args(ctx, args)

    def format_usage(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        first, second = USAGE.split("\n")
        formatter.write(f"Usage: {ctx.command_path} {first}\n{second}\n")

    def format_options(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        # `cltt sweep --help` shows the options of the default command (those people type most).
        run = self.commands[self.default_command]
        with click.Context(run, info_name=ctx.info_name, parent=ctx.parent) as run_ctx:
            rows = [p.get_help_record(run_ctx) for p in run.get_params(run_ctx)
                    if isinstance(p, click.Option) and p.name != "help"]
        rows += [p.get_help_record(ctx) for p in self.get_params(ctx) if isinstance(p, click.Option)]
        unique = {r[0]: r for r in rows if r}  # the help option appears in both
        with formatter.section("Options of cltt sweep RECIPE"):
            formatter.write_dl(list(unique.values()))
        self.format_commands(ctx, formatter)


NAME_ROOM = 12  # the fewest letters a line of a folded run name in cltt sweep status

@click.group(
    name="sweep", cls=SweepGroup, no_args_is_help=True, epilog=EXAMPLES,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
def command() -> None:
    """A grid of runs of one recipe, here (--local) or as a Slurm job array (--slurm).

    \b
    cltt sweep RECIPE ...     expand the grid into sweeps/NAME/: one resolved recipe per run
                              (recipes/RUN.yaml), the manifest sweep.yaml, logs/, and run dirs
                              runs/RUN; then run them here one by one (--local) or render the
                              job array sweeps/NAME/sweep.sbatch and submit it (--slurm).
                              Neither: only write the folder.
    cltt sweep status DIR     a table of the runs: finished, running, failed, interrupted,
                              stopped or not started, epochs, last loss, best probe accuracy.

    The grid is the recipe's sweep.grid (dotted keys -> lists) and the --grid options, as a
    cartesian product; run names say what differs (ws5_fs2_lr1e-3). NAME is sweep.name or the
    recipe file's name. Every run trains with train.resume=auto, so running or submitting the
    same sweep again continues stopped runs and skips finished ones.
    """


@command.command(name="run", epilog=EXAMPLES)
@click.argument("args", nargs=-1)
@click.option("--grid", "grids", multiple=True, metavar="KEY=V1,V2",
              help="Add a grid axis (repeatable); values are YAML scalars, e.g. train.lr=1e-3,3e-4 or "
                   "model.backbone=resnet18,tiny_cnn. Replaces the same key of sweep.grid.")
@click.option("--local", "local", is_flag=True, help="Run the grid here, one run after another; a failed run "
              "does not stop the others (exit 1 if any failed).")
@click.option("--slurm", "slurm", is_flag=True, help="Render the job array sweeps/NAME/sweep.sbatch from "
              "sweep.slurm and submit it with sbatch (from this folder).")
@click.option("--dry-run", is_flag=True, help="With --slurm: write and print the script, do not submit it.")
@click.option("--template", type=click.Path(path_type=Path, dir_okay=False),
              help="Job-array template to render [slurm/array.sh.tmpl].")
@show_option
def run_command(args: tuple[str, ...], grids: tuple[str, ...], local: bool, slurm: bool, dry_run: bool,
                template: Path | None, show: bool) -> None:
    """Expand RECIPE's grid into sweeps/NAME and run it (--local) or submit it (--slurm).

    ARGS: RECIPE [key.sub=value ...]; the overrides apply to every run.
    """
    from cltt.sweep import grid as sweep_grid
    from cltt.sweep import render

    if local and slurm:
        raise CLTTError("give --local or --slurm, not both")
    mode = "local" if local else "slurm" if slurm else None
    parsed = split_arguments(args)
    if parsed.paths:
        raise CLTTError(f"unexpected argument {parsed.paths[0]}; cltt sweep takes a RECIPE and key=value overrides "
                        "(or: cltt sweep status SWEEP_DIR)")
    if parsed.recipe_path is None:
        raise CLTTError("cltt sweep needs a recipe, e.g. cltt sweep recipes/quickstart.yaml --grid train.lr=1e-3,3e-4")
    if dry_run and mode != "slurm":
        raise CLTTError("--dry-run goes with --slurm: cltt sweep RECIPE --slurm --dry-run")
    plan = sweep_grid.plan_sweep(parsed.recipe_path, parsed.overrides, grids)
    if show:
        show_recipe(plan.base)
        return
    tasks = render.unfinished(plan) if mode == "slurm" else []
    script_text = render.render_script(plan, template, tasks or None) if mode == "slurm" else ""  # checks first

    sweep_grid.write_sweep(plan)
    _print_plan(plan)
    if mode is None:
        console.print(f"wrote {len(plan.runs)} run recipes to {plan.dir}/recipes; run them with --local, or --slurm",
                      soft_wrap=True)
    elif mode == "local":
        _run_local(plan)
    else:
        script = plan.dir / render.SCRIPT
        script.write_text(script_text)
        script.chmod(0o755)
        if dry_run:
            console.print(f"wrote {script} (not submitted: --dry-run)", soft_wrap=True)
            click.echo(script_text, nl=False)
            return
        if not tasks:
            console.print(f"all {len(plan.runs)} runs are finished; nothing to submit (wrote {script})", soft_wrap=True)
            return
        job = render.submit(script)
        sweep_grid.record_job(plan.dir, job)
        throttle = plan.base.sweep.slurm.throttle
        at_once = f", at most {throttle} at once" if throttle else ""
        skipped = f" ({len(plan.runs) - len(tasks)} finished runs left out)" if len(tasks) < len(plan.runs) else ""
        console.print(f"submitted job array {job}: {len(tasks)} runs{at_once}{skipped}; logs in {plan.dir}/logs; "
                      f"follow with: squeue -j {job}  or  cltt sweep status {plan.dir}", soft_wrap=True)


def _print_plan(plan) -> None:
    console.print(f"sweep {plan.name}: {len(plan.runs)} runs in {plan.dir}", soft_wrap=True)
    table = Table()
    table.add_column("#", justify="right")
    table.add_column("run", style="bold")
    for key in plan.grid:
        table.add_column(key)
    for run in plan.runs:
        table.add_row(str(run.index), escape(run.name), *(escape(str(run.overrides[k])) for k in plan.grid))
    console.print(table)


def _run_local(plan) -> None:
    from cltt.sweep.local import run_local

    total = len(plan.runs)
    started = time.perf_counter()
    status = console.status("")

    def on_start(run) -> None:
        status.update(f"run {run.index + 1}/{total} {run.name}: training (log {plan.dir}/logs/{run.name}.local.out)")
        status.start()

    def on_done(result) -> None:
        status.stop()
        n = f"{result.run.index + 1}/{total}"
        if result.status == "finished":
            console.print(f"[green]finished[/] {n} {result.run.name} in {result.seconds:.1f} s: {escape(result.last_line)}",
                          soft_wrap=True, markup=True)
        elif result.status == "skipped":
            console.print(f"[dim]skipped[/]  {n} {result.run.name}: already finished", soft_wrap=True)
        else:
            err_console.print(f"[red]{result.status}[/] {n} {result.run.name} (exit {result.exit_code}): "
                              f"{escape(result.last_line)}; log {result.log}", soft_wrap=True)

    try:
        results = run_local(plan, on_start=on_start, on_done=on_done)
    finally:
        status.stop()
    counts = {s: sum(r.status == s for r in results) for s in ("finished", "skipped", "failed", "interrupted")}
    left = total - len(results)
    parts = [f"{n} {s}" for s, n in counts.items() if n] + ([f"{left} not run"] if left else [])
    console.print(f"sweep {plan.name}: {total} runs: {', '.join(parts)} in {time.perf_counter() - started:.1f} s; "
                  f"cltt sweep status {plan.dir}", soft_wrap=True)
    if counts["interrupted"]:
        raise SystemExit(130)
    if counts["failed"]:
        raise SystemExit(1)


@command.command(name="status", epilog="""\b
Examples:
  cltt sweep status sweeps/quickstart
  cltt sweep status sweeps/quickstart --csv sweeps/quickstart/status.csv""")
@click.argument("sweep_dir", type=click.Path(path_type=Path))
@click.option("--csv", "csv_path", type=click.Path(path_type=Path, dir_okay=False),
              help="Also write the table as CSV (index,run, one column per grid key, state,epochs_done,epochs,last_loss,...).")
@click.option("--force", is_flag=True, help="Replace an existing --csv file.")
def status_command(sweep_dir: Path, csv_path: Path | None, force: bool) -> None:
    """Where each run of a sweep stands, from its run dir and newest log.

    SWEEP_DIR is sweeps/NAME as written by cltt sweep. States, the words of cltt runs: finished
    (its final checkpoint exists), running (started, no exit logged yet), failed (its log ends in
    an error), interrupted (Ctrl-C), stopped (a checkpoint, not finished: resubmit or rerun the
    sweep to continue), not started.
    """
    from rich.cells import cell_len

    from cltt.cli.runs import DROP_ORDER, fitting_table, table_width
    from cltt.sweep.status import summary, sweep_status, write_csv

    if sweep_dir.suffix.lower() in (".yaml", ".yml") and sweep_dir.is_file():
        raise CLTTError(f"{sweep_dir} is a recipe; give the sweep folder, e.g. cltt sweep status sweeps/{sweep_dir.stem}")
    if csv_path is not None and (csv_path.exists() or csv_path.is_symlink()) and not force:
        raise CLTTError(f"{csv_path} exists; pass --force to replace it, or give another --csv path")
    statuses = sweep_status(sweep_dir)
    console.print(f"sweep {sweep_dir}", soft_wrap=True)
    keys = list(statuses[0].values) if statuses else []  # what varies between the runs
    columns = [("#", "right"), ("run", "left"), *((key, "left") for key in keys), ("state", "left"),
               ("epochs", "right"), ("last loss", "right"), ("val acc", "right"), ("test acc", "right")]
    rows = [{"#": str(s.index), "run": escape(s.run), **{key: escape(str(s.values.get(key))) for key in keys},
             "state": f"[{STATE_STYLES[s.state]}]{s.state}[/]",
             "epochs": f"{s.epochs_done}/{s.epochs}" if s.epochs else str(s.epochs_done),
             "last loss": fmt_number(s.last_loss, ".4f"), "val acc": fmt_number(s.best_val_acc, ".3f"),
             "test acc": fmt_number(s.best_test_acc, ".3f")} for s in statuses]
    # a narrow terminal loses whole columns, never letters of a cell: first the grid's, widest
    # first (the run names say what differs), then those cltt runs leaves out first
    widest = sorted(keys, key=lambda key: -max(cell_len(row[key]) for row in rows))
    table, dropped = fitting_table(None, rows, console.width, columns, (*widest, *DROP_ORDER))
    # too narrow for the names whole: they fold in their column while it keeps room for a few
    # letters a line (said so); narrower still, one line per run instead of a name a letter a line
    longest = max((cell_len(s.run) for s in statuses), default=0)
    room = console.width - (table_width(table) - longest)
    if room >= min(longest, NAME_ROOM):
        console.print(table)
        if dropped:
            err_console.print(f"[dim]left out at {console.width} columns: {escape(', '.join(dropped))} (--csv has every "
                              "column)[/]", soft_wrap=True)
        if room < longest:
            err_console.print(f"[dim]run names wrap to fit {console.width} columns[/]", soft_wrap=True)
    else:
        for row in rows:
            console.print(f"{row['#']} {row['run']} {row['state']}", soft_wrap=True)
        err_console.print(f"[dim]at {console.width} columns no table fits: one line per run, #, run and state "
                          "(--csv has every column)[/]", soft_wrap=True)
    for s in statuses:
        if s.note and s.state in (FAILED, RUNNING):
            log = f" (log {s.log})" if s.log else ""
            console.print(f"[{STATE_STYLES[s.state]}]{s.state}[/] {s.index} {escape(s.run)}: {escape(s.note)}{escape(log)}",
                          soft_wrap=True)
    if csv_path is not None:
        console.print(f"wrote {write_csv(statuses, csv_path)}", soft_wrap=True)
    console.print(summary(statuses) + " (val acc, test acc: best of metrics_eval.csv)", soft_wrap=True)
