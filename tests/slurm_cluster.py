"""Helpers for tests that submit real jobs to the local single-node Slurm.

Not a test module. The cluster comes from ``../shared/slurm/local-cluster.sh`` (next to this
repository in the workspace, absent from a clean clone) and needs root or passwordless sudo;
where it cannot start, :func:`start_cluster_or_skip` skips the test with the reason.

Use it from a test module (``tests/`` is a package, so pytest puts the repository root on
``sys.path``)::

    import pytest
    from tests.slurm_cluster import slurm  # noqa: F401  (the fixture)

    pytestmark = [pytest.mark.slurm, pytest.mark.slow]

    def test_requeue(slurm, tmp_path):
        job = slurm.submit("slurm/train.sh", "recipe.yaml", sbatch=["--time=1"], cwd=tmp_path)
        assert slurm.wait_for(job, timeout=180) == "COMPLETED"
        assert int(slurm.job_field(job, "Restarts")) >= 1

How this cluster behaves (measured, Slurm 22.05 on Debian 12; see also the facts in
``shared/ARCHITECTURE.md``):

- ``sacct`` does not work (no accounting); ``scontrol show job -o`` does, and keeps a finished
  job for MinJobAge = 300 s.
- ``--signal=USR1@N`` arrives at slurmctld's next 30-s tick after ``limit - N - 30`` s: with
  ``--time=1 --signal=USR1@30`` 0-30 s after the start. ``--time`` is rounded *up* to whole
  minutes (``--time=00:01:30`` gives TimeLimit=00:02:00).
- For a deterministic test, send the warning yourself: :meth:`LocalSlurm.signal` runs
  ``scancel -s USR1 JOB``, which reaches the job steps (not the batch shell) at once, just like
  ``--signal=USR1@N`` without ``B:``.
- A requeued job runs again 6-9 s later with ``SLURM_RESTART_COUNT`` 1, 2, ... (unset on the
  first run); ``Restarts=`` in ``scontrol show job`` counts the same.
- Any ``scancel`` (even ``-s KILL``) sends SIGTERM first; a trainer that requeues itself on
  SIGTERM comes back PENDING instead of going away. :func:`kill_jobs` sets ``Requeue=0`` first.
"""

from __future__ import annotations

import os
import re
import shutil
import signal as _signal
import subprocess
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
# CLTT_LOCAL_CLUSTER points at another copy of the script (a CI checkout of the shared folder).
CLUSTER_SCRIPT = Path(os.environ.get("CLTT_LOCAL_CLUSTER", REPO_ROOT.parent / "shared" / "slurm" / "local-cluster.sh"))
STOP_SCRIPT = CLUSTER_SCRIPT.with_name("local-cluster-stop.sh")

FINAL_STATES = frozenset({"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT"})
# States a job never leaves; wait_for stops on them whatever `states` says.
_DEAD_STATES = frozenset({"BOOT_FAIL", "DEADLINE", "NODE_FAIL", "OUT_OF_MEMORY"})
# Key=Value pairs of `scontrol show job -o`; keys look like JobId, ReqB:S:C:T, CPUs/Task,
# values may hold '=' (TRES=cpu=1,mem=2G) and, rarely, spaces.
_FIELD = re.compile(r"(?:^|\s)([A-Za-z][\w:/]*)=(.*?)(?=\s+[A-Za-z][\w:/]*=|\s*$)")

_started: dict[str, str] = {}  # startup output of the cluster, once per session
_failed: dict[str, str] = {}  # skip reason, once per session


class SlurmError(RuntimeError):
    """A Slurm command failed or a job did not reach the awaited state."""


def _is_root_or_sudo() -> bool:
    if os.geteuid() == 0:
        return True
    if shutil.which("sudo") is None:
        return False
    return subprocess.run(["sudo", "-n", "true"], check=False, capture_output=True, timeout=30).returncode == 0


def start_cluster_or_skip(timeout: float = 600) -> LocalSlurm:
    """Start the local Slurm (or find it running) and return a handle; skip the test if it can't.

    Skip reasons: the script is not there (a clean clone has no ``../shared``), this user is not
    root and has no passwordless sudo, or the script failed (its last line is in the reason).
    The first call runs the script (7 s with the packages installed, about a minute when it must
    install them; 0.1 s when already up); later calls in the session reuse the result.
    """
    key = str(CLUSTER_SCRIPT)
    if key in _failed:
        pytest.skip(_failed[key])
    if key not in _started:
        reason = None
        if not CLUSTER_SCRIPT.is_file():
            reason = f"no local Slurm: {CLUSTER_SCRIPT} not found (it is in the workspace's shared/slurm, not in git)"
        elif not _is_root_or_sudo():
            reason = f"no local Slurm: {CLUSTER_SCRIPT.name} needs root or passwordless sudo"
        else:
            try:
                done = subprocess.run(
                    ["bash", str(CLUSTER_SCRIPT)],
                    check=False, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL,
                )
            except subprocess.TimeoutExpired:
                reason = f"no local Slurm: {CLUSTER_SCRIPT.name} did not finish in {timeout:.0f} s"
            else:
                if done.returncode != 0:
                    lines = (done.stderr.strip() or done.stdout.strip() or "(no output)").splitlines()
                    reason = f"no local Slurm: {CLUSTER_SCRIPT.name} failed (exit {done.returncode}): {lines[-1]}"
                else:
                    _started[key] = done.stdout
        if reason is not None:
            _failed[key] = reason
            pytest.skip(reason)
    return LocalSlurm(script=CLUSTER_SCRIPT, startup=_started[key])


def _run(args: Sequence[str], **kwargs) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(list(args), check=False, capture_output=True, text=True, timeout=60, **kwargs)
    except subprocess.TimeoutExpired as err:
        raise SlurmError(f"{' '.join(args)} did not answer in 60 s") from err


def _sbatch_env(env: Mapping[str, str] | None) -> dict[str, str]:
    # sbatch reads SBATCH_* as options and would pass a calling job's SLURM_* on: drop both.
    base = {k: v for k, v in os.environ.items() if not k.startswith(("SBATCH_", "SLURM_"))}
    base.update(env or {})
    return base


def submit(
    script_path: str | os.PathLike,
    *args: str,
    env: Mapping[str, str] | None = None,
    sbatch: Sequence[str] = (),
    cwd: str | os.PathLike | None = None,
) -> str:
    """``sbatch --parsable [sbatch...] SCRIPT ARGS...``; returns the job id ("123").

    ``env`` is added to this process's environment, which the job inherits (``--export=ALL``,
    sbatch's default); ``cwd`` is the submit directory, where relative ``-o`` paths and the
    job's working directory point (create a ``logs/`` folder there first for ``slurm/train.sh``:
    Slurm fails a job whose output folder is missing, with Reason=JobLaunchFailure and no log).
    """
    cmd = ["sbatch", "--parsable", *sbatch, str(script_path), *map(str, args)]
    done = _run(cmd, env=_sbatch_env(env), cwd=cwd)
    if done.returncode != 0:
        raise SlurmError(f"sbatch failed (exit {done.returncode}): {done.stderr.strip() or done.stdout.strip()}")
    return done.stdout.strip().split(";")[0]


def job_info(job_id: str) -> dict[str, str]:
    """All fields of ``scontrol show job -o JOB`` (the first task's line for a whole array)."""
    done = _run(["scontrol", "show", "job", "-o", str(job_id)])
    line = done.stdout.strip().splitlines()[0] if done.stdout.strip() else ""
    if done.returncode != 0 or not line.startswith("JobId="):
        raise SlurmError(f"scontrol show job {job_id}: {done.stderr.strip() or done.stdout.strip() or 'no such job'}")
    return dict(_FIELD.findall(line))


def job_field(job_id: str, name: str) -> str:
    """One field of ``scontrol show job -o``: JobState, Restarts, ExitCode, StdOut, Requeue..."""
    info = job_info(job_id)
    if name not in info:
        raise KeyError(f"scontrol show job {job_id} has no field {name!r} (fields: {', '.join(info)})")
    return info[name]


def job_output(job_id: str) -> str:
    """The text of the job's StdOut file so far ('' when there is none yet)."""
    try:
        return Path(job_field(job_id, "StdOut")).read_text(errors="replace")
    except (OSError, SlurmError, KeyError):
        return ""


def wait_for(job_id: str, states: Iterable[str] = FINAL_STATES, timeout: float = 300, poll: float = 0.5) -> str:
    """Poll ``scontrol show job`` until JobState is one of ``states``; return that state.

    ``states={"RUNNING"}`` waits for a start. Raises :class:`SlurmError` on timeout (with the
    last state and the end of the job's output) or when the job ends in some other final state.
    A requeued job passes through COMPLETING and PENDING (Reason=BeginTime) and never shows a
    final state in between.
    """
    wanted = {s.upper() for s in states}
    deadline = time.monotonic() + timeout
    state = "?"
    while True:
        state = job_field(job_id, "JobState")
        if state in wanted:
            return state
        if state in FINAL_STATES | _DEAD_STATES:  # a final state that was not asked for
            raise SlurmError(f"job {job_id} ended {state} while waiting for {sorted(wanted)}{_tail(job_id)}")
        if time.monotonic() >= deadline:
            raise SlurmError(f"job {job_id} still {state} after {timeout:.0f} s, waiting for {sorted(wanted)}{_tail(job_id)}")
        time.sleep(poll)


def _tail(job_id: str, lines: int = 20) -> str:
    text = job_output(job_id).rstrip()
    return "\n--- end of its output ---\n" + "\n".join(text.splitlines()[-lines:]) if text else ""


def signal_job(job_id: str, sig: str | int = "USR1", batch: bool = False) -> None:
    """``scancel -s SIG JOB``: to the job steps (like ``--signal=SIG@N``), or the batch shell only."""
    name = _signal.Signals(sig).name.removeprefix("SIG") if isinstance(sig, int) else sig.upper().removeprefix("SIG")
    cmd = ["scancel", "-s", name, *(["--batch"] if batch else []), str(job_id)]
    done = _run(cmd)
    if done.returncode != 0:
        raise SlurmError(f"{' '.join(cmd)}: {done.stderr.strip()}")


def kill_jobs(job_ids: Iterable[str], timeout: float = 30) -> None:
    """Stop the jobs for good (running, pending or requeued); ignores jobs already gone.

    Any scancel, even ``scancel --full -s KILL``, reaches the job's processes as SIGTERM first
    (measured), and a preemption-aware trainer answers SIGTERM by requeueing itself: the job
    comes back PENDING. So forbid requeue first (with ``Requeue=0`` its ``scontrol requeue``
    fails), then cancel, and wait until nothing of the jobs runs any more.
    """
    ids = [str(j) for j in job_ids]
    if not ids:
        return
    for job in ids:
        _run(["scontrol", "update", f"JobId={job}", "Requeue=0"])
    _run(["scancel", *ids])
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        left = _run(["squeue", "-h", "-t", "PENDING,RUNNING,COMPLETING,REQUEUED", "-o", "%i", "-j", ",".join(ids)])
        if left.returncode != 0 or not left.stdout.strip():
            break
        _run(["scancel", *ids])  # a requeue that won the race leaves a pending job
        time.sleep(0.3)


@dataclass
class LocalSlurm:
    """A handle on the running local cluster; remembers the jobs it submitted."""

    script: Path
    startup: str = ""
    jobs: list[str] = field(default_factory=list)

    def submit(self, script_path, *args, env=None, sbatch=(), cwd=None) -> str:
        job = submit(script_path, *args, env=env, sbatch=sbatch, cwd=cwd)
        self.jobs.append(job)
        return job

    def wait_for(self, job_id: str, states: Iterable[str] = FINAL_STATES, timeout: float = 300, poll: float = 0.5) -> str:
        return wait_for(job_id, states, timeout, poll)

    def job_field(self, job_id: str, name: str) -> str:
        return job_field(job_id, name)

    def job_info(self, job_id: str) -> dict[str, str]:
        return job_info(job_id)

    def output(self, job_id: str) -> str:
        return job_output(job_id)

    def signal(self, job_id: str, sig: str | int = "USR1", batch: bool = False) -> None:
        signal_job(job_id, sig, batch)

    def kill_all(self) -> None:
        """Cancel every job this handle submitted, for good (see :func:`kill_jobs`)."""
        kill_jobs(self.jobs)
        self.jobs.clear()


@pytest.fixture
def slurm():
    """The local Slurm (started on first use, left running); kills the test's jobs afterwards."""
    cluster = start_cluster_or_skip()
    try:
        yield cluster
    finally:
        cluster.kill_all()
