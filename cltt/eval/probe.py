"""Probes of frozen features: a checkpoint against random-init and raw-pixel baselines.

``cltt probe`` and the trainer's ``probe.every`` both come here. The steps, each its own module:

    labels.py     clip labels, splits by clip (file or drawn), checks
    features.py   one vector per frame per source, cached in RUN_DIR/features/
    window_features.py window encoders (clip_simclr): per-frame view, or one vector per window
    samples.py    frames -> samples at probe.level (frame | window | clip mean)
    readouts/     the registry of readouts (linear, logistic, knn, retrieval), one file each,
                  over the math of linear.py, logistic.py, knn.py and retrieval.py
    bootstrap.py  95% intervals by resampling clips
    report.py, metrics_eval.py        the JSON report and the lab's metrics_eval.csv

From Python:

    from cltt.eval.probe import probe_checkpoint
    report = probe_checkpoint(recipe, Path("runs/quickstart/checkpoint_final.pth"))
    report.score("trained", "logistic").test          # fraction in [0, 1]

During training (process 0, every ``probe.every`` epochs), the callback ``cltt train`` hands
the trainer (the engine never imports eval):

    probe = ClassProbeDuringTraining(recipe, run_dir)  # once: labels and splits, checked
    note, scalars = probe(method, device, epoch)       # a metrics_eval.csv row appended
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from cltt.data.build import open_frames
from cltt.data.stores.base import FrameStore
from cltt.data.windows import WindowSpec
from cltt.engine.checkpoint import load_checkpoint
from cltt.engine.device import resolve_device
from cltt.engine.run_files import FEATURES_DIR
from cltt.errors import CLTTError
from cltt.eval.bootstrap import clip_interval
from cltt.eval.features import (
    FeatureResult,
    FeatureSource,
    FrameSet,
    Progress,
    checkpoint_identity,
    extract_features,
    pixel_source,
)
from cltt.eval.folds import fold_count, grid_middle
from cltt.eval.labels import (
    LabelTable,
    assign_splits,
    check_held_out,
    check_no_clip_leak,
    check_splits,
    describe_counts,
    load_labels,
    train_clips_per_class,
)
from cltt.eval.metrics_eval import EvalRow, append_eval_row, keep_eval_rows_up_to
from cltt.eval.readouts import ReadoutData, ReadoutScores, registered_readouts
from cltt.eval.report import ProbeReport, ProbeScore
from cltt.eval.samples import Samples, pool_samples
from cltt.eval.window_features import (
    FRAME_LEVEL_REFUSED,
    WindowSource,
    check_level,
    extract_window_features,
    pool_windows,
    probe_windows,
    source_for,
)
from cltt.methods import build_method
from cltt.recipe import Recipe, recipe_to_dict, without_weights_file

SPLITS = ("train", "val", "test")


@dataclass
class ProbeSetup:
    """The data side of a probe, built once: store, labelled clips, their splits and frames."""

    store: FrameStore
    table: LabelTable
    splits: np.ndarray  # [K] split name per labelled clip
    targets: np.ndarray  # [K] class number per labelled clip
    frames: FrameSet  # every frame of the labelled clips
    level: str
    spec: WindowSpec


def prepare_probe(recipe: Recipe) -> ProbeSetup:
    """Index ``data.root``, read its labels, assign and check the splits (CLTTError if unusable)."""
    check_level(recipe)
    index = open_frames(recipe.data, synthetic=recipe.extract.synthetic)
    table = load_labels(index, recipe.probe.labels)
    splits = assign_splits(table, recipe.probe.split_fractions, recipe.probe.split_seed)
    check_splits(table.labels, splits, table.source)
    check_held_out(splits, table.source)
    return ProbeSetup(
        store=index,
        table=table,
        splits=np.array(splits),
        targets=table.targets(),
        frames=FrameSet(index, table.clip_index),
        level=recipe.probe.level,
        spec=WindowSpec.from_recipe(recipe.data),
    )


def _samples(setup: ProbeSetup, source: FeatureSource, features: np.ndarray) -> tuple[Samples, np.ndarray, np.ndarray]:
    """Pooled samples of one source, their class numbers ``[M]`` and split names ``[M]``, checked for leaks.

    ``features`` are per frame (``[N, F]``, pooled at ``probe.level``) or, for a
    :class:`WindowSource`, per window of :func:`probe_windows` (``[M', F]``).
    """
    if isinstance(source, WindowSource):
        samples = pool_windows(features, probe_windows(setup.frames.frame_counts, setup.spec, setup.level), setup.level)
    else:
        samples = pool_samples(features, setup.frames.offsets, setup.level, setup.spec)
    splits = setup.splits[samples.clip]
    check_no_clip_leak(samples.clip, splits, setup.table.clips)
    present = np.unique(samples.clip)
    if len(present) < len(setup.splits):  # clips too short for a window drop out; the classes must still hold
        where = f"{setup.table.source}, windows of {setup.spec.describe()}"
        check_splits([setup.table.labels[i] for i in present], setup.splits[present].tolist(), where)
        check_held_out(setup.splits[present].tolist(), where)
    return samples, setup.targets[samples.clip], splits


def _features(setup: ProbeSetup, sources: list[FeatureSource], recipe: Recipe, cache_dir: Path | None,
              on_progress: Progress | None) -> FeatureResult:
    """Every source's features: per frame for frame sources, per window for each :class:`WindowSource`."""
    frame_sources = [s for s in sources if not isinstance(s, WindowSource)]
    window_sources = [s for s in sources if isinstance(s, WindowSource)]
    workers = max(1, recipe.data.num_workers)
    result = FeatureResult({}, [], [], {})
    if frame_sources:
        result = extract_features(setup.frames, frame_sources, cache_dir=cache_dir, batch_size=recipe.probe.batch_size,
                                  workers=workers, on_progress=on_progress, decode_at_least=recipe.data.image_size)
    if window_sources:
        table = probe_windows(setup.frames.frame_counts, setup.spec, setup.level)
        windows = extract_window_features(setup.frames, window_sources, table, cache_dir=cache_dir,
                                          batch_size=recipe.probe.batch_size, workers=workers, on_progress=on_progress)
        result = FeatureResult(result.features | windows.features, result.reused + windows.reused,
                               result.computed + windows.computed, result.paths | windows.paths)
    return result


def _scored(name: str, found: ReadoutScores, clips: np.ndarray, rows: dict[str, np.ndarray], seed: int,
            rounds: int) -> ProbeScore:
    """A :class:`ProbeScore` from a readout's per-sample scores of each split (1/0 for right/wrong,
    or a retrieval metric per query): their mean, and its clip-bootstrap 95% interval."""
    per_sample = found.per_sample
    means = {split: None if values is None else float(np.mean(values)) for split, values in per_sample.items()}
    bounds = {split: None if values is None else clip_interval(values, clips[rows[split]], rounds, seed)
              for split, values in per_sample.items()}  # None: no samples, or one clip (no interval)
    intervals = {split: None if bound is None else list(bound) for split, bound in bounds.items()}
    return ProbeScore(name, found.probe, means["train"], means["val"], means["test"], found.detail, found.losses,
                      intervals)


def score_features(name: str, samples: Samples, targets: np.ndarray, splits: np.ndarray, num_classes: int,
                   recipe: Recipe, probes: list[str]) -> list[ProbeScore]:
    """Every readout in ``probes`` (:mod:`cltt.eval.readouts`) fitted on the train samples of one
    feature source, scored per split.

    ``samples.features [M, F]``, ``targets [M]`` class numbers < ``num_classes``, ``splits [M]``.
    Each figure comes with a 95% interval from a bootstrap over the split's clips
    (:mod:`cltt.eval.bootstrap`, ``probe.bootstrap_rounds``, seeded by ``probe.split_seed``).
    """
    config = recipe.probe
    rows = {split: np.flatnonzero(splits == split) for split in SPLITS}
    data = ReadoutData(samples.features, targets, samples.clip, rows, num_classes, config, recipe.train.seed)
    readouts = registered_readouts()
    return [_scored(name, found, samples.clip, rows, config.split_seed, config.bootstrap_rounds)
            for probe in probes for found in readouts[probe].cls.score(data)]


def eval_row_readouts() -> list[str]:
    """The readouts whose figures make the ``metrics_eval.csv`` row (:attr:`Readout.writes_eval_row`: logistic)."""
    return [name for name, entry in registered_readouts().items() if entry.cls.writes_eval_row]


def eval_row(epoch: int, scores: list[ProbeScore]) -> EvalRow | None:
    """The ``metrics_eval.csv`` row: the trained features' figures of the readout that writes it
    (:func:`eval_row_readouts`); None if it did not run."""
    writers = eval_row_readouts()
    score = next((s for s in scores if s.features == "trained" and s.probe in writers), None)
    if score is None:
        return None
    bounds = {split: score.intervals.get(split) or (None, None) for split in SPLITS}
    return EvalRow(epoch, score.losses.get("train"), score.train, score.losses.get("val"), score.val,
                   score.losses.get("test"), score.test, *bounds["train"], *bounds["val"], *bounds["test"])


FEW_CLIPS_PER_CLASS = 5
WIDE_INTERVAL = 0.10  # half-width, as a fraction


def no_interval_note(scores: list[ProbeScore]) -> str | None:
    """The note for the splits whose figures have no 95% interval although they have a figure:
    those of one clip (image, group), below :data:`cltt.eval.bootstrap.MIN_UNITS`. None if none."""
    bare = [split for split in SPLITS if any(getattr(s, split) is not None and s.intervals.get(split) is None
                                             for s in scores)]
    if not bare:
        return None
    return (f"no 95% interval for the {' and '.join(bare)} figures (n/a in the table, null in probe.json): "
            "that split holds a single unit of the bootstrap, and resampling one unit only repeats it, so the "
            "interval would have zero width, as if certain; hold out at least 2 to get one")


def small_sample_warnings(targets: np.ndarray, splits: np.ndarray, classes: list[str], scores: list[ProbeScore],
                          unit: str = "clips", test_units: int | None = None) -> list[str]:
    """Warnings that the test figures rest on few units (``targets [K]`` class numbers and
    ``splits [K]`` of the K clips, images or groups, or of (unit, class) pairs when a unit holds
    several classes, with ``test_units`` then the count of distinct test units): fewer than
    :data:`FEW_CLIPS_PER_CLASS` test units of some class, or a 95% interval wider than +-10
    points; and a note for the splits whose figures have no interval (:func:`no_interval_note`)."""
    notes = []
    test = splits == "test"
    if test.any():
        test_units = int(test.sum()) if test_units is None else test_units
        per_class = np.bincount(targets[test], minlength=len(classes))
        fewest = int(per_class.min())
        if fewest < FEW_CLIPS_PER_CLASS:
            empty = int((per_class == 0).sum())
            short = (f"{empty} classes have none" if empty > 1 else "1 class has none") if fewest == 0 else \
                f"the fewest, {classes[int(per_class.argmin())]}, has {fewest}"
            held = unit.removesuffix("s") if test_units == 1 else unit  # "1 clip", not "1 clips"
            notes.append(f"warning: the test split has {test_units} {held} for {len(per_class)} classes and {short} "
                         f"(under {FEW_CLIPS_PER_CLASS} a class): the test figures are coarse; read their 95% intervals, "
                         f"and hold out more {unit} to narrow them")
    wide = [(s, s.intervals["test"]) for s in scores if s.intervals.get("test") and
            (s.intervals["test"][1] - s.intervals["test"][0]) / 2 > WIDE_INTERVAL]
    if wide:
        score, (low, high) = max(wide, key=lambda item: item[1][1] - item[1][0])
        notes.append(f"warning: {len(wide)} test figure(s) have 95% intervals wider than +-{100 * WIDE_INTERVAL:.0f} points "
                     f"(widest: {score.probe} on {score.features}, {100 * score.test:.1f} [{100 * low:.0f}-{100 * high:.0f}]); "
                     "differences smaller than the intervals are not evidence")
    return notes + ([note] if (note := no_interval_note(scores)) else [])


def unchosen_warning(setup: ProbeSetup, recipe: Recipe, samples: Samples, splits: np.ndarray) -> str | None:
    """The warning that C and the ridge were not chosen but taken from the middle of their
    grids (:mod:`cltt.eval.folds`): no val samples, and a class with one train clip."""
    readouts = registered_readouts()
    grids = [readouts[p].cls.chosen_grid(recipe.probe) for p in recipe.probe.probes]
    open_choices = [grid for grid in grids if grid is not None and len(set(grid[2])) > 1]
    train = splits == "train"
    if not open_choices or (splits == "val").any() or fold_count(setup.targets[samples.clip[train]], samples.clip[train]) >= 2:
        return None
    present = np.unique(samples.clip)
    per_class = train_clips_per_class([setup.table.labels[i] for i in present], setup.splits[present])
    single = [label for label, n in per_class.items() if n == 1]
    taken = ", ".join(f"{name}={grid_middle(grid):g}" for name, _, grid in open_choices)
    keys = " and ".join(f"{key}=[{grid_middle(grid):g}]" for _, key, grid in open_choices)
    return (f"warning: there is no val split and {len(single)} class(es) have 1 train clip (train clips per class: "
            f"{describe_counts(per_class)}), so no grouped split of train can choose "
            f"{' and '.join(name for name, _, _ in open_choices)}: the middle of the grid is taken ({taken}); add a val "
            f"split or a second train clip of each class to choose, or set {keys}")


# --------------------------------------------------------------------------- trainer hook


def evaluate_method(method: torch.nn.Module, recipe: Recipe, device: torch.device, epoch: int,
                    setup: ProbeSetup | None = None, on_progress: Progress | None = None) -> EvalRow:
    """Logistic probe of ``method.encoder``'s current weights: the ``metrics_eval.csv`` row of ``epoch``.

    Runs the encoder in eval mode under no_grad and restores its mode; draws no global random
    numbers, so a run with probes trains exactly as one without. Nothing is cached (the
    weights change every epoch). Pass the ``setup`` of :func:`prepare_probe` to skip
    re-reading labels each time.
    """
    setup = setup or prepare_probe(recipe)
    source = source_for("trained", method.encoder, recipe.data.image_size, device, None, setup.level)
    result = _features(setup, [source], recipe, None, on_progress)
    samples, targets, splits = _samples(setup, source, result.features["trained"])
    return eval_row(epoch, score_features("trained", samples, targets, splits, len(setup.table.classes), recipe,
                                          eval_row_readouts()))


class ClassProbeDuringTraining:
    """The trainer's ``probe.every`` for task ``classes`` (the callback ``cltt train`` hands it).

    Built before training starts, so unusable labels or splits stop the run before its first
    step. Each call probes the current encoder (:func:`evaluate_method`), appends the row to
    ``RUN_DIR/metrics_eval.csv`` and returns (a note for the log, the scalars for TensorBoard/W&B).
    """

    def __init__(self, recipe: Recipe, run_dir: Path):
        self.recipe, self.run_dir = recipe, Path(run_dir)
        self.setup = prepare_probe(recipe)

    def forget_after(self, epoch: int) -> None:
        """A resumed run drops the rows of epochs after its checkpoint's (they are redone)."""
        keep_eval_rows_up_to(self.run_dir, epoch)

    def __call__(self, method: torch.nn.Module, device: torch.device, epoch: int) -> tuple[str, dict[str, float]]:
        row = evaluate_method(method, self.recipe, device, epoch, setup=self.setup)
        append_eval_row(self.run_dir, row)
        note = ", ".join(f"{split} acc {value:.3f}" for split, value in
                         (("train", row.train_acc), ("val", row.val_acc), ("test", row.test_acc)) if value is not None)
        scalars = {f"probe/{k}": v for k, v in dataclasses.asdict(row).items() if k != "epoch" and v is not None}
        return note, scalars


# --------------------------------------------------------------------------- cltt probe


def random_init_method(recipe: Recipe) -> torch.nn.Module:
    """The recipe's architecture initialised with ``train.seed`` (no weights file), leaving the
    caller's random state untouched: the weights a run of this recipe starts from."""
    untrained = without_weights_file(recipe)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(recipe.train.seed)
        return build_method(untrained)


def load_trained_method(recipe: Recipe, state: dict, path: Path) -> torch.nn.Module:
    """``build_method(recipe)`` with the checkpoint's weights; one clear error if they do not fit.

    The weights file named at training time (``model.weights``) is not read again: the
    checkpoint holds every weight, and the file may no longer exist here."""
    method = build_method(without_weights_file(recipe))
    try:
        method.load_state_dict(state["model"])
    except (RuntimeError, KeyError) as err:
        first = str(err).strip().splitlines()[0][:200] if str(err).strip() else type(err).__name__
        hint = " (a model is built for the data.window_size and data.image_size it was trained with)"
        raise CLTTError(f"checkpoint {path} does not fit the recipe's model {recipe.model.backbone} "
                        f"({first}); probe it with its own recipe: cltt probe {path}{hint}") from None
    return method


def probe_sources(recipe: Recipe, checkpoint: Path, state: dict, level: str = "frame") -> list[FeatureSource]:
    """The feature sources a probe compares: the checkpoint's encoder (``trained``), then those of
    ``probe.baselines`` (``random_init``: the recipe's architecture with ``train.seed``;
    ``pixels``: centre views of ``probe.pixels_size``), each keyed for the features cache."""
    device = resolve_device(recipe.train.device)
    image_size = recipe.data.image_size
    sources: list[FeatureSource] = [source_for(
        "trained", load_trained_method(recipe, state, checkpoint).to(device).encoder, image_size, device,
        {**checkpoint_identity(checkpoint, image_size), "backbone": recipe.model.backbone}, level)]
    if "random_init" in recipe.probe.baselines:
        identity = {"kind": "random_init", "model": recipe_to_dict(recipe)["model"] | {"weights": None},
                    "method": recipe.method.name, "seed": recipe.train.seed, "image_size": image_size,
                    "torch": torch.__version__}
        sources.append(source_for("random_init", random_init_method(recipe).to(device).encoder, image_size,
                                  device, identity, level))
    if "pixels" in recipe.probe.baselines:
        sources.append(pixel_source(recipe.probe.pixels_size))
    return sources


def image_sources(recipe: Recipe, checkpoint: Path, state: dict, scored: str) -> list[FeatureSource]:
    """:func:`probe_sources` at frame level for a task that scores single images (``scored``, as in
    "labelled frames" or "an image set"); a window encoder, which has no per-frame features, is
    refused in one line that says what to probe instead."""
    try:
        return probe_sources(recipe, checkpoint, state, "frame")
    except CLTTError as err:
        if str(err) != FRAME_LEVEL_REFUSED:
            raise
        raise CLTTError(f"this window encoder ({recipe.method.name}) has no per-frame features to probe {scored} "
                        "with; probe its clips (probe.task=classes probe.level=clip)") from None


def probe_checkpoint(
    recipe: Recipe,
    checkpoint: Path,
    state: dict | None = None,
    cache_dir: Path | None = None,
    on_progress: Progress | None = None,
) -> ProbeReport:
    """Probe a checkpoint's frozen encoder and the baselines in ``probe.baselines``.

    Features are cached in ``cache_dir`` (default the checkpoint's folder ``/features``).
    Returns the report; writing it (JSON, ``metrics_eval.csv``) is the caller's choice.
    """
    checkpoint = Path(checkpoint)
    state = state if state is not None else load_checkpoint(checkpoint)
    setup = prepare_probe(recipe)
    sources = probe_sources(recipe, checkpoint, state, setup.level)
    cache_dir = Path(cache_dir) if cache_dir is not None else checkpoint.parent / FEATURES_DIR
    result = _features(setup, sources, recipe, cache_dir, on_progress)

    scores: list[ProbeScore] = []
    counts: dict[str, dict[str, int]] = {}
    notes = []
    for source in sources:
        samples, targets, splits = _samples(setup, source, result.features[source.name])
        scores += score_features(source.name, samples, targets, splits, len(setup.table.classes), recipe,
                                 recipe.probe.probes)
        if source.name == "trained":
            counts = {s: {"clips": int(len(np.unique(samples.clip[splits == s]))), "samples": int((splits == s).sum())}
                      for s in SPLITS}
            unchosen = unchosen_warning(setup, recipe, samples, splits)
            notes += [unchosen] if unchosen else []
    epoch = state.get("progress", {}).get("epoch")
    row = eval_row(int(epoch), scores) if epoch is not None else None
    notes += small_sample_warnings(setup.targets, setup.splits, setup.table.classes, scores)
    if setup.table.unlabelled:
        notes.append(f"{setup.table.unlabelled} clip(s) of {setup.store.root} have no label and are left out")
    if row is None:
        notes.append(f"no metrics_eval.csv row: add {' or '.join(eval_row_readouts())} to probe.probes")
    return ProbeReport(
        checkpoint=str(checkpoint),
        epoch=int(epoch) if epoch is not None else None,
        level=setup.level,
        labels=setup.table.source,
        classes=setup.table.classes,
        counts=counts,
        feature_dims={name: int(f.shape[1]) for name, f in result.features.items()},
        scores=scores,
        eval_row=row,
        cache={s.name: f"{'reused' if s.name in result.reused else 'computed'} {result.paths.get(s.name, '')}".strip()
               for s in sources},
        notes=notes,
    )
