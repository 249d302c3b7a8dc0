"""Issue 24's sweep cases, for real: hostile recipe values rendered into the Slurm job array and
run by bash under stand-ins for srun, sbatch, scontrol, module and apptainer (case 1)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.sweep_helpers import fake_tools, run_task, sweep, write_recipe

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

    import os
    import subprocess

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
