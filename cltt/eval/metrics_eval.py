"""``metrics_eval.csv`` of a run dir, in the lab's format.

Header ``epoch,train_loss,train_acc,val_loss,val_acc,test_loss,test_acc`` (the lab's), then
``train_acc_low,train_acc_high,val_acc_low,val_acc_high,test_acc_low,test_acc_high``; one row
per probed epoch, from the logistic probe on the trained features: ``*_acc`` is the fraction
of samples classified correctly (in [0, 1], not percent), ``*_acc_low``/``*_acc_high`` its 95%
interval from a bootstrap over clips, and ``*_loss`` the probe's mean cross-entropy in nats on
that split. A split with no samples leaves its cells empty. A file with only the lab's
columns is read and rewritten with all of them. Probing an epoch
again replaces its row, and rows stay sorted by epoch.

A task without labels adds columns of its own after these (``label_free``: ``lf_rankme``,
``lf_rankme_low``, ``lf_rankme_high``, ...; :func:`append_eval_values`), leaving the lab's
columns of its rows empty; they keep the order in which they first came.
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from pathlib import Path

from cltt.engine.run_files import EVAL_FILE
from cltt.errors import CLTTError

LAB_HEADER = ["epoch", "train_loss", "train_acc", "val_loss", "val_acc", "test_loss", "test_acc"]
INTERVAL_COLUMNS = [f"{split}_acc_{end}" for split in ("train", "val", "test") for end in ("low", "high")]
HEADER = LAB_HEADER + INTERVAL_COLUMNS  # the lab's columns first, so its readers keep working


@dataclass
class EvalRow:
    epoch: int
    train_loss: float | None
    train_acc: float | None
    val_loss: float | None
    val_acc: float | None
    test_loss: float | None
    test_acc: float | None
    # the 95% interval of each accuracy (bootstrap over clips), after the lab's columns
    train_acc_low: float | None = None
    train_acc_high: float | None = None
    val_acc_low: float | None = None
    val_acc_high: float | None = None
    test_acc_low: float | None = None
    test_acc_high: float | None = None

    def cells(self) -> list[str]:
        return [str(self.epoch)] + ["" if getattr(self, k) is None else f"{getattr(self, k):.6f}" for k in HEADER[1:]]


def read_eval_rows(run_dir: Path) -> list[dict[str, str]]:
    """The rows of ``RUN_DIR/metrics_eval.csv`` as dicts (empty when there is none)."""
    path = Path(run_dir) / EVAL_FILE
    if not path.is_file():
        return []
    with open(path, newline="") as handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        if header is None:
            return []
        # a file written before the interval columns is read as it is; a task's own columns follow HEADER
        if header != LAB_HEADER and header[:len(HEADER)] != HEADER:
            raise CLTTError(f"{path} has the header {','.join(header)}, not {','.join(HEADER)}; move it aside "
                            "so cltt can write its own")
        return [{**dict.fromkeys(header, ""), **dict.fromkeys(HEADER, ""), **dict(zip(header, row))}
                for row in reader if row]


def _write(run_dir: Path, rows: list[dict[str, str]]) -> Path:
    path = Path(run_dir) / EVAL_FILE
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    extra = [k for k in dict.fromkeys(k for row in rows for k in row) if k not in HEADER]
    with open(tmp, "w", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(HEADER + extra)
        for row in sorted(rows, key=lambda r: int(r["epoch"])):
            writer.writerow([row.get(k, "") for k in HEADER + extra])
    os.replace(tmp, path)
    return path


def append_eval_row(run_dir: Path, row: EvalRow) -> Path:
    """Add (or replace) the row of ``row.epoch`` in ``RUN_DIR/metrics_eval.csv``; returns its path."""
    Path(run_dir).mkdir(parents=True, exist_ok=True)
    rows = [r for r in read_eval_rows(run_dir) if int(r["epoch"]) != row.epoch]
    rows.append(dict(zip(HEADER, row.cells())))
    return _write(run_dir, rows)


def append_eval_values(run_dir: Path, epoch: int, values: dict[str, float | None]) -> Path:
    """Set a task's own cells ``values`` (column -> number, None for empty) in the row of
    ``epoch`` of ``RUN_DIR/metrics_eval.csv``, adding the row or the columns as needed."""
    Path(run_dir).mkdir(parents=True, exist_ok=True)
    rows = read_eval_rows(run_dir)
    row = next((r for r in rows if int(r["epoch"]) == epoch), None)
    if row is None:
        row = {**dict.fromkeys(HEADER, ""), "epoch": str(epoch)}
        rows.append(row)
    row.update({k: "" if v is None else f"{v:.6f}" for k, v in values.items()})
    return _write(run_dir, rows)


def keep_eval_rows_up_to(run_dir: Path, epoch: int) -> None:
    """Drop rows after ``epoch`` (a resumed run rewrites them), like ``metrics.csv``."""
    rows = read_eval_rows(run_dir)
    kept = [r for r in rows if int(r["epoch"]) <= epoch]
    if len(kept) != len(rows):
        _write(run_dir, kept)
