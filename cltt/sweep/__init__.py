"""Sweeps: a recipe and a grid of dotted keys become many ``cltt train`` runs.

    cltt sweep recipes/quickstart.yaml --grid data.window_size=3,5 --grid train.lr=1e-3,3e-4 --local
    cltt sweep recipes/egocentric.yaml --slurm --dry-run     # print the job-array script
    cltt sweep recipes/egocentric.yaml --slurm               # and submit it with sbatch
    cltt sweep status sweeps/egocentric

From Python::

    plan = plan_sweep("recipes/quickstart.yaml", ["train.epochs=2"], ["train.lr=1e-3,3e-4"])
    write_sweep(plan)                  # sweeps/quickstart/{sweep.yaml,recipes/,logs/}
    run_local(plan)                    # or: submit(write_script(plan))
    for run in sweep_status(plan.dir): print(run.run, run.state)

Modules: :mod:`~cltt.sweep.grid` (expansion, names, the sweep folder),
:mod:`~cltt.sweep.render` (the Slurm script and ``sbatch``), :mod:`~cltt.sweep.local` (runs
here, one process each), :mod:`~cltt.sweep.status` (where each run stands).
"""

from cltt.sweep.grid import SweepPlan, SweepRun, expand_grid, plan_sweep, read_manifest, run_names, write_sweep
from cltt.sweep.local import LocalResult, run_local
from cltt.sweep.render import parse_slurm_time, render_script, submit, write_script

__all__ = [
    "LocalResult", "SweepPlan", "SweepRun", "expand_grid", "parse_slurm_time", "plan_sweep", "read_manifest",
    "render_script", "run_local", "run_names", "submit", "write_script", "write_sweep",
]
