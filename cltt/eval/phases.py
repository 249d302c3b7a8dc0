"""``probe.task: phases``: CARL's frame-wise evaluation of videos that pass through phases.

Data: every frame of the labelled clips carries a phase and a progress value, from
``ROOT/phases.csv`` (``clip,frame,phase,progress``; ``cltt extract --synthetic phases`` writes
one). Splits are by clip: the split column of the labels file (``probe.labels``, default
``ROOT/labels.csv``) or, without one, drawn with ``probe.split_seed`` in
``probe.split_fractions``. The evaluation videos are the test clips (val and test when test
holds fewer than two).

Features, per source, one vector per frame of each video in its order:

    trained        the checkpoint's frame embeddings: backbone per frame, then the method's
                   sequence transformer (a :class:`SequenceRepresentation`, CARL's) over the video; trained_backbone:
                   the backbone's per-frame features alone (``encoder.represent``)
    random_init    the same architecture with the weights the run started from
    position_only  the sinusoidal encoding of each frame's input position and nothing else:
                   the shortcut a sequence model could take without looking at the frames
    pixels         the frame, centre-resized to ``probe.pixels_size`` (when in probe.baselines)

A whole video rarely fits the T = ``encoder.sequence_frames`` positions the transformer was trained
with, so a video of n frames is cut into ``m = ceil(n / T)`` interleaved chunks, chunk c =
frames ``c, c+m, c+2m, ...`` at positions (ranks) 0, 1, 2, ...: each chunk spans the whole
video with T or fewer sorted frames, as a training view does. Each frame gets the embedding of
the one chunk it is in. A method without a sequence model (simclr, cltt) uses its per-frame
representation ``encoder.represent``.

Every sequence source is scored twice, ``ordered`` and ``shuffled``: in the second the frames
of each video enter in a random order (drawn from ``probe.split_seed`` and the clip) and the
embeddings are mapped back to their true frames, so a representation that only encodes
position gets no credit there. A sequence source's backbone features alone (per frame, no
transformer) are scored too, as ``<source>_backbone``; they and other per-frame sources
(pixels, simclr's representation) never see the order and get one row, order ``any``.

Metrics (test videos unless said otherwise):

    phase_acc      logistic regression (:mod:`cltt.eval.logistic`, C picked on val) from train
                   frames' embeddings to their phase; accuracy on test frames, with its 95%
                   interval (``phase_acc_95``; ``phase_acc_low``/``_high`` in the JSON) from a
                   bootstrap over test videos (:mod:`cltt.eval.bootstrap`, ``probe.bootstrap_rounds``)
    progress_r2    ridge regression from train frames' standardised embeddings to progress
                   (alpha picked on val); R² = 1 - SS_res / SS_tot on test frames
    kendall_tau    for every ordered pair (u, v) of distinct evaluation videos: each frame i of
                   u is matched to its nearest frame nn(i) of v (cosine distance); Kendall's
                   tau-b between i and nn(i); the mean over pairs. A pair whose matches are all
                   one frame has no tau (NaN): counted in ``tau_nan_pairs`` and left out
    ap@K           for each frame of an evaluation video, the K nearest frames (cosine) among
                   all frames of the other evaluation videos; the fraction of them in the
                   query's phase, averaged over every query frame (CARL and LAV call this AP@K)

Backbone features are cached like the class probes' (:mod:`cltt.eval.features`, the same
files); the sequence embeddings are recomputed each time (one small transformer pass).
"""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from scipy.stats import kendalltau
from sklearn.linear_model import Ridge
from sklearn.preprocessing import StandardScaler

from cltt.data.build import open_frames
from cltt.data.manifest import natural_key
from cltt.data.stores.base import FrameStore
from cltt.engine.checkpoint import load_checkpoint
from cltt.engine.device import resolve_device
from cltt.engine.run_files import FEATURES_DIR
from cltt.errors import CLTTError
from cltt.eval.bootstrap import clip_interval
from cltt.eval.features import FeatureSource, FrameSet, Progress, checkpoint_identity, encoder_source, extract_features, pixel_source
from cltt.eval.labels import LabelTable, assign_splits, load_labels
from cltt.eval.logistic import fit_logistic
from cltt.eval.probe import load_trained_method, random_init_method
from cltt.eval.report import TaskReport
from cltt.eval.threads import blas_threads_for
from cltt.models.representation import SequenceRepresentation
from cltt.models.sequence import sinusoidal_encoding
from cltt.recipe import Recipe, recipe_to_dict

PHASES_FILE = "phases.csv"
ORDERS = ("ordered", "shuffled")
SPLITS = ("train", "val", "test")


# --------------------------------------------------------------------------- labels


@dataclass
class PhaseLabels:
    """Per-frame labels of the clips a phases file covers, in store order.

    ``phase[k]`` ``[n_k]`` int64 into :attr:`names`, ``progress[k]`` ``[n_k]`` float64, for
    every frame of clip ``clips[k]`` (store number ``clip_index[k]``).
    """

    source: str
    clips: list[str]
    clip_index: np.ndarray
    names: list[str]
    phase: list[np.ndarray]
    progress: list[np.ndarray]


def load_phase_labels(store: FrameStore, path: Path) -> PhaseLabels:
    """Read ``clip,frame,phase,progress`` rows; every frame of a listed clip must have one."""
    if not path.is_file():
        raise CLTTError(f"probe.task=phases needs per-frame labels in {path} (clip,frame,phase,progress); "
                        f"cltt extract --synthetic phases writes them")
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            rows = list(csv.reader(handle))
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise CLTTError(f"cannot read phases file {path} ({err})") from None
    header = [h.strip().lower() for h in rows[0]] if rows else []
    if header != ["clip", "frame", "phase", "progress"]:
        raise CLTTError(f"phases file {path} must start with the header clip,frame,phase,progress; "
                        f"got {','.join(header) or 'nothing'}")
    by_clip: dict[str, dict[str, tuple[str, float]]] = {}
    for line, row in enumerate(rows[1:], start=2):
        if not any(cell.strip() for cell in row):
            continue
        try:
            clip, frame, phase, progress = (cell.strip() for cell in row)
            value = float(progress)
        except ValueError:
            raise CLTTError(f"phases file {path} line {line}: expected clip,frame,phase,progress with a number "
                            f"for progress, got {','.join(row)}") from None
        by_clip.setdefault(clip.strip("/"), {})[frame] = (phase, value)
    unknown = [c for c in by_clip if c not in store.clips]
    if unknown:
        raise CLTTError(f"phases file {path} names clip(s) {', '.join(unknown[:3])} that {store.root} does not have; "
                        "fix the file or point data.root at the frames it describes")
    if not by_clip:
        raise CLTTError(f"phases file {path} labels no frame")
    names = sorted({p for frames in by_clip.values() for p, _ in frames.values()}, key=natural_key)
    number = {name: i for i, name in enumerate(names)}
    clips = sorted(by_clip, key=store.clip_index)
    phase, progress = [], []
    for clip in clips:
        labelled = by_clip[clip]
        frames = store.frame_names(store.clip_index(clip))
        missing = [f for f in frames if f not in labelled]
        if missing:
            raise CLTTError(f"phases file {path} has no row for {len(missing)} frame(s) of clip {clip} "
                            f"(first: {missing[0]}); label every frame of a clip it lists")
        phase.append(np.array([number[labelled[f][0]] for f in frames], dtype=np.int64))
        progress.append(np.array([labelled[f][1] for f in frames], dtype=np.float64))
    return PhaseLabels(str(path), clips, np.array([store.clip_index(c) for c in clips], dtype=np.int64),
                       names, phase, progress)


def phase_splits(recipe: Recipe, store: FrameStore, labels: PhaseLabels) -> tuple[np.ndarray, str]:
    """A split per clip of ``labels`` and where it came from.

    The labels file's split column when it has one (clips it does not list are an error),
    else splits drawn with ``probe.split_seed`` in ``probe.split_fractions``.
    """
    path = Path(recipe.probe.labels) if recipe.probe.labels else store.root_file("labels.csv")
    if path.is_file() or recipe.probe.labels:
        table = load_labels(store, path)
        if table.file_splits is not None:
            split_of = dict(zip(table.clips, table.file_splits))
            absent = [c for c in labels.clips if c not in split_of]
            if absent:
                raise CLTTError(f"{path} gives no split for clip(s) {', '.join(absent[:3])} of {labels.source}; "
                                "list every clip, or drop the split column to draw splits with probe.split_seed")
            return np.array([split_of[c] for c in labels.clips]), f"split column of {path}"
    table = LabelTable(labels.source, labels.clips, labels.clip_index, ["video"] * len(labels.clips), None, 0)
    splits = assign_splits(table, recipe.probe.split_fractions, recipe.probe.split_seed)
    return np.array(splits), f"drawn with probe.split_seed={recipe.probe.split_seed}"


# --------------------------------------------------------------------------- embeddings


def interleaved_chunks(num_frames: int, length: int) -> np.ndarray:
    """Slots ``[m, length]`` int64 of ``m = ceil(n / length)`` interleaved chunks of ``0..n-1``:
    chunk c holds ``c, c+m, c+2m, ...`` (sorted, at most ``length``), then -1 padding."""
    chunks = max(1, math.ceil(num_frames / length))
    slots = np.arange(chunks)[:, None] + chunks * np.arange(length)[None, :]
    return np.where(slots < num_frames, slots, -1)


def video_order(num_frames: int, order: str, seed: int, clip: int) -> np.ndarray:
    """The frame fed at each input slot: ``arange(n)`` (ordered) or a permutation from (seed, clip)."""
    if order == "ordered":
        return np.arange(num_frames)
    return np.random.default_rng([seed, clip]).permutation(num_frames)


def sequence_embeddings(encoder: torch.nn.Module, features: np.ndarray, frames: int, order: np.ndarray,
                        device: torch.device) -> np.ndarray:
    """Frame embeddings ``[n, E]`` of one video from backbone features ``[n, F]``: frames fed in
    ``order`` (``order[s]`` = frame at input slot s), in interleaved chunks of ``frames`` slots."""
    slots = interleaved_chunks(len(features), frames)
    valid = slots >= 0
    fed = np.where(valid, order[np.maximum(slots, 0)], 0)
    batch = torch.from_numpy(features[fed]).to(device)
    with torch.no_grad():
        out = encoder.contextualise(batch, torch.from_numpy(valid).to(device)).float().cpu().numpy()
    embeddings = np.empty((len(features), out.shape[-1]), np.float32)
    embeddings[fed[valid]] = out[valid]
    return embeddings


def position_embeddings(num_frames: int, frames: int, order: np.ndarray, dim: int) -> np.ndarray:
    """The position-only shortcut ``[n, dim]``: each frame's sinusoidal encoding of its rank
    in its interleaved chunk, frames fed in ``order``."""
    slots = interleaved_chunks(num_frames, frames)
    valid = slots >= 0
    ranks = np.broadcast_to(np.arange(frames), slots.shape)
    codes = sinusoidal_encoding(torch.from_numpy(ranks[valid].copy()), dim).numpy()
    embeddings = np.empty((num_frames, dim), np.float32)
    embeddings[order[slots[valid]]] = codes
    return embeddings


# --------------------------------------------------------------------------- metrics


def _unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def nearest_frames(query: np.ndarray, candidates: np.ndarray) -> np.ndarray:
    """For each row of ``query [n, D]`` the index of its nearest row of ``candidates [m, D]``
    by cosine distance (first index on ties): ``[n]`` int64."""
    return np.argmax(_unit(query) @ _unit(candidates).T, axis=1)


def kendall_alignment(embeddings: Sequence[np.ndarray]) -> tuple[float | None, int, int]:
    """Mean Kendall's tau of nearest-neighbour alignment over ordered pairs of distinct videos.

    ``embeddings``: one ``[n_k, D]`` per video. Returns ``(mean tau over pairs with a tau,
    NaN pairs, pairs)``; the mean is None when no pair has one.
    """
    taus, nan_pairs, pairs = [], 0, 0
    for u, first in enumerate(embeddings):
        for v, second in enumerate(embeddings):
            if u == v:
                continue
            pairs += 1
            matched = nearest_frames(first, second)
            tau = kendalltau(np.arange(len(matched)), matched).statistic if len(matched) > 1 else math.nan
            if math.isnan(tau):
                nan_pairs += 1
            else:
                taus.append(float(tau))
    return (float(np.mean(taus)) if taus else None), nan_pairs, pairs


def ap_at_k(embeddings: Sequence[np.ndarray], phases: Sequence[np.ndarray], ks: Sequence[int]) -> dict[int, float | None]:
    """AP@K for each K: the mean over all query frames of the fraction of their K nearest
    frames (cosine; from the other videos only) that share their phase. K larger than the
    candidates available uses all of them."""
    sums = {k: 0.0 for k in ks}
    queries = 0
    if len(embeddings) < 2:
        return {k: None for k in ks}
    unit = [_unit(e) for e in embeddings]
    for u in range(len(unit)):
        others = [v for v in range(len(unit)) if v != u]
        candidates = np.concatenate([unit[v] for v in others])
        labels = np.concatenate([phases[v] for v in others])
        ranked = np.argsort(-(unit[u] @ candidates.T), axis=1, kind="stable")
        same = labels[ranked] == phases[u][:, None]  # [n_u, candidates] in order of closeness
        for k in ks:
            sums[k] += float(same[:, :min(k, same.shape[1])].mean(axis=1).sum())
        queries += len(unit[u])
    return {k: sums[k] / queries if queries else None for k in ks}


def r_squared(predicted: np.ndarray, target: np.ndarray) -> float | None:
    """``1 - SS_res / SS_tot``; None for fewer than two targets or constant targets."""
    target = np.asarray(target, dtype=np.float64)
    total = float(((target - target.mean()) ** 2).sum()) if len(target) else 0.0
    if len(target) < 2 or total == 0:
        return None
    return 1.0 - float(((target - predicted) ** 2).sum()) / total


RIDGE_ALPHAS = (1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0, 1000.0)


def progress_r2(train_x: np.ndarray, train_y: np.ndarray, val_x: np.ndarray, val_y: np.ndarray,
                test_x: np.ndarray, test_y: np.ndarray, alphas: Sequence[float] = RIDGE_ALPHAS) -> float | None:
    """R² on test of a ridge regression ``min ||Z w + b - y||² + alpha ||w||²`` fitted on train.

    ``Z`` are the features standardised with train's mean and deviation; ``alpha`` is the one
    of ``alphas`` with the best R² on val (the smallest without val frames), so a few hundred
    train frames of high-dimensional features do not just memorise their targets.
    """
    if len(train_y) < 2 or len(test_y) < 2:
        return None
    scaler = StandardScaler().fit(np.asarray(train_x, np.float64))
    z_train, z_test = (scaler.transform(np.asarray(x, np.float64)) for x in (train_x, test_x))
    best, best_score = min(alphas), -math.inf
    with blas_threads_for(z_train.size):
        if len(val_y) >= 2:
            z_val = scaler.transform(np.asarray(val_x, np.float64))
            for alpha in alphas:
                score = r_squared(Ridge(alpha=alpha).fit(z_train, train_y).predict(z_val), val_y)
                if score is not None and score > best_score:
                    best, best_score = alpha, score
        model = Ridge(alpha=best).fit(z_train, train_y)
        return r_squared(model.predict(z_test), test_y)


def phase_accuracy(train_x, train_y, val_x, val_y, test_x, test_y, cs: list[float], num_classes: int,
                   train_groups: np.ndarray, test_groups: np.ndarray, seed: int, rounds: int,
                   bootstrap_seed: int) -> tuple[float | None, tuple[float, float] | None]:
    """Test accuracy of the logistic probe from embeddings to phase numbers (C picked on val), and
    its 95% interval from a bootstrap over the test videos (``test_groups [M]``, the video of each
    frame; :func:`cltt.eval.bootstrap.clip_interval`, seeded by ``bootstrap_seed``, the class
    probes' ``probe.split_seed``, so the same predictions always get the same interval)."""
    if len(test_y) == 0 or len(np.unique(train_y)) < 2:
        return None, None
    probe = fit_logistic(train_x, train_y, val_x, val_y, cs, num_classes, train_groups=train_groups, seed=seed)
    correct = probe.predict(test_x) == test_y
    return float(correct.mean()), clip_interval(correct, test_groups, rounds=rounds, seed=bootstrap_seed)


@dataclass
class PhaseScores:
    phase_acc: float | None
    phase_acc_interval: tuple[float, float] | None  # 95%, test videos resampled
    progress_r2: float | None
    kendall_tau: float | None
    tau_nan_pairs: int
    tau_pairs: int
    ap: dict[int, float | None]


def score_embeddings(embeddings: list[np.ndarray], labels: PhaseLabels, splits: np.ndarray, evaluation: np.ndarray,
                     recipe: Recipe) -> PhaseScores:
    """Every metric of one feature source in one order. ``embeddings[k]`` ``[n_k, D]`` per clip of
    ``labels``; ``splits [K]``; ``evaluation`` the clip positions used for tau and AP@K."""
    def stack(split: str):
        members = np.flatnonzero(splits == split)
        if len(members) == 0:
            dim = embeddings[0].shape[1]
            return np.zeros((0, dim), np.float32), np.zeros(0, np.int64), np.zeros(0), np.zeros(0, np.int64)
        return (np.concatenate([embeddings[k] for k in members]),
                np.concatenate([labels.phase[k] for k in members]),
                np.concatenate([labels.progress[k] for k in members]),
                np.concatenate([np.full(len(labels.phase[k]), k) for k in members]))

    train, val, test = (stack(s) for s in SPLITS)
    acc, interval = phase_accuracy(train[0], train[1], val[0], val[1], test[0], test[1], recipe.probe.logistic_c,
                                   len(labels.names), train[3], test[3], recipe.train.seed, recipe.probe.bootstrap_rounds,
                                   recipe.probe.split_seed)
    r2 = progress_r2(train[0], train[2], val[0], val[2], test[0], test[2])
    chosen = [embeddings[k] for k in evaluation]
    tau, nan_pairs, pairs = kendall_alignment(chosen)
    ap = ap_at_k(chosen, [labels.phase[k] for k in evaluation], recipe.probe.phases.ap_k)
    return PhaseScores(acc, interval, r2, tau, nan_pairs, pairs, ap)


# --------------------------------------------------------------------------- the probe


# T and E of the position_only row for a checkpoint without a sequence model (CARL's defaults)
POSITION_ONLY_SIZES = (16, 128)


def _columns(ks: Sequence[int]) -> list[str]:
    return ["features", "order", "phase_acc", "phase_acc_95", "progress_r2", "kendall_tau", "tau_nan_pairs",
            *(f"ap@{k}" for k in ks)]


def _interval_cell(interval: tuple[float, float] | None) -> str | None:
    return None if interval is None else f"[{interval[0]:.3f}–{interval[1]:.3f}]"


def _sources(recipe: Recipe, checkpoint: Path, state: dict, device: torch.device) -> tuple[list[FeatureSource], dict]:
    """Per-frame feature sources (trained, random_init, pixels) and the methods behind them."""
    image_size = recipe.data.image_size
    trained = load_trained_method(recipe, state, checkpoint).to(device).eval()
    methods = {"trained": trained}
    sources: list[FeatureSource] = [encoder_source(
        "trained", trained.encoder, image_size, device,
        identity={**checkpoint_identity(checkpoint, image_size), "backbone": recipe.model.backbone})]
    if "random_init" in recipe.probe.baselines:
        untrained = random_init_method(recipe).to(device).eval()
        methods["random_init"] = untrained
        identity = {"kind": "random_init", "model": recipe_to_dict(recipe)["model"] | {"weights": None},
                    "method": recipe.method.name, "seed": recipe.train.seed, "image_size": image_size,
                    "torch": torch.__version__}
        sources.append(encoder_source("random_init", untrained.encoder, image_size, device, identity))
    if "pixels" in recipe.probe.baselines:
        sources.append(pixel_source(recipe.probe.pixels_size))
    return sources, methods


def _settings(sources, methods, per_clip, orders, labels, frames, dim, device):
    """``(source, order, embeddings per clip)`` of every row: a sequence source in both orders
    and its backbone alone (``<name>_backbone``, order ``any``), position_only in both orders,
    per-frame sources once (order ``any``: they never see the order)."""
    names = [s.name for s in sources]
    names.insert(names.index("pixels") if "pixels" in names else len(names), "position_only")
    for name in names:
        if name == "position_only":
            for order in ORDERS:
                yield name, order, [position_embeddings(len(p), frames, o, dim) for p, o in zip(labels.phase, orders[order])]
        elif name in methods and isinstance(methods[name].encoder, SequenceRepresentation):
            for order in ORDERS:
                yield name, order, [sequence_embeddings(methods[name].encoder, f, frames, o, device)
                                    for f, o in zip(per_clip[name], orders[order])]
            yield f"{name}_backbone", "any", per_clip[name]
        else:
            yield name, "any", per_clip[name]


def probe_phases(
    recipe: Recipe,
    checkpoint: Path,
    state: dict | None = None,
    cache_dir: Path | None = None,
    on_progress: Progress | None = None,
) -> TaskReport:
    """CARL's phase evaluation of a checkpoint against random_init, position_only (and pixels).

    Backbone features are cached in ``cache_dir`` (default the checkpoint's folder
    ``/features``); returns the report, one row per (source, order).
    """
    checkpoint = Path(checkpoint)
    state = state if state is not None else load_checkpoint(checkpoint)
    store = open_frames(recipe.data)
    labels = load_phase_labels(store, store.root_file(PHASES_FILE))
    splits, split_source = phase_splits(recipe, store, labels)
    if not (splits == "train").any():
        raise CLTTError(f"no clip of {labels.source} is in the train split ({split_source}); raise probe.split_fractions[0]")
    evaluation = np.flatnonzero(splits == "test")
    notes = []
    if len(evaluation) < 2:
        evaluation = np.flatnonzero(splits != "train")
        notes.append("fewer than two test videos: Kendall's tau and AP@K use val and test videos")
    if len(evaluation) < 2:
        raise CLTTError(f"Kendall's tau and AP@K need at least two val/test videos, {split_source} gives "
                        f"{len(evaluation)}; raise probe.split_fractions[1:] or add clips")

    device = resolve_device(recipe.train.device)
    sources, methods = _sources(recipe, checkpoint, state, device)
    frame_set = FrameSet(store, labels.clip_index)
    cache_dir = Path(cache_dir) if cache_dir is not None else checkpoint.parent / FEATURES_DIR
    result = extract_features(frame_set, sources, cache_dir=cache_dir, batch_size=recipe.probe.batch_size,
                              workers=max(1, recipe.data.num_workers), on_progress=on_progress)
    offsets = frame_set.offsets
    per_clip = {name: [f[offsets[k]:offsets[k + 1]] for k in range(len(labels.clips))]
                for name, f in result.features.items()}

    sequence = next((m.encoder for m in methods.values() if isinstance(m.encoder, SequenceRepresentation)), None)
    frames, dim = (sequence.sequence_frames, sequence.embedding_dim) if sequence is not None else POSITION_ONLY_SIZES
    orders = {order: [video_order(len(p), order, recipe.probe.split_seed, int(c))
                      for p, c in zip(labels.phase, labels.clip_index)] for order in ORDERS}
    rows, metrics = [], {}
    for name, order, embeddings in _settings(sources, methods, per_clip, orders, labels, frames, dim, device):
        scores = score_embeddings(embeddings, labels, splits, evaluation, recipe)
        row = [name, order, scores.phase_acc, _interval_cell(scores.phase_acc_interval), scores.progress_r2,
               scores.kendall_tau, scores.tau_nan_pairs, *(scores.ap[k] for k in recipe.probe.phases.ap_k)]
        rows.append(row)
        low, high = scores.phase_acc_interval or (None, None)
        numbers = {k: v for k, v in zip(_columns(recipe.probe.phases.ap_k)[2:], row[2:]) if k != "phase_acc_95"}
        metrics[f"{name}/{order}"] = numbers | {"phase_acc_low": low, "phase_acc_high": high,
                                                "tau_pairs": scores.tau_pairs}

    counts = {s: int((splits == s).sum()) for s in SPLITS}
    notes.append(f"{len(labels.clips)} videos, {len(labels.names)} phases ({', '.join(labels.names)}); splits "
                 f"{split_source}: " + ", ".join(f"{s} {n}" for s, n in counts.items())
                 + f"; tau and AP@K over {len(evaluation)} videos")
    nan_total = sum(int(m["tau_nan_pairs"]) for m in metrics.values())
    pairs = len(evaluation) * (len(evaluation) - 1)
    notes.append(f"Kendall's tau: {pairs} ordered video pairs per row; {nan_total} NaN pair(s) in all rows "
                 "(a video matched to one frame throughout), left out of the means")
    notes.append(f"video sequences: interleaved chunks of {frames} frames (the positions the model was trained on); "
                 "shuffled = frames fed in a random order, embeddings mapped back")
    cached = [n for n in result.reused]
    notes.append("backbone features " + (f"reused from {cache_dir} for {', '.join(cached)}" if cached else
                                         f"computed and cached in {cache_dir}")
                 + "; sequence embeddings computed each time")
    epoch = state.get("progress", {}).get("epoch")
    return TaskReport(task="phases", checkpoint=str(checkpoint), epoch=int(epoch) if epoch is not None else None,
                      columns=_columns(recipe.probe.phases.ap_k), rows=rows, metrics=metrics, notes=notes)
