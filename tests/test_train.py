"""cltt train / cltt resume end to end on tiny real JPEG clips (tiny_cnn, 32 px, CPU)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest
import torch
import yaml

from cltt.engine import checkpoint as ckpt
from cltt.engine import preemption, run_files
from cltt.engine.trainer import Trainer
from cltt.recipe import load_recipe
from tests.helpers.commands import Result, cltt
from tests.helpers.training import (
    Recorder,
    assert_same_weights,
    final_weights,
    resume_in_process,
    train_in_process,
    write_recipe,
)

# --------------------------------------------------------------------------- a whole run


def test_train_writes_the_lab_run_dir(tmp_path, frames_root):
    recipe = write_recipe(tmp_path, frames_root, train={"epochs": 3, "keep_last": 1})
    outcome = train_in_process(recipe)
    run_dir = tmp_path / "runs" / "tiny"
    assert outcome.status == "finished" and outcome.exit_code == 0 and outcome.epoch == 3
    names = sorted(p.name for p in run_dir.glob("*.pth"))
    assert names == [run_files.epoch_checkpoint(3), run_files.FINAL_CHECKPOINT]  # keep_last=1 pruned epochs 1-2
    assert (run_dir / run_files.LATEST_FILE).read_text().strip() == run_files.FINAL_CHECKPOINT
    lines = (run_dir / "metrics.csv").read_text().splitlines()
    assert lines[0] == "epoch,loss,learning_rate,decay_rate"
    assert [line.split(",")[0] for line in lines[1:]] == ["1", "2", "3"]
    for line in lines[1:]:
        _, loss, lr, decay = map(float, line.split(","))
        assert abs(decay - lr / 1e-3) < 1e-5
    state = torch.load(run_dir / run_files.FINAL_CHECKPOINT, weights_only=True)  # loads without pickled objects
    assert state["progress"]["epoch"] == 3 and state["progress"]["position"] == 0
    assert yaml.safe_load(state["recipe"])["train"]["epochs"] == 3
    assert yaml.safe_load((run_dir / "recipe.yaml").read_text()) == yaml.safe_load(state["recipe"])
    assert not list(run_dir.glob(".*tmp*"))


def test_loss_falls(tmp_path, frames_root):
    recorder = Recorder()
    recipe = write_recipe(tmp_path, frames_root, train={"epochs": 6, "lr": 3e-3})
    train_in_process(recipe, reporter=recorder)
    rows = (tmp_path / "runs" / "tiny" / "metrics.csv").read_text().splitlines()[1:]
    losses = [float(row.split(",")[1]) for row in rows]
    assert losses[-1] < losses[0] - 0.1, losses


# --------------------------------------------------------------------------- resume exactness


def test_interrupt_and_resume_equals_uninterrupted(tmp_path, frames_root, preemption_handlers):
    straight_dir = tmp_path / "straight"
    straight_dir.mkdir()
    straight = Recorder()
    train_in_process(write_recipe(straight_dir, frames_root), reporter=straight)

    # the same run, stopped by a real SIGUSR1 inside epoch 1 and again inside epoch 2
    broken_dir = tmp_path / "broken"
    broken_dir.mkdir()
    recipe = write_recipe(broken_dir, frames_root)
    first = Recorder(signal_at_steps={2})
    outcome = train_in_process(recipe, reporter=first)
    run_dir = broken_dir / "runs" / "tiny"
    batches = len(straight.lrs) // 2  # batches per epoch
    assert outcome.status == "preempted" and outcome.exit_code == preemption.REQUEUE_EXIT_CODE
    assert ckpt.latest_checkpoint(run_dir).name == run_files.step_checkpoint(2)
    assert not (run_dir / "metrics.csv").exists() or len((run_dir / "metrics.csv").read_text().splitlines()) == 1

    second = Recorder(signal_at_steps={batches + 2})
    outcome = resume_in_process(run_dir, second)
    assert outcome.status == "preempted" and outcome.step == batches + 2
    third = Recorder()
    outcome = resume_in_process(run_dir, third)
    assert outcome.status == "finished"

    assert first.lrs + second.lrs + third.lrs == straight.lrs
    torch.testing.assert_close(torch.tensor(first.losses + second.losses + third.losses),
                               torch.tensor(straight.losses), rtol=1e-5, atol=1e-6)
    assert (run_dir / "metrics.csv").read_text() == (straight_dir / "runs" / "tiny" / "metrics.csv").read_text()
    assert_same_weights(final_weights(run_dir), final_weights(straight_dir / "runs" / "tiny"))
    assert not [p for p in run_dir.iterdir() if run_files.step_of(p.name) is not None]  # superseded step checkpoints are pruned


def test_sigusr1_to_the_cli_saves_and_resume_finishes(tmp_path, frames_root):
    recipe = write_recipe(tmp_path, frames_root, data={"num_workers": 2}, train={"epochs": 30})
    process = subprocess.Popen([sys.executable, "-m", "cltt", "train", str(recipe)], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, cwd=tmp_path, start_new_session=True)
    first_line = process.stdout.readline()  # printed when training starts, handlers long installed
    assert "tiny_cnn" in first_line
    stdout_rest = process.stdout.readline()  # the first epoch's line: DataLoader workers are running
    assert "epoch 1/30" in stdout_rest
    # like Slurm, signal every process of the job: the DataLoader workers must ignore it
    os.killpg(process.pid, signal.SIGUSR1)
    out, err = process.communicate(timeout=300)
    assert process.returncode == preemption.REQUEUE_EXIT_CODE, err
    assert "SIGUSR1: saved" in out and out.count("SIGUSR1: saved") == 1  # the summary line, said once
    assert "continue with: cltt resume" in err
    assert "Traceback" not in err
    run_dir = tmp_path / "runs" / "tiny"
    stopped = ckpt.load_checkpoint(ckpt.latest_checkpoint(run_dir))["progress"]
    assert stopped["step"] < 30 * stopped["batches_per_epoch"]
    done = subprocess.run([sys.executable, "-m", "cltt", "resume", str(run_dir)], capture_output=True, text=True,
                          cwd=tmp_path, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "trained 30 epochs" in done.stdout
    rows = (run_dir / "metrics.csv").read_text().splitlines()[1:]
    assert [int(r.split(",")[0]) for r in rows] == list(range(1, 31))


# --------------------------------------------------------------------------- continuing a run dir


def test_existing_run_dir_needs_resume_and_keeps_the_recipe(tmp_path, frames_root):
    recipe = write_recipe(tmp_path, frames_root, train={"epochs": 1})
    assert cltt("train", recipe, cwd=tmp_path).returncode == 0
    again = cltt("train", recipe, cwd=tmp_path)
    assert again.returncode == 2 and "already holds a run" in again.stderr and "Traceback" not in again.stderr
    finished = cltt("train", recipe, "train.resume=auto", cwd=tmp_path)
    assert finished.returncode == 0 and "already finished" in finished.stdout
    changed = cltt("train", recipe, "train.resume=auto", "model.projection_dim=8", cwd=tmp_path)
    assert changed.returncode == 2 and "model.projection_dim" in changed.stderr
    longer = cltt("resume", tmp_path / "runs" / "tiny", "train.epochs=2", cwd=tmp_path)
    assert longer.returncode == 2 and "--change-length" in longer.stderr
    extended = cltt("resume", tmp_path / "runs" / "tiny", "train.epochs=2", "--change-length", cwd=tmp_path)
    assert extended.returncode == 0, extended.stderr
    rows = (tmp_path / "runs" / "tiny" / "metrics.csv").read_text().splitlines()[1:]
    assert [r.split(",")[0] for r in rows] == ["1", "2"]


def test_resume_from_a_named_checkpoint_file(tmp_path, frames_root):
    recipe = write_recipe(tmp_path, frames_root, train={"epochs": 2})
    train_in_process(recipe)
    run_dir = tmp_path / "runs" / "tiny"
    outcome = resume_in_process(run_dir / run_files.epoch_checkpoint(1))
    assert outcome.status == "finished" and outcome.epoch == 2


# --------------------------------------------------------------------------- bad input


def one_line_error(result: Result, *fragments: str) -> None:
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines and lines[-1].startswith("error:"), result.stderr
    for fragment in fragments:
        assert fragment in result.stderr, result.stderr


def test_bad_input_is_one_line(tmp_path, frames_root):
    recipe = write_recipe(tmp_path, frames_root, train={"epochs": 1})
    one_line_error(cltt("train", recipe, f"data.root={tmp_path / 'nothing'}", cwd=tmp_path), "nothing")
    one_line_error(cltt("train", recipe, "data.window_size=40", cwd=tmp_path), "window")
    one_line_error(cltt("train", recipe, "train.batch_size=4000", cwd=tmp_path), "train.batch_size")
    if not torch.cuda.is_available():
        one_line_error(cltt("train", recipe, "train.device=cuda", cwd=tmp_path), "CUDA")
    one_line_error(cltt("train", cwd=tmp_path), "needs a recipe")
    one_line_error(cltt("resume", tmp_path / "runs" / "missing", cwd=tmp_path), "does not exist")


def test_non_finite_loss_stops_with_step_and_hint(tmp_path, frames_root):
    recipe = write_recipe(tmp_path, frames_root, train={"epochs": 1})
    result = cltt("train", recipe, "train.lr=1e30", cwd=tmp_path)  # Adam's first step blows the weights up
    one_line_error(result, "loss is nan", "(step 2)", "no checkpoint was written yet", "lower train.lr")


def test_not_a_checkpoint(tmp_path, frames_root):
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"not a checkpoint at all")
    one_line_error(cltt("resume", garbage, cwd=tmp_path), "not a readable checkpoint")
    plain = tmp_path / "weights.pth"
    torch.save({"conv.weight": torch.zeros(2)}, plain)
    one_line_error(cltt("resume", plain, cwd=tmp_path), "not a cltt checkpoint")


def test_checkpoint_of_another_architecture(tmp_path, frames_root):
    recipe_path = write_recipe(tmp_path, frames_root, train={"epochs": 1})
    train_in_process(recipe_path)
    state = ckpt.load_checkpoint(tmp_path / "runs" / "tiny" / run_files.FINAL_CHECKPOINT)
    other = load_recipe(recipe_path, ["model.projection_dim=8"])
    with pytest.raises(Exception) as caught:
        Trainer(other, tmp_path / "runs" / "other", None, (tmp_path / "x.pth", state))
    assert "does not fit this model" in str(caught.value)


# --------------------------------------------------------------------------- W&B offline


def test_wandb_offline_keeps_its_run_id_across_resume(tmp_path, frames_root, preemption_handlers):
    recipe = write_recipe(tmp_path, frames_root, log={"wandb": {"enabled": True, "mode": "offline"}})
    outcome = train_in_process(recipe, reporter=Recorder(signal_at_steps={3}))
    assert outcome.status == "preempted"
    run_dir = tmp_path / "runs" / "tiny"
    run_id = ckpt.load_checkpoint(ckpt.latest_checkpoint(run_dir))["wandb_id"]
    assert run_id
    resume_in_process(run_dir)
    assert ckpt.load_checkpoint(run_dir / run_files.FINAL_CHECKPOINT)["wandb_id"] == run_id
    # one W&B run id for both process lifetimes (folders are named by the start's second and the
    # id, sometimes with "-1" when two starts share a second), and the history reaches the last step
    from tests.helpers.wandb_files import wandb_history

    runs = list((run_dir / "wandb").glob("offline-run-*"))
    assert runs and all(path.name.split("-")[3] == run_id for path in runs), runs
    steps = set().union(*(wandb_history(path / f"run-{run_id}.wandb") for path in runs))
    total = ckpt.load_checkpoint(run_dir / run_files.FINAL_CHECKPOINT)["progress"]["step"]
    assert max(steps) == total


def test_builtin_data_are_written_when_the_root_is_missing(tmp_path):
    root = tmp_path / "digits"
    recipe = write_recipe(tmp_path, root, data={"synthetic": "moving-digits"}, train={"epochs": 1},
                          extract={"synthetic": {"clips": 4, "frames": 10, "size": 32}})
    outcome = train_in_process(recipe)
    assert outcome.status == "finished"
    assert (root / "labels.csv").is_file() and len([p for p in root.iterdir() if p.is_dir()]) >= 4


def test_probe_every_appends_metrics_eval_rows(tmp_path):
    root = tmp_path / "balls"
    recipe = write_recipe(tmp_path, root, data={"synthetic": "bouncing-balls"}, train={"epochs": 2},
                          probe={"every": 1}, extract={"synthetic": {"clips": 12, "frames": 8, "size": 32}})
    assert train_in_process(recipe).status == "finished"
    lines = (tmp_path / "runs" / "tiny" / "metrics_eval.csv").read_text().splitlines()
    assert lines[0].startswith("epoch,train_loss,train_acc,val_loss,val_acc,test_loss,test_acc,")
    assert [line.split(",")[0] for line in lines[1:]] == ["1", "2"]
    assert all(0 <= float(line.split(",")[2]) <= 1 for line in lines[1:])
