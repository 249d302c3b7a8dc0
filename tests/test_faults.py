"""Faults that used to cost work: a kill -9 mid-epoch, a truncated latest checkpoint.

The default recipe's model (resnet18 with its BatchNorm head) trains in a real process that
is killed with SIGKILL; ``train.checkpoint_minutes=0`` checkpoints after every step, so
wherever the kill lands the run has a whole checkpoint of its last step (by construction, not
by the machine's speed), and the resumed run must end where the uninterrupted one does.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from cltt.cli import main
from cltt.engine import checkpoint as ckpt
from cltt.engine import run_files
from tests.conftest import invoke_in_process
from tests.helpers.training import final_weights

QUICKSTART = Path(__file__).parent.parent / "recipes" / "quickstart.yaml"
COMMON = ["data.image_size=32", "data.num_workers=0", "train.batch_size=4", "train.epochs=2", "train.device=cpu"]


def assert_same_weights(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=1e-5, atol=1e-6, msg=lambda m: f"{key}: {m}")


def cltt_process(*args, cwd: Path) -> subprocess.Popen:
    """``cltt ARGS`` in its own process with one thread (every run compared here uses the same)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_")} | {"OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "cltt", *map(str, args)], cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def finish(process: subprocess.Popen) -> str:
    out, _ = process.communicate(timeout=300)
    assert process.returncode == 0, out
    return out


def test_sigkill_mid_epoch_loses_at_most_one_step(tmp_path, frames_root):
    args = [QUICKSTART, f"data.root={frames_root}", *COMMON]
    finish(cltt_process("train", *args, "train.name=straight", cwd=tmp_path))
    process = cltt_process("train", *args, "train.name=killed", "train.checkpoint_minutes=0", cwd=tmp_path)
    run_dir = tmp_path / "runs" / "killed"
    deadline = time.monotonic() + 120
    while not (run_dir / run_files.LATEST_FILE).is_file() or "step_0000001" not in (run_dir / run_files.LATEST_FILE).read_text():
        assert process.poll() is None, process.stdout.read()
        assert time.monotonic() < deadline, "no step checkpoint within 2 minutes"
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert process.returncode == -signal.SIGKILL
    latest = ckpt.latest_checkpoint(run_dir)
    assert run_files.step_of(latest.name) is not None  # killed mid-run, after a step checkpoint
    saved = ckpt.load_checkpoint(latest)["progress"]
    assert saved["epoch"] < 2 and not (run_dir / run_files.FINAL_CHECKPOINT).exists()

    stopped = invoke_in_process(main, ["runs", tmp_path / "runs"], tmp_path)
    assert "killed: no stop recorded and its process is gone" in stopped.output
    assert f"resuming {run_dir} from {latest.name}" in finish(cltt_process("resume", run_dir, cwd=tmp_path))
    segments = json.loads((run_dir / "run.json").read_text())["segments"]
    assert [s["reason"] for s in segments] == ["running", "finished"] and segments[0]["stop"] is None
    assert segments[1]["from_step"] == saved["step"] and segments[1]["command"][1] == "resume"
    assert_same_weights(final_weights(run_dir), final_weights(tmp_path / "runs" / "straight"))


def test_a_truncated_latest_checkpoint_resumes_from_the_one_before(tmp_path, frames_root):
    args = [QUICKSTART, f"data.root={frames_root}", *COMMON, "train.checkpoint_minutes=null"]
    assert invoke_in_process(main, ["train", *args, "train.name=straight"], tmp_path).exit_code == 0
    weights = final_weights(tmp_path / "runs" / "straight")
    run_dir = tmp_path / "runs" / "straight"
    final, second = run_dir / run_files.FINAL_CHECKPOINT, run_dir / run_files.epoch_checkpoint(2)
    for path in (final, second):  # the disk filled while the last two were written
        path.write_bytes(path.read_bytes()[:5000])

    resumed = invoke_in_process(main, ["resume", run_dir], tmp_path)
    assert resumed.exit_code == 0, resumed.output
    line = next(line for line in resumed.output.splitlines() if "is not a readable checkpoint" in line)
    assert f"{final} is not a readable checkpoint" in line
    assert f"continuing from {run_files.epoch_checkpoint(1)} (epoch 1, step " in line
    assert "the checkpoint of the highest step that loads (1 more unreadable)" in line
    assert_same_weights(final_weights(run_dir), weights)
    assert_same_weights(final_weights(run_dir), final_weights(tmp_path / "runs" / "straight"))


@pytest.mark.parametrize("value, fragment", [("-1", "train.checkpoint_minutes"), ("soon", "train.checkpoint_minutes")])
def test_checkpoint_minutes_is_checked(tmp_path, frames_root, value, fragment):
    result = invoke_in_process(main, ["train", QUICKSTART, f"train.checkpoint_minutes={value}", "--show"], tmp_path)
    assert result.exit_code == 2 and fragment in result.output


def test_resume_says_when_recipe_yaml_was_edited(tmp_path, frames_root):
    """A resume trains what the checkpoint holds; an edited RUN_DIR/recipe.yaml is named, not followed silently."""
    args = ["train", QUICKSTART, f"data.root={frames_root}", *COMMON, "model.backbone=tiny_cnn", "train.name=edited",
            "train.epochs=1"]
    assert invoke_in_process(main, args, tmp_path).exit_code == 0
    recipe_file = tmp_path / "runs" / "edited" / "recipe.yaml"
    recipe_file.write_text(recipe_file.read_text().replace("backbone: tiny_cnn", "backbone: resnet18"))
    result = invoke_in_process(main, ["resume", tmp_path / "runs" / "edited"], tmp_path)
    assert result.exit_code == 0, result.output
    assert f"recipe.yaml differs from the recipe inside {run_files.FINAL_CHECKPOINT} in model.backbone" in result.output


def test_vivit_with_dropout_resumes_exactly(tmp_path, frames_root, preemption_handlers):
    """Each iter(DataLoader) drew its seed from torch's global generator, shifting a resumed run's
    dropout masks (losses 0.05-0.19 off); the loader now has its own generator."""
    from cltt.engine import preemption
    from tests.helpers.training import Recorder, resume_in_process, train_in_process, write_recipe
    from tests.helpers.training import assert_same_weights as same

    sections = {"method": {"name": "clip_simclr"}, "data": {"window_size": 4, "window_stride": 2},
                "model": {"backbone": "vivit", "vivit": {"spatial_depth": 1, "temporal_depth": 1, "dropout": 0.2},
                          "projection_dim": 16, "head_batchnorm": False},
                "train": {"epochs": 2, "batch_size": 4, "checkpoint_minutes": None}}
    straight_dir, broken_dir = tmp_path / "straight", tmp_path / "broken"
    straight_dir.mkdir()
    broken_dir.mkdir()
    straight = Recorder()
    train_in_process(write_recipe(straight_dir, frames_root, **sections), reporter=straight)
    first = Recorder(signal_at_steps={len(straight.losses) // 2 + 1})  # inside epoch 2
    outcome = train_in_process(write_recipe(broken_dir, frames_root, **sections), reporter=first)
    assert outcome.exit_code == preemption.REQUEUE_EXIT_CODE
    second = Recorder()
    assert resume_in_process(broken_dir / "runs" / "tiny", second).status == "finished"
    torch.testing.assert_close(torch.tensor(first.losses + second.losses), torch.tensor(straight.losses),
                               rtol=1e-5, atol=1e-6)
    same(final_weights(broken_dir / "runs" / "tiny"), final_weights(straight_dir / "runs" / "tiny"))


def test_resuming_on_another_process_count_warns_for_batchnorm_models(tmp_path, frames_root):
    args = ["train", QUICKSTART, f"data.root={frames_root}", *COMMON, "train.epochs=1", "train.name=counted"]
    assert invoke_in_process(main, args, tmp_path).exit_code == 0
    checkpoint = tmp_path / "runs" / "counted" / run_files.FINAL_CHECKPOINT
    state = ckpt.load_checkpoint(checkpoint)
    assert state["world_size"] == 1  # recorded
    state["world_size"] = 2  # as written by a two-process run
    torch.save(state, checkpoint)
    result = invoke_in_process(main, ["resume", tmp_path / "runs" / "counted", "train.epochs=2", "--change-length"],
                               tmp_path)
    assert result.exit_code == 0, result.output
    assert "was trained on 2 process(es), this run has 1: BatchNorm normalises each process's 4 samples" in result.output


def test_unwritable_destinations_are_one_line_before_the_work(tmp_path, frames_root):
    """A path under a regular file cannot be created (this works as root too, where permissions do not)."""
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    train = ["train", QUICKSTART, f"data.root={frames_root}", *COMMON, "model.backbone=tiny_cnn", "train.epochs=1"]
    assert invoke_in_process(main, [*train, "train.name=ok"], tmp_path).exit_code == 0
    cases = [
        ([*train, f"train.out_dir={blocker}/runs"], "a_file/runs"),
        (["export", tmp_path / "runs" / "ok", "--out", blocker / "x"], "cannot create output folder"),
        (["export", tmp_path / "runs" / "ok", "--embeddings", frames_root, "--out", blocker / "e.npy"], "a_file"),
        (["probe", tmp_path / "runs" / "ok", "--out", blocker / "p.json"], "a_file is a file, not a folder"),
        (["extract", "--synthetic", "moving-digits", "--out", blocker / "d", "--clips", "3", "--frames", "4"], "a_file"),
        (["visualize", QUICKSTART, f"data.root={frames_root}", "--out", tmp_path], "is a folder; give a file name"),
        (["visualize", QUICKSTART, f"data.root={frames_root}", "--out", tmp_path / "grid.txt"], "must end in .png"),
        (["pack", frames_root, "--out", blocker / "s"], "cannot create the store"),
    ]
    for args, fragment in cases:
        result = invoke_in_process(main, args, tmp_path)
        lines = [line for line in result.output.splitlines() if line.strip() and not line.startswith(("note:", "cltt ("))]
        assert result.exit_code == 2 and "Traceback" not in result.output, (args, result.output)
        assert lines[-1].startswith("error:") and fragment in lines[-1], (args, result.output)
    assert not (tmp_path / "probe.json").exists() and blocker.read_text() == "not a folder"


def test_ctrl_c_exits_130_says_so_once_and_resume_names_the_same_place(tmp_path, frames_root):
    args = [QUICKSTART, f"data.root={frames_root}", *COMMON, "train.name=int", "train.checkpoint_minutes=0"]
    process = cltt_process("train", *args, cwd=tmp_path)
    latest = tmp_path / "runs" / "int" / run_files.LATEST_FILE
    deadline = time.monotonic() + 120
    while not latest.is_file() or "step_0000001" not in latest.read_text():
        assert process.poll() is None and time.monotonic() < deadline
        time.sleep(0.01)
    process.send_signal(signal.SIGINT)
    out, _ = process.communicate(timeout=120)
    assert process.returncode == 130, out
    stops = [line for line in out.splitlines() if line.startswith("SIGINT: saved")]
    assert len(stops) == 1 and "interrupted" in stops[0] and out.count("continue with: cltt resume") == 1, out
    place = stops[0].split("saved ", 1)[1].split(" to ", 1)[0]  # "epoch E batch B (step S)"
    resumed = finish(cltt_process("resume", tmp_path / "runs" / "int", cwd=tmp_path))
    assert f".pth at {place}; run dir" in resumed, (place, resumed)  # the same epoch, batch and step


def test_small_mistakes_get_a_line_that_says_what_to_do(tmp_path):
    from tests.helpers.videos import truncate, write_video

    result = invoke_in_process(main, ["train", QUICKSTART, "--epochs", "3"], tmp_path)
    assert result.exit_code == 2 and "no option --epochs: recipe keys are set as key=value: train.epochs=" in result.output
    video = write_video(tmp_path / "walk.mp4", frames=20)
    both = invoke_in_process(main, ["extract", video, "--out", tmp_path / "f", "--fps", "5", "--every-nth", "2"], tmp_path)
    assert both.exit_code == 2 and "'extract.fps' and 'extract.every_nth' both choose the kept frames" in both.output
    truncate(video, 0.5)
    broken = subprocess.run([sys.executable, "-m", "cltt", "extract", str(video), "--out", str(tmp_path / "g")],
                            capture_output=True, text=True, cwd=tmp_path)
    assert broken.returncode == 1 and "no 'moov' index" in broken.stdout + broken.stderr
    assert "moov atom not found" not in broken.stderr and "WARN" not in broken.stderr  # FFmpeg's own noise
