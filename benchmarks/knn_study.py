"""Why does kNN on trained features score below other probes (and below kNN on pixels)?

    python benchmarks/knn_study.py                       # runs/quickstart (train it first)
    python benchmarks/knn_study.py runs/NAME probe.knn_k=20

Scores the weighted cosine kNN (:mod:`cltt.eval.knn`) of one run's features on its test clips,
with 95% clip-bootstrap intervals, across what the probe could do differently:

* the space: the representation h (what ``cltt probe`` reads), the projection z = g(h) (what
  the loss compares), random-init h, and pixels;
* the preprocessing before the cosine: none, centred (train mean removed), standardised
  (train mean and std), the usual fixes for features that all point one way;
* k (1, 5, 20, 100) and the temperature T (0.07, DINO's; 1.0, nearly a plain vote).

Each row also prints the mean cosine between random pairs of train features: near 1 means
every feature points the same way, so a cosine ranks neighbours by small differences.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from torch import nn

from cltt.engine.checkpoint import latest_checkpoint, load_checkpoint
from cltt.engine.device import resolve_device
from cltt.eval.bootstrap import clip_interval
from cltt.eval.features import pixel_source
from cltt.eval.knn import knn_predict
from cltt.eval.probe import _features, _samples, load_trained_method, prepare_probe, random_init_method
from cltt.eval.window_features import source_for
from cltt.export.source import saved_recipe
from cltt.recipe import apply_override, recipe_from_dict, recipe_to_dict


class Projection(nn.Module):
    """The encoder's projection head output z as a per-frame representation."""

    def __init__(self, encoder: nn.Module) -> None:
        super().__init__()
        self.encoder = encoder
        self.feature_dim = encoder.out_dim

    def represent(self, frames: torch.Tensor) -> torch.Tensor:
        return self.encoder(frames)


def prepared(train: np.ndarray, query: np.ndarray, how: str) -> tuple[np.ndarray, np.ndarray]:
    if how == "none":
        return train, query
    mean = train.mean(axis=0)
    scale = train.std(axis=0) + 1e-8 if how == "standardised" else 1.0
    return (train - mean) / scale, (query - mean) / scale


def mean_pair_cosine(features: np.ndarray, rng: np.random.Generator) -> float:
    unit = features / (np.linalg.norm(features, axis=1, keepdims=True) + 1e-12)
    a, b = rng.integers(0, len(unit), (2, 2000))
    return float((unit[a] * unit[b]).sum(axis=1).mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", nargs="?", type=Path, default=Path("runs/quickstart"))
    parser.add_argument("overrides", nargs="*", help="recipe key=value overrides (probe.*, data.root)")
    args = parser.parse_args()
    path = latest_checkpoint(args.run_dir)
    state = load_checkpoint(path)
    tree = recipe_to_dict(saved_recipe(state, path))
    for override in args.overrides:
        apply_override(tree, override)
    recipe = recipe_from_dict(tree)
    device = resolve_device(recipe.train.device)
    setup = prepare_probe(recipe)
    trained = load_trained_method(recipe, state, path).to(device).eval()
    size = recipe.data.image_size
    sources = [source_for("h", trained.encoder, size, device, None, "frame"),
               source_for("z", Projection(trained.encoder), size, device, None, "frame"),
               source_for("random h", random_init_method(recipe).to(device).eval().encoder, size, device, None, "frame"),
               pixel_source(recipe.probe.pixels_size)]
    result = _features(setup, sources, recipe, None, None)
    rng = np.random.default_rng(0)
    classes = len(setup.table.classes)
    print(f"kNN on the test clips of {path} ({classes} classes); accuracy % [95% interval over clips]")
    print(f"{'space':9} {'prep':13} {'pair cos':>8} " + " ".join(f"{f'k={k} T={t:g}':>19}" for k in (1, 5, 20, 100)
                                                             for t in (0.07, 1.0)))
    for source in sources:
        samples, targets, splits = _samples(setup, source, result.features[source.name])
        train, test = np.flatnonzero(splits == "train"), np.flatnonzero(splits == "test")
        for how in ("none", "centred", "standardised"):
            bank, queries = prepared(samples.features[train], samples.features[test], how)
            cells = []
            for k in (1, 5, 20, 100):
                for temperature in (0.07, 1.0):
                    right = knn_predict(bank, targets[train], queries, classes, k, temperature) == targets[test]
                    low, high = clip_interval(right, samples.clip[test])
                    cells.append(f"{100 * right.mean():5.1f} [{100 * low:3.0f}-{100 * high:3.0f}]")
            print(f"{source.name:9} {how:13} {mean_pair_cosine(bank, rng):8.3f} " + " ".join(f"{c:>19}" for c in cells))


if __name__ == "__main__":
    main()
