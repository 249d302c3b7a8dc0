"""What the trainer tells whoever shows progress (the CLI's rich or plain reporter, tests).

The engine never prints: it calls a :class:`Reporter`. Every method has a no-op default.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

# How frame-by-frame work (feature extraction for probes, embedding export) reports: (frames done, frames in all).
Progress = Callable[[int, int], None]


@dataclass
class RunStart:
    run_dir: Path
    method: str
    backbone: str
    device: str
    precision: str
    processes: int
    samples: int  # training samples per epoch, each one sample_kind
    batch_size: int
    batches_per_epoch: int
    epochs: int
    total_steps: int
    start_epoch: int  # epochs already finished
    start_step: int  # optimizer steps already taken
    resumed_from: Path | None
    sample_kind: str = "windows"  # what a sample is: windows (most methods), videos (CARL)
    start_batch: int = 0  # batches of the unfinished epoch already taken


@dataclass
class StepDone:
    epoch: int  # 1-based epoch in progress
    batch: int  # 1-based batch within the epoch
    batches_per_epoch: int
    step: int  # global optimizer steps taken so far
    total_steps: int
    loss: float
    lr: float
    frames_per_second: float
    data_wait: float  # fraction of the step's wall time spent waiting for the loader


@dataclass
class EpochDone:
    epoch: int
    epochs: int
    loss: float
    lr: float
    decay_rate: float
    seconds: float
    checkpoint: Path | None
    spread: float | None = None  # mean embedding spread over the epoch (cltt.engine.collapse)


@dataclass
class Outcome:
    status: str  # finished | preempted (a scheduler's signal) | interrupted (Ctrl-C) | already_finished
    exit_code: int
    message: str
    run_dir: Path
    epoch: int
    step: int
    loss: float | None
    checkpoint: Path | None
    seconds: float


class Reporter:
    def start(self, event: RunStart) -> None:
        pass

    def step(self, event: StepDone) -> None:
        pass

    def epoch(self, event: EpochDone) -> None:
        pass

    def note(self, text: str) -> None:
        pass

    def stop(self, outcome: Outcome) -> None:
        pass
