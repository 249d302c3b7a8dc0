"""benchmarks/positives_study.py --small end to end: every method x positives row with its
interval, the picture, training on the train clips only, on rotating objects and on playroom
(labels per frame, probe.task=frames); a rerun reuses every run (slow)."""

from __future__ import annotations

import csv
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from cltt.eval.tasks.frames import probe_frames
from cltt.methods.registry import registered_methods
from cltt.recipe import load_recipe

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


def assert_one_seed_with_intervals(rows: dict[tuple[str, str], list[str]]) -> None:
    """Every row: seed 0's test accuracy inside its 95% interval, then mean +- sd of that one seed."""
    for cells in rows.values():
        value, low, high = CELL.match(cells[0]).groups()
        assert float(low) <= float(value) + 0.5 and float(value) - 0.5 <= float(high)
        assert cells[1] == f"{value} ± n/a (1 seed)"  # one seed has no sd; "± 0.0" read as none


def assert_trained_on_train_clips(out: Path, data: str, runs: int) -> None:
    """Training read the probe's train clips only: those of the labels file's train split, listed
    in OUT/<data>_train_clips.txt, which every run's recipe names in data.clips."""
    with open(out / data / "labels.csv", newline="") as handle:
        train = sorted(row["clip"] for row in csv.DictReader(handle) if row["split"] == "train")
    listed = (out / f"{data}_train_clips.txt").read_text().split()
    assert sorted(listed) == train and 0 < len(train) < 16
    recipes = list((out / "runs").glob("*/recipe.yaml"))
    assert len(recipes) == runs
    assert all(f"clips: {out / f'{data}_train_clips.txt'}" in r.read_text() for r in recipes)


def assert_picture(path: Path) -> None:
    picture = path.read_bytes()
    assert picture[:8] == b"\x89PNG\r\n\x1a\n" and len(picture) > 10_000


def test_small_study_writes_every_row_with_intervals_and_a_picture(tmp_path):
    out = tmp_path / "study"
    done = study(tmp_path, "--small", "--methods", "simclr", "tc", "mae", "--out-dir", str(out))
    expected = [("simclr", p) for p in ("augment", "time", "both")]
    if "tc" in registered_methods():
        expected.append(("tc", "–"))
    else:
        assert "skipped tc: not a registered method" in done.stdout
    # mae's ViT is not the first row's tiny_cnn: it is compared with its own encoder at random init
    expected += [("mae", "–"), ("mae", "time"), ("mae", "random init"), ("random init", "–"), ("pixels", "–")]
    rows = table_rows((out / "positives.md").read_text())
    assert list(rows) == expected
    assert_one_seed_with_intervals(rows)
    assert_picture(out / "positives.png")
    results = json.loads((out / "results.json").read_text())
    assert all(r["0"]["interval"][0] <= r["0"]["test_acc"] <= r["0"]["interval"][1] for r in results.values())
    trained = len(expected) - 3
    # every row's budget: the same frames through the encoder a run
    budgets = re.findall(r"= (\d+) frames a step, (\d+) steps: ([\d,]+) frames", done.stdout)
    assert len(budgets) == trained and len({b[2] for b in budgets}) == 1
    assert_trained_on_train_clips(out, "objects_small_s0", trained)
    # the ViT's random init was probed on the ViT: its features file sits in mae's first run only
    assert list(next((out / "runs").glob("mae_own_s0_*")).joinpath("features").glob("random_init-*.npz"))
    assert not list(next((out / "runs").glob("mae_time_s0_*")).joinpath("features").glob("random_init-*.npz"))
    # mae's time row trains on two-frame windows, the later frame its target
    later = load_recipe(next((out / "runs").glob("mae_time_s0_*")) / "recipe.yaml")
    assert (later.method.mae.target, later.data.window_size, later.data.frame_step) == ("later", 2, 2)
    assert not list(next((out / "runs").glob("tc_own_s0_*")).joinpath("features").glob("random_init-*.npz"))


@pytest.mark.slow
def test_small_study_on_playroom_probes_its_frames_with_intervals_over_clips(tmp_path):
    """--synthetic playroom: the same rows on playroom_small_s0, probed per labelled frame
    (probe.task=frames: the toy nearest the image centre) with the splits of its labels.csv, into
    files of its own beside the rotating objects' names; with --root it is a usage error.
    About 25 s of CPU (90 s wall on the 2 loaded cores of 2026-12-06)."""
    out = tmp_path / "study"
    done = study(tmp_path, "--small", "--synthetic", "playroom", "--methods", "simclr", "--out-dir", str(out))
    rows = table_rows((out / "positives_playroom.md").read_text())
    assert list(rows) == [*(("simclr", p) for p in ("augment", "time", "both")), ("random init", "–"), ("pixels", "–")]
    assert_one_seed_with_intervals(rows)
    assert "built-in playroom, labels per frame" in (out / "positives_playroom.md").read_text()
    assert_picture(out / "positives_playroom.png")
    assert (out / "results_playroom.json").is_file() and not (out / "positives.md").exists()
    assert_trained_on_train_clips(out, "playroom_small_s0", 3)
    first = next((out / "runs").glob("simclr_augment_*"))  # the table's first row read its run's frames probe
    report = probe_frames(load_recipe(first / "recipe.yaml"), first / "checkpoint_final.pth")
    assert report.labels == str(out / "playroom_small_s0" / "segments.csv") and report.unit == "clips"
    with open(out / "playroom_small_s0" / "centre.csv", newline="") as handle:
        centre = list(csv.DictReader(handle))
    with open(out / "playroom_small_s0" / "labels.csv", newline="") as handle:
        test_clips = {row["clip"] for row in csv.DictReader(handle) if row["split"] == "test"}
    assert report.counts["test"] == {"clips": len(test_clips),
                                     "samples": sum(r["clip"] in test_clips and r["label"] != "" for r in centre)}
    logistic = report.score("trained", "logistic")
    assert rows[("simclr", "augment")][0] == f"{100 * logistic.test:.1f} [{100 * logistic.intervals['test'][0]:.0f}–" \
                                             f"{100 * logistic.intervals['test'][1]:.0f}]"
    assert "trained in" in done.stdout
    mixed = subprocess.run([sys.executable, str(STUDY), "--root", str(out), "--synthetic", "playroom"],
                           capture_output=True, text=True, cwd=tmp_path)
    assert mixed.returncode == 2 and "--synthetic picks a built-in set" in mixed.stderr


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


@pytest.mark.parametrize("args, says", [
    (["--steps", "0"], "argument --steps: 0 is below 1"),  # was the default 400, silently
    (["--threads", "0"], "argument --threads: 0 is below 1"),  # was torch's traceback
    (["--seeds", "1", "1"], "--seeds names 1 more than once"),
    (["--methods", "tc", "tc"], "--methods names tc more than once"),
    # the study sets a row's windows: an override changed mae's time gap and no other row's
    (["data.frame_step=4"], "data.frame_step is set per row by the study"),
])
def test_study_refuses_a_bad_option_in_one_line_before_any_work(tmp_path, args, says):
    done = subprocess.run([sys.executable, str(STUDY), *args, "--out-dir", str(tmp_path / "out")],
                          capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("positives_study.py: error: ") and says in last, done.stderr
    assert not (tmp_path / "out").exists()


def test_every_row_runs_the_same_steps_when_its_samples_fill_fewer_batches(tmp_path):
    """mae's time row reads two-frame windows (14 of a 16-frame clip), so its samples fill fewer
    batches than single frames do: its epochs shrink to a divisor of the steps (here 2 of 2, not
    1 of 4 cut to 3), so it runs the steps every other row runs."""
    done = study(tmp_path, "--small", "--methods", "mae", "--steps", "4", "--steps-per-epoch", "4",
                 "--out-dir", str(tmp_path / "out"))
    lines = dict(re.findall(r"seed 0 (mae(?: time)?)\s+.*?(4 steps: 128 frames \(\d epochs of \d\))", done.stdout))
    assert lines == {"mae": "4 steps: 128 frames (1 epochs of 4)", "mae time": "4 steps: 128 frames (2 epochs of 2)"}
    assert "warning" not in done.stdout


def test_a_table_it_cannot_write_is_one_line_and_the_runs_stay(tmp_path):
    """A full disk or an unwritable out dir at the end was a traceback; the finished runs stay for a rerun."""
    out = tmp_path / "out"
    (out / "positives.md").mkdir(parents=True)  # where the table goes: writing it fails as on a full disk
    done = subprocess.run([sys.executable, str(STUDY), "--small", "--methods", "simclr", "--out-dir", str(out)],
                          capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr[-2000:]
    assert done.stderr.strip().splitlines()[-1].startswith(f"error: cannot write {out / 'positives.md'} (")
    assert len(list((out / "runs").glob("simclr_*/checkpoint_final.pth"))) == 3
