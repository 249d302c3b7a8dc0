"""Issue 24, the runs that used to end in a traceback or say nothing: a batch of one sample
(case 10), a full disk (12), Ctrl-C twice or while importing (14), TensorBoard's tags (23), and
a Ctrl-C recorded as "interrupted" (24).

Every run here is a real ``cltt`` process or the real CLI in this process, on real JPEG frames;
signals are real and sent at a point the run has reached (a line it printed, a file it wrote),
never after a guessed delay. The full disk is a real 2 MiB tmpfs.
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

from cltt.cli import main
from cltt.engine import checkpoint as ckpt
from tests.conftest import invoke_in_process

QUICKSTART = Path(__file__).parent.parent / "recipes" / "quickstart.yaml"
TINY = ["data.image_size=32", "data.num_workers=0", "train.batch_size=4", "train.epochs=1", "train.device=cpu",
        "model.backbone=tiny_cnn", "model.projection_dim=16", "train.max_batches_per_epoch=2"]


def error_lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith("error:")]


def train(tmp_path: Path, frames_root: Path, *overrides: str):
    return invoke_in_process(main, ["train", QUICKSTART, f"data.root={frames_root}", *TINY, *overrides], tmp_path)


# --------------------------------------------------------------------------- case 10


@pytest.mark.parametrize("method, overrides, why", [
    ("cltt", [], "no negatives"),  # every frame of the one window is a positive of every other
    ("simclr", ["method.positives=augment", "data.window_size=1"], "no negatives"),  # one pair, nothing else
    ("clip_simclr", ["data.augment.consistent=true", "model.head_batchnorm=false"], "no negatives"),
    ("vicreg", ["method.positives=augment"], "statistics over the samples"),
    ("barlow_twins", ["method.positives=augment"], "statistics over the samples"),
])
def test_case_10_a_batch_of_one_without_negatives_is_refused_in_one_line(tmp_path, frames_root, method, overrides, why):
    result = train(tmp_path, frames_root, f"method.name={method}", "train.batch_size=1", *overrides)
    assert result.exit_code == 2 and "Traceback" not in result.output, result.output
    (line,) = error_lines(result.output)
    assert "train.batch_size=1" in line and why in line and "train.batch_size=2 or more" in line, line
    assert not list((tmp_path / "runs").glob("*/*.pth"))  # refused before any training


def test_case_10_a_batch_of_one_with_negatives_inside_the_sample_trains_and_says_so(tmp_path, frames_root):
    """SimCLR over windows of 4 frames: each pair's negatives are then the other 3 pairs of the
    same window (temporal neighbours), so a batch of one still contrasts, but only inside it."""
    result = train(tmp_path, frames_root, "method.name=simclr", "method.positives=augment", "train.batch_size=1",
                   "train.name=one")
    assert result.exit_code == 0, result.output
    warnings = [line for line in result.output.splitlines() if line.startswith("warning: train.batch_size=1")]
    assert len(warnings) == 1 and "only negatives are the other frames" in warnings[0], result.output
    assert ckpt.load_checkpoint(ckpt.latest_checkpoint(tmp_path / "runs" / "one"))["progress"]["step"] == 2


def test_case_10_methods_without_negatives_train_a_batch_of_one_silently(tmp_path, frames_root):
    result = train(tmp_path, frames_root, "method.name=byol", "method.positives=augment", "train.batch_size=1",
                   "train.name=byol")
    assert result.exit_code == 0 and "train.batch_size=1" not in result.output, result.output


# --------------------------------------------------------------------------- cases 14 and 24


def cltt_session(*args, cwd: Path) -> subprocess.Popen:
    """``python -m cltt ARGS`` as the leader of its own process group, so a Ctrl-C can be sent as a
    terminal sends it: to the main process and its DataLoader workers at once."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_")} | {"OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "cltt", *map(str, args)], cwd=cwd, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)


# a checkpoint after every step, and far more steps than a signal needs to arrive in
LONG_RUN = ["data.image_size=32", "data.num_workers=0", "train.batch_size=4", "train.epochs=1000", "train.device=cpu",
            "model.backbone=tiny_cnn", "model.projection_dim=16", "train.checkpoint_minutes=0"]


def wait_for_a_checkpoint(process: subprocess.Popen, run_dir: Path) -> None:
    """Until the run has saved its first step (``train.checkpoint_minutes=0``), failing if it ends first."""
    deadline = time.monotonic() + 120
    while ckpt.latest_checkpoint(run_dir) is None:
        assert process.poll() is None and time.monotonic() < deadline, process.communicate()
        time.sleep(0.005)


def ctrl_c(process: subprocess.Popen) -> None:
    os.killpg(process.pid, signal.SIGINT)


@pytest.mark.parametrize("backbone", ["tiny_cnn", pytest.param("resnet18", marks=pytest.mark.slow)])
def test_case_14_two_ctrl_c_50_ms_apart_exit_130_quietly_and_keep_a_checkpoint(tmp_path, frames_root, backbone):
    """With DataLoader workers, after the first step's checkpoint: the first Ctrl-C asks for a save
    at the step's end, the second (50 ms later) either waits for that save or aborts the step; both
    end in exit 130 without a traceback, from the workers or the main process. resnet18's step
    outlasts the 50 ms, so its second Ctrl-C aborts; tiny_cnn's save is done by then."""
    run_dir = tmp_path / "runs" / "twice"
    process = cltt_session("train", QUICKSTART, f"data.root={frames_root}", *LONG_RUN, "data.num_workers=2",
                           f"model.backbone={backbone}", "train.name=twice", cwd=tmp_path)
    wait_for_a_checkpoint(process, run_dir)
    ctrl_c(process)
    time.sleep(0.05)
    ctrl_c(process)
    out, err = process.communicate(timeout=120)
    assert process.returncode == 130 and "Traceback" not in out + err and "Exception ignored" not in err, out + err
    latest = ckpt.latest_checkpoint(run_dir)
    assert ckpt.load_checkpoint(latest)["progress"]["step"] >= 1
    # the summary line of the save, or the abort's one line, says where the work is
    assert latest.name in out + err and f"cltt resume {Path('runs') / 'twice'}" in out + err, out + err
    (segment,) = json.loads((run_dir / "run.json").read_text())["segments"]
    assert segment["reason"] == "interrupted", segment  # case 24: a Ctrl-C is not a preemption


def test_case_14_ctrl_c_while_the_cli_imports_exits_130_quietly(tmp_path, frames_root):
    """The Ctrl-C lands once NumPy's core library is mapped into the process: cltt.cli is then
    importing its heavy modules (NumPy, OpenCV, rich), where it used to print a traceback."""
    process = cltt_session("train", QUICKSTART, f"data.root={frames_root}", *TINY, cwd=tmp_path)
    deadline = time.monotonic() + 60
    while "_multiarray_umath" not in Path(f"/proc/{process.pid}/maps").read_text():
        assert process.poll() is None and time.monotonic() < deadline, process.communicate()
        time.sleep(0.001)
    ctrl_c(process)
    out, err = process.communicate(timeout=120)
    assert process.returncode == 130 and "Traceback" not in out + err, out + err


@pytest.mark.slow  # two cltt processes, 20-35 s here (the fast Ctrl-C test checks run.json's reason too)
def test_case_24_a_ctrl_c_is_recorded_as_interrupted_and_cltt_runs_reads_old_records(tmp_path, frames_root):
    """SIGINT ends the segment as "interrupted", SIGUSR1 as "preempted" (as before); a run.json
    written before this change (reason "preempted" for a Ctrl-C) still reads in cltt runs."""
    from cltt.engine.run_table import run_summary

    for name, sent in (("ctrl_c", signal.SIGINT), ("usr1", signal.SIGUSR1)):
        process = cltt_session("train", QUICKSTART, f"data.root={frames_root}", *LONG_RUN, f"train.name={name}",
                               cwd=tmp_path)
        wait_for_a_checkpoint(process, tmp_path / "runs" / name)
        os.killpg(process.pid, sent)
        process.communicate(timeout=120)
        segment = json.loads((tmp_path / "runs" / name / "run.json").read_text())["segments"][-1]
        assert segment["reason"] == ("interrupted" if sent == signal.SIGINT else "preempted"), segment
        assert segment["message"].startswith(signal.Signals(sent).name + ": saved"), segment
    old = tmp_path / "runs" / "ctrl_c" / "run.json"
    record = json.loads(old.read_text())
    record["segments"][-1]["reason"] = "preempted"
    old.write_text(json.dumps(record))
    for name in ("ctrl_c", "usr1"):
        summary = run_summary(tmp_path / "runs" / name)
        assert summary.state == "stopped" and summary.note.startswith("SIG"), summary
    table = invoke_in_process(main, ["runs", tmp_path / "runs"], tmp_path)
    assert table.exit_code == 0 and table.output.count("stopped") == 2, table.output


# --------------------------------------------------------------------------- case 23


def test_case_23_tensorboard_has_no_epoch_chart_and_holds_the_recipe_as_hparams_and_text(tmp_path, frames_root):
    """Read back with TensorBoard's own reader: the tags, the HPARAMS plugin's experiment and
    session (every recipe key, dotted, with its value) and the recipe's YAML as text, which
    loads back to the recipe the run saved."""
    import yaml
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams import plugin_data_pb2

    result = train(tmp_path, frames_root, "log.tensorboard=true", "log.step_every=1", "train.epochs=2", "train.name=tb",
                   "train.lr=0.0005")
    assert result.exit_code == 0, result.output
    run_dir = tmp_path / "runs" / "tb"
    reader = EventAccumulator(str(run_dir / "tensorboard"), size_guidance={"scalars": 0, "tensors": 0})
    reader.Reload()
    scalars = reader.Tags()["scalars"]
    assert "epoch" not in scalars and all("/" in tag for tag in scalars), scalars
    assert [event.step for event in reader.Scalars("epoch/loss")] == [2, 4]

    content = reader.PluginTagToContent("hparams")
    experiment = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/experiment"]).experiment
    assert {info.name.tag for info in experiment.metric_infos} == {"epoch/loss", "train/loss"}
    session = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/session_start_info"]).session_start_info
    saved = yaml.safe_load((run_dir / "recipe.yaml").read_text())
    assert session.hparams["train.lr"].number_value == pytest.approx(0.0005)
    assert session.hparams["model.backbone"].string_value == "tiny_cnn"
    assert session.hparams["method.name"].string_value == saved["method"]["name"]
    assert session.hparams["log.tensorboard"].string_value == "true"  # as the recipe writes it, not 1
    assert {info.name for info in experiment.hparam_infos} == set(session.hparams)
    assert len(session.hparams) > 40  # every key, not a chosen few

    (text,) = reader.Tensors("recipe/text_summary")
    shown = text.tensor_proto.string_val[0].decode()
    assert all(line.startswith("    ") for line in shown.splitlines() if line), shown[:200]  # markdown code block
    assert yaml.safe_load("\n".join(line[4:] for line in shown.splitlines())) == saved
    assert text.step == 0


# --------------------------------------------------------------------------- case 12


@pytest.fixture
def small_disk(tmp_path):
    """``mount(size_bytes)`` -> a real tmpfs of that size under tmp_path, unmounted afterwards."""
    mounted: list[Path] = []

    def mount(size_bytes: int) -> Path:
        point = tmp_path / "disk"
        point.mkdir()
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_bytes}", "tmpfs", str(point)],
                              capture_output=True, text=True)
        if done.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here ({done.stderr.strip() or done.returncode}); the full-disk tests need root")
        mounted.append(point)
        return point

    yield mount
    for point in mounted:
        subprocess.run(["umount", str(point)], check=True)


def fill(folder: Path) -> Path:
    """A ballast file that takes every free block left under ``folder``."""
    ballast = folder / "ballast"
    with open(ballast, "wb") as handle:
        try:
            while True:
                handle.write(b"\0" * 65536)
                handle.flush()
        except OSError:
            pass
    return ballast


def one_error_line(out: str) -> str:
    assert "Traceback" not in out, out
    lines = error_lines(out)
    assert len(lines) == 1, out
    return lines[0]


def run_cltt(*args, cwd: Path) -> tuple[int, str]:
    process = cltt_session(*args, cwd=cwd)
    out, err = process.communicate(timeout=300)
    return process.returncode, out + err


@pytest.mark.slow  # six cltt processes: about a minute
def test_case_12_a_full_disk_in_train_resume_and_export_is_one_line_naming_the_file(tmp_path, frames_root, small_disk):
    """The tmpfs holds one checkpoint and a half, measured from a run on the ordinary disk: the
    first step's checkpoint fits, the second (written beside it) fills the disk, by construction.
    Train and resume end in one line naming the file and the last good checkpoint, which loads;
    exports into the filled disk (safetensors, ONNX, embeddings) end in one line too."""
    common = [QUICKSTART, f"data.root={frames_root}", *LONG_RUN, "log.tensorboard=true"]
    code, out = run_cltt("train", *common, "train.epochs=1", "train.max_batches_per_epoch=1", "train.name=measure",
                         cwd=tmp_path)
    assert code == 0, out
    checkpoint_bytes = ckpt.latest_checkpoint(tmp_path / "runs" / "measure").stat().st_size
    disk = small_disk(checkpoint_bytes * 3 // 2 + (512 << 10))
    run_dir = disk / "full"

    code, out = run_cltt("train", *common, f"train.out_dir={disk}", "train.name=full", cwd=tmp_path)
    line = one_error_line(out)
    assert code == 2 and line.startswith(f"error: cannot write {run_dir}/") and "no space left on device" in line, out
    kept = ckpt.latest_checkpoint(run_dir)
    assert f"{kept} is the last good checkpoint" in line and f"cltt resume {run_dir}" in line, line
    assert ckpt.load_checkpoint(kept)["progress"]["step"] == 1
    assert not [p for p in run_dir.iterdir() if ".tmp" in p.name]  # no half-written file takes the space

    code, out = run_cltt("resume", run_dir, cwd=tmp_path)
    line = one_error_line(out)
    assert code == 2 and f"cannot write {run_dir}/" in line and "no space left on device" in line, out
    assert ckpt.latest_checkpoint(run_dir) == kept and ckpt.load_checkpoint(kept)["progress"]["step"] == 1

    ballast = fill(disk)
    exports = [["--out", disk / "exports"], ["--out", disk / "exports", "--format", "onnx"],
               ["--out", disk / "features.npy", "--embeddings", frames_root]]
    for extra in exports:
        code, out = run_cltt("export", tmp_path / "runs" / "measure", *extra, cwd=tmp_path)
        line = one_error_line(out)
        assert code == 2 and f"cannot write {disk}/" in line and "no space left on device" in line, (extra, out)
        assert "export elsewhere with --out" in line, line
    ballast.unlink()
    assert ckpt.load_checkpoint(ckpt.latest_checkpoint(run_dir))["progress"]["step"] == 1


def test_case_14_a_second_ctrl_c_waits_for_a_checkpoint_being_written(preemption_handlers):
    """Real SIGINTs to this process with the trainer's handlers: inside ``saving()`` the second one
    does not interrupt (the first one's stop follows the save); outside, it aborts once, and after
    that Ctrl-C is ignored, so nothing lands in the exit's cleanup."""
    from cltt.engine import preemption

    with preemption.saving():
        os.kill(os.getpid(), signal.SIGINT)
        os.kill(os.getpid(), signal.SIGINT)
        written = sum(range(1000))  # Python code runs: the handlers have run by now
    assert written == 499500 and preemption.requested() == "SIGINT"
    with pytest.raises(KeyboardInterrupt):
        os.kill(os.getpid(), signal.SIGINT)
        sum(range(1000))
    assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    os.kill(os.getpid(), signal.SIGINT)  # ignored by the process itself
