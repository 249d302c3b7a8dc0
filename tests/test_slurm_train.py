"""A real Slurm job: USR1 before the time limit, the trainer saves and requeues, the rerun finishes.

Needs the single-node Slurm of ../shared/slurm/local-cluster.sh (root); skipped with the reason
elsewhere. Run with ``pytest -m slurm``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import yaml

from tests.slurm_cluster import slurm  # noqa: F401  (the fixture)

pytestmark = [pytest.mark.slurm, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[1]
EPOCHS = 360  # ~50 s of training on one CPU: longer than the first warning (at most 30 s in)


def test_warning_before_the_time_limit_requeues_and_finishes(slurm, tmp_path, frames_root):  # noqa: F811
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
        sbatch=["--time=1", "--signal=USR1@30", "--cpus-per-task=1"],
        env={"CLTT_COMMAND": f"{sys.executable} -m cltt", "OMP_NUM_THREADS": "1"},
        cwd=tmp_path,
    )
    assert slurm.wait_for(job, timeout=600) == "COMPLETED", slurm.output(job)
    log = slurm.output(job)
    assert int(slurm.job_field(job, "Restarts")) >= 1, log
    assert "SIGUSR1: saved" in log and "requeued Slurm job" in log, log
    assert f"trained {EPOCHS} epochs" in log, log
    run_dir = tmp_path / "runs" / "tiny"
    rows = (run_dir / "metrics.csv").read_text().splitlines()[1:]
    assert [int(r.split(",")[0]) for r in rows] == list(range(1, EPOCHS + 1))
    assert (run_dir / "simclr_final.pth").is_file()
