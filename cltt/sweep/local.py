"""A sweep's runs one after another on this machine, each ``cltt train`` in its own process.

A separate process per run keeps runs independent (a crash, a leaked CUDA context or a global
seed cannot reach the next run). Each run's output goes to ``logs/<run>.local.out`` between
the same ``cltt-sweep:`` start and exit lines the Slurm script writes, so ``cltt sweep status``
reads both alike. A failed run does not stop the sweep; a finished one is skipped.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Callable, Sequence

from cltt.engine.run_files import final_checkpoint
from cltt.sweep.grid import LOGS, SweepPlan, SweepRun

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


@dataclass
class LocalResult:
    run: SweepRun
    status: str  # finished | failed | skipped | interrupted
    exit_code: int
    seconds: float
    log: Path
    last_line: str  # the run's last output line (its summary or its error)


def cltt_command() -> list[str]:
    """This interpreter's ``python -m cltt``: the runs use the same installation as the sweep."""
    return [sys.executable, "-m", "cltt"]


def run_local(plan: SweepPlan, command: Sequence[str] | None = None,
              on_start: Callable[[SweepRun], None] | None = None,
              on_done: Callable[[LocalResult], None] | None = None) -> list[LocalResult]:
    """Train every run of the plan in turn; returns one :class:`LocalResult` per run.

    Ctrl-C stops the current run (it saves a checkpoint) and the sweep; rerunning the same
    ``cltt sweep --local`` continues where it stopped (train.resume=auto, finished runs skipped).
    """
    command = list(command or cltt_command())
    results: list[LocalResult] = []
    (plan.dir / LOGS).mkdir(parents=True, exist_ok=True)
    for run in plan.runs:
        log = plan.dir / LOGS / f"{run.name}.local.out"
        if final_checkpoint(plan.run_dir(run)) is not None:
            result = LocalResult(run, "skipped", 0, 0.0, log, "already finished")
        else:
            if on_start:
                on_start(run)
            result = _train(run, plan.recipe_path(run), log, command)
        results.append(result)
        if on_done:
            on_done(result)
        if result.status == "interrupted":
            break
    return results


def _train(run: SweepRun, recipe: Path, log: Path, command: list[str]) -> LocalResult:
    args = [*command, "train", str(recipe), "train.resume=auto"]
    started = time.perf_counter()
    with open(log, "a") as out:
        out.write(f"cltt-sweep: run {run.name} (local, run {run.index}), {_now()}\n"
                  f"cltt-sweep: {' '.join(args)}\n")
        out.flush()
        try:
            process = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                       preexec_fn=_end_with_parent(os.getpid()))
            try:
                code = process.wait()
            except KeyboardInterrupt:  # the child got the Ctrl-C too: let it save and exit
                code = process.wait()
                out.write(f"cltt-sweep: run {run.name} exited {code}: interrupted, {_now()}\n")
                return LocalResult(run, "interrupted", code, time.perf_counter() - started, log, "interrupted")
        except OSError as err:
            out.write(f"cltt-sweep: error: cannot start {args[0]}: {err}\n")
            return LocalResult(run, "failed", 127, time.perf_counter() - started, log, f"cannot start {args[0]}: {err}")
        out.write(f"cltt-sweep: run {run.name} exited {code}, {_now()}\n")
    status = "finished" if code == 0 else "failed"
    return LocalResult(run, status, code, time.perf_counter() - started, log, _last_line(log))


def _end_with_parent(parent: int) -> Callable[[], None] | None:
    """In the child, before it runs: ask Linux to send it SIGTERM when the sweep process dies,
    even by SIGKILL, so no run trains on as an orphan. The trainer takes SIGTERM as a stop: it
    saves a checkpoint, and rerunning the sweep continues it. Elsewhere (macOS) there is no such
    request; None."""
    if not sys.platform.startswith("linux"):
        return None

    def request() -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
        if os.getppid() != parent:  # the sweep died before the request was made
            os.kill(os.getpid(), signal.SIGTERM)

    return request


def _last_line(log: Path) -> str:
    """The run's summary or one-line error: the last line before our exit line that says something."""
    lines = [line.strip() for line in log.read_text(errors="replace").splitlines() if line.strip()]
    for line in reversed(lines):
        if not line.startswith("cltt-sweep: "):
            return line.removeprefix("error: ")
    return ""


def _now() -> str:
    return datetime.now().strftime("%Y-%m-%d %H:%M:%S")
