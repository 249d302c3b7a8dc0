"""The names of a run dir (cltt.engine.run_files): new checkpoints say what they hold, the lab's
``simclr_*`` names of older runs still resume, probe, export and show, and cltt runs and cltt
sweep status speak one vocabulary of run states."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from cltt.cli import main
from cltt.data.synthetic import write_synthetic
from cltt.engine import run_files
from cltt.engine.run_table import run_summary
from cltt.recipe import SyntheticConfig
from cltt.sweep.status import sweep_status
from tests.conftest import invoke_in_process
from tests.sweep_helpers import sweep

LAB_NAMES = ["simclr_epoch_001.pth", "simclr_epoch_002.pth", "simclr_final.pth"]  # what cltt wrote before


def test_the_names_module_and_the_sweep_and_runs_modules_import_no_torch():
    code = ("import sys, cltt.engine, cltt.engine.run_files, cltt.engine.provenance, cltt.engine.run_lock, "
            "cltt.sweep.grid, cltt.sweep.render, cltt.sweep.local; print('torch' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"


def test_checkpoint_names_in_both_namings():
    assert run_files.epoch_checkpoint(3) == "checkpoint_epoch_003.pth"
    assert run_files.step_checkpoint(1234) == "checkpoint_step_0001234.pth"
    assert run_files.FINAL_CHECKPOINT == "checkpoint_final.pth"
    for name, epoch, step in [("checkpoint_epoch_003.pth", 3, None), ("simclr_epoch_003.pth", 3, None),
                              ("checkpoint_step_0001234.pth", None, 1234), ("simclr_step_0001234.pth", None, 1234),
                              ("simclr_final.pth", None, None), ("checkpoint_final.pth", None, None)]:
        assert (run_files.epoch_of(name), run_files.step_of(name), run_files.is_checkpoint(name)) == (epoch, step, True)
    assert run_files.is_final("simclr_final.pth") and not run_files.is_final("simclr_epoch_003.pth")
    for other in (".checkpoint_final.pth.tmp-12", "byol_epoch_003.pth", "checkpoint_epoch_003.pth.json", "latest"):
        assert not run_files.is_checkpoint(other)


def to_lab_names(run_dir: Path) -> None:
    """Rename a run dir's checkpoints (and ``latest``) as cltt named them before."""
    for path in run_files.checkpoint_files(run_dir):
        path.rename(path.with_name(path.name.replace(run_files.CHECKPOINT_PREFIX, run_files.LAB_PREFIX, 1)))
    latest = run_dir / run_files.LATEST_FILE
    latest.write_text(latest.read_text().replace(run_files.CHECKPOINT_PREFIX, run_files.LAB_PREFIX, 1))


def names(run_dir: Path) -> list[str]:
    return [p.name for p in run_files.checkpoint_files(run_dir)]


def test_a_run_dir_of_the_lab_names_resumes_probes_exports_and_shows_finished(tmp_path):
    root = tmp_path / "balls"
    for _ in write_synthetic("bouncing-balls", root, SyntheticConfig(clips=12, frames=8, size=32)):
        pass  # labelled clips, for the probe
    tree = {"data": {"root": str(root), "window_size": 3, "image_size": 32, "num_workers": 0},
            "model": {"backbone": "tiny_cnn", "projection_dim": 16},
            "train": {"epochs": 2, "batch_size": 8, "device": "cpu", "keep_last": 2},
            "probe": {"logistic_c": [1.0], "knn_k": 3}}
    (tmp_path / "lab.yaml").write_text(yaml.safe_dump(tree))
    assert sweep("lab.yaml", "--grid", "train.lr=1e-3", cwd=tmp_path).exit_code == 0  # writes the folder, runs nothing
    trained = invoke_in_process(main, ["train", "sweeps/lab/recipes/lr1e-3.yaml"], tmp_path)  # as its job does
    assert trained.exit_code == 0, trained.output
    run_dir = tmp_path / "sweeps" / "lab" / "runs" / "lr1e-3"
    assert names(run_dir) == [run_files.epoch_checkpoint(1), run_files.epoch_checkpoint(2), run_files.FINAL_CHECKPOINT]
    to_lab_names(run_dir)
    assert names(run_dir) == LAB_NAMES

    listed = invoke_in_process(main, ["runs", "--json", run_dir.parent], tmp_path)
    assert listed.exit_code == 0, listed.output
    [row] = json.loads(listed.stdout)
    assert (row["state"], row["epochs_done"], row["epochs"]) == (run_files.FINISHED, 2, 2)
    [status] = sweep_status(tmp_path / "sweeps" / "lab")
    assert (status.state, status.checkpoint, status.epochs_done) == (run_files.FINISHED, "simclr_final.pth", 2)
    shown = sweep("status", "sweeps/lab", cwd=tmp_path)
    assert "1 runs: 1 finished" in shown.stdout, shown.stdout
    again = sweep("lab.yaml", "--grid", "train.lr=1e-3", "--local", cwd=tmp_path)  # nothing left to run
    assert "1 skipped" in again.stdout, again.stdout + again.stderr

    resumed = invoke_in_process(main, ["resume", run_dir], tmp_path)
    assert resumed.exit_code == 0 and "already finished its 2 epochs" in resumed.output, resumed.output
    assert names(run_dir) == LAB_NAMES  # a finished run is not rewritten under the new names

    probed = invoke_in_process(main, ["probe", run_dir, "probe.probes=[logistic]"], tmp_path)
    assert probed.exit_code == 0, probed.output
    assert json.loads((run_dir / "probe.json").read_text())["checkpoint"].endswith("simclr_final.pth")

    exported = invoke_in_process(main, ["export", run_dir, "--out", tmp_path / "exported"], tmp_path)
    assert exported.exit_code == 0, exported.output
    [sidecar] = (tmp_path / "exported").glob("*.json")
    assert json.loads(sidecar.read_text())["source"]["checkpoint"].endswith("simclr_final.pth")

    # unfinished, and without `latest` (the lab's own runs had none): resumed from its newest epoch,
    # it goes on under the new names, and train.keep_last prunes the old names with the new
    unfinished = tmp_path / "copy" / "lab"
    shutil.copytree(run_dir, unfinished)
    (unfinished / "simclr_final.pth").unlink()
    (unfinished / run_files.LATEST_FILE).unlink()
    continued = invoke_in_process(main, ["resume", unfinished, "train.epochs=3", "--change-length"], tmp_path)
    assert continued.exit_code == 0, continued.output
    assert "resumed from simclr_epoch_002.pth" in continued.output, continued.output
    assert names(unfinished) == [run_files.epoch_checkpoint(3), run_files.FINAL_CHECKPOINT, "simclr_epoch_002.pth"]
    assert run_summary(unfinished).state == run_files.FINISHED and run_summary(unfinished).epochs_done == 3


def test_cltt_runs_and_sweep_status_share_the_states(tmp_path):
    assert sweep(write_tiny(tmp_path), "--grid", "train.lr=1e-3,3e-4,1e-4", cwd=tmp_path).exit_code == 0
    sweep_dir = tmp_path / "sweeps" / "tiny"
    runs = sweep_dir / "runs"
    for name in ("lr1e-3", "lr3e-4", "lr1e-4"):
        (runs / name).mkdir(parents=True)
        (runs / name / run_files.RECIPE_FILE).write_text("train: {epochs: 2}\n")
    # lr1e-3: stopped by Ctrl-C after a step checkpoint; lr3e-4: nothing yet; lr1e-4: finished (lab's name)
    (runs / "lr1e-3" / run_files.step_checkpoint(3)).write_bytes(b"")
    (runs / "lr1e-3" / run_files.RUN_FILE).write_text(json.dumps({"segments": [
        {"start": "x", "stop": "y", "reason": "interrupted", "message": "interrupted", "host": "h", "pid": 1}]}))
    (sweep_dir / "logs" / "lr1e-3.local.out").write_text("cltt-sweep: run lr1e-3 (1 of 3) start\n"
                                                         "cltt-sweep: run lr1e-3 exited 130\n")
    (runs / "lr1e-4" / "simclr_final.pth").write_bytes(b"")
    from_files = [run_summary(runs / name).state for name in ("lr1e-3", "lr3e-4", "lr1e-4")]
    from_sweep = [s.state for s in sweep_status(sweep_dir)]
    assert from_files == from_sweep == [run_files.INTERRUPTED, run_files.NOT_STARTED, run_files.FINISHED]
    assert set(from_files) <= set(run_files.RUN_STATES)


def write_tiny(folder: Path) -> str:
    (folder / "tiny.yaml").write_text(yaml.safe_dump({"model": {"backbone": "tiny_cnn"}, "train": {"epochs": 2}}))
    return "tiny.yaml"
