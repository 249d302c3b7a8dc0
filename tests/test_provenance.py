"""What a run records about itself: run.json, train.log, metrics_steps.csv, and cltt runs."""

from __future__ import annotations

import csv
import json
import subprocess
from pathlib import Path

from cltt.cli import main
from cltt.visualize import read_metrics
from tests.conftest import invoke_in_process

QUICKSTART = Path(__file__).parent.parent / "recipes" / "quickstart.yaml"


def train(tmp_path: Path, frames_root: Path, *extra: str):
    args = ["train", QUICKSTART, f"data.root={frames_root}", "data.image_size=32", "model.backbone=tiny_cnn",
            "data.num_workers=0", "train.batch_size=4", "log.step_every=2", *extra]
    return invoke_in_process(main, args, tmp_path)


def test_a_run_records_what_it_was(tmp_path, frames_root):
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    (tmp_path / "notes.txt").write_text("x")
    subprocess.run(["git", "-c", "user.email=a@b", "-c", "user.name=a", "commit", "-qm", "x", "--allow-empty"],
                   cwd=tmp_path, check=True)
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=tmp_path, capture_output=True, text=True).stdout.strip()
    result = train(tmp_path, frames_root, "train.epochs=2", "train.name=record")
    assert result.exit_code == 0, result.output
    run_dir = tmp_path / "runs" / "record"
    record = json.loads((run_dir / "run.json").read_text())
    assert record["cltt"] and record["torch"] and record["git_commit"] == head
    [segment] = record["segments"]
    assert segment["reason"] == "finished" and segment["stop"] and segment["world_size"] == 1
    assert segment["device"] == "cpu" and segment["from_step"] == 0 and segment["to_step"] == 10
    assert segment["host"] and segment["pid"] and segment["command"]
    with open(run_dir / "metrics_steps.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [int(r["step"]) for r in rows] == [2, 4, 6, 8, 10]
    assert set(rows[0]) == {"step", "epoch", "loss", "learning_rate", "frames_per_second", "data_wait"}
    assert read_metrics(run_dir)["step"] == [2.0, 4.0, 6.0, 8.0, 10.0]  # the curves use the steps
    log = (run_dir / "train.log").read_text().splitlines()
    assert any("epoch 2/2: loss" in line for line in log) and "trained 2 epochs" in log[-1]

    again = invoke_in_process(main, ["resume", run_dir, "train.epochs=3", "--change-length"], tmp_path)
    assert again.exit_code == 0, again.output
    segments = json.loads((run_dir / "run.json").read_text())["segments"]
    assert [s["from_step"] for s in segments] == [0, 10] and segments[1]["to_step"] == 15
    assert "trained 3 epochs" in (run_dir / "train.log").read_text().splitlines()[-1]


def test_cltt_runs_tells_finished_failed_and_stopped_apart(tmp_path, frames_root):
    assert train(tmp_path, frames_root, "train.epochs=1", "train.name=good").exit_code == 0
    failed = train(tmp_path, frames_root, "train.epochs=1", "train.name=diverged", "train.lr=1e30",
                   "train.optimizer=sgd")
    assert failed.exit_code == 2 and "the loss is" in failed.output, failed.output
    record = json.loads((tmp_path / "runs" / "diverged" / "run.json").read_text())
    assert record["segments"][-1]["reason"] == "failed" and "the loss is" in record["segments"][-1]["message"]
    result = invoke_in_process(main, ["runs", tmp_path / "runs"], tmp_path)
    assert result.exit_code == 0, result.output
    rows = {line.split("│")[1].strip(): line for line in result.output.splitlines() if line.startswith("│")}
    assert "finished" in rows["good"] and "1/1" in rows["good"] and "tiny_cnn" in rows["good"]
    assert "failed" in rows["diverged"] and "diverged: the loss is" in result.output
    missing = invoke_in_process(main, ["runs", tmp_path / "nowhere"], tmp_path)
    assert missing.exit_code == 2 and "is not a folder of runs" in missing.output
