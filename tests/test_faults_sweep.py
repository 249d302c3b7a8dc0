"""Issue 24's sweep cases, for real: hostile recipe values rendered into the Slurm job array and
run by bash under stand-ins for srun, sbatch, scontrol, module and apptainer (case 1)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from tests.sweep_helpers import calls, fake_tools, run_task, sweep, write_recipe

# Each one runs `touch MARKER` if any shell ever evaluates it.
PAYLOADS = {
    "substitution": "$(touch {m})",
    "backticks": "`touch {m}`",
    "single-quote break": "x'; touch {m}; echo '",
    "double-quote break": 'x"; touch {m}; echo "',
    "line break": "x\ntouch {m}\n",
    "semicolon": "x;touch {m}",
    "ifs": "$(touch${{IFS}}{m})",
    "default expansion": "${{HOME:-$(touch {m})}}",
}

# Every recipe key that reaches the rendered script, as (section path, is it a list).
KEYS = {
    "sweep.slurm.partition": False, "sweep.slurm.account": False, "sweep.slurm.mem": False,
    "sweep.slurm.time": False, "sweep.slurm.mail_user": False, "sweep.slurm.mail_type": False,
    "sweep.slurm.scratch": False, "sweep.slurm.apptainer_image": False, "sweep.slurm.binds": True,
    "sweep.slurm.modules": True, "sweep.slurm.extra": True, "sweep.name": False, "data.root": False,
}


def _set(tree: dict, dotted: str, value) -> None:
    *parents, leaf = dotted.split(".")
    for part in parents:
        tree = tree.setdefault(part, {})
    tree[leaf] = value


@pytest.mark.parametrize("payload", list(PAYLOADS), ids=list(PAYLOADS))
def test_case_01_no_recipe_value_runs_in_the_job_script(tmp_path, frames_root, payload):
    """A value either is refused in one line (nothing written), or is rendered so that the job
    script, run by bash, never evaluates it: the marker file never appears."""
    fake_tools(tmp_path)
    marker = tmp_path / "PWNED"
    value = PAYLOADS[payload].format(m=marker)
    rendered = refused = 0
    for key, is_list in KEYS.items():
        tree = yaml.safe_load(write_recipe(tmp_path).read_text())
        # a safe staging setup, so the hostile value meets the scratch-copy code path too
        _set(tree, "sweep.slurm", {"gpus": 0, "scratch": "$TMPDIR/x", "signal_seconds": 0})
        _set(tree, "data.root", str(frames_root))
        _set(tree, key, [value] if is_list else value)
        recipe = tmp_path / "hostile.yaml"
        recipe.write_text(yaml.safe_dump(tree))
        sweep_dir = tmp_path / "sweeps"
        result = sweep(recipe, "--grid", "train.lr=1e-3", "--slurm", "--dry-run", cwd=tmp_path)
        if result.exit_code != 0:
            refused += 1
            lines = [line for line in result.stderr.splitlines() if line.strip()]
            assert result.exit_code == 2 and len(lines) == 1 and lines[0].startswith("error:"), (key, result.stderr)
            assert key.split(".")[-1] in lines[0] or "name" in lines[0], (key, lines[0])
            assert "Traceback" not in result.stderr
            continue
        rendered += 1
        [script] = sweep_dir.rglob("sweep.sbatch")
        done = run_task(tmp_path, script, 0)
        assert not marker.exists(), f"{key}={value!r} ran in the job script:\n{script.read_text()}"
        assert "Traceback" not in done.stderr
        for folder in sweep_dir.iterdir():  # the next key starts from no sweep
            for path in sorted(folder.rglob("*"), reverse=True):
                path.rmdir() if path.is_dir() else path.unlink()
            folder.rmdir()
    assert not marker.exists()
    assert rendered and refused, (rendered, refused)  # both paths were exercised


def test_case_01_scratch_variables_expand_in_the_job_without_eval(tmp_path, frames_root):
    """$VAR and ${VAR} still expand (that is what scratch is for), and a variable whose value is
    itself shell syntax is used as text, never run."""
    fake_tools(tmp_path)
    marker = tmp_path / "PWNED"
    recipe = write_recipe(tmp_path, data={"root": str(frames_root)},
                          sweep={"slurm": {"gpus": 0, "scratch": "${TMPDIR}/$USER_PART/stage"}})
    assert sweep(recipe, "--grid", "train.lr=1e-3", "--slurm", "--dry-run", cwd=tmp_path).exit_code == 0
    script = tmp_path / "sweeps" / "tiny" / "sweep.sbatch"
    assert "scratch='${TMPDIR}/$USER_PART/stage'" in script.read_text()

    hostile_part = f"$(touch {marker})"
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_")}
    env.update(PATH=f"{tmp_path / 'fake-bin'}:{env['PATH']}", FAKE_CALLS=str(tmp_path / "calls"), CLTT_COMMAND="fake-cltt",
               SLURM_ARRAY_JOB_ID="77", SLURM_ARRAY_TASK_ID="0", SLURM_JOB_ID="77", TMPDIR=str(tmp_path / "node"),
               USER_PART=hostile_part)
    done = subprocess.run(["bash", str(script)], capture_output=True, text=True, cwd=tmp_path, env=env, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    assert not marker.exists()
    staged = tmp_path / "node" / hostile_part / "stage" / "cltt-77_0" / "frames"
    assert f"data.root={staged}" in (tmp_path / "calls" / "cltt").read_text()

    del env["USER_PART"]  # an unset name is one clear line from the job, not an empty path
    done = subprocess.run(["bash", str(script)], capture_output=True, text=True, cwd=tmp_path, env=env, timeout=60)
    assert done.returncode == 2
    assert "cltt-sweep: error: sweep.slurm.scratch names $USER_PART, which is not set in this job" in done.stderr


@pytest.mark.parametrize("key,value", [
    ("scratch", "scratch/$(touch PWNED)"), ("scratch", "`id`"), ("scratch", "${TMPDIR:-/tmp}"),
    ("partition", "gpu\ntouch PWNED"), ("partition", "gpu --wrap=id"), ("mail_user", "me@iu.edu;id"),
])
def test_case_01_hostile_slurm_values_are_one_line_at_load(tmp_path, key, value):
    recipe = write_recipe(tmp_path, sweep={"slurm": {key: value}})
    result = sweep(recipe, "--grid", "train.lr=1e-3", "--slurm", "--dry-run", cwd=tmp_path)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.exit_code == 2 and len(lines) == 1, result.stderr
    assert f"sweep.slurm.{key}" in lines[0]
    assert not (tmp_path / "sweeps").exists() and not Path(tmp_path / "PWNED").exists()


def test_case_06_a_rerun_with_another_base_recipe_is_refused(tmp_path):
    """Same grid, another base recipe: the runs on disk were trained with the first one."""
    first = write_recipe(tmp_path, name="base", method={"name": "cltt"})
    assert sweep(first, "--grid", "train.lr=1e-3,3e-4", "sweep.name=study", cwd=tmp_path).exit_code == 0
    sweep_dir = tmp_path / "sweeps" / "study"
    recipes = {p.name: p.read_text() for p in (sweep_dir / "recipes").iterdir()}
    assert "name: cltt" in (sweep_dir / "base.yaml").read_text()  # what the runs came from

    other = write_recipe(tmp_path, name="other", method={"name": "simclr"})
    result = sweep(other, "--grid", "train.lr=1e-3,3e-4", "sweep.name=study", cwd=tmp_path)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.exit_code == 2 and len(lines) == 1, result.stderr
    assert "was written from another recipe: run lr1e-3 has method.name: 'cltt' -> 'simclr'" in lines[0]
    assert "1 more runs too" in lines[0] and "sweep.name=NEW_NAME" in lines[0]
    assert {p.name: p.read_text() for p in (sweep_dir / "recipes").iterdir()} == recipes  # untouched

    # an override for every run is another recipe too; the same command again is fine
    assert sweep(first, "--grid", "train.lr=1e-3,3e-4", "sweep.name=study", "train.epochs=5", cwd=tmp_path).exit_code == 2
    assert sweep(first, "--grid", "train.lr=1e-3,3e-4", "sweep.name=study", cwd=tmp_path).exit_code == 0
    # a Slurm setting is not part of a run's recipe: changing it does not block the rerun
    assert sweep(first, "--grid", "train.lr=1e-3,3e-4", "sweep.name=study", "sweep.slurm.partition=other",
                 cwd=tmp_path).exit_code == 0


def test_case_06_recipes_written_before_a_key_existed_still_compare_equal(tmp_path):
    recipe = write_recipe(tmp_path)
    assert sweep(recipe, "--grid", "train.lr=1e-3", cwd=tmp_path).exit_code == 0
    path = tmp_path / "sweeps" / "tiny" / "recipes" / "lr1e-3.yaml"
    tree = yaml.safe_load(path.read_text())
    del tree["train"]["seed"]  # as if written by a cltt that had no such key (its default)
    path.write_text(yaml.safe_dump(tree))
    assert sweep(recipe, "--grid", "train.lr=1e-3", cwd=tmp_path).exit_code == 0


@pytest.mark.parametrize("name", ["qs_slurm", "study.v2", "a+b=c"])
def test_case_20_sweep_name_is_taken_as_given(tmp_path, name):
    recipe = write_recipe(tmp_path)
    result = sweep(recipe, "--grid", "train.lr=1e-3", f"sweep.name={name}", "--slurm", "--dry-run", cwd=tmp_path)
    assert result.exit_code == 0, result.stderr
    sweep_dir = tmp_path / "sweeps" / name
    assert (sweep_dir / "sweep.yaml").is_file() and f"--job-name={name}\n" in (sweep_dir / "sweep.sbatch").read_text()
    assert sweep("status", f"sweeps/{name}", cwd=tmp_path).exit_code == 0


@pytest.mark.parametrize("name", ["my sweep", "../escape", ".hidden", "a/b", "-x", "x" * 101])
def test_case_20_a_sweep_name_that_cannot_be_a_folder_is_one_line(tmp_path, name):
    recipe = write_recipe(tmp_path)
    result = sweep(recipe, "--grid", "train.lr=1e-3", f"sweep.name={name}", cwd=tmp_path)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.exit_code == 2 and len(lines) == 1 and "sweep.name" in lines[0], result.stderr
    assert not (tmp_path / "sweeps").exists()


def test_case_20_a_sweep_an_earlier_cltt_renamed_says_how_to_continue_it(tmp_path):
    recipe = write_recipe(tmp_path)
    assert sweep(recipe, "--grid", "train.lr=1e-3", "sweep.name=qs-slurm", cwd=tmp_path).exit_code == 0  # the old folder
    result = sweep(recipe, "--grid", "train.lr=1e-3", "sweep.name=qs_slurm", cwd=tmp_path)
    assert result.exit_code == 2 and "mv sweeps/qs-slurm sweeps/qs_slurm" in result.stderr
    assert not (tmp_path / "sweeps" / "qs_slurm").exists()


def test_case_19_sweep_status_shows_the_grid_values(tmp_path):
    recipe = write_recipe(tmp_path)
    assert sweep(recipe, "--grid", "train.lr=1e-3,3e-4", "--grid", "data.window_size=3,5", cwd=tmp_path).exit_code == 0
    result = sweep("status", "sweeps/tiny", "--csv", "status.csv", cwd=tmp_path)
    assert result.exit_code == 0, result.stderr
    header = result.stdout.splitlines()[2]
    assert "train.lr" in header and "data.window_size" in header, result.stdout
    rows = (tmp_path / "status.csv").read_text().splitlines()
    assert rows[0].startswith("index,run,train.lr,data.window_size,state,")
    assert rows[1].startswith("0,lr1e-3_ws3,0.001,3,not started,") and rows[4].startswith("3,lr3e-4_ws5,0.0003,5,not started,")


@pytest.mark.parametrize("columns", [80, 60])
def test_case_19_sweep_status_reads_at_80_columns_without_cutting_a_cell(tmp_path, columns):
    """At 80 columns the table squeezed every column at once: '#' vanished, names and backbones
    ended in '…' and state, epochs and accuracies fell off the right edge. Now whole columns are
    left out (the grid's first, named on stderr; --csv keeps them) and, narrower still, run names
    wrap whole; no cell is cut."""
    from rich.cells import cell_len

    backbones = "model.backbone=tiny_cnn,timm/vit_small_patch16_224.augreg_in21k"
    grid = ("--grid", "train.lr=1e-3,3e-4", "--grid", "data.window_size=3,5", "--grid", backbones)
    assert sweep(write_recipe(tmp_path), *grid, cwd=tmp_path).exit_code == 0
    result = sweep("status", "sweeps/tiny", cwd=tmp_path, env={"COLUMNS": str(columns)})
    assert result.exit_code == 0, result.stderr
    table = [line for line in result.stdout.splitlines() if line[:1] in "┏┃┡│└"]
    assert max(cell_len(line) for line in table) <= columns, result.stdout
    assert table[0].startswith("┏") and table[0].endswith("┓") and table[-1].startswith("└") and table[-1].endswith("┘")
    assert "…" not in result.stdout
    header = [cell.strip() for cell in table[1].strip("┃").split("┃")]
    assert header[:2] == ["#", "run"] and "state" in header, header
    rows = [[cell.strip() for cell in line.strip("│").split("│")] for line in table if line.startswith("│")]
    names, states, run = [], [], header.index("run")
    for row in rows:  # a folded name goes on in the next line, whose '#' cell is empty
        if row[0]:
            names.append(row[run])
            states.append(row[header.index("state")])
        else:
            names[-1] += row[run]
    assert sorted(names) == sorted(path.stem for path in (tmp_path / "sweeps" / "tiny" / "recipes").glob("*.yaml"))
    assert states == ["not started"] * 8 and [row[0] for row in rows if row[0]] == [str(i) for i in range(8)]
    left_out = next(line for line in result.stderr.splitlines() if line.startswith(f"left out at {columns} columns: "))
    assert "model.backbone" in left_out and "--csv has every column" in left_out
    assert (f"run names wrap to fit {columns} columns" in result.stderr) == (columns == 60), result.stderr
    wide = sweep("status", "sweeps/tiny", cwd=tmp_path, env={"COLUMNS": "250"})
    assert "left out" not in wide.stderr and "timm/vit_small_patch16_224.augreg_in21k" in wide.stdout


def _alive(pid: int) -> bool:
    """Whether a process runs (a zombie that no one reaped yet counts as ended)."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def _processes() -> list[tuple[int, str]]:
    """(pid, command line) of every live process."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and _alive(int(entry.name)):
                found.append((int(entry.name), (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")))
        except OSError:
            continue
    return found


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the parent-death signal is Linux's")
def test_case_24_a_killed_local_sweep_leaves_no_orphan(tmp_path, frames_root):
    """SIGKILL of ``cltt sweep --local`` (no handler can run) while its run trains: the run gets
    SIGTERM from the kernel, saves a checkpoint and exits; rerunning the sweep continues it."""
    recipe = write_recipe(tmp_path, data={"root": str(frames_root)}, train={"epochs": 400})
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    parent = subprocess.Popen([sys.executable, "-m", "cltt", "sweep", str(recipe), "--grid", "train.lr=1e-3", "--local"],
                              cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    log = tmp_path / "sweeps" / "tiny" / "logs" / "lr1e-3.local.out"
    deadline = time.monotonic() + 120
    try:
        while not (log.is_file() and "epoch 1/400" in log.read_text()):  # the run trains, its handlers are in
            assert time.monotonic() < deadline and parent.poll() is None, log.read_text() if log.is_file() else ""
            time.sleep(0.1)
        [child] = [int(pid) for pid in Path(f"/proc/{parent.pid}/task/{parent.pid}/children").read_text().split()]
        parent.kill()
        parent.wait()
        while _alive(child):
            assert time.monotonic() < deadline, "the run trains on after its sweep was killed"
            time.sleep(0.1)
    finally:
        parent.kill()
    text = log.read_text()
    assert "SIGTERM" in text and "saved" in text, text
    assert list((tmp_path / "sweeps" / "tiny" / "runs" / "lr1e-3").glob("*.pth")), text


def test_case_24_torchrun_exits_1_after_a_preemption_and_train_sh_still_requeues(tmp_path, frames_root):
    """Under torchrun a worker's 75 ("saved, requeue me") comes out as 1; slurm/train.sh reads
    the trainer's own code from CLTT_EXIT_CODE_FILE and requeues the job all the same."""
    torchrun = Path(sys.executable).parent / "torchrun"
    recipe = write_recipe(tmp_path, data={"root": str(frames_root)}, train={"epochs": 400, "out_dir": str(tmp_path / "runs")})
    bin_dir = fake_tools(tmp_path)
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_")}
    env.update(PATH=f"{bin_dir}:{env['PATH']}", FAKE_CALLS=str(tmp_path / "calls"), SLURM_JOB_ID="91", OMP_NUM_THREADS="1",
               CLTT_COMMAND=f"{torchrun} --nproc-per-node 1 -m cltt", TMPDIR=str(tmp_path))
    out = tmp_path / "job.out"
    with open(out, "w") as handle:
        job = subprocess.Popen(["bash", str(Path(__file__).resolve().parents[1] / "slurm" / "train.sh"), str(recipe)],
                               cwd=tmp_path, env=env, stdout=handle, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 120
    try:
        while "epoch 1/400" not in out.read_text():  # the worker trains, its handlers are installed
            assert time.monotonic() < deadline and job.poll() is None, out.read_text()
            time.sleep(0.1)
        workers = [pid for pid, cmdline in _processes() if str(recipe) in cmdline
                   and "bin/torchrun" not in cmdline and "train.sh" not in cmdline]
        assert workers, "no worker process"
        for pid in workers:
            os.kill(pid, signal.SIGUSR1)  # what --signal=USR1@N delivers to the job step
        assert job.wait(timeout=120) == 0, out.read_text()
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(job.pid, signal.SIGKILL)  # torchrun and its worker too, whatever happened
    text = out.read_text()
    assert "torchrun exited 1; the trainer itself exited 75" in text, text
    assert calls(tmp_path, "scontrol")[-1] == "requeue 91", text  # by train.sh, from the host
    assert not list(tmp_path.glob("cltt-exit-*"))  # the code file is removed


def test_case_01_a_plan_built_in_python_is_checked_when_rendered(tmp_path):
    """The recipe loader refuses hostile values; render_script checks again, for a plan whose
    sweep.slurm was set in Python after loading."""
    from cltt.errors import RecipeError
    from cltt.sweep import grid, render

    plan = grid.plan_sweep(write_recipe(tmp_path), grid_options=["train.lr=1e-3"])
    plan.base.sweep.slurm.scratch = "$(touch PWNED)"
    with pytest.raises(RecipeError, match="sweep.slurm.scratch"):
        render.render_script(plan)


def test_status_csv_never_replaces_a_file_without_force(tmp_path):
    """Found by the hostile-user pass: --csv sweeps/NAME/sweep.yaml replaced the sweep's manifest."""
    recipe = write_recipe(tmp_path)
    assert sweep(recipe, "--grid", "train.lr=1e-3", cwd=tmp_path).exit_code == 0
    manifest = tmp_path / "sweeps" / "tiny" / "sweep.yaml"
    before = manifest.read_text()
    result = sweep("status", "sweeps/tiny", "--csv", "sweeps/tiny/sweep.yaml", cwd=tmp_path)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.exit_code == 2 and len(lines) == 1 and "pass --force" in lines[0], result.stderr
    assert manifest.read_text() == before
    (tmp_path / "status.csv").write_text("mine\n")
    assert sweep("status", "sweeps/tiny", "--csv", "status.csv", "--force", cwd=tmp_path).exit_code == 0
    assert (tmp_path / "status.csv").read_text().startswith("index,run,train.lr,")


@pytest.mark.parametrize("entry, problem", [
    ("5", "is a number, not a mapping with a name"),
    ("{index: 0}", "has no name"),
    ("{name: a, index: zz}", "has an index that is not a whole number"),
    ("{name: a, run_dir: [1]}", "has a run_dir that is not a path"),
    ("{name: a, overrides: 3}", "has overrides that are not a mapping"),
])
def test_sweep_status_names_a_malformed_run_entry_in_one_line(tmp_path, entry, problem):
    """Found by the hostile-user pass: a run entry of sweep.yaml that is not a mapping with a
    name gave a traceback (AttributeError, KeyError 'name', ValueError, TypeError)."""
    from tests.sweep_helpers import assert_one_line_error

    folder = tmp_path / "sweeps" / "x"
    folder.mkdir(parents=True)
    (folder / "sweep.yaml").write_text(f"name: x\nruns:\n- {{name: ok, index: 0}}\n- {entry}\n")
    result = sweep("status", "sweeps/x", cwd=tmp_path)
    assert_one_line_error(result, "sweep.yaml", "run entry 2", problem, "cltt sweep RECIPE")


def test_sweep_rerun_rewrites_a_manifest_whose_entry_has_no_name(tmp_path):
    """A rerun said 'its runs None are not in this one' of an entry without a name; a manifest
    that does not read is rewritten, as a broken one always was."""
    recipe = write_recipe(tmp_path)
    assert sweep(recipe, "--grid", "train.lr=1e-3,3e-4", cwd=tmp_path).exit_code == 0
    manifest = tmp_path / "sweeps" / "tiny" / "sweep.yaml"
    content = yaml.safe_load(manifest.read_text())
    del content["runs"][0]["name"]
    manifest.write_text(yaml.safe_dump(content))
    result = sweep(recipe, "--grid", "train.lr=1e-3,3e-4", cwd=tmp_path)
    assert result.exit_code == 0, result.stderr
    assert [run["name"] for run in yaml.safe_load(manifest.read_text())["runs"]] == ["lr1e-3", "lr3e-4"]
    assert sweep("status", "sweeps/tiny", cwd=tmp_path).exit_code == 0


@pytest.mark.parametrize("columns", [60, 40])
def test_sweep_status_leaves_out_the_columns_that_say_nothing_first(tmp_path, columns):
    """Found by the hostile-user pass: at 60 and 40 columns the table dropped last loss and epochs
    while the val and test acc columns, every cell '-', stayed."""
    assert sweep(write_recipe(tmp_path), "--grid", "train.lr=1e-3,3e-4", "--grid", "data.window_size=3,5",
                 cwd=tmp_path).exit_code == 0
    result = sweep("status", "sweeps/tiny", cwd=tmp_path, env={"COLUMNS": str(columns)})
    assert result.exit_code == 0, result.stderr
    left_out = next(line for line in result.stderr.splitlines() if line.startswith(f"left out at {columns} columns: "))
    dropped = left_out.split(": ", 1)[1].split(" (")[0].split(", ")
    assert set(dropped[:3]) == {"last loss", "val acc", "test acc"}, left_out  # every cell '-' before a run starts
    header = next(line for line in result.stdout.splitlines() if line.startswith("┃"))
    assert "state" in header and ("epochs" in header) == (columns == 60), result.stdout


def test_sweep_status_too_narrow_for_a_table_prints_one_line_per_run_and_says_so(tmp_path):
    """At 20 columns the table folded run names letter by letter; now one line per run."""
    assert sweep(write_recipe(tmp_path), "--grid", "train.lr=1e-3,3e-4", "--grid", "data.window_size=3,5",
                 cwd=tmp_path).exit_code == 0
    result = sweep("status", "sweeps/tiny", cwd=tmp_path, env={"COLUMNS": "20"})
    assert result.exit_code == 0, result.stderr
    assert not any(line[:1] in "┏┃┡│└" for line in result.stdout.splitlines()), result.stdout
    runs = [line for line in result.stdout.splitlines() if line[:1].isdigit() and "runs:" not in line]
    assert runs == ["0 lr1e-3_ws3 not started", "1 lr1e-3_ws5 not started", "2 lr3e-4_ws3 not started",
                    "3 lr3e-4_ws5 not started"], result.stdout
    assert "at 20 columns no table fits" in result.stderr
    assert "one line per run" in result.stderr and "--csv has every column" in result.stderr
