"""Preemption: a signal asks the trainer to finish its step, save, and (under Slurm) requeue.

Slurm warns a job before its time limit with ``--signal=USR1@N`` and an external
``scontrol requeue`` or ``scancel`` sends SIGTERM. :func:`install` is called before any heavy
import (the warning can arrive seconds after a restart) and turns SIGUSR1, SIGUSR2, SIGTERM and
a first Ctrl-C into a flag; the trainer checks the flag after each optimizer step, writes a
checkpoint with its position inside the epoch, and calls :func:`requeue_or_exit_code`.
DataLoader workers ignore these signals (:func:`ignore_in_worker`): only the main process
decides when to stop. A second Ctrl-C aborts at once.

Requeueing inside a job array must name ``${SLURM_ARRAY_JOB_ID}_${SLURM_ARRAY_TASK_ID}``:
``scontrol requeue $SLURM_JOB_ID`` in the task whose job id equals the array id requeues the
whole array and kills its running siblings. Inside a container ``scontrol`` is absent; the
trainer then exits with :data:`REQUEUE_EXIT_CODE` and the batch script requeues from the host.

This module imports nothing heavy, so the CLI can import it first.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess

REQUEUE_EXIT_CODE = 75  # EX_TEMPFAIL: "saved; run me again"
INTERRUPTED_EXIT_CODE = 130  # Ctrl-C outside Slurm, as a shell reports it
PREEMPTION_SIGNALS = ("SIGUSR1", "SIGUSR2", "SIGTERM")


class _State:
    requested: str | None = None  # name of the first signal received
    interrupts: int = 0


_state = _State()


def _handler(signum, frame) -> None:
    name = signal.Signals(signum).name
    if name == "SIGINT":
        _state.interrupts += 1
        if _state.interrupts > 1:
            raise KeyboardInterrupt
    if _state.requested is None:
        _state.requested = name


def install() -> None:
    """Catch the preemption signals and a first Ctrl-C in this (main) process."""
    for name in PREEMPTION_SIGNALS + ("SIGINT",):
        if hasattr(signal, name):
            signal.signal(getattr(signal, name), _handler)


def requested() -> str | None:
    """The name of the signal that asked to stop, or None."""
    return _state.requested


def reset() -> None:
    _state.requested = None
    _state.interrupts = 0


def ignore_in_worker(_worker_id: int | None = None) -> None:
    """DataLoader ``worker_init_fn`` part: workers leave stopping to the main process."""
    for name in PREEMPTION_SIGNALS + ("SIGINT",):
        if hasattr(signal, name):
            signal.signal(getattr(signal, name), signal.SIG_IGN)


def slurm_job_to_requeue(env: dict | None = None) -> str | None:
    """The id that requeues this job and only it, or None outside Slurm."""
    env = os.environ if env is None else env
    if env.get("SLURM_ARRAY_JOB_ID") and env.get("SLURM_ARRAY_TASK_ID"):
        return f"{env['SLURM_ARRAY_JOB_ID']}_{env['SLURM_ARRAY_TASK_ID']}"
    return env.get("SLURM_JOB_ID") or None


def requeue_allowed(job: str) -> bool:
    """Whether Slurm lets this job be requeued (``Requeue=1`` in ``scontrol show job``)."""
    try:
        shown = subprocess.run(["scontrol", "show", "job", "-o", job], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return shown.returncode == 0 and "Requeue=1" in shown.stdout


def requeue_or_exit_code(allow: bool, signal_name: str | None) -> tuple[int, str]:
    """After the checkpoint: requeue this Slurm job if we can, else say how to continue.

    Only the warnings (SIGUSR1, SIGUSR2) requeue: SIGTERM is what ``scancel`` sends first
    (and what an external ``scontrol requeue`` sends, which requeues by itself), so a
    trainer that requeued on it could never be cancelled.

    Returns the process exit code and a one-line message: 0 after a successful
    ``scontrol requeue``; :data:`REQUEUE_EXIT_CODE` when the job should be requeued by the
    batch script (no ``scontrol`` in this environment) or resumed by hand.
    """
    job = slurm_job_to_requeue()
    if signal_name == "SIGINT" and job is None:  # Ctrl-C at a terminal: an interruption, said once
        return INTERRUPTED_EXIT_CODE, "interrupted"
    if job is None or not allow:
        return REQUEUE_EXIT_CODE, "not requeued"
    if signal_name not in ("SIGUSR1", "SIGUSR2"):
        return REQUEUE_EXIT_CODE, f"not requeued after {signal_name} (cancelled or requeued from outside)"
    if shutil.which("scontrol") is None:
        return REQUEUE_EXIT_CODE, f"scontrol is not available here; the batch script should requeue job {job}"
    if not requeue_allowed(job):
        return REQUEUE_EXIT_CODE, f"job {job} does not allow requeue (submit with --requeue)"
    done = subprocess.run(["scontrol", "requeue", job], capture_output=True, text=True, timeout=60)
    if done.returncode != 0:
        return REQUEUE_EXIT_CODE, f"scontrol requeue {job} failed: {done.stderr.strip() or done.stdout.strip()}"
    return 0, f"requeued Slurm job {job}"
