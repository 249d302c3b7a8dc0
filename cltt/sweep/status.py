"""Where each run of a sweep stands, read from its run dir and its newest log, nothing else.

    finished     its final checkpoint exists (checkpoint_final.pth, or the lab's simclr_final.pth)
    running      its newest log shows a start with no exit after it (or the task was killed: the
                 note says the state is read from the log)
    failed       its newest log ends with a non-zero exit that is neither "saved, requeue me" nor Ctrl-C
    interrupted  its newest log ends with Ctrl-C's exit (130)
    stopped      it has a checkpoint or metrics but is not finished (time limit, preemption)
    not started  nothing yet

The states are :data:`cltt.engine.run_files.RUN_STATES`, the words ``cltt runs`` uses.

Epochs and the last loss come from ``metrics.csv``; the best probe accuracies from
``metrics_eval.csv`` (``epoch,train_loss,train_acc,val_loss,val_acc,test_loss,test_acc``) when
the run has one.
"""

from __future__ import annotations

import csv
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from cltt.engine.checkpoint import latest_checkpoint
from cltt.engine.preemption import INTERRUPTED_EXIT_CODE, REQUEUE_EXIT_CODE
from cltt.engine.run_files import (
    EVAL_FILE,
    FAILED,
    FINISHED,
    INTERRUPTED,
    METRICS_FILE,
    NOT_STARTED,
    RECIPE_FILE,
    RUN_STATES,
    RUNNING,
    STOPPED,
    final_checkpoint,
)
from cltt.engine.run_table import best, epochs_done, number, read_csv_rows
from cltt.sweep.grid import LOGS, read_manifest

# Lines the job-array script and the local runner write around each run.
START = re.compile(r"^cltt-sweep: run (?P<run>\S+) \(")
EXIT = re.compile(r"^cltt-sweep: run (?P<run>\S+) exited (?P<rc>-?\d+)")
SCRIPT_ERROR = "cltt-sweep: error: "
TRACEBACK_LAST = re.compile(r"^[A-Za-z_.]*(Error|Exception|Interrupt): ")
CSV_FIELDS = ("index", "run", "state", "epochs_done", "epochs", "last_loss", "best_val_acc", "best_test_acc",
              "checkpoint", "log", "note")


@dataclass
class RunStatus:
    index: int
    run: str
    state: str
    epochs_done: int
    epochs: int | None
    last_loss: float | None
    best_val_acc: float | None
    best_test_acc: float | None
    checkpoint: str  # name of the latest checkpoint, or ""
    log: str  # newest log file, or ""
    note: str  # the error line of a failed run, or how a stopped one stopped
    values: dict[str, Any] = field(default_factory=dict)  # the run's grid values, {dotted key: value}


def sweep_status(sweep_dir: str | Path) -> list[RunStatus]:
    """One :class:`RunStatus` per run of the manifest, in array-task order."""
    sweep_dir = Path(sweep_dir)
    manifest = read_manifest(sweep_dir)
    keys = list(manifest.get("grid") or {})
    statuses = []
    for i, entry in enumerate(manifest["runs"]):
        status = run_status(sweep_dir, int(entry.get("index", i)), str(entry["name"]), entry.get("run_dir"))
        overrides = entry.get("overrides") if isinstance(entry.get("overrides"), dict) else {}
        status.values = {key: overrides.get(key) for key in keys}
        statuses.append(status)
    return statuses


def run_status(sweep_dir: Path, index: int, name: str, run_dir: str | None = None) -> RunStatus:
    run_path = sweep_dir / (run_dir or f"runs/{name}")
    rows = read_csv_rows(run_path / METRICS_FILE)
    evals = read_csv_rows(run_path / EVAL_FILE)
    latest = latest_checkpoint(run_path) if run_path.is_dir() else None
    log = newest_log(sweep_dir / LOGS, index, name)
    exit_code, started_after_exit, error = _log_state(log, name) if log else (None, False, "")

    if final_checkpoint(run_path) is not None:
        state, note = FINISHED, ""
    elif started_after_exit:
        state, note = RUNNING, "started, no exit in the log yet (or the task was killed)"
    elif exit_code == INTERRUPTED_EXIT_CODE:
        state, note = INTERRUPTED, "Ctrl-C" + ("; checkpoint saved, to be resumed" if latest is not None else "")
    elif exit_code is not None and exit_code not in (0, REQUEUE_EXIT_CODE):
        state, note = FAILED, error or f"exited {exit_code}"
    elif latest is not None or rows:
        state = STOPPED
        note = "checkpoint saved; requeued or to be resumed" if exit_code in (0, REQUEUE_EXIT_CODE) else ""
    else:
        state, note = NOT_STARTED, ""
    return RunStatus(
        index=index, run=name, state=state,
        epochs_done=epochs_done(rows, latest),
        epochs=_epochs_planned(sweep_dir, name, run_path),
        last_loss=number(rows[-1].get("loss")) if rows else None,
        best_val_acc=best(evals, "val_acc"), best_test_acc=best(evals, "test_acc"),
        checkpoint=latest.name if latest else "", log=str(log) if log else "", note=note,
    )


def newest_log(log_dir: Path, index: int, name: str) -> Path | None:
    """The run's newest log: a Slurm array task's (``*_INDEX.out``) or a local run's (``NAME.local.out``)."""
    if not log_dir.is_dir():
        return None
    candidates = [p for p in log_dir.glob(f"*_{index}.out")] + [p for p in log_dir.glob(f"{name}.local.out")]
    return max(candidates, key=lambda p: p.stat().st_mtime_ns) if candidates else None


def _log_state(log: Path, name: str) -> tuple[int | None, bool, str]:
    """(last exit code of this run, whether a start came after it, the last error line of the log)."""
    exit_code, started_after_exit, error = None, False, ""
    try:
        lines = log.read_text(errors="replace").splitlines()
    except OSError:
        return None, False, ""
    for line in lines:
        start, end = START.match(line), EXIT.match(line)
        if start and start.group("run") == name:
            started_after_exit, error = True, ""
        elif end and end.group("run") == name:
            exit_code, started_after_exit = int(end.group("rc")), False
        elif line.startswith(SCRIPT_ERROR):  # the script stopped before or around the run
            exit_code, started_after_exit, error = 2, False, line.removeprefix(SCRIPT_ERROR).strip()
        elif line.startswith("error: "):  # the one-line error of cltt itself
            error = line.removeprefix("error: ").strip()
        elif not error and TRACEBACK_LAST.match(line):
            error = line.strip()
    return exit_code, started_after_exit, error


def _epochs_planned(sweep_dir: Path, name: str, run_path: Path) -> int | None:
    import yaml

    for path in (run_path / RECIPE_FILE, sweep_dir / "recipes" / f"{name}.yaml"):
        try:
            tree = yaml.safe_load(path.read_text()) or {}
            return int(tree["train"]["epochs"])
        except (OSError, KeyError, TypeError, ValueError, yaml.YAMLError):
            continue
    return None


def summary(statuses: list[RunStatus]) -> str:
    """``6 runs: 4 finished, 1 failed, 1 not started``."""
    counts = {s: sum(1 for r in statuses if r.state == s) for s in RUN_STATES}
    parts = [f"{n} {s}" for s, n in counts.items() if n]
    return f"{len(statuses)} runs: " + ", ".join(parts) if parts else "0 runs"


def write_csv(statuses: list[RunStatus], path: str | Path) -> Path:
    """The table as CSV: ``index,run``, one column per grid key (``train.lr``, ...), then the rest of
    :data:`CSV_FIELDS`, so a script can group runs by what varied."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    keys = list(statuses[0].values) if statuses else []
    fields = [*CSV_FIELDS[:2], *keys, *CSV_FIELDS[2:]]
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields)
        writer.writeheader()
        for status in statuses:
            row = {**asdict(status), **status.values}
            writer.writerow({k: "" if row.get(k) is None else row[k] for k in fields})
    return path
