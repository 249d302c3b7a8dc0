"""``python -m cltt`` runs the command line, as the ``cltt`` entry point does."""

from cltt.cli import main

main(prog_name="cltt")
