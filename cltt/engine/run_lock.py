"""A run dir has one writer: an exclusive lock on ``RUN_DIR/run.lock`` for train, resume, probe and export.

    with hold_run_dir(run_dir, "wait for it to finish, or use another train.name") as lock:
        for note in lock.notes: ...        # e.g. a lock taken over from a killed process
        ... write into run_dir ...

The lock is ``flock(LOCK_EX | LOCK_NB)`` on the file ``run.lock``, which also holds the holder
as JSON (host, pid, command, since) so a refused writer can name it. The kernel drops a flock
when its process dies, however it dies (SIGKILL, OOM, a node that fails and whose NFS lease
expires), so a Slurm requeue of a killed run simply takes it; the holder text left behind is
then reported as a lock taken over. On NFS (v4, or v3 with lockd) and on Lustre mounted with
``flock`` the lock is seen from every node; on a ``localflock`` mount only from the same node.
A file system without locks (``flock`` fails with ENOLCK or ENOSYS) falls back to the holder
text: a live process on this host is refused, a dead one taken over, one on another host refused
with what to delete.

In a run of several processes (torchrun, srun) process 0 takes the lock and writes its job key
(:func:`job_key`: rendezvous address and port, torchrun's run id, Slurm's job and step) into the
text; the other processes write nothing and wait (:func:`follow`) until the text names their own
job, so when process 0 is refused they are refused too, in one line, instead of waiting for it
in the rendezvous (30 minutes under srun, which does not stop the other tasks).

The file is kept and emptied on release (never unlinked: a process that opened it just before
would lock a file no other process can see). Only this module's text decides what is free: an
empty file. Torch-free, so the CLI takes the lock before the heavy imports.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import shlex
import socket
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from cltt.engine.run_files import LOCK_FILE
from cltt.errors import CLTTError

_NO_LOCKS = {errno.ENOLCK, errno.ENOSYS, errno.EOPNOTSUPP, errno.EINVAL}


def process_alive(pid: int) -> bool:
    """True when a process with this id exists on this host (another user's counts too)."""
    try:
        pid = int(pid)
        if pid <= 0:  # kill(0) and kill(-1) would signal process groups, not one process
            return False
        os.kill(pid, 0)
    except PermissionError:
        return True
    except (OSError, ValueError, TypeError, OverflowError):
        return False
    return True


def command_line() -> str:
    """``cltt train recipe.yaml train.name=x``: this process's command as a person typed it."""
    return shlex.join(["cltt", *sys.argv[1:]])


JOB_VARIABLES = ("MASTER_ADDR", "MASTER_PORT", "TORCHELASTIC_RUN_ID", "SLURM_JOB_ID", "SLURM_STEP_ID")


def job_key(env: dict | None = None) -> str:
    """What the processes of one multi-process run share and two runs at one time do not: the
    rendezvous address and port, torchrun's run id, Slurm's job and step ids."""
    env = os.environ if env is None else env
    return "|".join(env.get(name, "") for name in JOB_VARIABLES)


def _describe(holder: dict) -> str:
    if not holder:  # locked, its text not yet written (or already emptied)
        return "another process that is starting or stopping"
    return (f"{holder.get('command', '?')} (pid {holder.get('pid', '?')} on {holder.get('host', '?')}, "
            f"since {holder.get('since', '?')})")


@dataclass
class RunLock:
    """The held lock of one run dir; ``notes`` say what acquiring it found."""

    run_dir: Path
    handle: object
    created_dir: bool
    notes: list[str] = field(default_factory=list)

    @property
    def path(self) -> Path:
        return self.run_dir / LOCK_FILE

    def release(self) -> None:
        """Empty the holder text, drop the lock, and remove a run dir this lock created if nothing else was written."""
        if self.handle is None:
            return
        try:
            self.handle.truncate(0)
            self.handle.flush()
        except OSError:
            pass  # a full disk: the kernel still drops the flock below; the text reads as a stale holder
        if self.created_dir and [p.name for p in self.run_dir.iterdir()] == [LOCK_FILE]:
            self.path.unlink(missing_ok=True)  # still locked by us: no other writer can be using the file
            with contextlib.suppress(OSError):
                self.run_dir.rmdir()
        self.handle.close()  # closing the descriptor releases the flock
        self.handle = None


def acquire(run_dir: Path, advice: str) -> RunLock:
    """Lock ``run_dir`` (created if missing) for this process, or raise :class:`CLTTError`.

    ``advice`` ends the refusal, after the holder is named: what the user can do instead.
    """
    run_dir = Path(run_dir)
    created_dir = not run_dir.exists()
    run_dir.mkdir(parents=True, exist_ok=True)
    handle = open(run_dir / LOCK_FILE, "a+")  # noqa: SIM115 - held open for the lock's lifetime
    try:
        notes = _lock(handle, run_dir, advice)
        holder = {"host": socket.gethostname(), "pid": os.getpid(), "command": command_line(),
                  "since": datetime.now().astimezone().isoformat(timespec="seconds"), "job": job_key()}
        handle.truncate(0)
        handle.write(json.dumps(holder) + "\n")
        handle.flush()
    except BaseException:
        handle.close()
        raise
    return RunLock(run_dir, handle, created_dir, notes)


def _lock(handle, run_dir: Path, advice: str) -> list[str]:
    """Take the flock; refuse when it is held; a note when a dead holder's text was left behind."""
    refusal = f"{run_dir} is in use by " + "{}; " + advice
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        locks = True
    except BlockingIOError:
        raise CLTTError(refusal.format(_describe(_holder(handle)))) from None
    except OSError as err:
        if err.errno not in _NO_LOCKS:
            raise
        locks = False
    previous = _holder(handle)
    if not previous:
        return []
    here = previous.get("host") == socket.gethostname()
    if not locks:
        if here and process_alive(previous.get("pid")):
            raise CLTTError(refusal.format(_describe(previous)))
        if not here:
            raise CLTTError(refusal.format(_describe(previous)) + f" ({run_dir} is on a file system without locks: "
                            f"if that process has ended, delete {run_dir / LOCK_FILE})")
    # flock acquired (or a dead holder on this host): whoever wrote the text ended without releasing it
    return [f"took over the lock of {run_dir} from {_describe(previous)}, which ended without releasing it"]


def _holder(handle) -> dict:
    """The holder text of an open lock file; {} when empty or unreadable."""
    handle.seek(0)
    text = handle.read().strip()
    if not text:
        return {}
    try:
        holder = json.loads(text)
    except ValueError:
        return {"command": "an unknown process"}
    return holder if isinstance(holder, dict) else {"command": "an unknown process"}


def follow(run_dir: Path, advice: str, timeout: float = 120.0, poll: float = 0.1) -> None:
    """For a process other than 0 of a multi-process run: return once process 0 of this job
    holds the lock of ``run_dir``; raise :class:`CLTTError` when another live process on this
    host holds it, or when process 0 has not taken it within ``timeout`` seconds."""
    path = Path(run_dir) / LOCK_FILE
    ours = job_key()
    deadline = time.monotonic() + timeout
    while True:
        try:
            with open(path) as handle:
                holder = _holder(handle)
        except FileNotFoundError:
            holder = {}
        if holder.get("job") == ours:
            return
        refusal = f"{run_dir} is in use by {_describe(holder)}; {advice}"
        if holder.get("host") == socket.gethostname() and process_alive(holder.get("pid")):
            raise CLTTError(refusal)  # another run's live holder: process 0 is refused too
        if time.monotonic() > deadline:
            raise CLTTError(f"process 0 did not take the lock of {run_dir} within {timeout:.0f} s"
                            + (f"; {refusal}" if holder else ""))
        time.sleep(poll)


@contextlib.contextmanager
def hold_run_dir(run_dir: Path, advice: str, take: bool = True):
    """``acquire`` for the ``with`` block, released however it ends; ``take=False`` (a process
    other than 0 of a multi-process run) locks nothing and waits for process 0 (:func:`follow`)."""
    if not take:
        follow(run_dir, advice)
        yield None
        return
    lock = acquire(run_dir, advice)
    try:
        yield lock
    finally:
        lock.release()
