"""``metrics.csv`` of a run dir, in the lab's format: ``epoch,loss,learning_rate,decay_rate``.

One row per finished epoch: the mean training loss over the epoch's steps, the learning rate
of its last step, and that rate divided by the initial one. A resumed run first drops rows of
epochs its checkpoint had not finished (a kill between the row and the checkpoint), so the
file of an interrupted run equals that of an uninterrupted one.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

from cltt.errors import writing

HEADER = ["epoch", "loss", "learning_rate", "decay_rate"]


class MetricsCSV:
    def __init__(self, path: Path):
        self.path = Path(path)

    def rows(self) -> list[dict[str, str]]:
        if not self.path.is_file():
            return []
        with open(self.path, newline="") as handle:
            return list(csv.DictReader(handle))

    def keep_epochs_up_to(self, epoch: int) -> None:
        """Drop rows after ``epoch`` (written by a run that stopped before checkpointing them)."""
        rows = [row for row in self.rows() if int(row["epoch"]) <= epoch]
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        with writing(self.path), open(tmp, "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(HEADER)
            for row in rows:
                writer.writerow([row[key] for key in HEADER])
        os.replace(tmp, self.path)

    def append(self, epoch: int, loss: float, learning_rate: float, decay_rate: float) -> None:
        new = not self.path.is_file()
        with writing(self.path), open(self.path, "a", newline="") as handle:  # a full disk fails at close: named
            writer = csv.writer(handle)
            if new:
                writer.writerow(HEADER)
            writer.writerow([epoch, f"{loss:.6f}", f"{learning_rate:.8g}", f"{decay_rate:.6f}"])
