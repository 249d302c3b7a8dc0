"""The ``cltt`` command line in tests: the quickstart recipe, an in-process run, and the check
that a failure a user caused ends in one ``error:`` line with exit status 2, no traceback."""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from click.testing import CliRunner

from cltt.cli import CLTTGroup, main
from cltt.cli import probe as probe_cli
from tests.conftest import invoke_in_process

QUICKSTART = Path(__file__).resolve().parents[2] / "recipes" / "quickstart.yaml"


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str


def cltt(*args, cwd: Path) -> Result:
    """The real ``cltt`` command line, run in this process."""
    result = invoke_in_process(main, args, cwd)
    return Result(result.exit_code, result.stdout, result.stderr)


def the_error_line(exit_code: int, text: str, fragments: tuple[str, ...] = ()) -> str:
    """Exit status 2 and, in ``text``, one non-blank line: ``error: ...`` holding every fragment,
    and no traceback. Returns that line."""
    assert exit_code == 2, (exit_code, text)
    assert "Traceback" not in text, text
    lines = [line for line in text.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), text
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


def one_line_error(result, *fragments: str) -> str:
    """The one error line of an in-process run (a click result), which holds every fragment."""
    return the_error_line(result.exit_code, result.output, fragments)


def assert_one_line_error(result: subprocess.CompletedProcess, *fragments: str) -> None:
    """The same for a ``cltt`` subprocess: exit 2 and one ``error:`` line on stderr holding every fragment."""
    the_error_line(result.returncode, result.stderr, fragments)


def run_cli(*args, cwd: Path | None = None):
    """``cltt ARGS`` in this process; the probe command even before cltt.cli registers it."""
    group = main if main.commands.get("probe") is probe_cli.command else \
        CLTTGroup(name="cltt", commands={"probe": probe_cli.command})
    here = os.getcwd()
    if cwd is not None:
        os.chdir(cwd)
    try:
        result = CliRunner().invoke(group, [str(a) for a in args], env={"COLUMNS": "160"})
    finally:
        os.chdir(here)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result


def one_error_line(result) -> str:
    """The one ``error:`` line of a :func:`run_cli` result on stderr (exit 2); stdout may hold more."""
    return the_error_line(result.exit_code, result.stderr)
