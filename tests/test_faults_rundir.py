"""Issue 24, cases 2 and 4: a run dir has one writer, and checkpoints are ordered by the step they record.

Case 2: two ``cltt train`` processes on one ``train.name`` interleaved metrics.csv, overwrote
each other's checkpoints and left run.json with a segment stuck at "running". The first now
holds ``RUN_DIR/run.lock``; the timing is fixed by construction: the first process is stopped
(SIGSTOP) as soon as its lock text is written, so it holds the lock, whatever the machine's
speed, while the second starts.

Case 4: after ``cp -r`` (which resets modification times) a truncated final checkpoint fell back
to epoch 1, not to the intact epoch 2.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import yaml

from cltt.cli import main
from cltt.engine import checkpoint as ckpt
from cltt.engine import run_files
from cltt.engine.run_lock import LOCK_FILE, acquire
from tests.conftest import invoke_in_process

TINY = {"data": {"window_size": 3, "window_stride": 1, "image_size": 32, "num_workers": 0},
        "model": {"backbone": "tiny_cnn", "projection_dim": 16},
        "train": {"epochs": 2, "batch_size": 8, "lr": 1e-3, "device": "cpu", "checkpoint_minutes": None}}


def tiny_recipe(tmp_path: Path, frames_root: Path) -> Path:
    tree = json.loads(json.dumps(TINY))
    tree["data"]["root"] = str(frames_root)
    tree["train"]["out_dir"] = str(tmp_path / "runs")
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(tree))
    return path


def cltt_process(*args, cwd: Path) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_")} | {"OMP_NUM_THREADS": "1", "COLUMNS": "300"}
    return subprocess.Popen([sys.executable, "-m", "cltt", *map(str, args)], cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for_holder(process: subprocess.Popen, lock: Path) -> dict:
    """The holder text ``process`` writes into ``lock`` once it holds it."""
    deadline = time.monotonic() + 120
    while True:
        text = lock.read_text().strip() if lock.is_file() else ""
        if text:
            holder = json.loads(text)
            assert holder["pid"] == process.pid
            return holder
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "no lock within 2 minutes"
        time.sleep(0.01)


def error_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in stderr, stderr
    return lines[0]


def test_case_02_a_second_train_of_the_same_name_is_refused_naming_the_holder(tmp_path, frames_root):
    recipe = tiny_recipe(tmp_path, frames_root)
    run_dir = tmp_path / "runs" / "same"
    first = cltt_process("train", recipe, "train.name=same", cwd=tmp_path)
    holder = wait_for_holder(first, run_dir / LOCK_FILE)
    first.send_signal(signal.SIGSTOP)  # holds the lock, writes nothing more until SIGCONT
    try:
        before = {p.name: p.read_bytes() for p in run_dir.iterdir() if p.is_file()}
        second = cltt_process("train", recipe, "train.name=same", cwd=tmp_path)
        _, stderr = second.communicate(timeout=120)
        assert second.returncode == 2, stderr
        line = error_line(stderr)
        assert f"{run_dir} is in use by cltt train {recipe} train.name=same (pid {first.pid} on {socket.gethostname()}, " \
               f"since {holder['since']})" in line
        assert "train.name=NEW_NAME" in line
        assert {p.name: p.read_bytes() for p in run_dir.iterdir() if p.is_file()} == before  # the refused one wrote nothing
    finally:
        first.send_signal(signal.SIGCONT)
    _, stderr = first.communicate(timeout=300)
    assert first.returncode == 0, stderr
    epochs = [line.split(",")[0] for line in (run_dir / "metrics.csv").read_text().splitlines()]
    assert epochs == ["epoch", "1", "2"]
    segments = json.loads((run_dir / "run.json").read_text())["segments"]
    assert [(s["pid"], s["reason"]) for s in segments] == [(first.pid, "finished")]
    assert (run_dir / LOCK_FILE).read_text() == ""  # released: the next writer may come


def test_case_02_resume_probe_and_export_into_the_run_dir_are_refused_while_it_is_held(tmp_path, frames_root):
    recipe = tiny_recipe(tmp_path, frames_root)
    assert invoke_in_process(main, ["train", recipe, "train.name=held", "train.epochs=1"], tmp_path).exit_code == 0
    run_dir = tmp_path / "runs" / "held"
    lock = acquire(run_dir, "unused")  # another open file: refused like another process
    try:
        for args in (["resume", run_dir, "train.epochs=2", "--change-length"], ["probe", run_dir], ["export", run_dir]):
            result = invoke_in_process(main, args, tmp_path)
            assert result.exit_code == 2, result.output
            line = error_line(result.stderr)
            assert f"{run_dir} is in use by " in line and f"(pid {os.getpid()} on {socket.gethostname()}, since " in line
        exported = invoke_in_process(main, ["export", run_dir, "--out", tmp_path / "exports"], tmp_path)
        assert exported.exit_code == 0, exported.output  # writes nothing into the run dir: not blocked
        assert list((tmp_path / "exports").glob("held_*.safetensors"))
    finally:
        lock.release()
    assert not (run_dir / "exports").exists() and not (run_dir / "probe.json").exists()
    assert invoke_in_process(main, ["export", run_dir], tmp_path).exit_code == 0  # free again


def test_case_02_every_process_of_a_multi_process_run_is_refused_when_the_run_dir_is_held(tmp_path, frames_root):
    """Two processes as srun starts them: process 0 is refused by the lock; process 1, which takes
    no lock, must not wait for process 0 in the rendezvous (srun would leave it there 30 minutes)."""
    recipe = tiny_recipe(tmp_path, frames_root)
    run_dir = tmp_path / "runs" / "ddp"
    lock = acquire(run_dir, "unused")
    try:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        processes = []
        for rank in range(2):
            env = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "TORCHELASTIC_"))} | {
                "OMP_NUM_THREADS": "1", "COLUMNS": "300", "SLURM_PROCID": str(rank), "SLURM_LOCALID": str(rank),
                "SLURM_NTASKS": "2", "SLURM_STEP_NUM_TASKS": "2", "SLURM_JOB_ID": "4242", "SLURM_STEP_ID": "0",
                "SLURM_JOB_NODELIST": "127.0.0.1", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)}
            processes.append(subprocess.Popen([sys.executable, "-m", "cltt", "train", recipe, "train.name=ddp"], cwd=tmp_path,
                                              env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
        for process in processes:
            _, stderr = process.communicate(timeout=120)
            assert process.returncode == 2, stderr
            assert f"{run_dir} is in use by " in error_line(stderr) and f"(pid {os.getpid()} on " in stderr
    finally:
        lock.release()
    assert not (run_dir / "run.json").exists()


def test_case_02_the_lock_of_a_killed_run_is_taken_over_with_a_note(tmp_path, frames_root):
    """A process killed with SIGKILL while it held the lock (OOM, a node failure, Slurm's kill
    before a requeue): the next start takes the lock and says whose it was."""
    recipe = tiny_recipe(tmp_path, frames_root)
    run_dir = tmp_path / "runs" / "killed"
    killed = cltt_process("train", recipe, "train.name=killed", cwd=tmp_path)
    holder = wait_for_holder(killed, run_dir / LOCK_FILE)
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    assert json.loads((run_dir / LOCK_FILE).read_text()) == holder  # its text is left behind

    result = invoke_in_process(main, ["train", recipe, "train.name=killed", "train.epochs=1"], tmp_path)
    assert result.exit_code == 0, result.output
    note = next(line for line in result.stderr.splitlines() if "took over" in line)
    assert note == (f"note: took over the lock of {run_dir} from cltt train {recipe} train.name=killed (pid {killed.pid} "
                    f"on {socket.gethostname()}, since {holder['since']}), which ended without releasing it")
    assert (run_dir / run_files.FINAL_CHECKPOINT).is_file() and (run_dir / LOCK_FILE).read_text() == ""


def test_case_02_a_run_that_fails_before_writing_leaves_no_run_dir(tmp_path, frames_root):
    recipe = tiny_recipe(tmp_path, frames_root)
    result = invoke_in_process(main, ["train", recipe, "train.name=fails", "train.batch_size=100000"], tmp_path)
    assert result.exit_code == 2 and "fewer than train.batch_size" in result.output
    assert not (tmp_path / "runs" / "fails").exists()


def test_case_04_a_copied_run_with_a_truncated_final_continues_from_the_highest_step(tmp_path, frames_root):
    recipe = tiny_recipe(tmp_path, frames_root)
    (frames_root / "labels.csv").write_text("clip,label,split\nclip0,a,train\nclip1,b,train\nclip2,a,test\n")  # for the probe
    assert invoke_in_process(main, ["train", recipe, "train.name=original"], tmp_path).exit_code == 0
    copy = tmp_path / "runs" / "copy"
    shutil.copytree(tmp_path / "runs" / "original", copy)  # as cp -r: new modification times
    first, second, final = copy / run_files.epoch_checkpoint(1), copy / run_files.epoch_checkpoint(2), copy / run_files.FINAL_CHECKPOINT
    newest = time.time() + 60
    os.utime(first, (newest, newest))  # epoch 1 is now the newest file
    final.write_bytes(final.read_bytes()[:5000])  # the copy was cut short
    step = ckpt.load_checkpoint(second)["progress"]["step"]

    assert [p.name for p in ckpt.by_recorded_step([first, second, final])] == [final.name, second.name, first.name]
    (copy / run_files.LATEST_FILE).unlink()  # without the pointer: the highest step, the final one first at a tie
    assert ckpt.latest_checkpoint(copy) == final

    expected = (f"{final} is not a readable checkpoint (")
    chosen = f"; continuing from {second.name} (epoch 2, step {step}), the checkpoint of the highest step that loads"
    probed = invoke_in_process(main, ["probe", copy, "--out", tmp_path / "probe.json"], tmp_path)
    assert probed.exit_code == 0, probed.output
    note = next(line for line in probed.stderr.splitlines() if "is not a readable checkpoint" in line)
    assert note.startswith(f"note: {expected}") and note.endswith(chosen)
    assert json.loads((tmp_path / "probe.json").read_text())["checkpoint"] == str(second)

    path, state, notes = ckpt.load_latest_intact(copy)
    assert path == second and state["progress"]["step"] == step and notes[0].endswith(chosen)
    resumed = invoke_in_process(main, ["resume", copy], tmp_path)
    assert resumed.exit_code == 0, resumed.output
    assert chosen in resumed.stderr and f"resuming {copy} from {second.name}" in resumed.stderr
    assert f"{final.name}, which did not load, rewritten from {second.name}" in resumed.stdout
    assert ckpt.load_checkpoint(final)["progress"]["step"] == step  # rewritten whole from epoch 2
