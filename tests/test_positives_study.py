"""benchmarks/positives_study.py --small end to end: every method x positives row with its
interval, the picture, training on the train clips only; a rerun reuses every run (slow)."""

from __future__ import annotations

import csv
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from cltt.methods.registry import registered_methods

REPO = Path(__file__).resolve().parent.parent
STUDY = REPO / "benchmarks" / "positives_study.py"
CELL = re.compile(r"^(\d+\.\d) \[(\d+)–(\d+)\]$")  # test accuracy % [95% interval]


def study(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    done = subprocess.run([sys.executable, str(STUDY), *args], capture_output=True, text=True, cwd=cwd)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def table_rows(text: str) -> dict[tuple[str, str], list[str]]:
    lines = [line for line in text.splitlines() if line.startswith("| ") and not line.startswith("| method")]
    return {(cells[0], cells[1]): cells[2:] for cells in
            ([c.strip() for c in line.strip("|").split("|")] for line in lines)}


def test_small_study_writes_every_row_with_intervals_and_a_picture(tmp_path):
    out = tmp_path / "study"
    done = study(tmp_path, "--small", "--methods", "simclr", "tc", "--out-dir", str(out))
    expected = [("simclr", p) for p in ("augment", "time", "both")]
    if "tc" in registered_methods():
        expected.append(("tc", "–"))
    else:
        assert "skipped tc: not a registered method" in done.stdout
    expected += [("random init", "–"), ("pixels", "–")]
    rows = table_rows((out / "positives.md").read_text())
    assert list(rows) == expected
    for cells in rows.values():  # one seed, then mean +- sd
        value, low, high = CELL.match(cells[0]).groups()
        assert float(low) <= float(value) + 0.5 and float(value) - 0.5 <= float(high)
        assert cells[1] == f"{value} ± 0.0"
    picture = (out / "positives.png").read_bytes()
    assert picture[:8] == b"\x89PNG\r\n\x1a\n" and len(picture) > 10_000
    results = json.loads((out / "results.json").read_text())
    assert all(r["0"]["interval"][0] <= r["0"]["test_acc"] <= r["0"]["interval"][1] for r in results.values())
    # every row's budget: the same frames through the encoder a run
    budgets = re.findall(r"= (\d+) frames a step, (\d+) steps: ([\d,]+) frames", done.stdout)
    assert len(budgets) == len(expected) - 2 and len({b[2] for b in budgets}) == 1
    # training read the probe's train clips only: those of the labels file's train split
    with open(out / "objects_small_s0" / "labels.csv", newline="") as handle:
        train = sorted(row["clip"] for row in csv.DictReader(handle) if row["split"] == "train")
    listed = (out / "objects_small_s0_train_clips.txt").read_text().split()
    assert sorted(listed) == train and 0 < len(train) < 16
    recipes = list((out / "runs").glob("*/recipe.yaml"))
    assert len(recipes) == len(expected) - 2
    assert all(f"clips: {out / 'objects_small_s0_train_clips.txt'}" in r.read_text() for r in recipes)


@pytest.mark.slow
def test_study_reuses_its_runs_and_takes_a_labelled_root_of_ones_own(tmp_path):
    """A rerun reuses every finished run; --root and --labels: a researcher's labelled clips,
    with data keys as overrides."""
    built = tmp_path / "built"
    study(tmp_path, "--small", "--methods", "simclr", "--out-dir", str(built))
    first = (built / "positives.md").read_text()
    again = study(tmp_path, "--small", "--methods", "simclr", "--out-dir", str(built))
    assert again.stdout.count("reused its finished run") == 3 and "trained in" not in again.stdout
    assert table_rows((built / "positives.md").read_text()) == table_rows(first)
    mine = built / "objects_small_s0"
    labels = tmp_path / "my_labels.csv"
    labels.write_text((mine / "labels.csv").read_text())
    out = tmp_path / "mine"
    study(tmp_path, "--small", "--methods", "simclr", "--root", str(mine), "--labels", str(labels),
          "--out-dir", str(out), "data.image_size=32")
    rows = table_rows((out / "positives.md").read_text())
    assert [r for r in rows if r[0] == "simclr"] == [("simclr", p) for p in ("augment", "time", "both")]
    assert (out / "objects_small_s0_train_clips.txt").is_file()
    assert all(CELL.match(cells[0]) for cells in rows.values())
