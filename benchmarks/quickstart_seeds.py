"""The quickstart's figures over training seeds and CPU thread counts: how much do they move?

    python benchmarks/quickstart_seeds.py                         # seeds 0 1 2, threads 1 and 2 (~10 min on 2 cores)
    python benchmarks/quickstart_seeds.py --seeds 0 --threads 4   # key=value overrides go after the options

Trains ``recipes/quickstart.yaml`` once per (seed, thread count) with ``train.seed`` = seed
and ``torch.set_num_threads(threads)`` (the data stay the built-in seed-0 set, so only the
training differs), then probes it as ``cltt probe`` does (logistic, linear and kNN on frames,
trained against random init and pixels). Float sums are ordered differently on another number
of threads, so a run on 1 thread and on 2 threads part ways after the first steps; this script
shows by how much the probe figures differ, next to how much a new seed moves them. Prints each
run's test accuracies with 95% clip-bootstrap intervals, then mean +- sd over seeds for each
thread count. Finished runs are reused (``train.resume=auto``).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from cltt.engine import checkpoint as ckpt
from cltt.engine.run_dir import prepare_training
from cltt.engine.trainer import Trainer
from cltt.eval.probe import probe_checkpoint
from cltt.recipe import load_recipe

QUICKSTART = Path("recipes/quickstart.yaml")
SHOWN = (("trained", "logistic"), ("trained", "linear"), ("trained", "knn"), ("random_init", "logistic"),
         ("pixels", "logistic"))


def run(seed: int, threads: int, out_dir: Path, overrides: list[str]) -> tuple[dict, float]:
    torch.set_num_threads(threads)
    recipe = load_recipe(QUICKSTART, [f"data.root={out_dir / 'objects'}", f"train.seed={seed}", f"train.out_dir={out_dir}",
                                      f"train.name=s{seed}_t{threads}", "train.resume=auto",
                                      "probe.probes=[linear,logistic,knn]", *overrides])
    started = time.perf_counter()
    recipe, run_dir, resume, _ = prepare_training(recipe, QUICKSTART, False)
    Trainer(recipe, run_dir, None, resume).run()
    seconds = time.perf_counter() - started
    report = probe_checkpoint(recipe, run_dir / ckpt.FINAL_NAME)
    return {(s.features, s.probe): (s.test, s.intervals["test"]) for s in report.scores}, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("overrides", nargs="*", help="recipe key=value overrides for every run")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--out-dir", type=Path, default=Path("runs/quickstart_seeds"))
    args = parser.parse_args()
    found: dict[tuple[int, int], dict] = {}
    header = " ".join(f"{f[:7] + ' ' + p[:5]:>17}" for f, p in SHOWN)
    print(f"{'threads':>7} {'seed':>4} {'train s':>7} {header}   (test accuracy %, [95% interval])")
    for threads in args.threads:
        for seed in args.seeds:
            scores, seconds = run(seed, threads, args.out_dir, args.overrides)
            found[(threads, seed)] = scores
            cells = " ".join(f"{100 * scores[k][0]:5.1f} [{100 * scores[k][1][0]:3.0f}-{100 * scores[k][1][1]:3.0f}]"
                             for k in SHOWN)
            print(f"{threads:>7} {seed:>4} {seconds:7.0f} {cells}", flush=True)
    print("\nmean +- sd over seeds")
    for threads in args.threads:
        cells = []
        for key in SHOWN:
            values = np.array([found[(threads, s)][key][0] for s in args.seeds]) * 100
            cells.append(f"{values.mean():5.1f} +- {values.std(ddof=1) if len(values) > 1 else 0:4.1f}")
        print(f"{threads:>7} {'all':>4} {'':7} " + " ".join(f"{c:>17}" for c in cells))
    if len(args.threads) > 1:
        a, b = args.threads[:2]
        gaps = [100 * abs(found[(a, s)][SHOWN[0]][0] - found[(b, s)][SHOWN[0]][0]) for s in args.seeds]
        print(f"\nlogistic on trained, |{a} threads - {b} threads| per seed: " + ", ".join(f"{g:.1f}" for g in gaps)
              + " points")
    args.out_dir.mkdir(parents=True, exist_ok=True)
    (args.out_dir / "results.json").write_text(json.dumps(
        {f"t{t}_s{s}": {f"{f}/{p}": v for (f, p), v in scores.items()} for (t, s), scores in found.items()}, indent=2))


if __name__ == "__main__":
    main()
