"""A real Slurm job: USR1 before the time limit, the trainer saves and requeues, the rerun finishes.

Needs the single-node Slurm of ../shared/slurm/local-cluster.sh (root); skipped with the reason
elsewhere. Run with ``pytest -m slurm``.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import pytest
import yaml

from cltt.engine import run_files
from tests.slurm_cluster import slurm  # noqa: F401  (the fixture)

pytestmark = [pytest.mark.slurm, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[1]
EPOCHS = 360  # ~20-50 s of training on one CPU: the warning, sent once epoch 1 is done, always lands inside


def test_warning_during_training_requeues_and_finishes(slurm, tmp_path, frames_root):  # noqa: F811
    """The warning arrives during training by construction, on fast and slow machines alike: it
    is sent (``scancel -s USR1``, what ``--signal=USR1@N`` without ``B:`` delivers) once the log
    shows the first epoch, not left to a time limit a fast machine can outrun."""
    recipe = tmp_path / "tiny.yaml"
    recipe.write_text(yaml.safe_dump({
        "data": {"root": str(frames_root), "window_size": 3, "image_size": 32},
        "model": {"backbone": "tiny_cnn", "projection_dim": 16},
        "train": {"epochs": EPOCHS, "batch_size": 8, "device": "cpu", "out_dir": str(tmp_path / "runs"),
                  "keep_last": 2},
        "log": {"interval": 5},
    }))
    (tmp_path / "logs").mkdir()
    job = slurm.submit(
        REPO / "slurm" / "train.sh", recipe,
        sbatch=["--time=10", "--cpus-per-task=1"],
        env={"CLTT_COMMAND": f"{sys.executable} -m cltt", "OMP_NUM_THREADS": "1"},
        cwd=tmp_path,
    )
    deadline = time.monotonic() + 300
    while f"epoch 1/{EPOCHS}:" not in slurm.output(job):  # the trainer runs, its handlers are installed
        assert time.monotonic() < deadline, slurm.output(job)
        time.sleep(0.2)
    slurm.signal(job, "USR1")
    assert slurm.wait_for(job, timeout=600) == "COMPLETED", slurm.output(job)
    log = slurm.output(job)
    assert int(slurm.job_field(job, "Restarts")) >= 1, log
    assert "SIGUSR1: saved" in log and "requeued Slurm job" in log, log
    assert f"trained {EPOCHS} epochs" in log, log
    run_dir = tmp_path / "runs" / "tiny"
    rows = (run_dir / "metrics.csv").read_text().splitlines()[1:]
    assert [int(r.split(",")[0]) for r in rows] == list(range(1, EPOCHS + 1))
    assert (run_dir / run_files.FINAL_CHECKPOINT).is_file()
    segments = json.loads((run_dir / "run.json").read_text())["segments"]
    assert [s["reason"] for s in segments] == ["preempted", "finished"]
