"""Issue 24, cases 9, 13 and 19: probes that would say nothing are refused or warned about,
C and the ridge are chosen on stratified grouped folds of train, and ``cltt runs`` reads at
80 columns and writes CSV and JSON.

Every command runs as a real ``python -m cltt`` process on a tiny trained run (tiny_cnn, 32 px,
12 bouncing-balls clips of 8 frames, one epoch)."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from sklearn.model_selection import GroupKFold

from cltt.engine import run_files
from cltt.eval.folds import NOT_CHOSEN, train_folds
from cltt.eval.logistic import fit_logistic


def cltt(*args, cwd: Path, columns: int = 200) -> subprocess.CompletedProcess:
    env = {**os.environ, "COLUMNS": str(columns), "NO_COLOR": "1"}
    env.pop("SLURM_JOB_ID", None)
    return subprocess.run([sys.executable, "-m", "cltt", *map(str, args)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


def one_error_line(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    return lines[0]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    """A folder with tiny.yaml, its frames (balls/, labels.csv: 4 clips of each of 3 classes)
    and the trained run runs/tiny."""
    base = tmp_path_factory.mktemp("faults_probe")
    recipe = {
        "data": {"root": str(base / "balls"), "synthetic": "bouncing-balls", "window_size": 3, "image_size": 32,
                 "num_workers": 0},
        "extract": {"synthetic": {"clips": 12, "frames": 8, "size": 32}},
        "model": {"backbone": "tiny_cnn", "projection_dim": 16},
        "train": {"epochs": 1, "batch_size": 8, "device": "cpu", "out_dir": str(base / "runs")},
        "probe": {"logistic_c": [0.1, 1.0, 10.0], "knn_k": 5},
    }
    (base / "tiny.yaml").write_text(yaml.safe_dump(recipe))
    result = cltt("train", "tiny.yaml", cwd=base)
    assert result.returncode == 0, result.stderr
    return base


def clips_by_class(base: Path) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for row in csv.DictReader(open(base / "balls" / "labels.csv")):
        found.setdefault(row["label"], []).append(row["clip"])
    return found


def write_labels(path: Path, rows: list[tuple[str, str, str]]) -> Path:
    path.write_text("clip,label,split\n" + "".join(f"{c},{label},{s}\n" for c, label, s in rows))
    return path


def issue_13_rows(base: Path) -> list[tuple[str, str, str]]:
    """Train and test only: 6 train clips, 4 of one class and 2 of another; 2 test clips."""
    (big, big_clips), (small, small_clips) = list(clips_by_class(base).items())[:2]
    assert len(big_clips) >= 4 and len(small_clips) >= 4
    return [(c, big, "train") for c in big_clips[:4]] + [(c, small, "train") for c in small_clips[:2]] + \
        [(c, small, "test") for c in small_clips[2:4]]


# --------------------------------------------------------------------------- case 9


@pytest.mark.slow  # python -m cltt processes: a few seconds each, more on a busy machine
def test_case_9_all_train_labels_are_refused_before_any_work(tiny, tmp_path):
    labels = write_labels(tmp_path / "all_train.csv",
                          [(c, label, "train") for label, clips in clips_by_class(tiny).items() for c in clips])
    run = tiny / "runs" / "tiny"
    report = run / "probe.json"
    report.write_text('{"finished": "an earlier probe"}')
    features = run / "features"
    assert not features.exists()
    line = one_error_line(cltt("probe", run, f"probe.labels={labels}", cwd=tiny))
    assert "every labelled clip (12) is in the train split" in line and "mark some clips val or test" in line
    assert report.read_text() == '{"finished": "an earlier probe"}'  # the finished report is kept
    assert not features.exists()  # refused before encoding a frame
    # no split column, splits drawn without val or test fractions: the same refusal
    drawn = tmp_path / "no_split_column.csv"
    drawn.write_text("clip,label\n" + "".join(f"{c},{label}\n" for label, clips in clips_by_class(tiny).items() for c in clips))
    line = one_error_line(cltt("probe", run, f"probe.labels={drawn}", "probe.split_fractions=[1.0,0.0,0.0]", cwd=tiny))
    assert "is in the train split" in line and report.read_text() == '{"finished": "an earlier probe"}'
    assert not features.exists()


@pytest.mark.slow  # python -m cltt processes: a few seconds each, more on a busy machine
def test_case_9_training_with_an_all_train_probe_is_refused_before_training(tiny, tmp_path):
    labels = write_labels(tmp_path / "all_train.csv",
                          [(c, label, "train") for label, clips in clips_by_class(tiny).items() for c in clips])
    out = tmp_path / "runs"
    line = one_error_line(cltt("train", "tiny.yaml", "probe.every=1", f"probe.labels={labels}",
                               f"train.out_dir={out}", cwd=tiny))
    assert "is in the train split" in line
    assert not (out / "tiny").exists()  # no run dir half made


# --------------------------------------------------------------------------- case 13


def test_case_13_grouped_split_is_stratified():
    # the issue's train split: 6 clips, 4 of class 0 and 2 of class 1, 3 to 9 frames each
    frames = [3, 9, 4, 8, 5, 7]
    clip_class = [0, 0, 0, 0, 1, 1]
    groups = np.repeat(np.arange(6), frames)
    targets = np.repeat(clip_class, frames)
    folds = train_folds(targets, groups)
    assert folds is not None and len(folds) == 2  # k = min(3, 2 clips of the smaller class)
    for fit_rows, score_rows in folds:
        assert set(groups[fit_rows]).isdisjoint(groups[score_rows])  # by clip, never by frame
        assert set(targets[fit_rows]) == {0, 1} and set(targets[score_rows]) == {0, 1}  # every class on both sides
    held_out = np.concatenate([score for _, score in folds])
    assert sorted(held_out.tolist()) == list(range(len(targets)))  # every frame scored once
    # the plain grouped 3-fold split leaves a fit with one class (what scikit-learn refused)
    plain = GroupKFold(n_splits=3).split(np.zeros(len(targets)), targets, groups)
    assert any(len(set(targets[fit_rows])) == 1 for fit_rows, _ in plain)
    # and the logistic probe now picks C on those folds, with real scikit-learn
    rng = np.random.default_rng(0)
    x = rng.normal(size=(len(targets), 4)) + 2.0 * targets[:, None]
    probe = fit_logistic(x, targets, x[:0], targets[:0], [0.01, 1.0, 100.0], 2, train_groups=groups)
    assert probe.selected_by == "grouped 2-fold on train" and set(probe.scores_by_c) == {0.01, 1.0, 100.0}
    # a class with one train clip cannot be held out and fitted on: no folds, the grid's middle
    single = train_folds(np.repeat([0, 0, 1], 4), np.repeat(np.arange(3), 4))
    assert single is None
    probe = fit_logistic(x[:12], np.repeat([0, 0, 1], 4), x[:0], targets[:0], [0.01, 1.0, 100.0], 2,
                         train_groups=np.repeat(np.arange(3), 4))
    assert probe.selected_by == NOT_CHOSEN and probe.c == 1.0


@pytest.mark.slow  # python -m cltt processes: a few seconds each, more on a busy machine
def test_case_13_train_and_test_labels_probe_and_train(tiny, tmp_path):
    labels = write_labels(tmp_path / "train_test.csv", issue_13_rows(tiny))
    out = tmp_path / "probe.json"
    result = cltt("probe", tiny / "runs" / "tiny", f"probe.labels={labels}", "--out", out, cwd=tiny)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    report = json.loads(out.read_text())
    assert report["counts"]["train"]["clips"] == 6 and report["counts"]["val"]["clips"] == 0
    for score in report["scores"]:
        if score["probe"] in ("logistic", "linear"):
            assert "grouped 2-fold on train" in score["detail"], score
            assert score["val"] is None and score["test"] is not None
    # the in-training probe (probe.every) on the same labels: a metrics_eval.csv row, empty val
    runs = tmp_path / "runs"
    result = cltt("train", "tiny.yaml", "probe.every=1", f"probe.labels={labels}", f"train.out_dir={runs}", cwd=tiny)
    assert result.returncode == 0, result.stderr
    rows = list(csv.DictReader(open(runs / "tiny" / "metrics_eval.csv")))
    assert len(rows) == 1 and rows[0]["val_acc"] == "" and 0 <= float(rows[0]["test_acc"]) <= 1


@pytest.mark.slow  # python -m cltt processes: a few seconds each, more on a busy machine
def test_case_13_two_clips_per_class_warns_that_c_is_not_chosen(tiny, tmp_path):
    by_class = list(clips_by_class(tiny).items())[:2]
    rows = [(clips[0], label, "train") for label, clips in by_class] + [(clips[1], label, "test") for label, clips in by_class]
    out = tmp_path / "probe.json"
    result = cltt("probe", tiny / "runs" / "tiny", f"probe.labels={write_labels(tmp_path / 'two.csv', rows)}",
                  "probe.probes=[logistic,linear]", "--out", out, cwd=tiny)
    assert result.returncode == 0, result.stderr
    warning = next(line for line in result.stderr.splitlines() if "have 1 train clip" in line)
    names = [label for label, _ in by_class]
    assert f"train clips per class: '{names[0]}' 1, '{names[1]}' 1" in warning
    assert "probe.logistic_c=[1]" in warning and "probe.ridge=[100]" in warning  # middles of [0.1, 1, 10] and the default grid
    scores = json.loads(out.read_text())["scores"]
    assert {s["detail"] for s in scores if s["probe"] == "logistic"} == {f"C=1 ({NOT_CHOSEN})"}


@pytest.mark.slow  # python -m cltt processes: a few seconds each, more on a busy machine
def test_case_13_a_train_split_of_one_class_names_the_counts(tiny, tmp_path):
    (big, big_clips), (small, small_clips) = list(clips_by_class(tiny).items())[:2]
    rows = [(c, big, "train") for c in big_clips[:3]] + [(small_clips[0], small, "test")]
    line = one_error_line(cltt("probe", tiny / "runs" / "tiny", f"probe.labels={write_labels(tmp_path / 'one.csv', rows)}",
                               cwd=tiny))
    assert f"train clips per class: '{big}' 3, '{small}' 0" in line and "put clips of another class in train" in line


@pytest.mark.slow  # python -m cltt processes: a few seconds each, more on a busy machine
def test_a_test_split_of_one_clip_reports_no_interval(tiny, tmp_path):
    """One test clip: every bootstrap resample is that clip, so the 95% interval was [x–x] (75.0
    [75–75]), which reads as certainty. Now the table says n/a with the count, probe.json holds
    null, a note says why, and the other splits keep their intervals."""
    by_class = clips_by_class(tiny)
    test_clip = by_class[min(by_class)][0]
    rows = [(c, label, "test" if c == test_clip else ("val" if i == 1 else "train"))
            for label, clips in by_class.items() for i, c in enumerate(clips)]
    out = tmp_path / "probe.json"
    result = cltt("probe", tiny / "runs" / "tiny", f"probe.labels={write_labels(tmp_path / 'one.csv', rows)}",
                  "probe.probes=[logistic]", "--out", out, cwd=tiny)
    assert result.returncode == 0, result.stderr
    report = json.loads(out.read_text())
    assert report["counts"]["test"]["clips"] == 1
    for score in report["scores"]:
        assert score["test"] is not None and score["intervals"]["test"] is None, score
        assert score["intervals"]["val"] is not None and score["intervals"]["train"] is not None
    table_cells = [line.split("│")[5].strip() for line in result.stdout.splitlines() if "│ logistic" in line]
    assert len(table_cells) == 3 and all(cell.endswith(" [n/a: 1 clip]") for cell in table_cells), result.stdout
    assert any("no 95% interval for the test figures" in note for note in report["notes"])
    assert "no 95% interval for the test figures" in result.stderr
    assert "% [n/a: 1 clip]" in result.stdout.splitlines()[-1]  # the summary line


# --------------------------------------------------------------------------- case 19

SWEEP_NAMES = ("timm_resnet50_lr0.001_bs256_seed0", "timm_resnet50_lr0.001_bs256_seed1",
               "timm_vit_small_patch16_224_lr3e-4_seed0")
EVERY_FIELD = ["run", "path", "method", "backbone", "epochs_done", "epochs", "last_loss", "best_val_acc",
               "best_test_acc", "state", "note"]


@pytest.fixture(scope="module")
def sweep_folder(tiny) -> Path:
    """A folder of runs with a sweep's long names: two copies of the trained run (one with a long
    timm backbone name, one whose final checkpoint is gone: stopped) and a run that diverged."""
    import shutil

    folder = tiny / "sweep"
    folder.mkdir()
    trained = tiny / "runs" / "tiny"
    for name in SWEEP_NAMES[:2]:
        shutil.copytree(trained, folder / name, ignore=shutil.ignore_patterns("features", "run.lock"))
    recipe = folder / SWEEP_NAMES[0] / "recipe.yaml"
    recipe.write_text(recipe.read_text().replace("backbone: tiny_cnn", "backbone: timm/resnet50.a1_in1k"))
    (folder / SWEEP_NAMES[1] / run_files.FINAL_CHECKPOINT).unlink()
    failed = cltt("train", "tiny.yaml", f"train.out_dir={folder}", f"train.name={SWEEP_NAMES[2]}", "train.lr=1e30",
                  "train.optimizer=sgd", cwd=tiny)
    assert failed.returncode == 2 and "the loss is" in failed.stderr, failed.stderr
    return folder


@pytest.mark.slow  # python -m cltt processes on a trained run
def test_case_19_runs_fits_80_columns_without_cutting_names(sweep_folder):
    from rich.cells import cell_len

    narrow = cltt("runs", sweep_folder, cwd=sweep_folder, columns=80)
    assert narrow.returncode == 0, narrow.stderr
    lines = narrow.stdout.rstrip("\n").splitlines()
    assert max(cell_len(line.rstrip()) for line in lines) <= 80, narrow.stdout
    table = [line for line in lines if line[:1] in "┏┃┡│└"]
    assert table[0].startswith("┏") and table[0].rstrip().endswith("┓")  # the whole border, right edge included
    assert table[-1].startswith("└") and table[-1].rstrip().endswith("┘")
    assert "…" not in narrow.stdout
    rows = {line.split("│")[1].strip(): line.split("│")[-2].strip() for line in table if line.startswith("│")}
    assert rows == {SWEEP_NAMES[0]: "finished", SWEEP_NAMES[1]: "stopped", SWEEP_NAMES[2]: "failed"}
    header = [cell.strip() for cell in table[1].split("┃")[1:-1]]
    assert header[0] == "run" and header[-1] == "state" and "backbone" not in header
    dropped = next(line for line in narrow.stderr.splitlines() if line.startswith("left out at 80 columns"))
    assert "backbone" in dropped and "--csv or --json" in dropped
    assert all(column not in dropped for column in header)  # what is named as left out is left out, and only that

    wide = cltt("runs", sweep_folder, cwd=sweep_folder, columns=200)
    assert wide.returncode == 0 and "left out" not in wide.stderr
    header = next(line for line in wide.stdout.splitlines() if line.startswith("┃"))
    assert [cell.strip() for cell in header.split("┃")[1:-1]] == \
        ["run", "method", "backbone", "epochs", "last loss", "val acc", "test acc", "state"]
    assert "timm/resnet50.a1_in1k" in wide.stdout and f"{SWEEP_NAMES[2]}: " in wide.stderr


@pytest.mark.slow  # python -m cltt processes on a trained run
def test_case_19_runs_csv_and_json_give_every_column_in_full(sweep_folder, tmp_path):
    as_csv = cltt("runs", sweep_folder, "--csv", cwd=sweep_folder, columns=40)
    assert as_csv.returncode == 0, as_csv.stderr
    rows = list(csv.DictReader(as_csv.stdout.splitlines()))
    assert list(rows[0]) == EVERY_FIELD and [r["run"] for r in rows] == sorted(SWEEP_NAMES)
    as_json = cltt("runs", sweep_folder, "--json", cwd=sweep_folder, columns=40)
    assert as_json.returncode == 0, as_json.stderr
    records = json.loads(as_json.stdout)
    assert [list(r) for r in records] == [EVERY_FIELD] * 3
    by_run = {r["run"]: r for r in records}
    first = by_run[SWEEP_NAMES[0]]
    last_loss = float(list(csv.DictReader(open(sweep_folder / SWEEP_NAMES[0] / "metrics.csv")))[-1]["loss"])
    assert first["backbone"] == "timm/resnet50.a1_in1k" and first["last_loss"] == last_loss  # not rounded to 4 places
    assert first["epochs_done"] == 1 and first["epochs"] == 1 and first["state"] == "finished"
    assert Path(first["path"]) == sweep_folder / SWEEP_NAMES[0]
    failed = by_run[SWEEP_NAMES[2]]
    assert failed["state"] == "failed" and "the loss is" in failed["note"] and failed["best_val_acc"] is None
    # the CSV holds the same values as the JSON (None as an empty cell)
    assert rows == [{k: "" if v is None else str(v) for k, v in r.items()} for r in records]
    # both at once: one line; an empty folder: an empty list and a bare header, for scripts polling a sweep
    assert "one of --csv and --json" in one_error_line(cltt("runs", sweep_folder, "--csv", "--json", cwd=sweep_folder))
    assert json.loads(cltt("runs", tmp_path, "--json", cwd=tmp_path).stdout) == []
    assert cltt("runs", tmp_path, "--csv", cwd=tmp_path).stdout.splitlines() == [",".join(EVERY_FIELD)]
