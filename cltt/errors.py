"""The one exception type a user can cause.

Library code raises :class:`CLTTError` for every failure that is the user's to fix (a bad path,
a bad recipe key, too few frames for a window, no GPU). The CLI prints its message as one line
and exits non-zero; anything else is a bug and keeps its traceback.
"""


class CLTTError(Exception):
    """A failure the user can fix; the message says what is wrong and what to do."""

    exit_code = 2


class RecipeError(CLTTError):
    """A recipe key is unknown, has the wrong type, or a value is out of range."""
