"""``cltt probe``'s command-line surface: what its help says of the readouts, which files ``--out``
may replace, a read-only run dir, and tables that keep every number whole at 80 columns."""

from __future__ import annotations

from pathlib import Path

from cltt.cli import probe as probe_cli
from tests.test_probe import run_cli

DOCS = Path(__file__).resolve().parents[1] / "docs" / "how-to" / "probe.md"


def test_help_and_docs_name_every_task_the_readouts_serve():
    """The readouts serve classes, frames and image_set; --help and the how-to say so alike."""
    result = run_cli("probe", "--help")
    assert result.exit_code == 0, result.output
    header = next(line for line in result.output.splitlines() if line.startswith("Readouts"))
    assert header == "Readouts (probe.probes, for tasks classes, frames and image_set):", header
    docs = " ".join(DOCS.read_text().split())
    assert "the readouts of tasks `classes`, `frames` and `image_set`" in docs
    assert probe_cli.READOUT_TASKS == ("classes", "frames", "image_set")
