"""What every subcommand shares: reading RECIPE and key=value arguments, the consoles, --show."""

from __future__ import annotations

import contextlib
import sys
from dataclasses import dataclass
from pathlib import Path

import click
from rich.console import Console
from rich.markup import escape
from rich.syntax import Syntax

from cltt.engine.run_files import FAILED, FINISHED, INTERRUPTED, NOT_STARTED, RUNNING, STOPPED
from cltt.errors import CLTTError
from cltt.recipe import Recipe, dump_recipe, load_recipe

console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False)

RECIPE_SUFFIXES = (".yaml", ".yml")
# The colour of each run state in cltt runs and cltt sweep status.
STATE_STYLES = {FINISHED: "green", RUNNING: "cyan", FAILED: "red", INTERRUPTED: "yellow", STOPPED: "yellow",
                NOT_STARTED: "dim"}


@dataclass
class Arguments:
    """Positional arguments sorted by kind: one recipe file, key=value overrides, other paths."""

    recipe_path: Path | None
    overrides: list[str]
    paths: list[Path]

    def recipe(self) -> Recipe:
        return load_recipe(self.recipe_path, self.overrides)


def split_arguments(args: tuple[str, ...]) -> Arguments:
    """Classify ``cltt CMD [RECIPE] [PATH ...] [key.sub=value ...]`` positional arguments.

    A ``.yaml``/``.yml`` name is the recipe, a ``key=value`` word (that is not an existing
    file) is an override, anything else is a path.
    """
    recipe_path, overrides, paths = None, [], []
    for arg in args:
        if arg.lower().endswith(RECIPE_SUFFIXES) and "=" not in arg:
            if recipe_path is not None:
                raise CLTTError(f"two recipes given ({recipe_path} and {arg}); pass one, and override keys as key.sub=value")
            recipe_path = Path(arg)
        elif "=" in arg and not Path(arg).exists():
            overrides.append(arg)
        else:
            paths.append(Path(arg))
    return Arguments(recipe_path, overrides, paths)


def show_recipe(recipe: Recipe) -> None:
    """Print the resolved recipe (``--show``)."""
    console.print(Syntax(dump_recipe(recipe), "yaml", theme="ansi_dark", background_color="default"))


show_option = click.option("--show", is_flag=True, help="Print the resolved recipe (file + overrides + defaults) and exit.")


@contextlib.contextmanager
def writing_run_dir(run_dir: Path, advice: str, take: bool = True):
    """Hold ``run_dir``'s one-writer lock for the block (:mod:`cltt.engine.run_lock`); a lock taken
    over from a killed process is said in a note. ``advice`` ends the refusal when another holds it."""
    from cltt.engine.run_lock import hold_run_dir

    with hold_run_dir(run_dir, advice, take=take) as lock:
        for note in lock.notes if lock else []:
            err_console.print(f"[dim]note:[/] {escape(note)}", soft_wrap=True)
        yield lock


def fail(message: str, code: int = 2) -> None:
    """Print one error line and exit with ``code``."""
    err_console.print(f"[bold red]error:[/] {escape(message)}", soft_wrap=True)
    sys.exit(code)


class OneLineErrors:
    """A click command mixin: :class:`CLTTError` and Ctrl-C become one line and an exit code."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except click.NoSuchOption as err:
            hint = recipe_key_hint(err.option_name, list(ctx.protected_args) + list(ctx.args) + sys.argv[1:])
            if hint is None:
                raise
            fail(f"no option {err.option_name}: {hint}")
        except CLTTError as err:
            fail(str(err), err.exit_code)
        except KeyboardInterrupt:
            fail("interrupted", 130)
        except OSError as err:  # an unwritable, missing or full destination: one line naming the path
            fail(describe_os_error(err))



def describe_os_error(err: OSError) -> str:
    """``cannot write /path (Permission denied); ...`` for an OSError that escaped the library."""
    where = err.filename if err.filename is not None else "a file"
    other = f" -> {err.filename2}" if getattr(err, "filename2", None) else ""
    return (f"{where}{other}: {err.strerror or err}; check that the path exists and is writable "
            "(a full disk or quota says so here too)")


def fmt_number(value: float | None, spec: str) -> str:
    """``value`` formatted for a table cell, ``-`` when there is none."""
    return "-" if value is None else format(value, spec)


def recipe_key_hint(option: str, args: list[str]) -> str | None:
    """For ``--epochs 3``: ``recipe keys are set as key=value: train.epochs=3``; None when no
    recipe key ends in that name."""
    from cltt.recipe import all_keys

    name = option.lstrip("-").replace("-", "_")
    keys = [key for key in all_keys() if key.rsplit(".", 1)[-1] == name]
    if not keys:
        return None
    attached = next((arg.split("=", 1)[1] for arg in args if arg.startswith(option + "=")), None)
    position = args.index(option) if option in args else -1
    value = attached or (args[position + 1] if 0 <= position < len(args) - 1 and not args[position + 1].startswith("-")
                         else "VALUE")
    return "recipe keys are set as key=value: " + " or ".join(f"{key}={value}" for key in keys[:3])
