"""Where each run of a folder stands, read from its run dir alone (``cltt runs``).

    finished     its final checkpoint exists (checkpoint_final.pth, or the lab's simclr_final.pth)
    running      its last segment in run.json has no stop and its process is alive on this host
                 (or runs on another host, which cannot be asked: the note says so)
    failed       its last segment stopped with an error (the message is kept)
    interrupted  its last segment was stopped by Ctrl-C
    stopped      preempted, or killed without a word (no stop recorded, process gone)
    not started  a run dir with nothing trained yet

The states are :data:`cltt.engine.run_files.RUN_STATES`, which ``cltt sweep status`` shares.

Epochs and the last loss come from ``metrics.csv``, the best probe accuracies from
``metrics_eval.csv``, method and backbone from ``recipe.yaml``.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path

from cltt.engine.checkpoint import latest_checkpoint
from cltt.engine.provenance import RunRecord, segment_state
from cltt.engine.run_files import (
    EVAL_FILE,
    FAILED,
    FINISHED,
    INTERRUPTED,
    METRICS_FILE,
    NOT_STARTED,
    RECIPE_FILE,
    RUNNING,
    STOPPED,
    epoch_of,
    final_checkpoint,
)


def read_csv_rows(path: Path) -> list[dict[str, str]]:
    """Rows of a CSV file as dicts; none when it is missing or unreadable."""
    if not path.is_file():
        return []
    try:
        with open(path, newline="") as handle:
            return list(csv.DictReader(handle))
    except (OSError, csv.Error):
        return []


def number(text: str | None) -> float | None:
    """A finite float from a CSV cell, else None."""
    try:
        value = float(text) if text not in (None, "") else None
    except ValueError:
        return None
    return value if value is not None and math.isfinite(value) else None


def best(rows: list[dict[str, str]], column: str) -> float | None:
    values = [v for v in (number(row.get(column)) for row in rows) if v is not None]
    return max(values) if values else None


def epochs_done(rows: list[dict[str, str]], latest: Path | None) -> int:
    """Epochs finished: the last ``metrics.csv`` row, or the latest epoch checkpoint if later."""
    done = max((int(n) for n in (number(r.get("epoch")) for r in rows) if n is not None), default=0)
    epoch = epoch_of(latest.name) if latest else None
    return max(done, epoch) if epoch is not None else done


@dataclass
class RunSummary:
    run: str
    method: str
    backbone: str
    epochs_done: int
    epochs: int | None
    last_loss: float | None
    best_val_acc: float | None
    best_test_acc: float | None
    state: str
    note: str


def _recipe_fields(run_dir: Path) -> tuple[str, str, int | None]:
    import yaml

    try:
        tree = yaml.safe_load((run_dir / RECIPE_FILE).read_text()) or {}
        return (str(tree.get("method", {}).get("name", "?")), str(tree.get("model", {}).get("backbone", "?")),
                int(tree.get("train", {}).get("epochs")))
    except (OSError, TypeError, ValueError, AttributeError, yaml.YAMLError):
        return "?", "?", None


def run_summary(run_dir: Path) -> RunSummary:
    run_dir = Path(run_dir)
    rows = read_csv_rows(run_dir / METRICS_FILE)
    evals = read_csv_rows(run_dir / EVAL_FILE)
    latest = latest_checkpoint(run_dir)
    segments = RunRecord(run_dir).read().get("segments") or []
    last = segments[-1] if segments else None
    if final_checkpoint(run_dir) is not None:
        state, note = FINISHED, ""
    elif last is not None:
        how = segment_state(last)
        state = {"running": RUNNING, "running?": RUNNING, "failed": FAILED, "interrupted": INTERRUPTED}.get(how, STOPPED)
        note = {"killed": "killed: no stop recorded and its process is gone", "running?": "on another host"}.get(
            how, str(last.get("message", "")))
    else:
        state, note = (STOPPED, "") if latest is not None or rows else (NOT_STARTED, "")
    method, backbone, epochs = _recipe_fields(run_dir)
    return RunSummary(run_dir.name, method, backbone, epochs_done(rows, latest), epochs,
                      number(rows[-1].get("loss")) if rows else None,
                      best(evals, "val_acc"), best(evals, "test_acc"), state, note)


def run_summaries(folder: Path) -> list[RunSummary]:
    """Every run dir directly in ``folder`` (a folder with a recipe.yaml), by name."""
    folder = Path(folder)
    return [run_summary(p) for p in sorted(folder.iterdir()) if p.is_dir() and (p / RECIPE_FILE).is_file()]
