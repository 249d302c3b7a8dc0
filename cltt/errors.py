"""The one exception type a user can cause.

Library code raises :class:`CLTTError` for every failure that is the user's to fix (a bad path,
a bad recipe key, too few frames for a window, no GPU). The CLI prints its message as one line
and exits non-zero; anything else is a bug and keeps its traceback.
"""

from contextlib import contextmanager


class CLTTError(Exception):
    """A failure the user can fix; the message says what is wrong and what to do."""

    exit_code = 2


class RecipeError(CLTTError):
    """A recipe key is unknown, has the wrong type, or a value is out of range."""


class Interrupted(CLTTError):
    """The user stopped the work before it could stop itself (a second Ctrl-C); exit 130, as a
    shell reports a Ctrl-C."""

    exit_code = 130


class CannotWrite(CLTTError):
    """A file could not be written: a full disk, a quota, a folder that went away.

    ``path`` is the file, ``reason`` what the system said; the message adds what to do, which
    the caller that knows more (the trainer: its last good checkpoint) may replace.
    """

    def __init__(self, path, reason: str, hint: str = "free space there, or write elsewhere"):
        self.path, self.reason = path, reason
        super().__init__(f"cannot write {path}: {reason}; {hint}")


NEARLY_FULL_BYTES = 1 << 20  # less free space than this, and a failed write is a full disk


def write_failure(path, err: BaseException) -> str | None:
    """Why writing ``path`` failed, in the user's words, or None when ``err`` is no write failure.

    An OSError says it itself (errno 28: no space left on device), safetensors quotes it ("os
    error 28"). torch's writers raise a RuntimeError that does not ("unexpected pos 704 vs 598"),
    so for that one a disk with (almost) no space left under ``path`` is the reason; any other
    error is not ours to rename.
    """
    import os
    import shutil
    from pathlib import Path

    if isinstance(err, OSError) and err.errno is not None:
        return os.strerror(err.errno).lower()
    if "os error 28" in str(err) or "No space left on device" in str(err):
        return "no space left on device"
    if not isinstance(err, RuntimeError):
        return None
    folder = Path(path).parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    try:
        free = shutil.disk_usage(folder).free
    except OSError:
        return None
    return f"no space left on device ({free:,} bytes free)" if free < NEARLY_FULL_BYTES else None


@contextmanager
def writing(path, hint: str | None = None):
    """``with writing(path):`` turns a failed write of ``path`` into :class:`CannotWrite` naming it
    (errors that are not write failures pass unchanged)."""
    try:
        yield
    except CLTTError:
        raise
    except Exception as err:
        reason = write_failure(path, err)
        if reason is None:
            raise
        raise (CannotWrite(path, reason) if hint is None else CannotWrite(path, reason, hint)) from None
