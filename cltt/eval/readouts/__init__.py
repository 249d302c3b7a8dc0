"""Readouts: what is fitted on frozen features to judge them (``probe.probes``), one file each.

A readout is a :class:`Readout` subclass in a module of this package, registered by name:

    @register_readout("knn")
    class KNN(Readout):
        '''Cosine kNN vote of the k nearest train samples, weighted exp(s / T).'''

        @staticmethod
        def score(data: ReadoutData) -> list[ReadoutScores]:
            ...

It fits on ``data``'s train rows and returns, per split, one score per sample (1/0 for a right
or wrong class, or a retrieval metric per query); the caller turns each into a mean and its
95% clip-bootstrap interval. What the recipe knows of a readout (its name, its place in
``probe.probes``' default, a section if it has settings) is declared in
``cltt/recipe/probes/readouts/<name>.py``; ``cltt probe --help`` and the tests enumerate
:func:`registered_readouts`. Keep torch and scikit-learn imports inside ``score``: listing the
registry imports neither.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from cltt.recipe.probes import READOUT_SECTIONS, declaration
from cltt.recipe.registry import Entry, Registry

READOUTS = Registry("readout", "cltt.eval.readouts", "probe.probes")
SPLITS = ("train", "val", "test")


def register_readout(name: str):
    """Class decorator: register a :class:`Readout` as the ``probe.probes`` entry ``name``, with
    the section and ``order`` of its declaration in :mod:`cltt.recipe.probes`."""

    def register(cls):
        declared = declaration(READOUT_SECTIONS, name, cls.__module__)
        cls.order = declared.cls.order
        return READOUTS.register(name, declared.config)(cls)

    return register


def registered_readouts() -> dict[str, Entry]:
    """Every readout by name."""
    return READOUTS.entries()


@dataclass
class ReadoutData:
    """The samples of one feature source that a readout fits and scores.

    ``features [M, F]``, ``targets [M]`` class numbers < ``num_classes``, ``clips [M]`` the clip
    each sample comes from (the groups for choosing hyperparameters without val), ``rows``
    split name -> sample numbers. ``config`` is the recipe's ``probe`` section, ``seed`` the
    recipe's ``train.seed``.
    """

    features: np.ndarray
    targets: np.ndarray
    clips: np.ndarray
    rows: dict[str, np.ndarray]
    num_classes: int
    config: Any
    seed: int

    @property
    def train(self) -> np.ndarray:
        return self.rows["train"]

    @functools.cached_property  # once per source, for kNN and retrieval both
    def cosine_space(self) -> np.ndarray:
        """``features`` standardised by the train split (``probe.standardise``) for cosine
        readouts: a cosine of raw ReLU features, which all point one way, ranks neighbours by
        small differences."""
        x = self.features
        if not self.config.standardise:
            return x
        mean, std = x[self.train].mean(axis=0), x[self.train].std(axis=0)
        return (x - mean) / np.where(std > 1e-12, std, 1.0)

    @property
    def cosine_note(self) -> str:
        """How :attr:`cosine_space` was made, for a readout's detail column."""
        return ", standardised" if self.config.standardise else ""

    def per_split(self, score: Callable[[str, np.ndarray], Any]) -> dict[str, Any]:
        """``score(split, rows)`` of every split that has samples; None for an empty one (a
        labels file with only train and test, or train and val), which no readout is asked about."""
        return {split: score(split, r) if len(r) else None for split, r in self.rows.items()}

    def right(self, predict: Callable[[str, np.ndarray], np.ndarray]) -> dict[str, np.ndarray | None]:
        """Per split, 1/0 per sample for a right/wrong class from ``predict(split, rows) -> [m]``."""
        return self.per_split(lambda split, r: predict(split, r) == self.targets[r])


@dataclass
class ReadoutScores:
    """One row of a probe's table: ``probe`` names it (a readout may give several, as retrieval
    gives recall@1, recall@5 and mAP); ``per_sample`` split -> ``[m]`` scores or None."""

    probe: str
    per_sample: dict[str, np.ndarray | None]
    detail: str
    losses: dict[str, float | None] = field(default_factory=dict)  # cross-entropy per split, where there is one


class Readout:
    """Base of a registered readout (its class docstring's first line is its ``--help`` line)."""

    name: str = ""
    config_class: Any = None
    order: int = 100  # from the declaration: where its rows go, and so in probe.probes' default
    # the summary line quotes the readout of lowest rank present (None: never quoted)
    summary_rank: int | None = None
    # its figure in metrics_eval.csv and the trainer's probe.every (with per-split losses)
    writes_eval_row: bool = False

    @staticmethod
    def chosen_grid(config) -> tuple[str, str, list[float]] | None:
        """(name, recipe key, grid) of a hyperparameter chosen on val or on folds of train, or None."""
        return None

    @staticmethod
    def score(data: ReadoutData) -> list[ReadoutScores]:
        raise NotImplementedError
