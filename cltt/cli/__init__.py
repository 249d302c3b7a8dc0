"""The ``cltt`` command: one entry point, one subcommand module per job.

Every subcommand takes ``[RECIPE] [key.sub=value ...]`` and ``--show``; a failure the user can
fix prints one line and exits non-zero (2 for bad input, 1 for work that finished with
failures), never a traceback.
"""

from __future__ import annotations

import logging

from cltt.engine import preemption

with preemption.interrupt_exits_quietly():  # first: a Ctrl-C while click, rich and OpenCV load exits 130, no traceback
    import click
    from rich.markup import escape

    from cltt import __version__
    from cltt.cli.common import OneLineErrors, err_console

SUBCOMMANDS = ("extract", "pack", "index", "visualize", "train", "resume", "runs", "probe", "export", "sweep")


class CLTTGroup(OneLineErrors, click.Group):
    """Lists subcommands in workflow order and turns :class:`CLTTError` into one line."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return [name for name in SUBCOMMANDS if name in self.commands]


@click.group(cls=CLTTGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, "--version", "-V", prog_name="cltt")
@click.option("-v", "--verbose", is_flag=True, help="Log debugging details.")
def main(verbose: bool) -> None:
    """Contrastive learning through time: learn visual representations from video.

    \b
    The workflow, each step one subcommand sharing one YAML recipe:
      cltt extract   videos (or --synthetic data) -> frames/<clip>/frame_000001.jpg
      cltt pack      frames -> a store of a few shard files (cluster scale)
      cltt index     frames or store -> manifest; counts clips, frames and windows
      cltt visualize windows as the model sees them; training curves
      cltt train     a temporal contrastive method on the windows
      cltt resume    continue a run where it stopped
      cltt runs      a table of runs: method, epochs, loss, probe accuracy, state
      cltt probe     linear probes on frozen features
      cltt export    encoder weights and embeddings
      cltt sweep     a grid of runs, locally or as a Slurm job array

    \b
    Start here (the quickstart writes its built-in data, rotating-objects, to data/objects):
      cltt train recipes/quickstart.yaml
      cltt probe runs/quickstart
    """
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
        handlers=[_RichLineHandler()],
    )


class _RichLineHandler(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        style = "yellow" if record.levelno >= logging.WARNING else "dim"
        err_console.print(f"[{style}]{record.levelname.lower()}:[/] {escape(record.getMessage())}", soft_wrap=True)


def _register() -> None:
    from cltt.cli import export, extract, index, pack, probe, runs, sweep, train, visualize

    for command in (extract.command, pack.command, index.command, visualize.command, train.train_command,
                    train.resume_command, runs.command,
                    probe.command, export.command, sweep.command):
        main.add_command(command)


with preemption.interrupt_exits_quietly():
    _register()
