"""What a probe found, as data: one score per feature source and probe, and its JSON file.

Accuracies are fractions in [0, 1]; ``None`` (JSON ``null``) where a split has no samples.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

from cltt.errors import CLTTError
from cltt.eval.metrics_eval import EvalRow

REPORT_FORMAT = "cltt-probe/1"


@dataclass
class ProbeScore:
    """Accuracy of one probe on one feature source, per split (for ``recall@k`` and ``mAP``, the
    retrieval metric of the val and test queries), each with its 95% clip-bootstrap interval."""

    features: str  # trained | random_init | pixels
    probe: str  # linear | logistic | knn
    train: float | None
    val: float | None
    test: float | None
    detail: str = ""  # e.g. "C=1 (val)", "k=20, T=0.07"
    losses: dict[str, float | None] = field(default_factory=dict)  # logistic: cross-entropy per split
    intervals: dict[str, list[float] | None] = field(default_factory=dict)  # split -> [low, high], 95%, clips resampled


@dataclass
class ProbeReport:
    checkpoint: str
    epoch: int | None
    level: str  # frame | window | clip; image for an image set
    labels: str  # the labels file, or "folders"; an image set's folder or CSV
    classes: list[str]
    counts: dict[str, dict[str, int]]  # split -> {unit: n, "samples": m}
    feature_dims: dict[str, int]  # source -> F
    scores: list[ProbeScore]
    eval_row: EvalRow | None  # the metrics_eval.csv row (logistic probe on trained features)
    cache: dict[str, str] = field(default_factory=dict)  # source -> "reused PATH" | "computed PATH"
    notes: list[str] = field(default_factory=list)
    unit: str = "clips"  # what the bootstrap resamples and counts count: clips, images or groups

    def score(self, features: str, probe: str) -> ProbeScore | None:
        return next((s for s in self.scores if s.features == features and s.probe == probe), None)

    def to_dict(self) -> dict:
        out = asdict(self)
        out = {"format": REPORT_FORMAT, **out}
        return out


@dataclass
class TaskReport:
    """What a probe task other than class labels found (``probe.task`` phases or slots).

    ``rows`` are the table the CLI prints under ``columns`` (numbers as floats, None for
    n/a): one row per feature source (trained, random_init, baselines) and setting;
    ``metrics`` holds the same numbers keyed for scripts, ``notes`` what a reader must know
    (e.g. how many video pairs gave an undefined Kendall's tau).
    """

    task: str  # phases | slots
    checkpoint: str
    epoch: int | None
    columns: list[str]
    rows: list[list[str | float | int | None]]
    metrics: dict[str, dict[str, float | int | None]]  # source -> metric -> value
    notes: list[str] = field(default_factory=list)
    # cells the task adds to the epoch's metrics_eval.csv row (label_free: lf_rankme, ...), or None
    eval_values: dict[str, float | None] | None = None

    def to_dict(self) -> dict:
        return {"format": f"cltt-probe-{self.task}/1", **asdict(self)}


def unused_level_note(level: str, task: str, what: str) -> list[str]:
    """The note (a list of at most one) that ``probe.level`` has no effect on ``task``, which
    scores single frames or images (``what``): a recipe's ``probe.level: clip`` (a clip method's
    recipe sets it) would otherwise pass without a word."""
    if level == "frame":
        return []
    return [f"probe.level={level} is not used by probe.task={task}, which measures single {what}"]


def check_writable(path: Path) -> None:
    """One line, before any work, when a report cannot be written to ``path``."""
    path = Path(path)
    if path.is_dir():
        raise CLTTError(f"--out {path} is a folder; give a file name such as {path / 'probe.json'}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        probe = path.with_name(f".{path.name}.{os.getpid()}.check")
        probe.write_text("")
        probe.unlink()
    except OSError as err:
        blocker = next((parent for parent in path.parents if parent.exists()), None)
        why = f"{blocker} is a file, not a folder" if blocker is not None and not blocker.is_dir() else err.strerror or err
        raise CLTTError(f"cannot write the probe report {path} ({why}); pass another --out") from None


def save_report(report: ProbeReport | TaskReport, path: Path) -> Path:
    """Write ``report`` as indented JSON, atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(report.to_dict(), indent=2) + "\n")
    os.replace(tmp, path)
    return path
