"""cltt sweep: grid expansion and run names, the rendered job array (shellcheck, and run by bash
with fake srun/scontrol/apptainer), local runs, status, and one-line errors."""

from __future__ import annotations

import shutil
import subprocess

import pytest
import yaml

from cltt.engine import run_files
from cltt.errors import CLTTError, RecipeError
from cltt.sweep import grid, render
from cltt.sweep.status import sweep_status
from tests.sweep_helpers import assert_one_line_error, calls, dry_run, fake_tools, run_task, sweep, write_recipe

# --------------------------------------------------------------------------- grid and names


def test_grid_expands_in_order_with_readable_names(tmp_path):
    recipe = write_recipe(tmp_path, sweep={"grid": {"data.window_size": [5, 8], "data.frame_step": [2]},
                                           "out_dir": str(tmp_path / "sweeps")})
    plan = grid.plan_sweep(recipe, ["train.epochs=3"], ["train.lr=1e-3,3e-4"])
    assert plan.name == "tiny" and plan.dir == tmp_path / "sweeps" / "tiny"
    assert [r.name for r in plan.runs] == ["ws5_lr1e-3", "ws5_lr3e-4", "ws8_lr1e-3", "ws8_lr3e-4"]
    assert [r.index for r in plan.runs] == [0, 1, 2, 3]
    assert plan.runs[1].overrides == {"data.window_size": 5, "data.frame_step": 2, "train.lr": 3e-4}
    run = plan.runs[2].recipe
    assert (run.data.window_size, run.data.frame_step, run.train.lr, run.train.epochs) == (8, 2, 1e-3, 3)
    assert run.train.out_dir == str(plan.dir / "runs") and run.train.name == "ws8_lr1e-3"
    assert run.train.resume == "auto"

    grid.write_sweep(plan)
    saved = yaml.safe_load((plan.dir / "recipes" / "ws8_lr1e-3.yaml").read_text())
    assert saved["data"]["window_size"] == 8 and saved["train"]["name"] == "ws8_lr1e-3"
    assert saved["sweep"]["grid"] == {}  # changing the sweep must not block resuming a run
    manifest = grid.read_manifest(plan.dir)
    assert [r["name"] for r in manifest["runs"]] == [r.name for r in plan.runs]
    assert manifest["runs"][3]["overrides"] == {"data.window_size": 8, "data.frame_step": 2, "train.lr": 3e-4}
    assert (plan.dir / "logs").is_dir()

    again = grid.plan_sweep(recipe, [], ["data.window_size=5", "train.lr=1e-3,3e-4"])  # --grid replaces a key
    assert [r.name for r in again.runs] == ["lr1e-3", "lr3e-4"]
    with pytest.raises(CLTTError, match="was written with another grid"):  # its four runs would vanish
        grid.write_sweep(again)
    assert sorted(p.stem for p in (plan.dir / "recipes").glob("*.yaml")) == [r.name for r in plan.runs]


@pytest.mark.parametrize("key, value, part", [
    ("train.lr", 0.001, "lr1e-3"),
    ("train.lr", 3e-4, "lr3e-4"),
    ("train.lr", 2.5e-4, "lr2.5e-4"),
    ("method.temperature", 0.07, "tau0.07"),
    ("train.epochs", 100, "ep100"),
    ("train.warmup_epochs", 2.0, "warm2"),
    ("data.frame_step", 2, "fs2"),
    ("data.window_stride", 4, "st4"),
    ("data.two_view_offset", 3, "off3"),
    ("train.batch_size", 256, "bs256"),
    ("model.backbone", "resnet18", "resnet18"),
    ("model.backbone", "timm/resnet18", "timm-resnet18"),  # a backbone name, not a path to shorten
    ("method.name", "simclr", "simclr"),
    ("data.augment.consistent", False, "noconsistent"),
    ("data.augment.flip_p", 0.5, "flip_p0.5"),
    ("train.accumulation", "approximate", "accumulation-approximate"),
    ("data.root", "/data/saycam/frames", "root-frames"),
    ("data.augment.crop_scale", [0.2, 1.0], "crop_scale0.2-1"),
    ("train.grad_clip", None, "grad_clip-none"),
])
def test_name_parts(key, value, part):
    assert grid.name_part(key, value) == part


def test_names_only_show_what_varies_and_are_unique():
    points = [{"data.root": "/a/frames", "train.lr": 1e-3}, {"data.root": "/b/frames", "train.lr": 1e-3}]
    assert grid.run_names(points) == ["root-frames-1", "root-frames-2"]
    assert grid.run_names([{"train.lr": 1e-3, "train.seed": 0}]) == ["lr1e-3_seed0"]
    long = grid.run_names([{"data.root": "x" * 300}])[0]
    assert len(long) <= 100


def test_grid_options_parse_yaml_values():
    assert grid.parse_grid_option("train.lr=1e-3,3e-4") == ("train.lr", ["1e-3", "3e-4"])  # floats once resolved
    assert grid.parse_grid_option("model.backbone=resnet18,tiny_cnn") == ("model.backbone", ["resnet18", "tiny_cnn"])
    assert grid.parse_grid_option("data.augment.crop_scale=[0.2,1.0],[0.4,1.0]")[1] == [[0.2, 1.0], [0.4, 1.0]]
    assert grid.parse_grid_option("method.decoupled=true,false")[1] == [True, False]
    with pytest.raises(CLTTError, match="must look like key.sub=v1,v2"):
        grid.parse_grid_option("train.lr")


def test_bad_grid_key_names_the_closest(tmp_path):
    recipe = write_recipe(tmp_path)
    with pytest.raises(RecipeError, match=r"sweep grid: recipe key 'train.lrr' is not known; did you mean 'train.lr'\?"):
        grid.plan_sweep(recipe, [], ["train.lrr=1e-3,3e-4"])
    result = sweep(recipe, "--grid", "data.window_sise=3,5", cwd=tmp_path)
    assert_one_line_error(result, "data.window_sise", "did you mean 'data.window_size'")
    assert not (tmp_path / "sweeps").exists()


def test_a_key_given_twice_in_a_sweep_file_is_refused(tmp_path):
    """The sweep read its manifest and its runs' recipes with yaml.safe_load, which keeps the last
    of two equal keys silently; it reads them as recipe files are read (RecipeLoader)."""
    recipe = write_recipe(tmp_path, sweep={"grid": {"train.lr": [1e-3, 3e-4]}, "out_dir": str(tmp_path / "sweeps")})
    plan = grid.plan_sweep(recipe)
    grid.write_sweep(plan)
    manifest = plan.dir / "sweep.yaml"
    text = manifest.read_text()
    manifest.write_text(text + "name: other\n")  # a second name:, after the first on line 1
    with pytest.raises(CLTTError, match=r"sweep.yaml is not valid YAML at line \d+ \(key 'name' is given twice in one "
                                        r"mapping \(first at line 1\); keep one\)"):
        grid.read_manifest(plan.dir)
    assert_one_line_error(sweep("status", plan.dir, cwd=tmp_path), "key 'name' is given twice")
    manifest.write_text(text)
    run = plan.recipe_path(plan.runs[0])
    run.write_text(run.read_text() + "extract: {}\n")  # the same section again: cltt train would refuse the file
    with pytest.raises(CLTTError, match="run lr1e-3 has \\(its recipe no longer reads\\)"):
        grid.write_sweep(plan)


def test_grid_errors_are_one_line(tmp_path):
    recipe = write_recipe(tmp_path)
    assert_one_line_error(sweep(recipe, cwd=tmp_path), "the sweep grid is empty")
    assert_one_line_error(sweep(recipe, "--grid", "train.out_dir=a,b", cwd=tmp_path), "train.out_dir", "cannot vary")
    assert_one_line_error(sweep(recipe, "--grid", "train.lr=1e-3,-1", cwd=tmp_path), "train.lr=-1", "must be > 0")
    assert_one_line_error(sweep(recipe, "--grid", "train.lr=1e-3", "--dry-run", cwd=tmp_path), "--dry-run goes with --slurm")
    assert_one_line_error(sweep("--grid", "train.lr=1e-3", cwd=tmp_path), "needs a recipe")


# --------------------------------------------------------------------------- Slurm time and script


@pytest.mark.parametrize("text, seconds", [
    ("90", 5400), ("04:00:00", 14400), ("2-00:00:00", 172800), ("1-12", 129600), ("30:00", 1800),
    ("0-01:30", 5400), ("UNLIMITED", None),
])
def test_slurm_times(text, seconds):
    assert render.parse_slurm_time(text) == seconds


@pytest.mark.parametrize("text", ["4h", "04:61:00", "1-25:00:00", "", "0", "1:2:3:4", "-5"])
def test_bad_slurm_times(text):
    with pytest.raises(RecipeError, match="sweep.slurm.time"):
        render.parse_slurm_time(text)


def test_array_spec():
    assert render.array_spec([0, 1, 2, 3]) == "0-3"
    assert render.array_spec([0, 1, 2, 5, 7, 8], 4) == "0-2,5,7-8%4"


SITE = {"partition": "gpu", "account": "r00000", "gpus": 2, "cpus_per_task": 4, "mem": "64G", "time": "2-00:00:00",
        "mail_user": "me@iu.edu", "throttle": 2, "apptainer_image": "/images/cltt.sif",
        "binds": ["/N/project", "/N/scratch"], "modules": ["apptainer/1.2"], "scratch": "$TMPDIR",
        "extra": ["--constraint=a100"]}


@pytest.mark.parametrize("slurm", [{}, SITE], ids=["defaults", "site"])
def test_dry_run_script_passes_shellcheck(tmp_path, slurm):
    script, _ = dry_run(tmp_path, slurm)
    if shutil.which("shellcheck") is None:
        pytest.skip("shellcheck is not installed (Debian: apt-get install shellcheck)")
    done = subprocess.run(["shellcheck", "-s", "bash", str(script)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout


def test_dry_run_sbatch_lines(tmp_path):
    _, text = dry_run(tmp_path, SITE)
    sbatch = [line.removeprefix("#SBATCH ") for line in text.splitlines() if line.startswith("#SBATCH ")]
    assert sbatch == [
        "--job-name=tiny", "--array=0-3%2", "--output=sweeps/tiny/logs/%x-%A_%a.out", "--open-mode=append",
        "--requeue", "--signal=USR1@120", "--time=2-00:00:00", "--cpus-per-task=4", "--partition=gpu",
        "--account=r00000", "--gpus-per-node=2", "--mem=64G", "--mail-user=me@iu.edu", "--mail-type=END,FAIL",
        "--constraint=a100",
    ]
    assert "B:USR1" not in text  # B: would signal the batch shell only, never the trainer
    assert "module load apptainer/1.2\n" in text
    assert "apptainer_image=/images/cltt.sif\n" in text
    assert "apptainer_args=(--nv --bind /N/project --bind /N/scratch)\n" in text
    assert "scratch='$TMPDIR'   # as the recipe wrote it" in text
    assert 'scontrol requeue "$job"' in text and 'job="${SLURM_ARRAY_JOB_ID}_${task}"' in text
    assert "lr1e-3_ws3   # 0\n" in text and "lr3e-4_ws5   # 3\n" in text


def test_dry_run_defaults_and_checks(tmp_path):
    _, text = dry_run(tmp_path, {"gpus": 0, "signal_seconds": 0, "requeue": False})
    assert "--array=0-3\n" in text and "--no-requeue" in text
    assert "--signal" not in "".join(line for line in text.splitlines() if line.startswith("#SBATCH"))
    assert "--gpus" not in text and "apptainer_args=()" in text and "module load" not in text
    recipe = write_recipe(tmp_path, name="bad", sweep={"grid": {"train.lr": [1e-3]}, "slurm": {"time": "4h"}})
    assert_one_line_error(sweep(recipe, "--slurm", "--dry-run", cwd=tmp_path), "sweep.slurm.time", "04:00:00")
    recipe = write_recipe(tmp_path, name="bad", sweep={"grid": {"train.lr": [1e-3]}, "slurm": {"time": "2"}})
    assert_one_line_error(sweep(recipe, "--slurm", "--dry-run", cwd=tmp_path), "signal_seconds", "below the time limit")
    assert not (tmp_path / "sweeps" / "bad").exists()


def test_sbatch_missing_is_one_line(tmp_path):
    recipe = write_recipe(tmp_path, sweep={"grid": {"train.lr": [1e-3, 3e-4]}})
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    result = sweep(recipe, "--slurm", cwd=tmp_path, env={"PATH": str(empty)})
    assert_one_line_error(result, "sbatch is not on PATH", "sbatch sweeps/tiny/sweep.sbatch", "--local")
    assert (tmp_path / "sweeps" / "tiny" / "sweep.sbatch").is_file()  # ready to copy to a login node


# --------------------------------------------------------------------------- the script, run by bash


def test_script_runs_the_task_and_requeues_only_its_own_task(tmp_path):
    fake_tools(tmp_path)
    script, _ = dry_run(tmp_path, {"gpus": 0})
    done = run_task(tmp_path, script, 2)
    assert done.returncode == 0, done.stderr
    assert calls(tmp_path, "cltt") == ["train sweeps/tiny/recipes/lr3e-4_ws3.yaml train.resume=auto data.num_workers=2"]
    assert "cltt-sweep: run lr3e-4_ws3 exited 0" in done.stdout

    done = run_task(tmp_path, script, 0, rc=75)  # saved, "requeue me" (no scontrol in a container)
    assert done.returncode == 0, done.stderr
    assert calls(tmp_path, "scontrol") == ["requeue 77_0"]  # never the whole array (job 77)
    assert "exited 75: checkpoint saved, requeued 77_0" in done.stdout

    done = run_task(tmp_path, script, 1, rc=3)
    assert done.returncode == 3 and "cltt-sweep: run lr1e-3_ws5 exited 3" in done.stdout
    done = run_task(tmp_path, script, 4)
    assert done.returncode == 2 and "array task 4 has no run: this sweep has 4" in done.stderr


def test_script_stages_frames_to_scratch_inside_apptainer(tmp_path, frames_root):
    fake_tools(tmp_path)
    script, _ = dry_run(tmp_path, {"gpus": 1, "scratch": "$TMPDIR/cltt", "apptainer_image": "cltt.sif",
                                   "binds": ["/data"]})
    done = run_task(tmp_path, script, 1)
    assert done.returncode == 0, done.stdout + done.stderr
    stage_dir = tmp_path / "node-tmp" / "cltt" / "cltt-77_1"
    [apptainer] = calls(tmp_path, "apptainer")
    assert apptainer == (f"exec --nv --bind /data --bind {stage_dir} cltt.sif fake-cltt train "
                         f"sweeps/tiny/recipes/lr1e-3_ws5.yaml train.resume=auto data.num_workers=2 "
                         f"data.root={stage_dir}/frames")
    assert calls(tmp_path, "staged") == ["clip0", "clip1", "clip2"]  # the copy was there during the run
    assert not stage_dir.exists()  # and is removed afterwards


def test_script_stages_a_packed_store_as_a_few_files(tmp_path, frames_root):
    from cltt.data.pack import pack_folder

    pack_folder(frames_root, tmp_path / "frames.store")
    fake_tools(tmp_path)
    script, _ = dry_run(tmp_path, {"gpus": 0, "scratch": "$TMPDIR"}, root="frames.store")
    done = run_task(tmp_path, script, 0)
    assert done.returncode == 0, done.stdout + done.stderr
    assert calls(tmp_path, "staged") == ["cltt-store.json", "shards"]
    assert "cltt-sweep: staged 3 files" in done.stdout
    assert calls(tmp_path, "cltt")[0].endswith(f"data.root={tmp_path}/node-tmp/cltt-77_0/frames.store")


# --------------------------------------------------------------------------- local runs and status


def test_local_sweep_runs_both_and_status_shows_them_finished(tmp_path, frames_root):
    recipe = write_recipe(tmp_path, data={"root": str(frames_root)})
    result = sweep(recipe, "--grid", "train.lr=1e-3,3e-4", "--local", cwd=tmp_path)
    assert result.exit_code == 0, result.stdout + result.stderr
    assert "sweep tiny: 2 runs: 2 finished" in result.stdout
    sweep_dir = tmp_path / "sweeps" / "tiny"
    for name in ("lr1e-3", "lr3e-4"):
        assert (sweep_dir / "runs" / name / run_files.FINAL_CHECKPOINT).is_file()
        assert "cltt-sweep: run %s exited 0" % name in (sweep_dir / "logs" / f"{name}.local.out").read_text()

    result = sweep("status", "sweeps/tiny", "--csv", "status.csv", cwd=tmp_path)
    assert result.exit_code == 0, result.stderr
    assert "2 runs: 2 finished" in result.stdout
    rows = (tmp_path / "status.csv").read_text().splitlines()
    assert rows[0].startswith("index,run,train.lr,state,epochs_done,epochs,last_loss,best_val_acc,best_test_acc")
    assert [r.split(",")[1:6] for r in rows[1:]] == [["lr1e-3", "0.001", "finished", "1", "1"], ["lr3e-4", "0.0003", "finished", "1", "1"]]

    result = sweep(recipe, "--grid", "train.lr=1e-3,3e-4", "--local", cwd=tmp_path)  # again: nothing to do
    assert result.exit_code == 0 and "2 skipped" in result.stdout


def test_status_reads_run_dirs_and_logs(tmp_path):
    recipe = write_recipe(tmp_path, sweep={"grid": {"train.lr": [1e-3, 3e-4, 1e-4, 3e-5, 1e-5]}})
    assert sweep(recipe, cwd=tmp_path).exit_code == 0  # writes the sweep folder, runs nothing
    sweep_dir = tmp_path / "sweeps" / "tiny"
    runs, logs = sweep_dir / "runs", sweep_dir / "logs"
    for name in ("lr1e-3", "lr3e-4", "lr1e-4"):
        (runs / name).mkdir(parents=True)
        (runs / name / "metrics.csv").write_text("epoch,loss,learning_rate,decay_rate\n1,2.5,0.001,1.0\n2,2.25,0.0005,0.5\n")
    (runs / "lr1e-3" / run_files.FINAL_CHECKPOINT).write_bytes(b"")
    (runs / "lr1e-3" / "metrics_eval.csv").write_text(
        "epoch,train_loss,train_acc,val_loss,val_acc,test_loss,test_acc\n1,1,0.5,1,0.41,1,0.4\n2,1,0.6,1,0.52,1,\n")
    (runs / "lr3e-4" / run_files.step_checkpoint(12)).write_bytes(b"")
    (logs / "tiny-90_1.out").write_text("cltt-sweep: run lr3e-4 (task 1 of 5, job 90_1) on vm, start 1\n"
                                        "SIGUSR1: saved\ncltt-sweep: run lr3e-4 exited 75: checkpoint saved, requeued 90_1\n")
    (logs / "tiny-90_2.out").write_text("cltt-sweep: run lr1e-4 (task 2 of 5, job 90_2) on vm, start 1\n"
                                        "error: CUDA is not available; set train.device=cpu\n"
                                        "cltt-sweep: run lr1e-4 exited 2 (2026-01-01 00:00:00)\n")
    (logs / "tiny-90_3.out").write_text("cltt-sweep: run lr3e-5 (task 3 of 5, job 90_3) on vm, start 1\n")
    states = {s.run: s for s in sweep_status(sweep_dir)}
    assert [s.state for s in states.values()] == ["finished", "stopped", "failed", "running", "not started"]
    assert states["lr1e-3"].epochs_done == 2 and states["lr1e-3"].epochs == 1 and states["lr1e-3"].last_loss == 2.25
    assert states["lr1e-3"].best_val_acc == 0.52 and states["lr1e-3"].best_test_acc == 0.4
    assert states["lr3e-4"].checkpoint == run_files.step_checkpoint(12)
    assert states["lr1e-4"].note == "CUDA is not available; set train.device=cpu"
    result = sweep("status", sweep_dir, cwd=tmp_path)
    assert "5 runs: 1 finished, 1 running, 1 failed, 1 stopped, 1 not started" in result.stdout
    assert "failed 2 lr1e-4: CUDA is not available" in result.stdout


def test_status_of_something_else_is_one_line(tmp_path):
    assert_one_line_error(sweep("status", tmp_path, cwd=tmp_path), "is not a sweep folder")
    recipe = write_recipe(tmp_path)
    assert_one_line_error(sweep("status", recipe, cwd=tmp_path), "is a recipe", "sweeps/tiny")


def test_help_explains_both_forms(tmp_path):
    text = sweep("--help", cwd=tmp_path).stdout
    for fragment in ("cltt sweep RECIPE", "cltt sweep status SWEEP_DIR", "--grid", "--local", "--slurm", "--dry-run",
                     "Examples:"):
        assert fragment in text
    assert "--csv" in sweep("status", "--help", cwd=tmp_path).stdout


def test_a_rerun_with_another_grid_keeps_the_earlier_runs(tmp_path, frames_root):
    """It used to replace sweep.yaml, and the earlier runs vanished from sweep status."""
    recipe = write_recipe(tmp_path, data={"root": str(frames_root)})
    assert sweep(recipe, "--grid", "train.lr=1e-3,3e-4", "--local", cwd=tmp_path).exit_code == 0
    manifest = (tmp_path / "sweeps" / "tiny" / "sweep.yaml").read_text()
    assert_one_line_error(sweep(recipe, "--grid", "train.lr=1e-4", "--local", cwd=tmp_path),
                          "sweeps/tiny was written with another grid", "lr1e-3, lr3e-4", "sweep.name=NEW_NAME")
    assert (tmp_path / "sweeps" / "tiny" / "sweep.yaml").read_text() == manifest
    grown = sweep(recipe, "--grid", "train.lr=1e-3,3e-4,1e-4", "--local", cwd=tmp_path)  # adding runs is fine
    assert grown.exit_code == 0, grown.stdout + grown.stderr
    assert "3 runs: 3 finished" in sweep("status", "sweeps/tiny", cwd=tmp_path).stdout
    assert sweep(recipe, "--grid", "train.lr=1e-4", "sweep.name=other", "--local", cwd=tmp_path).exit_code == 0
