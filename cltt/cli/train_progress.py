"""How ``cltt train`` shows a run: a rich progress bar on a terminal, plain lines in logs.

Slurm logs and pipes get one line every ``log.interval`` seconds and one per epoch, so a
log file stays readable; both end with a one-line summary a person can paste. The same plain
lines are appended to ``RUN_DIR/train.log`` whatever the screen shows, one run after another.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from cltt.cli.common import console
from cltt.engine.events import EpochDone, Outcome, Reporter, RunStart, StepDone
from cltt.errors import writing


def _start_line(e: RunStart) -> str:
    where = "new run"
    if e.resumed_from is not None:  # named as the stop line named it: the epoch in progress and its batches done
        at = (f"epoch {e.start_epoch + 1} batch {e.start_batch}" if e.start_batch else f"the end of epoch {e.start_epoch}")
        where = f"resumed from {e.resumed_from.name} at {at} (step {e.start_step})"
    procs = f" x{e.processes} processes" if e.processes > 1 else ""
    return (f"{e.method} on {e.backbone}, {e.device}{procs}, {e.precision}: {e.samples} {e.sample_kind}, "
            f"batch {e.batch_size}, {e.batches_per_epoch} batches x {e.epochs} epochs = {e.total_steps} steps; "
            f"{where}; run dir {e.run_dir}")


def _step_fields(e: StepDone) -> str:
    return (f"loss {e.loss:.4f}  lr {e.lr:.2e}  {e.frames_per_second:,.0f} frames/s  "
            f"data wait {100 * e.data_wait:.0f}%")


def _epoch_line(e: EpochDone) -> str:
    saved = f", saved {e.checkpoint.name}" if e.checkpoint else ""
    spread = f", spread {e.spread:.3f}" if e.spread is not None else ""
    return f"epoch {e.epoch}/{e.epochs}: loss {e.loss:.4f}{spread}, lr {e.lr:.2e} ({e.seconds:.1f} s{saved})"


def summary_line(o: Outcome) -> str:
    loss = f", last epoch loss {o.loss:.4f}" if o.loss is not None else ""
    return f"{o.message}{loss}; {o.epoch} epochs, {o.step} steps in {o.seconds:.1f} s; run dir {o.run_dir}"


def _to_screen(text: str) -> None:
    console.print(text, soft_wrap=True, markup=False)


class PlainReporter(Reporter):
    """Periodic lines for logs that are not a terminal; ``write(line)`` says where they go."""

    def __init__(self, interval: float, write: Callable[[str], None] = _to_screen):
        self.interval = interval
        self.last = 0.0
        self.write = write

    def start(self, event: RunStart) -> None:
        self.write(_start_line(event))
        self.last = time.monotonic()

    def step(self, e: StepDone) -> None:
        now = time.monotonic()
        if now - self.last >= self.interval:
            self.last = now
            self.write(f"epoch {e.epoch} batch {e.batch}/{e.batches_per_epoch} step {e.step}/{e.total_steps}  "
                       + _step_fields(e))

    def epoch(self, event: EpochDone) -> None:
        self.write(_epoch_line(event))

    def note(self, text: str) -> None:
        self.write(text)

    def stop(self, outcome: Outcome) -> None:
        self.write(summary_line(outcome))


class LogFile:
    """Appends timestamped lines to a file, opened at the first line (the run dir exists by then)."""

    def __init__(self, path: Path):
        self.path = Path(path)

    def __call__(self, text: str) -> None:
        with writing(self.path), open(self.path, "a") as handle:
            handle.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')}  {text}\n")


def _to_each(event: str):
    """A :class:`Tee` method passing its one argument on to every reporter's ``event``."""

    def forward(self, value) -> None:
        for reporter in self.reporters:
            getattr(reporter, event)(value)

    return forward


class Tee(Reporter):
    """Every event to each of ``reporters``."""

    def __init__(self, *reporters: Reporter):
        self.reporters = reporters

    start = _to_each("start")
    step = _to_each("step")
    epoch = _to_each("epoch")
    note = _to_each("note")
    stop = _to_each("stop")


class RichReporter(Reporter):
    """A live bar over all steps with epoch, loss, lr, throughput and ETA."""

    def __init__(self):
        self.bar = Progress(
            TextColumn("epoch {task.fields[epoch]}"),
            BarColumn(bar_width=24),
            MofNCompleteColumn(),
            TextColumn("{task.fields[status]}"),
            TimeElapsedColumn(),
            TextColumn("eta"),
            TimeRemainingColumn(),
            console=console,
            transient=False,
        )
        self.task = None

    def start(self, event: RunStart) -> None:
        console.print(_start_line(event), soft_wrap=True)
        self.bar.start()
        self.task = self.bar.add_task("train", total=event.total_steps, completed=event.start_step,
                                      epoch=f"{event.start_epoch + 1}/{event.epochs}", status="")

    def step(self, e: StepDone) -> None:
        self.bar.update(self.task, completed=e.step, epoch=f"{e.epoch}/{-(-e.total_steps // e.batches_per_epoch)}",
                        status=_step_fields(e))

    def epoch(self, event: EpochDone) -> None:
        self.bar.console.print(_epoch_line(event), soft_wrap=True)

    def note(self, text: str) -> None:
        self.bar.console.print(text, soft_wrap=True, markup=False)

    def stop(self, outcome: Outcome) -> None:
        self.bar.stop()
        console.print(summary_line(outcome), soft_wrap=True)


def reporter_for(interval: float, is_main: bool, log_file: Path | None = None) -> Reporter:
    """The screen's reporter (a bar on a terminal, plain lines otherwise) and, with ``log_file``,
    plain lines appended to it; process 0 only."""
    if not is_main:
        return Reporter()
    screen = RichReporter() if console.is_terminal else PlainReporter(interval)
    return Tee(screen, PlainReporter(interval, LogFile(log_file))) if log_file is not None else screen
