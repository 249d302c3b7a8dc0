"""A sweep as a Slurm job array: the script rendered from ``slurm/array.sh.tmpl``, and ``sbatch``.

The #SBATCH lines come from the recipe's ``sweep.slurm`` section. The script lists the runs in
array-task order and is self-contained: it can be copied to a cluster with the sweep folder.
What it must get right (measured on a real Slurm, see the template's comments): the time-limit
warning ``--signal=USR1@N`` without ``B:`` so that it reaches the trainer started by ``srun``,
and a requeue of ``${SLURM_ARRAY_JOB_ID}_${SLURM_ARRAY_TASK_ID}``, never of the whole array.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
from datetime import datetime
from pathlib import Path

from cltt.engine.run_files import final_checkpoint
from cltt.errors import CLTTError, RecipeError
from cltt.recipe import SlurmConfig
from cltt.sweep.grid import LOGS, SweepPlan

SCRIPT = "sweep.sbatch"
# The template lives in the repository's slurm/ folder (beside slurm/train.sh).
TEMPLATE = Path(__file__).resolve().parents[2] / "slurm" / "array.sh.tmpl"

_PLACEHOLDER = re.compile(r"\{\{([A-Z_]+)\}\}")
# Slurm's --time formats: M, M:S, H:M:S, D-H, D-H:M, D-H:M:S.
_TIME = re.compile(r"^(?:(?P<days>\d+)-(?P<dh>\d+)(?::(?P<dm>\d+)(?::(?P<ds>\d+))?)?"
                   r"|(?P<a>\d+)(?::(?P<b>\d+)(?::(?P<c>\d+))?)?)$")


def parse_slurm_time(text: str, key: str = "sweep.slurm.time") -> int | None:
    """Seconds of a Slurm time limit (``90``, ``04:00:00``, ``2-00:00:00``); None for unlimited."""
    text = str(text).strip()
    if text.upper() in ("UNLIMITED", "INFINITE"):
        return None
    match = _TIME.match(text)
    hint = (f"recipe key '{key}' must be a Slurm time such as 90 (minutes), 04:00:00, 2-00:00:00 "
            f"or 1-12, got {text!r}")
    if not match:
        raise RecipeError(hint)
    g = {k: int(v) for k, v in match.groupdict().items() if v is not None}
    if "days" in g:
        hours, minutes, seconds = g["dh"], g.get("dm", 0), g.get("ds", 0)
        if hours > 23 or minutes > 59 or seconds > 59:
            raise RecipeError(hint)
        total = ((g["days"] * 24 + hours) * 60 + minutes) * 60 + seconds
    elif "c" in g:  # H:M:S
        if g["b"] > 59 or g["c"] > 59:
            raise RecipeError(hint)
        total = (g["a"] * 60 + g["b"]) * 60 + g["c"]
    elif "b" in g:  # M:S
        if g["b"] > 59:
            raise RecipeError(hint)
        total = g["a"] * 60 + g["b"]
    else:  # minutes
        total = g["a"] * 60
    if total <= 0:
        raise RecipeError(f"recipe key '{key}' must be a positive time, got {text!r}")
    return total


def array_spec(indices: list[int], throttle: int | None = None) -> str:
    """Task ids as Slurm writes them: [0, 1, 2, 5, 7, 8] and throttle 4 -> ``0-2,5,7-8%4``."""
    ranges: list[list[int]] = []
    for i in sorted(set(indices)):
        if ranges and i == ranges[-1][1] + 1:
            ranges[-1][1] = i
        else:
            ranges.append([i, i])
    spec = ",".join(f"{a}-{b}" if b > a else str(a) for a, b in ranges)
    return spec + (f"%{throttle}" if throttle else "")


def sbatch_lines(slurm: SlurmConfig, job_name: str, tasks: list[int], log_dir: Path) -> list[str]:
    """The #SBATCH options of the array (task ids ``tasks``), in a fixed order."""
    limit = parse_slurm_time(slurm.time)
    if slurm.signal_seconds and limit is not None and slurm.signal_seconds >= limit:
        raise RecipeError(
            f"recipe key 'sweep.slurm.signal_seconds' ({slurm.signal_seconds}) must be below the time limit "
            f"sweep.slurm.time={slurm.time} ({limit} s), else every run is warned, saves and requeues at once")
    for option in slurm.extra:
        if not option.startswith("-") or any(c.isspace() for c in option):
            raise RecipeError(f"recipe key 'sweep.slurm.extra' lists {option!r}; give sbatch options as one word "
                              "each, such as --constraint=a100")
    options = [
        f"--job-name={job_name}",
        f"--array={array_spec(tasks, slurm.throttle)}",
        f"--output={log_dir}/%x-%A_%a.out",
        "--open-mode=append",
        "--requeue" if slurm.requeue else "--no-requeue",
    ]
    if slurm.signal_seconds:
        options.append(f"--signal=USR1@{slurm.signal_seconds}")  # no B: (see the module docstring)
    options += [f"--time={slurm.time}", f"--cpus-per-task={slurm.cpus_per_task}"]
    if slurm.partition:
        options.append(f"--partition={slurm.partition}")
    if slurm.account:
        options.append(f"--account={slurm.account}")
    gpus_in_extra = any(o.startswith(("--gres", "--gpus", "-G")) for o in slurm.extra)
    if slurm.gpus and not gpus_in_extra:
        options.append(f"--gpus-per-node={slurm.gpus}")
    if slurm.mem:
        options.append(f"--mem={slurm.mem}")
    if slurm.mail_user:
        options += [f"--mail-user={slurm.mail_user}", f"--mail-type={slurm.mail_type}"]
    options += list(slurm.extra)
    return [f"#SBATCH {option}" for option in options]


def unfinished(plan: SweepPlan) -> list[int]:
    """Task ids of the runs without a final checkpoint (all of them for a new sweep)."""
    return [run.index for run in plan.runs if final_checkpoint(plan.run_dir(run)) is None]


def render_script(plan: SweepPlan, template: Path | None = None, tasks: list[int] | None = None) -> str:
    """The job-array script of a sweep, from the template and ``sweep.slurm``.

    ``tasks`` are the array task ids to submit (default: every run); the script knows all runs,
    so ``sbatch --array=I`` of any run works later.
    """
    template = Path(template) if template is not None else TEMPLATE
    if not template.is_file():
        raise CLTTError(f"the job-array template {template} is missing; pass --template PATH "
                        "(slurm/array.sh.tmpl of the cltt repository)")
    slurm = plan.base.sweep.slurm
    slurm.validate("sweep.slurm")  # again here: a plan built in Python skips the recipe loader
    sweep_dir = str(plan.dir)
    if any(c.isspace() for c in sweep_dir):
        raise CLTTError(f"the sweep folder {sweep_dir!r} has a space in its path, which #SBATCH --output cannot "
                        "take; set sweep.out_dir to a path without spaces")
    script = plan.dir / SCRIPT
    apptainer_args = (["--nv"] if slurm.gpus else []) + [a for b in slurm.binds for a in ("--bind", b)]
    values = {
        "TITLE": f"cltt sweep {plan.name}: {len(plan.runs)} runs of `cltt train`, rendered "
                 f"{datetime.now().isoformat(sep=' ', timespec='seconds')}",
        "SWEEP_DIR": sweep_dir,
        "SCRIPT": str(script),
        "SWEEP_DIR_QUOTED": shlex.quote(sweep_dir),
        "SCRIPT_QUOTED": shlex.quote(str(script)),
        "SBATCH": "\n".join(sbatch_lines(slurm, plan.name, tasks if tasks is not None else [r.index for r in plan.runs],
                                           plan.dir / LOGS)),
        "MODULES": "\n".join(f"module load {shlex.quote(m)}" for m in slurm.modules) or "# (no modules: sweep.slurm.modules)",
        "RUNS": "\n".join(f"    {shlex.quote(run.name)}   # {run.index}" for run in plan.runs),
        "DATA_ROOTS": "\n".join(f"    {shlex.quote(run.recipe.data.root)}" for run in plan.runs),
        "APPTAINER_IMAGE": shlex.quote(slurm.apptainer_image or ""),
        "APPTAINER_ARGS": " ".join(shlex.quote(a) for a in apptainer_args),
        "SCRATCH": shlex.quote(slurm.scratch or ""),  # expanded by the job, never evaluated
        "REQUEUE": "1" if slurm.requeue else "0",
    }

    def fill(match: re.Match) -> str:
        if match.group(1) not in values:
            raise CLTTError(f"the template {template} names an unknown field {{{{{match.group(1)}}}}}")
        return values[match.group(1)]

    return _PLACEHOLDER.sub(fill, template.read_text())


def write_script(plan: SweepPlan, template: Path | None = None, tasks: list[int] | None = None) -> Path:
    """Render the script into ``sweeps/<name>/sweep.sbatch`` (executable) and return its path."""
    text = render_script(plan, template, tasks)
    path = plan.dir / SCRIPT
    path.write_text(text)
    path.chmod(0o755)
    return path


def submit(script: Path, env: dict[str, str] | None = None) -> str:
    """``sbatch --parsable SCRIPT`` from the current folder; returns the array's job id."""
    sbatch = shutil.which("sbatch", path=(env or os.environ).get("PATH"))
    if sbatch is None:
        raise CLTTError(f"sbatch is not on PATH: run this on a Slurm login node (the script is ready: sbatch {script}), "
                        "or run the grid here with --local")
    try:
        done = subprocess.run([sbatch, "--parsable", str(script)], capture_output=True, text=True, timeout=120, env=env)
    except subprocess.TimeoutExpired:
        raise CLTTError(f"sbatch {script} did not answer in 120 s; is slurmctld up? (try: sinfo)") from None
    if done.returncode != 0:
        lines = (done.stderr.strip() or done.stdout.strip() or "(no output)").splitlines()
        raise CLTTError(f"sbatch {script} failed (exit {done.returncode}): {lines[-1]}")
    return done.stdout.strip().split(";")[0]
