"""Subcommands whose issue has not landed yet: they say so in one line and exit 2."""

from __future__ import annotations

import click

from cltt.cli.common import fail

PENDING = {
    "probe": "linear probes on frozen features",
}


def commands() -> list[click.Command]:
    """One placeholder command per subcommand in :data:`PENDING`."""

    def make(name: str, summary: str) -> click.Command:
        @click.command(name=name, help=f"{summary.capitalize()} (not built yet).",
                       context_settings={"ignore_unknown_options": True})
        @click.argument("args", nargs=-1, type=click.UNPROCESSED)
        def command(args: tuple[str, ...]) -> None:
            fail(f"cltt {name} is not built yet in this version ({summary}); see the README's roadmap", 2)

        return command

    return [make(name, summary) for name, summary in PENDING.items()]
