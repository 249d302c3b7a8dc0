"""Does the slot-slot contrast help? SlotContrast with and without it, over seeds, by video FG-ARI.

    OMP_NUM_THREADS=1 python benchmarks/slot_seeds.py                     # weights 0.5 and 0, seeds 0 1 2
    python benchmarks/slot_seeds.py --seeds 0 1 2 3 4 train.epochs=20     # key=value overrides the recipe

For each ``method.slotcontrast.contrast_weight`` in ``--weights`` and each seed, trains
``--recipe`` (default recipes/slotcontrast.yaml: built-in bouncing balls, frozen vit_t8) into
``--out-dir/w<weight>_s<seed>`` with ``train.seed`` = seed (the same seed gives the same frozen
ViT and starting weights for every contrast weight), then scores the final checkpoint with
:func:`cltt.eval.slots.probe_slots` (video FG-ARI and mBO over the test clips; random init
once per seed), for the decoder's alpha masks (the headline) and slot attention's maps. Prints
one row per run, then mean ± std over seeds per weight and the paired per-seed FG-ARI gain of
each weight over the last one. Finished runs are reused
(``train.resume=auto``), so a rerun only scores.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from cltt.engine import run_files
from cltt.engine.run_dir import prepare_training
from cltt.engine.trainer import Trainer
from cltt.eval.slots import probe_slots
from cltt.recipe import load_recipe


def run_one(recipe_path: Path, overrides: list[str], weight: float, seed: int, out_dir: Path,
            random_init: bool) -> tuple[dict, float]:
    """Train (or reuse) one run and probe it; returns (metrics per source, training seconds)."""
    name = f"w{weight:g}_s{seed}"
    recipe = load_recipe(recipe_path, [*overrides, f"method.slotcontrast.contrast_weight={weight}", f"train.seed={seed}",
                                       f"train.out_dir={out_dir}", f"train.name={name}", "train.resume=auto",
                                       f"probe.baselines={'[random_init]' if random_init else '[]'}"])
    started = time.perf_counter()
    recipe, run_dir, resume, _ = prepare_training(recipe, recipe_path, False)
    Trainer(recipe, run_dir, None, resume).run()
    seconds = time.perf_counter() - started
    report = probe_slots(recipe, run_dir / run_files.FINAL_CHECKPOINT)
    return report.metrics, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("overrides", nargs="*", help="recipe key=value overrides for every run")
    parser.add_argument("--recipe", type=Path, default=Path("recipes/slotcontrast.yaml"))
    parser.add_argument("--weights", type=float, nargs="+", default=[0.5, 0.0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--out-dir", type=Path, default=Path("runs/slot_seeds"))
    args = parser.parse_args()

    results: dict[tuple[float, int], dict] = {}
    randoms: dict[int, dict] = {}
    print(f"{'weight':>7} {'seed':>4} {'FG-ARI':>7} {'mBO':>6} {'attn FG-ARI':>11} {'attn mBO':>8} {'train s':>8}", flush=True)
    for seed in args.seeds:
        for i, weight in enumerate(args.weights):
            metrics, seconds = run_one(args.recipe, args.overrides, weight, seed, args.out_dir, random_init=i == 0)
            results[(weight, seed)] = metrics["trained"]
            if "random_init" in metrics:
                randoms[seed] = metrics["random_init"]
            m = metrics["trained"]
            print(f"{weight:>7g} {seed:>4} {m['fg_ari']:>7.3f} {m['mbo']:>6.3f} {m['attention_fg_ari']:>11.3f} "
                  f"{m['attention_mbo']:>8.3f} {seconds:>8.0f}", flush=True)

    def spread(values: list[float]) -> str:
        v = np.array(values)
        return f"{v.mean():.3f} ± {v.std(ddof=1) if len(v) > 1 else 0.0:.3f}"

    def summary(rows: list[dict]) -> str:
        return "   ".join(f"{label} {spread([r[key] for r in rows])}" for label, key in
                          (("FG-ARI", "fg_ari"), ("mBO", "mbo"), ("attn FG-ARI", "attention_fg_ari"),
                           ("attn mBO", "attention_mbo")))

    print(f"\nover seeds {args.seeds} (mean ± sample std of the per-run clip means; decoder masks, then "
          "slot-attention masks):")
    for weight in args.weights:
        print(f"  contrast_weight {weight:<4g} {summary([results[(weight, s)] for s in args.seeds])}")
    print(f"  random init          {summary([randoms[s] for s in args.seeds])}")
    base = args.weights[-1]
    for weight in args.weights[:-1]:
        for label, key in (("FG-ARI", "fg_ari"), ("attn FG-ARI", "attention_fg_ari")):
            gains = np.array([results[(weight, s)][key] - results[(base, s)][key] for s in args.seeds])
            print(f"  {label} gain of {weight:g} over {base:g} per seed: {np.round(gains, 3).tolist()} "
                  f"(mean {gains.mean():+.3f}, {int((gains > 0).sum())}/{len(gains)} seeds up)")

if __name__ == "__main__":
    main()
