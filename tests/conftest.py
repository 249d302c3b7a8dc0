"""Shared fixtures: small frames roots of real JPEGs on disk."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import cv2
import numpy as np
import pytest

from cltt.engine import preemption

os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")


def write_clip(root: Path, clip: str, num_frames: int, size: tuple[int, int] = (48, 64), name: str = "frame_{:d}.jpg") -> Path:
    """A clip folder of JPEG frames whose content encodes the frame number (a moving square).

    Frame i (1-based) has a square at x = 3 * i (mod width) and a grey band 10 * i along the top,
    so tests can tell frames apart and read their order back.
    """
    folder = root / clip
    folder.mkdir(parents=True, exist_ok=True)
    height, width = size
    for i in range(1, num_frames + 1):
        image = np.full((height, width, 3), 30, dtype=np.uint8)
        x = (3 * i) % (width - 8)
        image[height // 2 - 4 : height // 2 + 4, x : x + 8] = (40, 220, 90)
        image[:6, :] = min(255, 10 * i)
        cv2.imwrite(str(folder / name.format(i)), image, [cv2.IMWRITE_JPEG_QUALITY, 95])
    return folder


@pytest.fixture(autouse=True, scope="session")
def cltt_cache_dir(tmp_path_factory) -> Path:
    """cltt's cache folder (manifests) for this test session, and every process it starts: tests
    never write into the user's ~/.cache/cltt."""
    path = tmp_path_factory.mktemp("cltt-cache")
    os.environ["CLTT_CACHE"] = str(path)
    return path


@pytest.fixture
def frames_root(tmp_path: Path) -> Path:
    """Three clips of 12, 17 and 22 frames (48x64 JPEGs) under tmp_path/frames."""
    root = tmp_path / "frames"
    for c, n in enumerate((12, 17, 22)):
        write_clip(root, f"clip{c}", n)
    return root


SIGNALS_TOUCHED_BY_TRAIN = (signal.SIGUSR1, signal.SIGUSR2, signal.SIGTERM, signal.SIGINT)


def invoke_in_process(command, args, cwd: Path, env: dict | None = None, prog_name: str | None = None):
    """Run a click command of the real CLI in this process, from ``cwd`` (a subprocess start
    costs seconds of imports). ``cltt train`` installs signal handlers; they are put back, and
    a non-exit exception is re-raised so a bug shows its traceback. Returns click's Result.
    """
    from click.testing import CliRunner

    from cltt.engine import preemption

    saved = {s: signal.getsignal(s) for s in SIGNALS_TOUCHED_BY_TRAIN}
    here = os.getcwd()
    os.chdir(cwd)
    try:
        result = CliRunner().invoke(command, [str(a) for a in args], prog_name=prog_name,
                                    env={"COLUMNS": "200", "SLURM_JOB_ID": None, **(env or {})})
    finally:
        os.chdir(here)
        preemption.reset()
        for s, handler in saved.items():
            signal.signal(s, handler)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result


@pytest.fixture
def preemption_handlers(monkeypatch):
    """The trainer's real signal handlers, restored afterwards; no Slurm environment."""
    for name in ("SLURM_JOB_ID", "SLURM_ARRAY_JOB_ID", "SLURM_ARRAY_TASK_ID"):
        monkeypatch.delenv(name, raising=False)
    saved = {s: signal.getsignal(s) for s in SIGNALS_TOUCHED_BY_TRAIN}
    preemption.install()
    preemption.reset()
    yield
    preemption.reset()
    for s, handler in saved.items():
        signal.signal(s, handler)
