"""Temporal positives against augmentation positives, on built-in rotating objects, over seeds.

    python benchmarks/cltt_vs_simclr.py                          # seeds 0 1 2, about 15 minutes on 2 cores
    python benchmarks/cltt_vs_simclr.py --seeds 0 --steps 200    # a quick look
    python benchmarks/cltt_vs_simclr.py train.lr=5e-4            # key=value overrides every run

The claim of the CLTT papers (Schneider et al. 2021, Aubret et al. 2023): frames close in time
as positives learn view-invariant object identity better than SimCLR's augmented copies of one
image, and better than random features. Each seed s writes its own data (rotating-objects,
``extract.synthetic.seed=s``: 8 objects x 25 clips of 16 frames at 48 px, 5 test clips per
object with new views) and trains, with ``train.seed=s``:

    cltt            frames of a window (4 consecutive) are positives; one augmentation draw per
                    window, so positives differ by time only (SimCLR-TT)
    cltt + aug      the same windows, one augmentation draw per frame: positives differ by time
                    and by augmentation (recipes/quickstart.yaml as shipped)
    simclr          two augmentations of one frame (window 1)
    original        the lab's original recipe (recipes/original_paired.yaml): the first and the
                    last frame of a window (frame step 2) are the one positive pair, decoupled,
                    crop-only augmentation
    random init     the architecture untrained (train.seed=s)
    pixels          16 x 16 RGB pixels

Every trained row runs the same encoder (tiny_cnn, recipes/quickstart.yaml's optimiser and
schedule) for the same number of optimizer steps (``--steps``) with 128 frames through the
encoder per step (32 windows x 4 frames, 64 frames x 2 views, or the first and last frames of
64 windows), so frames seen and compute are equal. Each run is probed on the test clips (logistic on frames, C chosen on val; the
probe the quickstart reports). Prints every run's test accuracy with its 95% clip-bootstrap
interval, then mean +- sd over seeds per row and the paired per-seed difference of each row
from ``cltt``. Finished runs are reused (``train.resume=auto``), so a rerun only probes.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from recipe_seeds import train_or_reuse, whole_number, writing

from cltt.engine import run_files
from cltt.eval.probe import probe_checkpoint
from cltt.recipe import load_recipe

QUICKSTART = Path(__file__).resolve().parent.parent / "recipes" / "quickstart.yaml"  # from any folder
STEPS_PER_EPOCH = 20  # max_batches_per_epoch: every row's epochs are the same length
CROP_ONLY = ["data.augment.flip_p=0", "data.augment.jitter_p=0", "data.augment.grayscale_p=0", "data.augment.blur_p=0"]
ROWS = {
    "cltt": ["data.augment.consistent=true"],
    "cltt + aug": ["data.augment.consistent=false"],
    "simclr": ["method.name=simclr", "data.window_size=1", "data.window_stride=1", "train.batch_size=64",
               "data.augment.consistent=true"],
    # first_last embeds 2 frames a window: 64 windows a step put 128 frames through the encoder
    "original": ["method.pairing=first_last", "method.decoupled=true", "method.reduction=pairwise", "data.frame_step=2",
                 "train.batch_size=64", "data.augment.consistent=true", *CROP_ONLY],
}
BASELINES = ("random init", "pixels")


def run_row(row: str, seed: int, steps: int, out_dir: Path, overrides: list[str]) -> tuple[dict, float]:
    """Train (or reuse) one row's run for one seed and probe it -> (report scores, training seconds)."""
    name = f"{row.replace(' + ', '_').replace(' ', '_')}_s{seed}"
    data = out_dir / f"objects_s{seed}"
    keys = [f"data.root={data}", "data.synthetic=rotating-objects", f"extract.synthetic.seed={seed}",
            f"train.seed={seed}", f"train.out_dir={out_dir}", f"train.name={name}", "train.resume=auto",
            f"train.max_batches_per_epoch={STEPS_PER_EPOCH}", f"train.epochs={max(1, steps // STEPS_PER_EPOCH)}",
            "probe.probes=[logistic]", f"probe.baselines={'[random_init,pixels]' if row == 'cltt' else '[]'}",
            *ROWS[row], *overrides]
    run_dir, seconds, _ = train_or_reuse(QUICKSTART, keys)
    with writing(run_dir):  # features are cached in the run dir
        report = probe_checkpoint(load_recipe(QUICKSTART, keys), run_dir / run_files.FINAL_CHECKPOINT)
    return {score.features: (score.test, score.intervals.get("test")) for score in report.scores}, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("overrides", nargs="*", help="recipe key=value overrides for every run")
    parser.add_argument("--seeds", type=whole_number(0), nargs="+", default=[0, 1, 2])
    parser.add_argument("--steps", type=whole_number(1), default=400, help="optimizer steps of every trained run")
    parser.add_argument("--out-dir", type=Path, default=Path("runs/cltt_vs_simclr"))
    args = parser.parse_args()
    results: dict[str, dict[int, tuple[float, list[float]]]] = {row: {} for row in (*ROWS, *BASELINES)}
    started = time.perf_counter()
    print(f"{'row':12} {'seed':>4} {'test acc % [95% interval]':>26} {'train s':>8}")
    for seed in args.seeds:
        for row in ROWS:
            scores, seconds = run_row(row, seed, args.steps, args.out_dir, args.overrides)
            found = {row: scores["trained"]}
            if row == "cltt":
                found |= {"random init": scores["random_init"], "pixels": scores["pixels"]}
            for name, (accuracy, interval) in found.items():
                results[name][seed] = (accuracy, interval)
                shown = f"{100 * accuracy:5.1f} [{100 * interval[0]:.0f}-{100 * interval[1]:.0f}]"
                print(f"{name:12} {seed:>4} {shown:>26} {seconds or 0 if name == row else 0:8.0f}", flush=True)
    print(f"\nlogistic test accuracy over seeds {args.seeds}, {args.steps} steps a run "
          f"({time.perf_counter() - started:.0f} s in all)")
    print(f"{'row':12} {'mean +- sd %':>14} {'minus cltt, per seed (points)':>32}")
    reference = results["cltt"]
    for row, by_seed in results.items():
        values = np.array([by_seed[s][0] for s in args.seeds]) * 100
        paired = [f"{100 * (by_seed[s][0] - reference[s][0]):+.1f}" for s in args.seeds]
        spread = values.std(ddof=1) if len(values) > 1 else 0.0
        print(f"{row:12} {values.mean():7.1f} +- {spread:4.1f} {' '.join(paired):>32}")
    args.out_dir.mkdir(parents=True, exist_ok=True)
    (args.out_dir / "results.json").write_text(json.dumps(
        {row: {str(s): {"test_acc": v[0], "interval": v[1]} for s, v in by_seed.items()} for row, by_seed in results.items()},
        indent=2))


if __name__ == "__main__":
    main()
