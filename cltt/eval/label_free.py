"""``probe.task: label_free``: what a representation learned, measured without any labels.

Data: the frames of a seeded fraction of the clips of ``data.root``, the *held-out clips*
(``probe.label_free.held_out`` of them, at least two, drawn with ``probe.split_seed``; 1.0
takes every clip, which is the setting for a root the run never trained on:
``cltt probe RUN data.root=OTHER probe.label_free.held_out=1.0``). Training reads every clip
of its own ``data.root``, so on the run's own root "held-out" means "not chosen for
anything else", not "unseen". Features are those of :mod:`cltt.eval.features` (trained,
random_init, pixels; cached the same way). Every measure below is computed per feature
source on ``X [N, D]``, the features of the N held-out frames, and ``u_i = z_i / ||z_i||``
where ``z`` is ``X`` standardised by the held-out frames' own mean and std per dimension
(``probe.standardise``, default true, as kNN and retrieval of ``classes`` do; no labels are
involved) for alignment, uniformity and retrieval, and ``X`` itself for rankme and spread.

    rankme       (Garrido et al. 2023) the effective rank exp(-sum_i p_i log p_i), with
                 p_i = s_i / sum_j s_j + eps (eps = 1e-7), s the singular values of X (raw, not
                 centred); between 1 and min(N, D). s_i = sqrt(lambda_i) with lambda the
                 eigenvalues of the Gram matrix X^T X [D, D], summed clip by clip
    alignment    (Wang & Isola 2020) E ||u_i - u_j||^2 over the positive pairs: every frame and
                 the next frame of its clip (temporal neighbours); 0 is best, 4 the worst
    uniformity   (Wang & Isola 2020) log E exp(-2 ||u_i - u_j||^2) over pairs i != j of frames:
                 every pair when there are at most probe.label_free.pairs of them, else that
                 many pairs drawn uniformly (seeded). 0 for a point mass, lower is more uniform
                 (about -4 for points spread evenly on a high-dimensional sphere)
    spread       the collapse monitor's sqrt(D) * mean_d std_n(u[n, d])
                 (:func:`cltt.engine.collapse.embedding_spread`): 1 evenly spread, 0 collapsed
    retrieval    at each time gap g of probe.label_free.gaps (seconds): a query is a frame of
                 time t in clip c (probe.label_free.queries of them at most, drawn seeded); its
                 target is the frame of clip c nearest in time to t + g, and the query is skipped
                 when t + g lies beyond the clip's last frame (more than half a frame interval)
                 or that frame is less than g / 2 from t (a gap shorter than the frame interval).
                 The candidates are every held-out frame except the frames of clip c with
                 |t' - t| < g / 2 (the query's own window; a frame exactly g / 2 away is a
                 candidate: times within 1e-6 s count as equal, TIME_EPS). With cosine similarity s_j = u_q . u_j,
                 rank = #{candidates j : s_j >= s_target - 1e-6} (target included: ties count
                 against the query, so a collapsed encoder ranks last, not first), then
                 recall@k = [rank <= k] (k of probe.label_free.recall_at) and AP = 1 / rank
                 (the average precision of a ranking with one relevant item; mAP its mean).

Each figure comes with a 95% interval from a bootstrap over held-out clips
(:mod:`cltt.eval.bootstrap`, ``probe.bootstrap_rounds``, seeded by ``probe.split_seed``): the
per-pair and per-query values are pooled clip by clip (a uniformity pair belongs to the clip
of one of its two frames, drawn at random; its interval is the log of the interval of the mean
of exp(-2 d^2)); rankme and spread are recomputed for every resample from per-clip sums (X^T X of each clip;
sums of u and u^2), rankme for at most ``probe.label_free.rankme_rounds`` resamples (each one
is an eigendecomposition of a D x D matrix, 0.1-0.3 s of CPU at D = 512, so the default is 20
and RankMe's interval is a rough one: raise the key for a report); the percentiles of both are
shifted by the bootstrap's bias, mean(resamples) - point (a resample repeats clips, which lowers
the rank and the spread).

Frame times come from :func:`frame_times`: the store's recorded timestamps, else nominal ones,
the frame's number over the frame rate of the clip's extract marker or 30 fps
(:mod:`cltt.data.timestamps`); the report says when some are nominal.

Memory: the similarities are computed ``[block, N]`` at a time (never N x N); on 100,000
frames of 512-d features (``benchmarks/label_free.py``) the measures take well under a minute
and 1 GB on 2 cores.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from cltt.data.build import open_frames
from cltt.data.stores.base import FrameStore
from cltt.engine.checkpoint import load_checkpoint
from cltt.engine.collapse import embedding_spread
from cltt.engine.device import resolve_device
from cltt.engine.run_files import FEATURES_DIR
from cltt.errors import CLTTError
from cltt.eval.bootstrap import clip_interval
from cltt.eval.features import FeatureSource, FrameSet, Progress, checkpoint_identity, extract_features, pixel_source
from cltt.eval.metrics_eval import append_eval_values, keep_eval_rows_up_to
from cltt.eval.report import TaskReport, unused_level_note
from cltt.recipe.probes.tasks.label_free import gap_name

RANKME_EPS = 1e-7
TIE = 1e-6  # cosine similarities this close to the target's count as ties (against the query)
# seconds: two times this close are equal when frames are compared with t ± g/2 or t + g. Times like
# i * 0.1 are not exact in binary (0.3 - 0.2 > 0.1 > 0.2 - 0.1), so without it a frame exactly g/2
# from the query fell inside the window of some queries and outside that of others (10 fps, g = 0.2:
# 6 of 16 queries); far below any frame interval (1e-3 s at 1000 fps)
TIME_EPS = 1e-6
BLOCK = 256  # query rows of similarities at a time: [BLOCK, N] float32
LEVEL = 0.95


# --------------------------------------------------------------------------- data


def frame_times(store: FrameStore, clip: int) -> np.ndarray:
    """Seconds of each frame of store clip ``clip`` ``[n]`` float64: the store's times
    (``FrameStore.frame_times``: recorded, or nominal from a frame rate, as :func:`times_recorded`
    says); for a store without them, the frame number."""
    recorded = getattr(store, "frame_times", None)
    if recorded is not None:
        return np.asarray(recorded(clip), dtype=np.float64)
    return np.arange(int(store.frame_counts[clip]), dtype=np.float64)


def times_recorded(store: FrameStore, clip: int) -> bool:
    """Whether :func:`frame_times` of ``clip`` are recorded timestamps rather than nominal times."""
    recorded = getattr(store, "times_recorded", None)
    return bool(recorded(clip)) if recorded is not None else False


def held_out_clips(num_clips: int, fraction: float, seed: int) -> np.ndarray:
    """Store numbers of the held-out clips, sorted: ``round(fraction * num_clips)`` of them (at
    least 2) drawn without replacement by a generator seeded with ``seed``."""
    if num_clips < 2:
        raise CLTTError(f"the label-free probe needs at least 2 clips (retrieval searches other clips); "
                        f"the root has {num_clips}")
    count = min(num_clips, max(2, int(round(fraction * num_clips))))
    return np.sort(np.random.default_rng(seed).choice(num_clips, size=count, replace=False))


@dataclass
class HeldOut:
    """The held-out frames: ``frames`` (a :class:`FrameSet`), and per frame its clip position
    ``clips [N]`` (0..K-1 in set order) and time ``times [N]`` in seconds."""

    store: FrameStore
    frames: FrameSet
    clips: np.ndarray
    times: np.ndarray
    timed: bool  # every clip has recorded timestamps


def held_out_frames(store: FrameStore, fraction: float, seed: int) -> HeldOut:
    chosen = held_out_clips(store.num_clips, fraction, seed)
    frames = FrameSet(store, chosen)
    clips = np.repeat(np.arange(len(chosen)), frames.frame_counts)
    times = np.concatenate([frame_times(store, int(c)) for c in chosen]) if len(chosen) else np.zeros(0)
    return HeldOut(store, frames, clips, times, all(times_recorded(store, int(c)) for c in chosen))


# --------------------------------------------------------------------------- the measures


def _unit(features: np.ndarray) -> np.ndarray:
    x = np.asarray(features, dtype=np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def effective_rank(singular_values: np.ndarray, eps: float = RANKME_EPS) -> float:
    """RankMe of singular values ``s [R]``: exp(-sum p_i log p_i), p_i = s_i / sum s + eps."""
    s = np.clip(np.asarray(singular_values, dtype=np.float64), 0, None)
    p = s / max(s.sum(), 1e-300) + eps
    return float(np.exp(-(p * np.log(p)).sum()))


def rankme(features: np.ndarray) -> float:
    """The effective rank of ``features [N, D]`` (module doc): about k for a rank-k matrix
    with k equal singular values."""
    return effective_rank(np.linalg.svd(np.asarray(features, dtype=np.float64), compute_uv=False))


def rankme_interval(features: np.ndarray, clips: np.ndarray, rounds: int, seed: int, level: float = LEVEL,
                    chunk: int = 32) -> tuple[float, tuple[float, float] | None]:
    """(RankMe of ``features [N, D]``, its bootstrap interval over ``clips [N]``): each of
    ``rounds`` resamples draws K clips with replacement (multiplicities w, as in
    :func:`cltt.eval.bootstrap.bootstrap_accuracies`), forms sum_c w_c X_c^T X_c and takes the
    effective rank r* of the square roots of its eigenvalues; the interval is the percentiles of
    r* shifted by the bootstrap's bias, (q2.5(r*) - b, q97.5(r*) - b) with b = mean(r*) - r,
    since repeated clips bias r* low. Memory:
    [rounds, D, D] float64 plus ``chunk`` clip Gram matrices."""
    x = np.asarray(features, dtype=np.float64)  # float32 Gram matrices would put a noise floor of
    if x.shape[0] == 0:                          # ~3e-4 s_max under every singular value
        return float("nan"), None
    ids, index = np.unique(clips, return_inverse=True)
    d = x.shape[1]
    weights = np.random.default_rng(seed).multinomial(len(ids), np.full(len(ids), 1.0 / len(ids)),
                                                      size=rounds).astype(np.float64)  # [R, K]
    total = np.zeros((d, d), dtype=np.float64)
    resampled = np.zeros((rounds, d * d), dtype=np.float64)
    order = np.argsort(index, kind="stable")
    lengths = np.bincount(index, minlength=len(ids))
    bounds = np.concatenate([[0], np.cumsum(lengths)])
    by_length = np.argsort(lengths, kind="stable")  # chunks of similar length: little zero padding
    for start in range(0, len(ids), chunk):
        members = by_length[start:start + chunk]
        stacked = np.zeros((len(members), int(lengths[members].max()), d))  # zero rows add nothing to a Gram
        for row, c in enumerate(members):
            stacked[row, :lengths[c]] = x[order[bounds[c]:bounds[c + 1]]]
        grams = np.matmul(stacked.transpose(0, 2, 1), stacked)  # [c, D, D], one batched product
        total += grams.sum(axis=0)
        resampled += weights[:, members] @ grams.reshape(len(members), d * d)
    point = effective_rank(np.sqrt(np.clip(np.linalg.eigvalsh(total), 0, None)))
    if rounds == 0:
        return point, None
    eig = np.linalg.eigvalsh(resampled.reshape(rounds, d, d))
    values = [effective_rank(np.sqrt(np.clip(e, 0, None))) for e in eig]
    # a resample repeats clips, so its rank is biased low (60 held-out clips of rotating objects: a point
    # of 11.5, every resample between 9.9 and 11.0)
    return point, bias_shifted_interval(values, point, level)


def bias_shifted_interval(values, point: float, level: float = LEVEL) -> tuple[float, float]:
    """The ``level`` percentile interval of the bootstrap values ``values [R]`` of a statistic
    whose point estimate is ``point``, shifted by the bootstrap's bias b = mean(values) - point:
    (q_lo - b, q_hi - b). For statistics of how spread the frames are (RankMe, the collapse
    spread): a resample repeats clips, so it holds fewer distinct frames and its value is biased
    low; unshifted, the interval can miss the point (8 well-separated clips: every resample with
    a repeated clip is less spread, and 8!/8^8 = 0.2% of resamples have none)."""
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(np.asarray(values, dtype=np.float64), [tail, 100 - tail])
    bias = float(np.mean(values)) - point
    return float(low - bias), float(high - bias)


def alignment_pairs(clips: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The positive pairs (i, i + 1) of consecutive frames of one clip: (i [P], j [P])."""
    clips = np.asarray(clips)
    i = np.flatnonzero(clips[:-1] == clips[1:])
    return i, i + 1


def alignment_values(features: np.ndarray, clips: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``||u_i - u_j||^2`` of each positive pair ``[P]`` and the clip of each pair ``[P]``;
    alignment is their mean."""
    u = _unit(features)
    i, j = alignment_pairs(clips)
    return ((u[i] - u[j]) ** 2).sum(axis=1).astype(np.float64), np.asarray(clips)[i]


def uniformity_pairs(n: int, pairs: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Pairs i != j of n frames: all n(n-1)/2 when at most ``pairs``, each in a seeded random
    order, else ``pairs`` drawn uniformly (i, then j among the other n - 1), seeded. Either way
    ``i`` is a uniform frame, so each clip owns (as the clip of ``i``) its share of the pairs:
    with i < j the first clip owned 24 times the pairs of the last of 12 equal clips, and the
    interval widened and hung on the clips' order."""
    if n * (n - 1) // 2 <= pairs:
        i, j = np.triu_indices(n, k=1)
        swap = np.random.default_rng(seed).random(len(i)) < 0.5
        return np.where(swap, j, i), np.where(swap, i, j)
    rng = np.random.default_rng(seed)
    i = rng.integers(0, n, size=pairs)
    j = rng.integers(0, n - 1, size=pairs)
    return i, j + (j >= i)


def uniformity_values(features: np.ndarray, clips: np.ndarray, pairs: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``exp(-2 ||u_i - u_j||^2)`` of each pair ``[P]`` and the clip of its first frame
    ``[P]``; uniformity is the log of their mean."""
    u = _unit(features)
    i, j = uniformity_pairs(len(u), pairs, seed)
    squared = np.clip(2.0 - 2.0 * np.einsum("pd,pd->p", u[i], u[j], dtype=np.float64), 0, None)
    return np.exp(-2.0 * squared), np.asarray(clips)[i]


def uniformity(features: np.ndarray, pairs: int = 100_000, seed: int = 0) -> float:
    """log E exp(-2 ||u_i - u_j||^2) of ``features [N, D]`` (module doc)."""
    values, _ = uniformity_values(features, np.zeros(len(features)), pairs, seed)
    return float(np.log(values.mean()))


def spread_interval(features: np.ndarray, clips: np.ndarray, rounds: int, seed: int,
                    level: float = LEVEL) -> tuple[float | None, tuple[float, float] | None]:
    """(the collapse spread of ``features [N, D]``, its clip-bootstrap interval): each resample
    recomputes sqrt(D) * mean_d std_n(u) from per-clip sums of u and u^2 (unbiased std, as
    :func:`~cltt.engine.collapse.embedding_spread`); the percentiles are shifted by the
    bootstrap's bias as RankMe's are (:func:`bias_shifted_interval`): on 7 held-out clips of real
    video the unshifted interval put every source's point within 0.003-0.014 of its top."""
    point = embedding_spread(torch.from_numpy(np.ascontiguousarray(features, dtype=np.float32)))
    if point is None or rounds == 0:
        return point, None
    u = _unit(features).astype(np.float64)
    ids, index = np.unique(clips, return_inverse=True)
    count = np.bincount(index).astype(np.float64)  # [K]
    first = np.zeros((len(ids), u.shape[1]))
    second = np.zeros((len(ids), u.shape[1]))
    np.add.at(first, index, u)
    np.add.at(second, index, u * u)
    weights = np.random.default_rng(seed).multinomial(len(ids), np.full(len(ids), 1.0 / len(ids)),
                                                      size=rounds).astype(np.float64)
    n = weights @ count  # [R]
    mean = (weights @ first) / n[:, None]
    variance = ((weights @ second) - n[:, None] * mean ** 2) / np.maximum(n - 1, 1)[:, None]
    values = np.sqrt(u.shape[1]) * np.sqrt(np.clip(variance, 0, None)).mean(axis=1)
    return point, bias_shifted_interval(values, point, level)


def retrieval_targets(clips: np.ndarray, times: np.ndarray, gap: float) -> np.ndarray:
    """Per frame ``[N]``: the index of its target at ``gap`` seconds (the frame of its clip
    nearest in time to t + gap), or -1 where t + gap lies more than half a frame interval
    beyond the clip's last frame or the nearest frame is less than gap / 2 from t (inside the
    query's own window). Frames of a clip are contiguous and in time order."""
    clips, times = np.asarray(clips), np.asarray(times, dtype=np.float64)
    out = np.full(len(clips), -1, dtype=np.int64)
    starts = np.flatnonzero(np.r_[True, clips[1:] != clips[:-1]])
    for start, stop in zip(starts, np.r_[starts[1:], len(clips)]):
        t = times[start:stop]
        step = float(np.median(np.diff(t))) if len(t) > 1 else 0.0
        wanted = t + gap
        nearest = np.clip(np.searchsorted(t, wanted), 1, max(len(t) - 1, 1))
        left = np.clip(nearest - 1, 0, len(t) - 1)
        right = np.clip(nearest, 0, len(t) - 1)
        # t + g halfway between two frames takes the earlier, for every query alike (TIME_EPS)
        pick = np.where(np.abs(t[left] - wanted) <= np.abs(t[right] - wanted) + TIME_EPS, left, right)
        # a target past the clip's end, or inside the query's own window (a gap under a frame), is none
        ok = (wanted <= t[-1] + step / 2 + TIME_EPS) & (np.abs(t[pick] - t) >= gap / 2 - TIME_EPS)
        out[start:stop] = np.where(ok, start + pick, -1)
    return out


def own_windows(clips: np.ndarray, times: np.ndarray, gap: float) -> tuple[np.ndarray, np.ndarray]:
    """Per frame ``[N]``, the range [lo, hi) of frames left out of its candidates: its clip's
    frames with |t' - t| < gap / 2 (contiguous, since a clip's frames are in time order). Times
    within :data:`TIME_EPS` count as equal, so a frame exactly gap / 2 away is a candidate for every
    query, however its time rounds (0.3 - 0.2 and 0.2 - 0.1 differ in float64)."""
    clips, times = np.asarray(clips), np.asarray(times, dtype=np.float64)
    lo = np.empty(len(clips), dtype=np.int64)
    hi = np.empty(len(clips), dtype=np.int64)
    starts = np.flatnonzero(np.r_[True, clips[1:] != clips[:-1]])
    for start, stop in zip(starts, np.r_[starts[1:], len(clips)]):
        t = times[start:stop]
        lo[start:stop] = start + np.searchsorted(t, t - gap / 2 + TIME_EPS, side="right")
        hi[start:stop] = start + np.searchsorted(t, t + gap / 2 - TIME_EPS, side="left")
    return lo, hi


def temporal_retrieval(features: np.ndarray, clips: np.ndarray, times: np.ndarray, gaps: list[float],
                       recall_at: list[int], queries: np.ndarray | None = None,
                       block: int = BLOCK) -> dict[float, dict[str, np.ndarray]]:
    """Temporal retrieval (module doc) of ``features [N, D]`` with ``clips [N]`` and ``times
    [N]`` (a clip's frames contiguous, in time order), at each gap of ``gaps``.

    ``queries``: the query frames (default every frame). Returns per gap ``{"query": [M]
    indices of the queries that have a target, "rank": [M], "recall@k": [M] 0/1, "AP": [M]}``.
    The similarities are computed ``[block, N]`` at a time; the ranks are counts, so no sort
    and no N x N matrix.
    """
    u = torch.from_numpy(_unit(features))
    clips = np.asarray(clips)
    queries = np.arange(len(u)) if queries is None else np.asarray(queries, dtype=np.int64)
    columns = torch.arange(len(u))
    setup = {}
    for gap in gaps:
        targets = retrieval_targets(clips, times, gap)
        lo, hi = own_windows(clips, times, gap)
        setup[gap] = (targets, torch.from_numpy(lo), torch.from_numpy(hi))
    ranks: dict[float, list[np.ndarray]] = {gap: [] for gap in gaps}
    kept: dict[float, list[np.ndarray]] = {gap: [] for gap in gaps}
    for start in range(0, len(queries), block):
        rows = queries[start:start + block]
        sims = u[torch.from_numpy(rows)] @ u.T  # [b, N]
        for gap in gaps:
            targets, lo, hi = setup[gap]
            has = targets[rows] >= 0
            if not has.any():
                continue
            pick = torch.from_numpy(np.flatnonzero(has))
            s = sims[pick]
            target_sim = s.gather(1, torch.from_numpy(targets[rows[has]])[:, None])
            q = torch.from_numpy(rows[has])
            inside = (columns[None, :] >= lo[q][:, None]) & (columns[None, :] < hi[q][:, None])
            rank = ((s >= target_sim - TIE) & ~inside).sum(dim=1)
            ranks[gap].append(rank.numpy())
            kept[gap].append(rows[has])
    out = {}
    for gap in gaps:
        rank = np.concatenate(ranks[gap]) if ranks[gap] else np.zeros(0, dtype=np.int64)
        found = {"query": np.concatenate(kept[gap]) if kept[gap] else np.zeros(0, dtype=np.int64), "rank": rank}
        for k in recall_at:
            found[f"recall@{k}"] = (rank <= k).astype(np.float64)
        found["AP"] = 1.0 / np.maximum(rank, 1)
        out[gap] = found
    return out


# --------------------------------------------------------------------------- one source


def measure_names(config) -> list[str]:
    """The measures in table order: rankme, alignment, uniformity, spread, then recall@k and
    mAP per gap (``recall@5_1s``, ``mAP_1s``)."""
    names = ["rankme", "alignment", "uniformity", "spread"]
    for gap in config.gaps:
        names += [f"recall@{k}_{gap_name(gap)}" for k in config.recall_at] + [f"mAP_{gap_name(gap)}"]
    return names


def _interval(values: np.ndarray, clips: np.ndarray, rounds: int, seed: int) -> tuple[float | None, list | None]:
    if len(values) == 0:
        return None, None
    found = clip_interval(values, clips, rounds, seed)
    return float(np.mean(values)), None if found is None else list(found)


def standardised(features: np.ndarray) -> np.ndarray:
    """``(x - mean) / std`` per dimension over the rows of ``features [N, D]`` (a constant
    dimension keeps std 1): frames judged by how they differ from the other frames, not by the
    direction all features share (a ReLU encoder's features have cosines near 1 to each other)."""
    x = np.asarray(features, dtype=np.float32)
    std = x.std(axis=0)
    return (x - x.mean(axis=0)) / np.where(std > 1e-12, std, 1.0)


def measure(features: np.ndarray, clips: np.ndarray, times: np.ndarray, config, rounds: int,
            seed: int, standardise: bool = True) -> dict[str, tuple[float | None, list[float] | None]]:
    """Every label-free measure of one source's held-out ``features [N, D]``: name -> (value,
    [low, high] 95% clip-bootstrap interval or None). ``config`` is ``probe.label_free``."""
    out: dict[str, tuple[float | None, list[float] | None]] = {}
    if len(features) < 2:
        return {name: (None, None) for name in measure_names(config)}
    value, found = rankme_interval(features, clips, min(rounds, config.rankme_rounds), seed)
    out["rankme"] = (value, None if found is None else list(found))
    compared = standardised(features) if standardise else features  # rankme and spread: the raw features
    out["alignment"] = _interval(*alignment_values(compared, clips), rounds, seed)
    values, pair_clips = uniformity_values(compared, clips, config.pairs, seed)
    mean = float(values.mean())
    found = clip_interval(values, pair_clips, rounds, seed)
    out["uniformity"] = (float(np.log(mean)), None if found is None else [float(np.log(b)) for b in found])
    spread, found = spread_interval(features, clips, rounds, seed)
    out["spread"] = (spread, None if found is None else list(found))
    queries = np.arange(len(features))
    if len(queries) > config.queries:
        queries = np.sort(np.random.default_rng(seed).choice(len(queries), size=config.queries, replace=False))
    for gap, found in temporal_retrieval(compared, clips, times, config.gaps, config.recall_at, queries).items():
        query_clips = clips[found["query"]]
        for k in config.recall_at:
            out[f"recall@{k}_{gap_name(gap)}"] = _interval(found[f"recall@{k}"], query_clips, rounds, seed)
        out[f"mAP_{gap_name(gap)}"] = _interval(found["AP"], query_clips, rounds, seed)
    return out


def eval_values(found: dict[str, tuple[float | None, list[float] | None]]) -> dict[str, float | None]:
    """The ``metrics_eval.csv`` cells of one source's measures: ``lf_<name>``, ``lf_<name>_low``,
    ``lf_<name>_high``."""
    cells: dict[str, float | None] = {}
    for name, (value, interval) in found.items():
        cells[f"lf_{name}"] = value
        cells[f"lf_{name}_low"], cells[f"lf_{name}_high"] = interval if interval else (None, None)
    return cells


# --------------------------------------------------------------------------- cltt probe


def feature_sources(recipe, checkpoint: Path, state: dict, device: torch.device,
                    baselines: tuple[str, ...] | None = None) -> list[FeatureSource]:
    """The per-frame feature sources: the checkpoint's encoder (``trained``), then the baselines
    (default ``probe.baselines``: ``random_init``, ``pixels``), cached as ``cltt probe``'s."""
    from cltt.eval.probe import load_trained_method, random_init_method
    from cltt.eval.window_features import WindowSource, source_for
    from cltt.recipe import recipe_to_dict

    image_size = recipe.data.image_size
    baselines = recipe.probe.baselines if baselines is None else baselines
    sources: list[FeatureSource] = [source_for(
        "trained", load_trained_method(recipe, state, checkpoint).to(device).encoder, image_size, device,
        {**checkpoint_identity(checkpoint, image_size), "backbone": recipe.model.backbone}, "frame")]
    if "random_init" in baselines:
        identity = {"kind": "random_init", "model": recipe_to_dict(recipe)["model"] | {"weights": None},
                    "method": recipe.method.name, "seed": recipe.train.seed, "image_size": image_size,
                    "torch": torch.__version__}
        sources.append(source_for("random_init", random_init_method(recipe).to(device).encoder, image_size,
                                  device, identity, "frame"))
    if "pixels" in baselines:
        sources.append(pixel_source(recipe.probe.pixels_size))
    if any(isinstance(s, WindowSource) for s in sources):
        raise CLTTError(f"the label-free probe measures per-frame features; model.backbone={recipe.model.backbone} "
                        "gives one vector per window")
    return sources


def _interval_cell(value: float | None, interval: list[float] | None) -> str | None:
    """``[low–high]``; ``n/a`` for a figure without an interval (:func:`missing_notes` says why)."""
    if interval is None:
        return None if value is None else "n/a"
    return f"[{interval[0]:.3f}–{interval[1]:.3f}]"


def unreachable_gaps_note(held: HeldOut, gaps: list[float]) -> str | None:
    """The note for the gaps at which no held-out frame has a target (:func:`retrieval_targets`),
    so their recall@k and mAP stay empty; None when every gap has one. From the times alone, so
    ``cltt probe`` and the training-time probe say it alike."""
    empty = [gap for gap in gaps if not (retrieval_targets(held.clips, held.times, gap) >= 0).any()]
    if not empty:
        return None
    longest = max((float(np.ptp(held.times[held.clips == c])) for c in np.unique(held.clips)), default=0.0)
    return (f"gap{'s' if len(empty) > 1 else ''} {', '.join(gap_name(g) for g in empty)}: no held-out frame has a frame "
            f"that much later in its clip (the longest clip spans {longest:.2f} s), so their recall@k and mAP stay "
            "empty; set probe.label_free.gaps shorter")


def missing_notes(results: dict[str, dict], held: HeldOut, config) -> list[str]:
    """One note per reason a figure, or its interval, is missing or says nothing (``results``:
    source -> :func:`measure`): an interval over fewer than 2 clips cannot be measured (n/a, as
    :func:`cltt.eval.bootstrap.clip_interval`); alignment needs a clip of two frames; retrieval
    needs a drawn query with a target; recall@k is 1 for a query with at most k candidates."""
    notes = []
    names = measure_names(config)
    no_interval = [name for name in names if any(f[name][0] is not None and f[name][1] is None
                                                 for f in results.values())]
    if no_interval:
        keys = ([f"pairs (now {config.pairs})"] if "uniformity" in no_interval else []) + \
            ([f"queries (now {config.queries})"] if any("_" in name for name in no_interval) else [])
        notes.append(f"{', '.join(no_interval)}: no 95% interval (n/a): the figure rests on fewer than 2 held-out "
                     f"clips; raise {' or '.join(f'probe.label_free.{k}' for k in keys + ['held_out'])}")
    if all(f["alignment"][0] is None for f in results.values()):
        notes.append("alignment: no held-out clip has two frames (its pairs are consecutive frames of a clip)")
    n = len(held.clips)
    for gap in config.gaps:
        targets = retrieval_targets(held.clips, held.times, gap)
        lo, hi = own_windows(held.clips, held.times, gap)
        if all(f[f"mAP_{gap_name(gap)}"][0] is None for f in results.values()) and (targets >= 0).any():
            notes.append(f"gap {gap_name(gap)}: none of the {min(config.queries, n)} drawn queries "
                         f"(probe.label_free.queries) has a frame {gap:g} s later in its clip; raise it")
        candidates = (n - (hi - lo))[targets >= 0]  # every held-out frame less the own window
        for k in config.recall_at:
            trivial = int((candidates <= k).sum())
            if trivial:
                notes.append(f"recall@{k}_{gap_name(gap)}: {trivial} of the {len(candidates)} frames with a target "
                             f"have at most {k} candidates ({n} held-out frames less the own window), so they count "
                             "as found whatever the features; set probe.label_free.recall_at lower")
    return notes


def label_free_report(recipe, checkpoint: Path, epoch: int | None, results: dict[str, dict], held: HeldOut,
                      cache: dict[str, str]) -> TaskReport:
    """The :class:`TaskReport` of the measures of each source (``results``: source -> :func:`measure`)."""
    config = recipe.probe.label_free
    names = measure_names(config)
    # one row per measure, a value and its 95% interval per source: a table that fits a terminal
    rows = [[name, *(cell for found in results.values() for cell in (found[name][0], _interval_cell(*found[name])))]
            for name in names]
    metrics = {source: {name: found[name][0] for name in names} |
               {f"{name}_low": (found[name][1] or [None, None])[0] for name in names} |
               {f"{name}_high": (found[name][1] or [None, None])[1] for name in names}
               for source, found in results.items()}
    notes = [f"{len(held.frames.clip_index)} held-out clips ({held.frames.num_frames} frames) of "
             f"{held.store.num_clips} in {held.store.root} (probe.label_free.held_out={config.held_out:g}, "
             f"probe.split_seed={recipe.probe.split_seed}); figures with 95% intervals over clips"]
    notes += [note] if (note := unreachable_gaps_note(held, config.gaps)) else []
    notes += unused_level_note(recipe.probe.level, "label_free", "frames")
    if not held.timed:
        untimed = [int(c) for c in held.frames.clip_index if not times_recorded(held.store, int(c))]
        rates = sorted({held.store.clip_times(c).source for c in untimed}) if hasattr(held.store, "clip_times") else []
        notes.append(f"{len(untimed)} held-out clip(s) have no recorded timestamps: their frame times are nominal "
                     f"({', '.join(rates) or 'frame numbers'}), so the gaps are seconds at that rate")
    notes += missing_notes(results, held, config)
    notes += [f"features {name}: {how}" for name, how in cache.items()]
    report = TaskReport(task="label_free", checkpoint=str(checkpoint), epoch=epoch,
                        columns=["measure", *(c for source in results for c in (source, f"{source}_95"))],
                        rows=rows, metrics=metrics, notes=notes)
    if epoch is not None and "trained" in results:
        report.eval_values = eval_values(results["trained"])
    return report


def probe_label_free(recipe, checkpoint: Path, state: dict | None = None, cache_dir: Path | None = None,
                     on_progress: Progress | None = None) -> TaskReport:
    """RankMe, alignment, uniformity, spread and temporal retrieval of the held-out frames for
    the checkpoint's encoder and the baselines of ``probe.baselines`` (module doc)."""
    checkpoint = Path(checkpoint)
    state = state if state is not None else load_checkpoint(checkpoint)
    config = recipe.probe.label_free
    held = held_out_frames(open_frames(recipe.data, synthetic=recipe.extract.synthetic), config.held_out,
                           recipe.probe.split_seed)
    device = resolve_device(recipe.train.device)
    sources = feature_sources(recipe, checkpoint, state, device)
    cache_dir = Path(cache_dir) if cache_dir is not None else checkpoint.parent / FEATURES_DIR
    result = extract_features(held.frames, sources, cache_dir=cache_dir, batch_size=recipe.probe.batch_size,
                              workers=max(1, recipe.data.num_workers), on_progress=on_progress,
                              decode_at_least=recipe.data.image_size)
    results = {s.name: measure(result.features[s.name], held.clips, held.times, config, recipe.probe.bootstrap_rounds,
                               recipe.probe.split_seed, recipe.probe.standardise) for s in sources}
    cache = {s.name: f"{'reused' if s.name in result.reused else 'computed'} {result.paths.get(s.name, '')}".strip()
             for s in sources}
    epoch = state.get("progress", {}).get("epoch")
    return label_free_report(recipe, checkpoint, int(epoch) if epoch is not None else None, results, held, cache)


# --------------------------------------------------------------------------- during training


class LabelFreeDuringTraining:
    """The trainer's ``probe.every`` for task ``label_free``: the measures of the current
    encoder on the held-out frames (trained features only; nothing cached), appended to
    ``RUN_DIR/metrics_eval.csv`` as ``lf_*`` columns and returned as ``label_free/*`` scalars
    for TensorBoard and W&B."""

    def __init__(self, recipe, run_dir: Path):
        self.recipe, self.run_dir = recipe, Path(run_dir)
        self.held = held_out_frames(open_frames(recipe.data, synthetic=recipe.extract.synthetic),
                                    recipe.probe.label_free.held_out, recipe.probe.split_seed)
        self.said = False  # the note on gaps no frame reaches: with the first probe only

    def forget_after(self, epoch: int) -> None:
        keep_eval_rows_up_to(self.run_dir, epoch)

    def __call__(self, method: torch.nn.Module, device: torch.device, epoch: int) -> tuple[str, dict[str, float]]:
        from cltt.eval.window_features import WindowSource, source_for

        recipe = self.recipe
        source = source_for("trained", method.encoder, recipe.data.image_size, device, None, "frame")
        if isinstance(source, WindowSource):
            raise CLTTError("the label-free probe measures per-frame features; this model gives one vector per window")
        features = extract_features(self.held.frames, [source], batch_size=recipe.probe.batch_size,
                                    workers=max(1, recipe.data.num_workers),
                                    decode_at_least=recipe.data.image_size).features["trained"]
        found = measure(features, self.held.clips, self.held.times, recipe.probe.label_free,
                        recipe.probe.bootstrap_rounds, recipe.probe.split_seed, recipe.probe.standardise)
        said, self.said = self.said, True
        append_eval_values(self.run_dir, epoch, eval_values(found))
        scalars = {f"label_free/{name}": value for name, (value, _) in found.items() if value is not None}
        shown = [name for name in ("rankme", "alignment", "uniformity") if found[name][0] is not None]
        first_map = next((name for name in found if name.startswith("mAP_") and found[name][0] is not None), None)
        note = ", ".join(f"{name} {found[name][0]:.3f}" for name in shown + ([first_map] if first_map else []))
        empty = None if said else unreachable_gaps_note(self.held, recipe.probe.label_free.gaps)
        return note + (f"; note: {empty}" if empty else ""), scalars  # once a run: the times do not change
