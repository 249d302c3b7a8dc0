"""``cltt probe``: the recipe's probe task (classes, phases, slots, ...) on a checkpoint's frozen encoder."""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

import click
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table
from rich.text import Text

from cltt.cli.common import console, err_console, show_option, show_recipe, split_arguments, writing_run_dir
from cltt.errors import CLTTError

# what cltt probe may change in a checkpoint's own recipe: where the data are, how to probe
FREE_PREFIXES = ("probe.", "log.")
FREE_KEYS = {"data.root", "data.cache_dir", "data.num_workers", "data.window_size", "data.frame_step",
             "data.window_stride", "train.device"}
# keys that change what a probe measures: metrics_eval.csv keeps one setting, the run's own
MEASURE_KEYS = {"data.root", "data.image_size", "data.window_size", "data.frame_step", "data.window_stride"}
MEASURE_NEUTRAL = {"probe.batch_size", "probe.every"}
# the tasks whose figures come from the readouts of probe.probes (the others have their own measures)
READOUT_TASKS = ("classes", "frames", "image_set")


class RegistryListingCommand(click.Command):
    """``--help`` lists every registered probe task and readout with its one-line description
    (read from the registries only when help is asked for)."""

    def format_epilog(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        from cltt.eval.readouts import registered_readouts
        from cltt.eval.tasks import registered_tasks

        with formatter.section("Tasks (probe.task; probe.<task>.* is its own section)"):
            formatter.write_dl([(name, entry.description) for name, entry in registered_tasks().items()])
        with formatter.section(f"Readouts (probe.probes, for tasks {', '.join(READOUT_TASKS[:-1])} and {READOUT_TASKS[-1]})"):
            formatter.write_dl([(name, entry.description) for name, entry in registered_readouts().items()])
        super().format_epilog(ctx, formatter)


@click.command(
    name="probe",
    cls=RegistryListingCommand,
    epilog="""\b
Examples:
  cltt probe runs/quickstart                              # its latest checkpoint and recipe
  cltt probe runs/quickstart/checkpoint_epoch_003.pth probe.level=clip
  cltt probe recipes/quickstart.yaml --checkpoint runs/quickstart/checkpoint_final.pth
  cltt probe runs/carl                                    # probe.task: phases in its recipe
  cltt probe runs/slotcontrast                            # probe.task: slots (FG-ARI, mBO)
  cltt probe runs/quickstart probe.task=image_set probe.image_set.path=labeled_s  # labelled images

\b
Labels: ROOT/labels.csv (clip,label[,split]; the built-in data write one) or ROOT/<label>/<clip>/.
probe.level=clip (mean feature per clip) helps when single frames are ambiguous; if the
trained encoder does not beat random_init, train longer or check the augmentations.""",
)
@click.argument("args", nargs=-1)
@click.option("--checkpoint", "-c", type=click.Path(path_type=Path), help="Checkpoint to probe (with a RECIPE).")
@click.option("--out", "-o", type=click.Path(path_type=Path),
              help="JSON report, a name ending in .json (default: RUN_DIR/probe.json, or probe_<task>.json, "
                   "replaced by each probe). An existing file is refused without --force.")
@click.option("--force", is_flag=True, help="Replace an existing --out file (never a link, FIFO or device).")
@show_option
def command(args: tuple[str, ...], checkpoint: Path | None, out: Path | None, force: bool, show: bool) -> None:
    """Probe frozen features of a checkpoint against random-init and raw-pixel baselines.

    probe.task picks what is measured (the tasks are listed below): classes (default, described
    here), or another task, whose report is RUN_DIR/probe_<task>.json.

    ARGS: RUN_DIR | CHECKPOINT.pth | RECIPE [--checkpoint PATH], then [key.sub=value ...]. A run
    dir or checkpoint brings its own recipe; overrides may change probe.*, data.root and the
    data windows. Writes the table, RUN_DIR/probe.json and a row of RUN_DIR/metrics_eval.csv
    (the logistic probe; accuracies as fractions in [0, 1], losses as cross-entropy). Features
    are cached in RUN_DIR/features/ and reused while checkpoint and frames are unchanged.

    The default report is the probe's own and each probe replaces it; --out FILE.json is refused
    when FILE exists unless --force, and a link, FIFO or device is never replaced. A read-only
    run dir is probed with --out outside it: nothing is written into it (features are cached in
    cltt's cache folder, ~/.cache/cltt/probe-features/, and metrics_eval.csv gets no row).
    """
    recipe, path, state = _resolve(args, checkpoint)
    if show:
        show_recipe(recipe)
        return
    out = _report_path(recipe, path, out, force)
    run_dir = path.parent
    if os.access(run_dir, os.W_OK):
        # the features cache, the report and metrics_eval.csv are written into the run dir: one writer at a time
        with writing_run_dir(run_dir, "wait for it to finish, or probe a copy of the run dir (cp -r)"):
            _probe(recipe, path, state, out)
        return
    if out.resolve().parent == run_dir.resolve():
        raise CLTTError(f"{run_dir} is read-only, and cltt probe writes its report there; pass --out FILE.json "
                        f"outside it (features are then cached in {_outside_cache(recipe, run_dir).parent}), or "
                        f"probe a writable copy (cp -r {run_dir} COPY)")
    # nothing is written into a read-only run dir (no lock, cache or metrics_eval.csv row), so no writer is disturbed
    _probe(recipe, path, state, out, cache_dir=_outside_cache(recipe, run_dir))


def _outside_cache(recipe, run_dir: Path) -> Path:
    """Where the features of a read-only run dir are cached: cltt's cache folder (data.cache_dir,
    else $CLTT_CACHE, else ~/.cache/cltt), probe-features/<a hash of the run dir's path>."""
    from cltt.data.manifest import default_cache_dir

    root = Path(recipe.data.cache_dir) if recipe.data.cache_dir else default_cache_dir()
    digest = hashlib.sha256(str(run_dir.resolve()).encode()).hexdigest()[:16]
    return root / "probe-features" / f"{run_dir.resolve().name}-{digest}"


def _report_path(recipe, path: Path, out: Path | None, force: bool) -> Path:
    """Where the report goes, checked before any work: the task's own report in the run dir
    (``probe.json``, ``probe_<task>.json``: derived and reproducible, so each probe replaces it),
    or ``out``, a ``.json`` name that may replace an existing file only with ``force``. Neither
    ever replaces what is not a regular file (a link, FIFO, device or socket), nor the run's
    ``run.json``."""
    from cltt.engine.run_files import RUN_FILE
    from cltt.eval.tasks import task_entry
    from cltt.export.files import refuse_existing

    own = path.parent / task_entry(recipe.probe.task).cls.report_file()
    target = own if out is None else out
    if out is not None and out.suffix.lower() != ".json" and not out.is_dir():
        raise CLTTError(f"--out {out} must end in .json (the probe report is JSON), e.g. {out.with_suffix('.json')}")
    if target.is_symlink():
        raise CLTTError(f"{target} is a symbolic link; cltt probe never writes through one, even with --force: "
                        + ("remove it, or pass --out FILE.json" if out is None else "give another --out"))
    if target.exists() and not target.is_file() and not target.is_dir():  # a folder: check_writable says so
        raise CLTTError(f"{target} is not a regular file (a FIFO, device or socket); cltt probe never replaces one, "
                        "even with --force: " + ("pass --out FILE.json" if out is None else "give another --out"))
    if out is None or _same_file(out, own):
        return own
    if out.is_dir():
        return out  # check_writable gives the one line for a folder
    if _same_file(out, path.parent / RUN_FILE):
        raise CLTTError(f"{out} is the run's own record (cltt train writes it); give another --out")
    refuse_existing([out], force)
    return out


def _same_file(a: Path, b: Path) -> bool:
    """True when ``a`` and ``b`` name one path (compared resolved, so ``./x`` is ``x``)."""
    return a.resolve() == b.resolve()


def _probe(recipe, path: Path, state: dict, out: Path, cache_dir: Path | None = None) -> None:
    """Encode, probe, write the report ``out`` (and a metrics_eval.csv row), print the table.
    ``cache_dir``: a features cache outside a read-only run dir, which then gets no row."""
    from cltt.eval.metrics_eval import EVAL_FILE, append_eval_row, append_eval_values
    from cltt.eval.report import TaskReport, check_writable, save_report
    from cltt.eval.tasks import probe_task

    json_path = out
    check_writable(json_path)  # before the encoding, not after it
    started = time.perf_counter()
    columns = (TextColumn("encoding frames"), BarColumn(), MofNCompleteColumn(),
               TextColumn("{task.fields[rate]:,.0f} frames/s"), TimeElapsedColumn(), TimeRemainingColumn())
    with Progress(*columns, console=console, transient=True) as progress:
        task = None

        def on_progress(done: int, total: int) -> None:
            nonlocal task
            if task is None:
                task = progress.add_task("encode", total=total, rate=0.0)
            progress.update(task, completed=done, total=total, rate=done / max(time.perf_counter() - started, 1e-9))

        report = probe_task(recipe, path, state, cache_dir=cache_dir, on_progress=on_progress)
    run_dir = path.parent
    # why metrics_eval.csv gets no row (None: it does)
    skip = f"{run_dir} is read-only" if cache_dir is not None else _skip_eval(recipe, state, path)
    if isinstance(report, TaskReport):  # a table of its own columns; a ProbeReport (classes) is shown below
        if report.eval_values and report.epoch is not None:  # a task's own metrics_eval.csv columns (label_free)
            if skip:
                report.notes.append(f"{EVAL_FILE} not updated: {skip}")
            else:
                append_eval_values(run_dir, report.epoch, report.eval_values)
                report.notes.append(f"{len(report.eval_values)} columns of epoch {report.epoch} written to "
                                    f"{run_dir / EVAL_FILE}")
        _finish_task(report, json_path, time.perf_counter() - started)
        return
    if report.eval_row is not None and skip:
        report.notes.append(f"{EVAL_FILE} not updated: {skip}")
        report.eval_row = None
    save_report(report, json_path)
    if report.eval_row is not None:
        append_eval_row(run_dir, report.eval_row)
    _print_whole(*_table(report), json_path)
    for name, how in report.cache.items():
        err_console.print(f"[dim]features {name}: {how}[/]", soft_wrap=True)
    for note in report.notes:
        err_console.print(note if note.startswith("warning:") else f"[dim]note:[/] {note}", soft_wrap=True)
    console.print(_summary(report, json_path, run_dir / EVAL_FILE if report.eval_row else None,
                           time.perf_counter() - started), soft_wrap=True)


def _resolve(args: tuple[str, ...], checkpoint: Path | None):
    """(recipe, checkpoint path, checkpoint state) from the command line."""
    from cltt.engine.checkpoint import load_checkpoint
    from cltt.engine.run_dir import changed_keys, run_name, saved_recipe
    from cltt.recipe import apply_overrides, recipe_from_dict, recipe_to_dict

    parsed = split_arguments(args)
    if parsed.recipe_path is not None:
        if parsed.paths:
            raise CLTTError(f"unexpected argument {parsed.paths[0]}; with a recipe pass the checkpoint as --checkpoint PATH")
        recipe = parsed.recipe()
        if checkpoint is None:
            run_dir = Path(recipe.train.out_dir) / run_name(recipe, parsed.recipe_path)
            return (recipe, *_latest_that_loads(run_dir, f"{run_dir} has no checkpoint to probe; train it first "
                                                         f"(cltt train {parsed.recipe_path}) or pass --checkpoint PATH"))
        return recipe, checkpoint, load_checkpoint(checkpoint)
    targets = parsed.paths + ([checkpoint] if checkpoint is not None else [])
    if len(targets) != 1:
        raise CLTTError("cltt probe takes one RUN_DIR or CHECKPOINT (or RECIPE --checkpoint PATH), e.g. "
                        "cltt probe runs/quickstart")
    target = targets[0]
    if target.is_dir():
        path, state = _latest_that_loads(target, f"{target} holds no checkpoint to probe; pass a run dir (runs/NAME) "
                                                 "or a .pth file")
    elif target.exists():
        path, state = target, load_checkpoint(target)
    else:
        raise CLTTError(f"{target} does not exist; pass a run dir (runs/NAME) or a checkpoint file")
    saved = saved_recipe(state, path)
    tree = recipe_to_dict(saved)
    apply_overrides(tree, parsed.overrides)
    recipe = recipe_from_dict(tree)
    refused = [k for k in changed_keys(recipe_to_dict(saved), recipe_to_dict(recipe))
               if k not in FREE_KEYS and not k.startswith(FREE_PREFIXES)]
    if refused:
        raise CLTTError(f"cltt probe takes the model from {path}, so it may not change {', '.join(refused[:4])}; "
                        "it may change probe.*, data.root, data.cache_dir, data.num_workers, the data windows "
                        "and train.device")
    return recipe, path, state


def _latest_that_loads(run_dir: Path, none_message: str) -> tuple[Path, dict]:
    """A run dir's latest checkpoint that loads, (path, state); a skipped unreadable one is said in a note."""
    from cltt.engine.checkpoint import load_latest_intact

    found = load_latest_intact(run_dir)
    if found is None:
        raise CLTTError(none_message)
    path, state, notes = found
    for note in notes:
        err_console.print(f"[dim]note:[/] {escape(note)}", soft_wrap=True)
    return path, state


def _skip_eval(recipe, state: dict, path: Path) -> str | None:
    """Why this probe's figures may not go into the run's metrics_eval.csv, or None."""
    differs = _measure_changes(recipe, state, path)
    if not differs:
        return None
    return (f"this probe differs from the run's own in {', '.join(differs[:3])}, and the file keeps one setting "
            "across epochs")


def _measure_changes(recipe, state: dict, path: Path) -> list[str]:
    """Keys in which this probe measures something else than the run's recipe would."""
    from cltt.engine.run_dir import changed_keys, saved_recipe
    from cltt.recipe import recipe_to_dict

    changes = changed_keys(recipe_to_dict(saved_recipe(state, path)), recipe_to_dict(recipe))
    return [k for k in changes if k in MEASURE_KEYS or (k.startswith("probe.") and k not in MEASURE_NEUTRAL)]


def _percent(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.1f}"


def _with_interval(score, split: str, units: int | None = None, unit: str = "clips", percent: str = "") -> str:
    """``84.4 [71–93]``: the figure and its 95% clip-bootstrap interval, in percent (``percent``
    after the interval). A figure without an interval rests on one clip, image or group
    (:data:`cltt.eval.bootstrap.MIN_UNITS`; ``units`` the split's count of ``unit``):
    ``84.4 [n/a: 1 clip]``, its ``percent`` after the figure."""
    value, interval = getattr(score, split), score.intervals.get(split)
    if value is None:
        return _percent(value)
    if interval is None:
        count = "" if units is None else f": {units} {unit.removesuffix('s') if units == 1 else unit}"
        return f"{100 * value:.1f}{percent} \\[n/a{count}]"  # an escaped bracket: rich markup would drop "[n/a...]"
    return f"{100 * value:.1f} [{100 * interval[0]:.0f}–{100 * interval[1]:.0f}]{percent}"


def _units(report, split: str) -> int | None:
    """How many bootstrap units (``report.unit``) the split holds; None if the report does not say."""
    return report.counts.get(split, {}).get(report.unit)


# a terminal too narrow for the class probe's table loses the readout's description first
CLASS_COLUMNS = (("features", "features", "left"), ("probe", "probe", "left"), ("train", "train", "right"),
                 ("val", "val", "right"), ("test", "test", "right"), ("detail", "", "left"))


def _table(report) -> tuple[Table, list[str]]:
    """The class probe's table at the console's width, and the columns left out to fit it."""
    counts = report.counts
    unit = report.unit
    split_text = ", ".join(f"{s} {counts[s][unit]} {unit}/{counts[s]['samples']} samples" for s in counts)
    epoch = f" (epoch {report.epoch})" if report.epoch is not None else ""
    rows = []
    previous = previous_detail = None
    for score in report.scores:
        section = previous is not None and score.features != previous
        name = f"{score.features} ({report.feature_dims.get(score.features, '?')}-d)" if score.features != previous else ""
        # rows of one readout (retrieval's recall@1, recall@5, mAP) share one description
        detail = "" if score.features == previous and score.detail == previous_detail else score.detail
        cells = {split: _with_interval(score, split, _units(report, split), unit) for split in ("train", "val", "test")}
        rows.append((section, [name, score.probe, cells["train"], cells["val"], f"[bold]{cells['test']}[/]",
                               f"[dim]{escape(detail)}[/]"]))
        previous, previous_detail = score.features, score.detail
    return fitting_words_table(
        f"probe of {report.checkpoint}{epoch}, accuracy % [95% interval over {unit}]",
        CLASS_COLUMNS, rows, console.width, drop_order=("detail",),
        caption=f"{report.level} level, {len(report.classes)} classes; {split_text}")


def fitting_words_table(title: str, columns, rows: list[tuple[bool, list[str]]], width: int, drop_order=(),
                        caption: str | None = None) -> tuple[Table, list[str]]:
    """A table of ``rows`` (``(starts a section, cells as rich markup)``) under ``columns``
    (``(key, header, justify)``) that fits ``width`` without cutting a word of a cell or header,
    and the keys of the columns left out. The approach of :func:`cltt.cli.runs.fitting_table`
    (whole columns go, never letters), with cells that may wrap at spaces: each column takes its
    natural width when all fit; else the widest columns narrow, each to no less than its longest
    word; else whole columns go in ``drop_order``. When nothing is left to drop, the table keeps
    its words and is wider than ``width`` (:func:`_print_whole` prints it so)."""
    plain = [[Text.from_markup(cell).plain for cell in cells] for _, cells in rows]
    drop_order = list(drop_order)
    for leave_out in range(len(drop_order) + 1):
        dropped = drop_order[:leave_out]
        kept = [i for i, (key, _, _) in enumerate(columns) if key not in dropped]
        texts = [[columns[i][1]] + [row[i] for row in plain] for i in kept]
        natural = [max(Text(line).cell_len for text in column for line in text.splitlines() or [""]) + 2
                   for column in texts]
        minimum = [max((Text(word).cell_len for text in column for word in text.split()), default=0) + 2
                   for column in texts]
        room = width - (len(kept) + 1)  # the vertical borders of the box, its edges included
        if sum(minimum) <= room or leave_out == len(drop_order):
            break
    widths = None
    if sum(natural) > room:  # narrow a cell at a time, never below a column's longest word:
        widths = list(natural)  # the next to go in drop_order first, then the widest
        first = [n for n, i in enumerate(kept) if columns[i][0] in drop_order]
        while sum(widths) > room and any(w > m for w, m in zip(widths, minimum)):
            narrower = [n for n in first if widths[n] > minimum[n]] or \
                [n for n in range(len(kept)) if widths[n] > minimum[n]]
            widths[max(narrower, key=lambda n: widths[n])] -= 1
    table = Table(title=title, title_justify="left", caption=caption, caption_justify="left")
    for n, i in enumerate(kept):
        table.add_column(columns[i][1], justify=columns[i][2], overflow="fold",
                         width=None if widths is None else widths[n] - 2)
    for section, cells in rows:
        if section:
            table.add_section()
        table.add_row(*(cells[i] for i in kept))
    return table, dropped


def _print_whole(table: Table, dropped: list[str], report_path: Path) -> None:
    """Print ``table`` uncut (wider than the console when its words need it) and say which
    columns were left out to fit it."""
    from cltt.cli.runs import table_width

    need = table_width(table)  # fitting_words_table fixed the widths of a table that had to narrow
    if need > console.width:  # rich would cut words to the console's width: render at the table's own
        Console(file=console.file, width=need, highlight=False, force_terminal=console.is_terminal,
                color_system=console.color_system).print(table)
    else:
        console.print(table)
    if dropped:
        err_console.print(f"[dim]left out at {console.width} columns: {escape(', '.join(dropped))} (the report "
                          f"{escape(str(report_path))} has every column)[/]", soft_wrap=True)


def _summary(report, json_path: Path, eval_path: Path | None, seconds: float) -> str:
    """One line: the figures of the readout of lowest :attr:`Readout.summary_rank` that ran."""
    from cltt.eval.readouts import registered_readouts

    ranked = sorted((entry.cls.summary_rank, name) for name, entry in registered_readouts().items()
                    if entry.cls.summary_rank is not None)
    parts = []
    for _, probe in ranked:
        found = [s for s in report.scores if s.probe == probe]
        if found:
            split = "test" if any(s.test is not None for s in found) else "val"
            parts.append(f"{probe} {split} " + ", ".join(
                f"{s.features} {_with_interval(s, split, _units(report, split), report.unit, '%')}" for s in found))
            break
    where = f"; report {json_path}" + (f"; row epoch {report.eval_row.epoch} in {eval_path}" if eval_path else "")
    return f"probed {Path(report.checkpoint).name}: " + "; ".join(parts) + f" in {seconds:.1f} s{where}"


def _cell(value) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)


def _finish_task(report, json_path: Path, seconds: float) -> None:
    """Print a TaskReport's table and notes and write its JSON."""
    from cltt.eval.report import save_report

    epoch = f" (epoch {report.epoch})" if report.epoch is not None else ""
    columns = [(column, column, "left" if i == 0 else "right") for i, column in enumerate(report.columns)]
    # too narrow a terminal loses the interval columns (name_95) first, then others, right to left
    later = list(reversed(report.columns[1:]))
    table, dropped = fitting_words_table(
        f"{report.task} probe of {report.checkpoint}{epoch}", columns,
        [(False, [escape(_cell(value)) for value in row]) for row in report.rows], console.width,
        drop_order=[c for c in later if c.endswith("_95")] + [c for c in later if not c.endswith("_95")])
    save_report(report, json_path)
    _print_whole(table, dropped, json_path)
    for note in report.notes:
        err_console.print(note if note.startswith("warning:") else f"[dim]note:[/] {note}", soft_wrap=True)
    console.print(f"probed {Path(report.checkpoint).name} ({report.task}) in {seconds:.1f} s; report {json_path}",
                  soft_wrap=True)
