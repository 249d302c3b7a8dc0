"""``cltt probe``'s command-line surface: what its help says of the readouts, which files ``--out``
may replace, a read-only run dir, and tables that keep every number whole at 80 columns."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest
from rich.text import Text

from cltt.cli import main
from cltt.cli import probe as probe_cli
from tests.conftest import invoke_in_process
from tests.helpers.commands import one_error_line, run_cli
from tests.helpers.training import tiny_run

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


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    """One epoch of the test recipe on built-in bouncing-balls clips (labelled by ball count)."""
    return tiny_run(tmp_path_factory.mktemp("probe_cli"), "bouncing-balls")


def _snapshot(run_dir: Path) -> dict[str, bytes]:
    """Every file under ``run_dir`` (features/ included) by relative path, with its bytes."""
    return {str(p.relative_to(run_dir)): p.read_bytes() for p in run_dir.rglob("*") if p.is_file()}


@pytest.mark.parametrize("name", ["checkpoint_final.pth", "recipe.yaml", "report.txt"])
def test_out_must_be_json(run, name):
    """A checkpoint or the recipe as --out was replaced by the report; a name not ending in .json is
    refused before any work, even with --force, and nothing in the run dir changes."""
    before = _snapshot(run)
    line = one_error_line(run_cli("probe", run, "-o", run / name, "--force"))
    assert f"--out {run / name} must end in .json" in line, line
    assert _snapshot(run) == before


def test_existing_out_needs_force(run, tmp_path):
    """An existing --out file is kept without --force (as cltt export and sweep status --csv keep
    theirs), and replaced with it."""
    out = tmp_path / "mine.json"
    out.write_text("keep me")
    line = one_error_line(run_cli("probe", run, "-o", out))
    assert f"{out} exists; pass --force to replace it" in line, line
    assert out.read_text() == "keep me"
    assert one_error_line(run_cli("probe", run, "-o", run / "run.json", "--force")).endswith(
        "is the run's own record (cltt train writes it); give another --out")
    result = run_cli("probe", run, "-o", out, "--force", "probe.probes=[linear]")
    assert result.exit_code == 0, result.output
    assert "scores" in json.loads(out.read_text())


def test_never_replaces_a_link_or_fifo(run, tmp_path):
    """A symbolic link (to a file, or dangling) or a FIFO as --out stays what it is, even with
    --force; so does a link in place of the default report."""
    target = tmp_path / "elsewhere.json"
    target.write_text("theirs")
    link, dangling, fifo = tmp_path / "link.json", tmp_path / "dangling.json", tmp_path / "fifo.json"
    link.symlink_to(target)
    dangling.symlink_to(tmp_path / "missing.json")
    os.mkfifo(fifo)
    for path in (link, dangling):
        line = one_error_line(run_cli("probe", run, "-o", path, "--force"))
        assert f"{path} is a symbolic link; cltt probe never writes through one, even with --force" in line, line
        assert path.is_symlink()
    line = one_error_line(run_cli("probe", run, "-o", fifo, "--force"))
    assert f"{fifo} is not a regular file (a FIFO, device or socket)" in line, line
    assert stat.S_ISFIFO(fifo.lstat().st_mode) and target.read_text() == "theirs"
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    (copy / "probe.json").unlink(missing_ok=True)
    (copy / "probe.json").symlink_to(target)
    line = one_error_line(run_cli("probe", copy))
    assert "probe.json is a symbolic link" in line and "remove it, or pass --out FILE.json" in line, line
    assert target.read_text() == "theirs"


def test_rerun_replaces_its_own_report_only(run, tmp_path):
    """The default report is the probe's own output: a second probe replaces it without --force
    (so does --out naming it), and the checkpoints, the recipe and run.json stay byte for byte."""
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    kept = {name: (copy / name).read_bytes() for name in ("checkpoint_final.pth", "recipe.yaml", "run.json")}
    for extra in ((), ("-o", copy / "probe.json")):
        (copy / "probe.json").write_text("{}")
        result = run_cli("probe", copy, "probe.probes=[linear]", *extra)
        assert result.exit_code == 0, result.output
        assert "scores" in json.loads((copy / "probe.json").read_text())
    assert {name: (copy / name).read_bytes() for name in kept} == kept


BOX = "│┃┏━┳┓┡╇┩└┴┘├┼┤─"


def _probe_at(run_dir: Path, columns: int, out: Path, *overrides: str):
    """``cltt probe`` of ``run_dir`` (named relative to its folder, so the title holds no long
    path) with its table printed at ``columns``."""
    result = invoke_in_process(main, ["probe", run_dir.name, "-o", str(out), "--force", *overrides], run_dir.parent,
                               env={"COLUMNS": str(columns)})
    assert result.exit_code == 0, result.output
    return result


def _words(text: str) -> set[str]:
    """The words of the table, its title and caption (the summary line, with its time, left out)."""
    table = "\n".join(line for line in text.splitlines() if not line.startswith("probed "))
    return set(table.translate({ord(c): " " for c in BOX}).split())


@pytest.mark.parametrize("task", ["classes", "label_free"])
def test_tables_at_80_columns_cut_no_number_or_header(run, tmp_path, task):
    """At 80 columns (any pipe) the table read 'ridge=100…' and headers 'trained_9' / '5': now
    every word of the 80-column table is a whole word of the wide table (columns go whole, cells
    wrap at spaces only), no line passes 80, and the columns left out are named."""
    out = tmp_path / "report.json"
    wide = _probe_at(run, 250, out, f"probe.task={task}")
    narrow = _probe_at(run, 80, out, f"probe.task={task}")
    table = [line for line in narrow.stdout.splitlines() if set(line) & set(BOX)]  # the summary line is one line
    assert max(Text.from_ansi(line).cell_len for line in table) <= 80, narrow.stdout
    assert _words(narrow.stdout) <= _words(wide.stdout), _words(narrow.stdout) - _words(wide.stdout)
    report = json.loads(out.read_text())
    if task == "classes":  # the figures of the three splits stay, each whole
        figures = {f"{100 * s[split]:.1f}" for s in report["scores"] for split in ("train", "val", "test")
                   if s[split] is not None}
    else:  # the first measured column stays
        figures = {f"{row[1]:.3f}" for row in report["rows"] if isinstance(row[1], float)}
    assert figures and figures <= _words(narrow.stdout), figures - _words(narrow.stdout)
    header = next(line for line in narrow.stdout.splitlines() if line.startswith("┃"))
    kept = _words(header)
    left_out = [c for c in (report.get("columns") or ["detail"]) if c not in kept and c != "measure"]
    if left_out and task != "classes":
        assert f"left out at 80 columns: {', '.join(reversed(left_out))}" in narrow.stderr, narrow.stderr


@contextlib.contextmanager
def read_only(folder: Path):
    """``folder`` and all it holds made unwritable for the block: immutable (chattr +i, which
    binds root too, as a read-only mount does) where possible, else chmod a-w for a user."""
    flag = subprocess.run(["chattr", "-R", "+i", str(folder)], capture_output=True) if shutil.which("chattr") else None
    if flag is None or flag.returncode != 0:
        if os.geteuid() == 0:
            pytest.skip("root writes into a chmod a-w folder, and chattr +i is not available here")
        subprocess.run(["chmod", "-R", "a-w", str(folder)], check=True)
    try:
        yield folder
    finally:
        if flag is not None and flag.returncode == 0:
            subprocess.run(["chattr", "-R", "-i", str(folder)], check=True)
        subprocess.run(["chmod", "-R", "u+w", str(folder)], check=True)


def test_read_only_run_dir(run, tmp_path):
    """A read-only run dir (a read-only mount, another user's run) failed at its run.lock even
    with --out elsewhere. With --out outside it the probe writes nothing into it (no lock, no
    metrics_eval.csv row, features cached in cltt's cache folder); without, one line says what
    to do."""
    copy = shutil.copytree(run, tmp_path / "ro")
    with read_only(copy):
        before = _snapshot(copy)
        line = one_error_line(run_cli("probe", copy))
        assert (f"{copy} is read-only, and cltt probe writes its report there; pass --out FILE.json outside it "
                "(features are then cached in ") in line and f"or probe a writable copy (cp -r {copy} COPY)" in line
        out = tmp_path / "report.json"
        result = run_cli("probe", copy, "-o", out)
        assert result.exit_code == 0, result.output
        assert f"metrics_eval.csv not updated: {copy} is read-only" in " ".join(result.stderr.split())
        assert "scores" in json.loads(out.read_text())
        assert _snapshot(copy) == before
        cached = Path(os.environ["CLTT_CACHE"]) / "probe-features"  # this session's, set by conftest
        assert any(cached.glob("ro-*/trained-*.npz")), list(cached.rglob("*"))
