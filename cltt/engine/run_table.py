"""Where each run of a folder stands, read from its run dir alone (``cltt runs``).

    finished  simclr_final.pth exists
    running   its last segment in run.json has no stop and its process is alive on this host
    failed    its last segment stopped with an error (the message is kept)
    stopped   preempted, interrupted, or killed without a word (no stop recorded, process gone)
    new       a run dir with nothing trained yet

Epochs and the last loss come from ``metrics.csv``, the best probe accuracies from
``metrics_eval.csv``, method and backbone from ``recipe.yaml``.
"""

from __future__ import annotations

import csv
import math
import re
from dataclasses import dataclass
from pathlib import Path

from cltt.engine.checkpoint import FINAL_NAME, latest_checkpoint
from cltt.engine.provenance import RunRecord, segment_state

_EPOCH_CKPT = re.compile(r"simclr_epoch_(\d+)\.pth$")


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
    match = _EPOCH_CKPT.search(latest.name) if latest else None
    return max(done, int(match.group(1))) if match else done


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
        tree = yaml.safe_load((run_dir / "recipe.yaml").read_text()) or {}
        return (str(tree.get("method", {}).get("name", "?")), str(tree.get("model", {}).get("backbone", "?")),
                int(tree.get("train", {}).get("epochs")))
    except (OSError, TypeError, ValueError, AttributeError, yaml.YAMLError):
        return "?", "?", None


def run_summary(run_dir: Path) -> RunSummary:
    run_dir = Path(run_dir)
    rows = read_csv_rows(run_dir / "metrics.csv")
    evals = read_csv_rows(run_dir / "metrics_eval.csv")
    latest = latest_checkpoint(run_dir)
    segments = RunRecord(run_dir).read().get("segments") or []
    last = segments[-1] if segments else None
    if (run_dir / FINAL_NAME).is_file():
        state, note = "finished", ""
    elif last is not None:
        how = segment_state(last)
        state = {"running": "running", "running?": "running", "failed": "failed"}.get(how, "stopped")
        note = {"killed": "killed: no stop recorded and its process is gone", "running?": "on another host"}.get(
            how, str(last.get("message", "")))
    else:
        state, note = ("stopped", "") if latest is not None or rows else ("new", "")
    method, backbone, epochs = _recipe_fields(run_dir)
    return RunSummary(run_dir.name, method, backbone, epochs_done(rows, latest), epochs,
                      number(rows[-1].get("loss")) if rows else None,
                      best(evals, "val_acc"), best(evals, "test_acc"), state, note)


def run_summaries(folder: Path) -> list[RunSummary]:
    """Every run dir directly in ``folder`` (a folder with a recipe.yaml), by name."""
    folder = Path(folder)
    return [run_summary(p) for p in sorted(folder.iterdir()) if p.is_dir() and (p / "recipe.yaml").is_file()]
