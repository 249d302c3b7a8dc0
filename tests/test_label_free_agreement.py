"""benchmarks/label_free_agreement.py: the verdict on hand-made numbers (a higher-better and a
lower-better measure, agreeing and not, intervals apart and overlapping), and --small end to
end: a table per seed with every measure's interval and a summary per measure."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers.benchmarks import load_benchmark

REPO = Path(__file__).resolve().parent.parent
SCRIPT = REPO / "benchmarks" / "label_free_agreement.py"
MEASURES = ["rankme", "alignment", "uniformity", "spread",
            *(f"{kind}_{gap}s" for gap in ("0.2", "0.5", "1") for kind in ("recall@1", "recall@5", "mAP"))]
FIGURE = re.compile(r"^-?\d+\.\d+ \[-?\d+(\.\d+)?–-?\d+(\.\d+)?\]$")  # value [low–high]


@pytest.fixture
def benchmark(monkeypatch):
    """The benchmark as a module (it imports its sibling recipe_seeds from benchmarks/)."""
    return load_benchmark("label_free_agreement", monkeypatch)


def test_directions_follow_the_papers(benchmark):
    assert [benchmark.better(m)[0] for m in MEASURES[:4]] == [1, -1, -1, 1]  # RankMe; Wang & Isola; spread
    assert all(benchmark.better(m)[0] == 1 for m in MEASURES[4:])  # retrieval: higher is better
    with pytest.raises(KeyError):
        benchmark.better("rankme_2")


def test_agreement_on_hand_made_numbers(benchmark):
    agreement = benchmark.agreement
    up = ((0.80, [0.70, 0.90]), (0.60, [0.50, 0.68]))  # accuracy: trained above random init, apart
    down = ((0.55, [0.45, 0.65]), (0.60, [0.50, 0.70]))  # accuracy falls, intervals overlap
    # higher-better (RankMe): rises with the accuracy -> agrees, its intervals apart
    found = agreement(up, ((30.0, [28.0, 32.0]), (20.0, [18.0, 22.0])), +1)
    assert found["verdict"] == "agrees" and found["agrees"] is True
    assert found["separated"] is True and found["accuracy_separated"] is True
    assert found["accuracy_change"] == pytest.approx(0.20) and found["measure_change"] == pytest.approx(10.0)
    # RankMe falls while the accuracy rises -> disagrees (the quickstart's case)
    found = agreement(up, ((11.0, [10.0, 12.0]), (29.0, [28.0, 30.0])), +1)
    assert found["verdict"] == "disagrees" and found["agrees"] is False and found["separated"] is True
    # lower-better (alignment): falls while the accuracy rises -> agrees; overlapping intervals
    found = agreement(up, ((0.20, [0.10, 0.30]), (0.25, [0.15, 0.35])), -1)
    assert found["verdict"] == "agrees" and found["separated"] is False
    # lower-better: falls while the accuracy falls too -> disagrees
    found = agreement(down, ((0.20, [0.10, 0.30]), (0.25, [0.15, 0.35])), -1)
    assert found["verdict"] == "disagrees" and found["accuracy_separated"] is False
    # lower-better: rises while the accuracy falls -> agrees
    assert agreement(down, ((0.30, None), (0.25, None)), -1)["verdict"] == "agrees"
    # no change, missing intervals, missing values
    found = agreement(up, ((0.5, None), (0.5, None)), +1)
    assert found["verdict"] == "no change" and found["agrees"] is None and found["separated"] is None
    assert agreement(up, ((None, None), (0.5, None)), +1)["verdict"] == "–"


@pytest.mark.slow  # 32 s on the shared 2-core machine under load
def test_small_run_writes_a_table_per_seed_and_a_summary(tmp_path):
    out = tmp_path / "agreement"
    done = subprocess.run([sys.executable, str(SCRIPT), "--small", "--threads", "1", "--out-dir", str(out)],
                          capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "seed 0: trained in" in done.stdout
    text = (out / "agreement.md").read_text()
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in text.splitlines()
            if line.startswith("| ") and not line.startswith("| measure")]
    per_seed, summary = rows[:1 + len(MEASURES)], rows[1 + len(MEASURES):]
    assert [r[0] for r in per_seed] == ["logistic test acc (%)", *(f"`{m}`" for m in MEASURES)]
    for row in per_seed:  # trained, random init, pixels: each a value and its interval
        assert all(FIGURE.match(c) for c in row[2:5]), row
    for row in per_seed[1:]:
        assert row[5] in ("agrees", "DISAGREES", "no change") and row[6] in ("yes", "no")
    assert [r[0] for r in summary] == [f"`{m}`" for m in MEASURES]
    assert all(re.match(r"^[01] of 1 \([01] apart\)", c) for r in summary for c in r[2:4])
    results = json.loads((out / "results.json").read_text())
    assert results["seeds"] == [0] and set(results["runs"]["0"]["figures"]) == {"trained", "random_init", "pixels"}
    for source, figures in results["runs"]["0"]["figures"].items():
        assert list(figures) == [*MEASURES, "logistic test acc"]
        for name, figure in figures.items():
            low, high = figure["interval"]
            assert low <= high, (source, name)
    judged = results["runs"]["0"]["verdicts"]["random_init"]
    assert set(judged) == set(MEASURES) and all(j["verdict"] in ("agrees", "disagrees", "no change")
                                               for j in judged.values())
    assert (next((out / "runs").glob("quickstart_s0_*")) / "probe_label_free.json").is_file()


@pytest.mark.slow  # an interpreter importing torch: 26 s under load
def test_a_bad_override_is_one_line_and_exit_2(tmp_path):
    done = subprocess.run([sys.executable, str(SCRIPT), "--small", "train.no_such_key=1", "--out-dir",
                           str(tmp_path / "x")], capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and "no_such_key" in done.stderr
