"""What a run was: ``RUN_DIR/run.json`` and ``RUN_DIR/metrics_steps.csv``.

``run.json`` holds, for the run, the cltt, torch and CUDA versions and the git commit of the
folder it was started from (when that is a repository), and one *segment* per start of the
process (a first train, each resume and requeue)::

    {"start": ISO time, "stop": ISO time or null, "reason": "finished" | "preempted" | "failed"
     | "interrupted" | "running", "message": ..., "command": [argv], "host": ..., "pid": ...,
     "world_size": P, "device": "cuda:0", "from_step": S, "to_step": S'}

A segment whose ``stop`` is null was killed (SIGKILL, OOM, node failure) or is still running;
``cltt runs`` tells the two apart by the pid on the same host. The file is rewritten
atomically at each start and stop, by process 0 only.

``metrics_steps.csv`` logs ``step,epoch,loss,learning_rate,frames_per_second,data_wait`` every
``log.step_every`` steps; a resumed run first drops rows after its checkpoint's step.
"""

from __future__ import annotations

import csv
import json
import os
import socket
import subprocess
import sys
from datetime import datetime
from pathlib import Path

from cltt.engine.checkpoint import replace_atomically
from cltt.engine.run_files import RUN_FILE, STEPS_FILE
from cltt.engine.run_lock import process_alive
from cltt.errors import writing

STEPS_HEADER = ["step", "epoch", "loss", "learning_rate", "frames_per_second", "data_wait"]


def _now() -> str:
    return datetime.now().astimezone().isoformat(timespec="seconds")


def git_commit(folder: Path) -> str | None:
    """The commit checked out in ``folder`` (``+dirty`` with uncommitted changes), None outside a repository."""
    try:
        head = subprocess.run(["git", "-C", str(folder), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5)
        if head.returncode != 0:
            return None
        dirty = subprocess.run(["git", "-C", str(folder), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=5)
        return head.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return None


class RunRecord:
    """Start and stop the segments of ``RUN_DIR/run.json``."""

    def __init__(self, run_dir: Path):
        self.path = Path(run_dir) / RUN_FILE

    def read(self) -> dict:
        try:
            content = json.loads(self.path.read_text())
            return content if isinstance(content, dict) else {}
        except (OSError, ValueError):
            return {}

    def _write(self, content: dict) -> None:
        text = (json.dumps(content, indent=2) + "\n").encode()
        replace_atomically(self.path, lambda handle: handle.write(text))

    def start(self, world_size: int, device: str, step: int) -> None:
        import torch

        from cltt import __version__

        content = self.read()
        content.update({
            "cltt": __version__, "python": sys.version.split()[0], "torch": torch.__version__,
            "cuda": torch.version.cuda, "git_commit": git_commit(Path.cwd()),
        })
        content.setdefault("segments", []).append({
            "start": _now(), "stop": None, "reason": "running", "message": "", "command": list(sys.argv),
            "cwd": str(Path.cwd()), "host": socket.gethostname(), "pid": os.getpid(), "world_size": world_size,
            "device": device, "from_step": step, "to_step": None,
        })
        self._write(content)

    def stop(self, reason: str, message: str, step: int) -> None:
        content = self.read()
        segments = content.get("segments") or []
        if not segments:
            return
        segments[-1].update(stop=_now(), reason=reason, message=message, to_step=step)
        self._write(content)


def segment_state(segment: dict) -> str:
    """``running`` (its process is alive on this host), ``killed`` (no stop recorded and gone), or its reason."""
    if segment.get("stop") is not None:
        return str(segment.get("reason"))
    if segment.get("host") == socket.gethostname():
        return "running" if process_alive(segment.get("pid", 0)) else "killed"
    return "running?"  # on another host: alive, or killed without a word


class StepMetrics:
    """Append-only ``metrics_steps.csv``."""

    def __init__(self, run_dir: Path):
        self.path = Path(run_dir) / STEPS_FILE

    def keep_steps_up_to(self, step: int) -> None:
        """Drop rows after ``step`` (logged by a run killed before its next checkpoint)."""
        if not self.path.is_file():
            return
        with open(self.path, newline="") as handle:
            rows = [row for row in csv.DictReader(handle) if int(row["step"]) <= step]
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        with writing(self.path), open(tmp, "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(STEPS_HEADER)
            writer.writerows([row[key] for key in STEPS_HEADER] for row in rows)
        os.replace(tmp, self.path)

    def append(self, step: int, epoch: int, loss: float, learning_rate: float, frames_per_second: float,
               data_wait: float) -> None:
        new = not self.path.is_file()
        with writing(self.path), open(self.path, "a", newline="") as handle:
            writer = csv.writer(handle)
            if new:
                writer.writerow(STEPS_HEADER)
            writer.writerow([step, epoch, f"{loss:.6f}", f"{learning_rate:.8g}", f"{frames_per_second:.1f}",
                             f"{data_wait:.4f}"])
