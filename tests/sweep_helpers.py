"""Helpers of the sweep tests: tiny recipes, ``cltt sweep`` in this process, and the rendered
job-array script run by bash with stand-ins for srun, scontrol, apptainer and cltt."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import yaml

from cltt.cli.sweep import command as sweep_command
from tests.conftest import invoke_in_process

TINY = {
    "data": {"window_size": 3, "image_size": 32, "num_workers": 0},
    "model": {"backbone": "tiny_cnn", "projection_dim": 16},
    "train": {"epochs": 1, "batch_size": 8, "device": "cpu"},
}


def write_recipe(folder: Path, name: str = "tiny", **sections) -> Path:
    tree = {k: dict(v) for k, v in TINY.items()}
    for section, values in sections.items():
        tree.setdefault(section, {}).update(values)
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(tree))
    return path


def sweep(*args, cwd: Path, env: dict | None = None):
    """``cltt sweep ARGS`` in this process, from ``cwd``; returns the click Result."""
    return invoke_in_process(sweep_command, args, cwd, env, prog_name="cltt sweep")


def assert_one_line_error(result, *fragments: str) -> None:
    assert result.exit_code == 2, (result.stdout, result.stderr)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), result.stderr
    assert "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def dry_run(tmp_path: Path, slurm: dict, *extra: str, root: str = "frames"):
    recipe = write_recipe(tmp_path, data={"root": root}, sweep={"slurm": slurm})
    result = sweep(recipe, "--grid", "train.lr=1e-3,3e-4", "--grid", "data.window_size=3,5", *extra,
                   "--slurm", "--dry-run", cwd=tmp_path)
    assert result.exit_code == 0, result.stderr
    script = tmp_path / "sweeps" / "tiny" / "sweep.sbatch"
    assert f"wrote {script.relative_to(tmp_path)} (not submitted: --dry-run)" in result.stdout
    assert script.read_text() in result.stdout
    return script, script.read_text()


def fake_tools(folder: Path) -> Path:
    """srun that runs its command; scontrol, sbatch, module and apptainer that record their arguments; a fake cltt."""
    bin_dir = folder / "fake-bin"
    bin_dir.mkdir()
    tools = {
        "srun": 'while [ "${1#--}" != "$1" ]; do shift; done\nexec "$@"\n',
        "scontrol": 'echo "$*" >> "$FAKE_CALLS/scontrol"\n',
        "sbatch": 'echo "$*" >> "$FAKE_CALLS/sbatch"\necho 77\n',
        "module": 'echo "$*" >> "$FAKE_CALLS/module"\n',
        "apptainer": 'echo "$*" >> "$FAKE_CALLS/apptainer"\nshift\nwhile :; do case $1 in --nv) shift;; '
                     '--bind) shift 2;; *) break;; esac; done\nshift\nexec "$@"\n',  # drop exec, options, image
        "fake-cltt": 'echo "$*" >> "$FAKE_CALLS/cltt"\nfor a in "$@"; do case $a in data.root=*) '
                     'ls "${a#data.root=}" >> "$FAKE_CALLS/staged";; esac; done\nexit "${FAKE_RC:-0}"\n',
    }
    for name, body in tools.items():
        (bin_dir / name).write_text("#!/bin/bash\n" + body)
        (bin_dir / name).chmod(0o755)
    (folder / "calls").mkdir()
    return bin_dir


def run_task(tmp_path: Path, script: Path, task: int, rc: int = 0) -> subprocess.CompletedProcess:
    bin_dir = tmp_path / "fake-bin"
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_")}
    env.update(PATH=f"{bin_dir}:{env['PATH']}", FAKE_CALLS=str(tmp_path / "calls"), FAKE_RC=str(rc),
               CLTT_COMMAND="fake-cltt", SLURM_ARRAY_JOB_ID="77", SLURM_ARRAY_TASK_ID=str(task),
               SLURM_JOB_ID=str(77 + task), SLURM_CPUS_PER_TASK="3", TMPDIR=str(tmp_path / "node-tmp"))
    return subprocess.run(["bash", str(script)], capture_output=True, text=True, cwd=tmp_path, env=env, timeout=60)


def calls(tmp_path: Path, tool: str) -> list[str]:
    path = tmp_path / "calls" / tool
    return path.read_text().splitlines() if path.is_file() else []
