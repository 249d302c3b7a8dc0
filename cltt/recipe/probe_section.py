"""The recipe section ``probe``: the task, the keys tasks share, and one section
``probe.<name>.*`` per registered probe task or readout that declares one.

Tasks (``probe.task``) and readouts (``probe.probes``) are those declared in
:mod:`cltt.recipe.probes` (implemented in :mod:`cltt.eval.tasks` and :mod:`cltt.eval.readouts`);
the choices and sections here are read from the declarations, which import no torch.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal, Optional

from cltt.errors import CLTTError, RecipeError
from cltt.recipe.checks import check_finite_list, check_max, check_min, check_positive, check_unique
from cltt.recipe.probes import READOUT_SECTIONS, TASK_SECTIONS

# the most probe.bootstrap_rounds: a bootstrap draws a rounds x units weight matrix
# (cltt.eval.bootstrap: int64, then float64, 16 bytes an entry), 320 MB at 1,000 clips
MAX_BOOTSTRAP_ROUNDS = 20_000

# keys that moved from the shared section into a task's own, so recipes saved in run dirs (and
# inside checkpoints) before the move still load: old key -> (task, key in its section)
LEGACY_PROBE_KEYS = {"ap_k": ("phases", "ap_k")}


@dataclass
class ProbeConfig:
    """How ``cltt probe`` judges frozen features (and ``probe.every`` during training).

    ``task`` is any registered probe task (``cltt probe --help`` lists them with one line);
    each task's own settings are its section ``probe.<task>.*``, declared in its file of
    :mod:`cltt.recipe.probes`. The keys here are shared by the tasks that read them.

    Labels come from ``labels`` (default ROOT/labels.csv: clip,label[,split]) or from folders
    ROOT/<label>/<clip>/. Splits are by clip, never by frame: from the file's split column, or
    drawn with ``split_seed`` in ``split_fractions`` (train, val, test) when it has none.

    probes: the readouts of task ``classes`` (:mod:`cltt.eval.readouts`; ``cltt probe --help``
    lists them; by default every one): ``linear`` (least squares on standardised features, its ridge picked on val
    from ``ridge``), ``logistic`` (C from ``logistic_c``), ``knn``, ``retrieval`` (recall@1, @5
    and mAP of held-out frames against train frames). Every figure has a 95% interval from
    ``bootstrap_rounds`` resamples of the split's clips (100 to :data:`MAX_BOOTSTRAP_ROUNDS`: a
    resample is a row of clip weights, so memory is rounds x clips).
    """

    task: str = "classes"
    level: Literal["frame", "window", "clip"] = "frame"  # what one feature describes: a frame, a window, a whole clip
    labels: Optional[str] = None
    split_fractions: list[float] = field(default_factory=lambda: [0.6, 0.2, 0.2])
    split_seed: int = 0
    probes: list[str] = field(default_factory=lambda: default_readouts())  # every readout, in its order
    baselines: list[str] = field(default_factory=lambda: ["random_init", "pixels"])  # also probed, beside the trained encoder
    logistic_c: list[float] = field(default_factory=lambda: [0.01, 0.1, 1.0, 10.0, 100.0])
    ridge: list[float] = field(default_factory=lambda: [0.0, 1.0, 10.0, 100.0, 1000.0, 10000.0])  # linear, on val
    bootstrap_rounds: int = 2000  # resamples of the clips behind every 95% interval, 100 to 20,000 (memory: rounds x clips)
    knn_k: int = 20  # neighbours of the kNN vote
    knn_temperature: float = 0.07  # kNN votes weighted by exp(cosine / this)
    standardise: bool = True  # kNN and retrieval: cosine of features standardised by the train split
    pixels_size: int = 16  # raw-pixel baseline: frames resized to this many pixels a side
    batch_size: int = 256  # frames per forward pass when extracting features
    every: Optional[int] = None  # epochs between probes during training (metrics_eval.csv)

    @staticmethod
    def task_of(name: Any, at: str = "probe"):
        """The registry entry of task ``name``, or a :class:`RecipeError` naming the closest."""
        try:
            return TASK_SECTIONS.entry(name)
        except CLTTError as err:
            raise RecipeError(f"recipe key '{at}.task': {err}") from None

    def validate(self, at: str) -> None:
        task = self.task_of(self.task, at).cls
        tasks, readouts = TASK_SECTIONS.entries(), READOUT_SECTIONS.entries()
        if len(self.split_fractions) != 3 or not all(0 <= f <= 1 for f in self.split_fractions) or \
                abs(sum(self.split_fractions) - 1) > 1e-6 or self.split_fractions[0] == 0:
            raise RecipeError(f"recipe key '{at}.split_fractions' must be [train, val, test] >= 0 summing to 1 "
                              f"with train > 0, got {self.split_fractions}")
        check_unique(self.probes, f"{at}.probes")
        check_unique(self.baselines, f"{at}.baselines")
        for name in self.probes:
            if name not in readouts:
                raise RecipeError(f"recipe key '{at}.probes' lists {name!r}; choose from {', '.join(readouts)}")
        if not self.ridge:
            raise RecipeError(f"recipe key '{at}.ridge' must be a non-empty list of values >= 0, got {self.ridge}")
        check_finite_list(self.ridge, f"{at}.ridge", low=0)
        if not self.logistic_c:
            raise RecipeError(f"recipe key '{at}.logistic_c' must be a non-empty list of values > 0, got {self.logistic_c}")
        check_finite_list(self.logistic_c, f"{at}.logistic_c", low=0, strict=True)
        check_min(self.bootstrap_rounds, f"{at}.bootstrap_rounds", 100)
        check_max(self.bootstrap_rounds, f"{at}.bootstrap_rounds", MAX_BOOTSTRAP_ROUNDS,
                  "each 95% interval draws a rounds x clips weight matrix (16 bytes an entry: 320 MB at 1,000 clips "
                  "for the most); the default is 2,000")
        for name in self.baselines:
            if name not in ("random_init", "pixels"):
                raise RecipeError(f"recipe key '{at}.baselines' lists {name!r}; choose from random_init, pixels")
        check_min(self.knn_k, f"{at}.knn_k", 1)
        check_positive(self.knn_temperature, f"{at}.knn_temperature")
        check_min(self.pixels_size, f"{at}.pixels_size", 1)
        check_min(self.batch_size, f"{at}.batch_size", 1)
        if self.every is not None:
            check_min(self.every, f"{at}.every", 1)
            if not task.runs_during_training:
                during = [name for name, entry in tasks.items() if entry.cls.runs_during_training]
                raise RecipeError(f"recipe key '{at}.every' probes during training, which task {self.task} does not "
                                  f"(only {', '.join(during)}); drop it and run cltt probe RUN_DIR after training")
        for name, entry in probe_sections():
            in_use = name == self.task or name in self.probes
            if not in_use and getattr(self, name) != entry.config():
                owner = f"probe.task={name}" if name in tasks else f"{name} in {at}.probes"
                raise RecipeError(f"recipe key '{at}.{name}' belongs to {owner}, which this recipe does not "
                                  f"use; remove the section or set {owner}")


_PROBE_CLASSES: dict[tuple, type] = {}


def default_readouts() -> list[str]:
    """The readouts ``probe.probes`` lists by default: every registered one, in the order of its
    ``order`` (linear, logistic, knn, retrieval), which is the order of their rows."""
    readouts = READOUT_SECTIONS.entries()
    return sorted(readouts, key=lambda name: (readouts[name].cls.order, name))


def probe_sections() -> list[tuple[str, Any]]:
    """(name, registry entry) of every task and readout that declares a section ``probe.<name>``."""
    tasks, readouts = TASK_SECTIONS.entries(), READOUT_SECTIONS.entries()
    for name in set(tasks) & set(readouts):  # one namespace: probe.<name> must say whose it is
        raise RecipeError(f"probe task {name} and readout {name} share a name; rename one "
                          f"({tasks[name].cls.__module__}, {readouts[name].cls.__module__})")
    shared = {f.name for f in dataclasses.fields(ProbeConfig)}
    sections = [(name, entry) for name, entry in {**tasks, **readouts}.items() if entry.config is not None]
    for name, entry in sections:
        if name in shared:
            raise RecipeError(f"{entry.cls.__module__} declares the section probe.{name}, which is a shared key; "
                              "rename it")
    return sorted(sections)


def probe_config_class() -> type:
    """:class:`ProbeConfig` with one section field per registered task or readout that declares one."""
    sections = tuple((name, entry.config) for name, entry in probe_sections())
    if sections not in _PROBE_CLASSES:
        fields = [(name, config, field(default_factory=config)) for name, config in sections]
        _PROBE_CLASSES[sections] = dataclasses.make_dataclass("ProbeConfig", fields, bases=(ProbeConfig,))
    return _PROBE_CLASSES[sections]


def upgrade_probe_tree(tree: dict[str, Any]) -> dict[str, Any]:
    """A ``probe`` mapping with the keys of :data:`LEGACY_PROBE_KEYS` moved into their task's
    section. A moved key of a task other than the recipe's was never read: it is dropped."""
    moved = {key: value for key, value in tree.items() if key not in LEGACY_PROBE_KEYS}
    task = tree.get("task", ProbeConfig.task)
    for old, (owner, key) in LEGACY_PROBE_KEYS.items():
        if old not in tree or owner != task:
            continue
        section = moved.get(owner)
        section = dict(section) if isinstance(section, dict) else {}
        if key in section and section[key] != tree[old]:
            raise RecipeError(f"recipe keys 'probe.{old}' (its old place) and 'probe.{owner}.{key}' disagree; "
                              f"keep probe.{owner}.{key}")
        moved[owner] = {**section, key: tree[old]}
    return moved


def chosen_sections(probe: dict[str, Any]) -> dict[str, Any]:
    """A ``probe`` mapping (as dumped) with only the sections of its task and its readouts."""
    shared = {f.name for f in dataclasses.fields(ProbeConfig)}
    return {key: value for key, value in probe.items()
            if key in shared or key == probe["task"] or key in probe["probes"]}
