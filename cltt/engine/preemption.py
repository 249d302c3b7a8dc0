"""Preemption: a signal asks the trainer to finish its step, save, and (under Slurm) requeue.

Slurm warns a job before its time limit with ``--signal=USR1@N`` and an external
``scontrol requeue`` or ``scancel`` sends SIGTERM. :func:`install` is called before any heavy
import (the warning can arrive seconds after a restart) and turns SIGUSR1, SIGUSR2, SIGTERM and
a first Ctrl-C into a flag; the trainer checks the flag after each optimizer step, writes a
checkpoint with its position inside the epoch, and calls :func:`requeue_or_exit_code`.
DataLoader workers ignore these signals (:func:`ignore_in_worker`, and the handler a worker
inherits when it is forked does nothing outside the process that installed it): only the main
process decides when to stop, so a Ctrl-C at a terminal (which signals every process of the
group) prints nothing from the workers.

A second Ctrl-C before the run stops aborts at once (KeyboardInterrupt, which the CLI turns into
one line and exit 130). It never interrupts a checkpoint being written (:func:`saving`: the
save finishes, then the run stops as the first Ctrl-C asked), nor a run that is already saving
its last checkpoint and exiting (:func:`finishing`), where a KeyboardInterrupt would only land
in some finaliser and print its traceback. :func:`interrupt_exits_quietly` covers the imports
before any of this is installed.

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
import sys
from contextlib import contextmanager

REQUEUE_EXIT_CODE = 75  # EX_TEMPFAIL: "saved; run me again"
INTERRUPTED_EXIT_CODE = 130  # Ctrl-C outside Slurm, as a shell reports it
PREEMPTION_SIGNALS = ("SIGUSR1", "SIGUSR2", "SIGTERM")


class _State:
    requested: str | None = None  # name of the first signal received
    interrupts: int = 0
    main_pid: int | None = None  # the process that installed the handler (forked workers inherit it)
    saving: bool = False  # a checkpoint is being written: a second Ctrl-C waits for it


_state = _State()


def _handler(signum, frame) -> None:
    if os.getpid() != _state.main_pid:  # a DataLoader worker before its worker_init_fn ran
        return
    name = signal.Signals(signum).name
    if name == "SIGINT":
        _state.interrupts += 1
        if _state.interrupts > 1 and not _state.saving and not _inside_finaliser(frame):
            finishing()  # one abort; a later Ctrl-C would land in its cleanup
            raise KeyboardInterrupt
    if _state.requested is None:
        _state.requested = name


def _inside_finaliser(frame) -> bool:
    """Whether the signal interrupted a ``__del__`` (a DataLoader iterator joining its workers at
    an epoch's end): an exception there is printed and dropped, and the half-stopped workers,
    which ignore SIGTERM, would block the exit. The first Ctrl-C's stop follows at the step's end."""
    while frame is not None:
        if frame.f_code.co_name == "__del__":
            return True
        frame = frame.f_back
    return False


def _quiet_unraisable(unraisable) -> None:
    """A KeyboardInterrupt that landed in a finaliser all the same (a weakref callback) is dropped
    without its traceback: the first Ctrl-C still stops the run at the end of the step."""
    if issubclass(unraisable.exc_type, KeyboardInterrupt):
        return
    sys.__unraisablehook__(unraisable)


def install() -> None:
    """Catch the preemption signals and a first Ctrl-C in this (main) process."""
    _state.main_pid = os.getpid()
    for name in PREEMPTION_SIGNALS + ("SIGINT",):
        if hasattr(signal, name):
            signal.signal(getattr(signal, name), _handler)
    if sys.unraisablehook is sys.__unraisablehook__:  # not one a test runner or the user installed
        sys.unraisablehook = _quiet_unraisable


@contextmanager
def saving():
    """Around a checkpoint write: a second Ctrl-C does not abort it (the first one's stop follows)."""
    was, _state.saving = _state.saving, True
    try:
        yield
    finally:
        _state.saving = was


def finishing() -> None:
    """The run saves its last checkpoint and exits: from here a Ctrl-C changes nothing, so it is
    ignored by the process itself (a Python handler would be reset at interpreter shutdown, and
    a Ctrl-C then would kill the process by the signal instead of letting it exit 130)."""
    try:
        if signal.getsignal(signal.SIGINT) is _handler:  # a program that never installed it keeps its own
            signal.signal(signal.SIGINT, signal.SIG_IGN)
    except ValueError:  # not the main thread, which alone receives signals
        pass


def _exit_at_once(signum, frame) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not interrupt the exit
    raise SystemExit(INTERRUPTED_EXIT_CODE)


@contextmanager
def interrupt_exits_quietly():
    """Around the CLI's imports: a Ctrl-C exits 130 without a traceback from inside click, rich or
    OpenCV. The previous handler is back afterwards (unless the Ctrl-C came: the process exits)."""
    try:
        previous = signal.signal(signal.SIGINT, _exit_at_once)
    except ValueError:  # not the main thread, which alone receives signals
        yield
        return
    try:
        yield
    except SystemExit:
        raise
    except BaseException:
        signal.signal(signal.SIGINT, previous)
        raise
    signal.signal(signal.SIGINT, previous)


def requested() -> str | None:
    """The name of the signal that asked to stop, or None."""
    return _state.requested


def reset() -> None:
    _state.requested = None
    _state.interrupts = 0
    _state.saving = False


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
