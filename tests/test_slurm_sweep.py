"""Real Slurm job arrays from ``cltt sweep --slurm``: every task runs to completion, and a warned
task saves, is requeued on its own (its running sibling untouched) and finishes.

Needs the single-node Slurm of ../shared/slurm/local-cluster.sh (root); skipped with the reason
elsewhere. Run with ``pytest -m slurm``.
"""

from __future__ import annotations

import re
import sys
import time
from pathlib import Path

import pytest
import yaml

from cltt.engine import run_files
from tests.slurm_cluster import slurm  # noqa: F401  (the fixture)
from tests.sweep_helpers import sweep

pytestmark = [pytest.mark.slurm, pytest.mark.slow]

JOB_ENV = {"CLTT_COMMAND": f"{sys.executable} -m cltt", "OMP_NUM_THREADS": "1"}


def write_recipe(folder: Path, frames_root: Path, epochs: int, lrs: list[float]) -> Path:
    path = folder / "tiny.yaml"
    path.write_text(yaml.safe_dump({
        "data": {"root": str(frames_root), "window_size": 3, "image_size": 32},
        "model": {"backbone": "tiny_cnn", "projection_dim": 16},
        "train": {"epochs": epochs, "batch_size": 8, "device": "cpu", "keep_last": 1},
        "log": {"interval": 5},
        "sweep": {"grid": {"train.lr": lrs},
                  "slurm": {"gpus": 0, "cpus_per_task": 1, "partition": "debug", "time": "00:05:00"}},
    }))
    return path


def submit_sweep(cluster, tmp_path: Path, *args: str) -> str:
    result = sweep(*args, "--slurm", cwd=tmp_path, env=JOB_ENV)
    assert result.exit_code == 0, result.stdout + result.stderr
    match = re.search(r"submitted job array (\d+)", result.stdout)
    assert match, result.stdout
    cluster.jobs.append(match.group(1))  # cancelled for good after the test
    return match.group(1)


def test_sweep_array_runs_every_task_to_completion(slurm, tmp_path, frames_root):  # noqa: F811
    recipe = write_recipe(tmp_path, frames_root, epochs=2, lrs=[1e-3, 3e-4, 1e-4])
    job = submit_sweep(slurm, tmp_path, recipe)
    sweep_dir = tmp_path / "sweeps" / "tiny"
    assert yaml.safe_load((sweep_dir / "sweep.yaml").read_text())["jobs"][0]["id"] == job
    for task in range(3):
        assert slurm.wait_for(f"{job}_{task}", timeout=300) == "COMPLETED", slurm.output(f"{job}_{task}")
    for name in ("lr1e-3", "lr3e-4", "lr1e-4"):
        assert (sweep_dir / "runs" / name / run_files.FINAL_CHECKPOINT).is_file()
    log = (sweep_dir / "logs" / f"tiny-{job}_1.out").read_text()
    assert "cltt-sweep: run lr3e-4 (task 1 of 3" in log and "cltt-sweep: run lr3e-4 exited 0" in log
    result = sweep("status", "sweeps/tiny", cwd=tmp_path)
    assert "3 runs: 3 finished" in result.stdout

    result = sweep(recipe, "--slurm", cwd=tmp_path, env=JOB_ENV)  # again: every run is finished
    assert result.exit_code == 0 and "all 3 runs are finished; nothing to submit" in result.stdout


def test_warned_task_requeues_itself_only_and_finishes(slurm, tmp_path, frames_root):  # noqa: F811
    """train.requeue=false: the trainer saves and exits 75, and the script requeues JOB_TASK from the host
    (the container path); a requeue of the whole array would restart task 1 too."""
    recipe = write_recipe(tmp_path, frames_root, epochs=60, lrs=[1e-3, 3e-4])
    job = submit_sweep(slurm, tmp_path, recipe, "train.requeue=false")
    log0 = tmp_path / "sweeps" / "tiny" / "logs" / f"tiny-{job}_0.out"
    deadline = time.monotonic() + 180
    while not (log0.is_file() and "epoch 1/60" in log0.read_text()):  # trainer running, handlers installed
        assert time.monotonic() < deadline, slurm.output(f"{job}_0")
        time.sleep(0.5)
    slurm.signal(f"{job}_0", "USR1")  # what --signal=USR1@N (no B:) delivers: to the job steps
    for task in range(2):
        assert slurm.wait_for(f"{job}_{task}", timeout=400) == "COMPLETED", slurm.output(f"{job}_{task}")
    text = log0.read_text()
    assert "SIGUSR1: saved" in text and "requeue" in text, text
    assert "start 2," in text and "trained 60 epochs" in text, text
    assert int(slurm.job_field(f"{job}_0", "Restarts")) == 1
    assert int(slurm.job_field(f"{job}_1", "Restarts")) == 0  # the sibling was never killed
    run_dir = tmp_path / "sweeps" / "tiny" / "runs" / "lr1e-3"
    rows = (run_dir / "metrics.csv").read_text().splitlines()[1:]
    assert [int(r.split(",")[0]) for r in rows] == list(range(1, 61))
    assert "2 runs: 2 finished" in sweep("status", "sweeps/tiny", cwd=tmp_path).stdout
