"""Task ``frames``: the readouts of ``probe.probes`` on frames labelled by time.

Labels: a file ``clip,start,end,label`` (``probe.frames.segments``, default
``ROOT/segments.csv``; ``cltt extract --synthetic playroom`` writes one, the toy nearest the
image centre per frame) mapped onto frames by :func:`cltt.eval.segments.load_segments`: frame
``t`` of a clip takes the label of the segment with ``start <= t < end``. A sample is one
labelled frame (frames in no segment are left out), ``x_j = h_j`` the frozen features ``[F]``
of frame ``j`` as task ``classes`` extracts them (the same cache).

Clips are the groups. Splits are by clip, as task ``classes`` makes them from the clip labels
file (``probe.labels``, default ``ROOT/labels.csv``: its split column, or drawn with
``probe.split_seed`` stratified by clip label), so no clip has frames on two sides; a frame
class of val or test that no train frame shows is refused. The readouts choose C and the
ridge on val (or on folds of train grouped by clip), and every figure's 95% interval resamples
clips of its split (:mod:`cltt.eval.bootstrap`): frames of one clip are not independent.

    report = Frames.run(recipe, checkpoint)          # a ProbeReport, level "frame", unit "clips"
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cltt.errors import CLTTError
from cltt.eval.tasks import ProbeTask, register_task

SEGMENTS_FILE = "segments.csv"


@register_task("frames")
class Frames(ProbeTask):
    """Frames labelled by time (probe.frames.segments, default ROOT/segments.csv); splits and bootstrap by clip."""

    smallest_case = {
        "data": {"synthetic": "playroom", "window_size": 3, "image_size": 32, "num_workers": 0},
        "extract": {"synthetic": {"clips": 12, "frames": 8, "size": 32, "max_objects": 2}},
        "model": {"backbone": "tiny_cnn", "projection_dim": 16},
        "train": {"epochs": 1, "batch_size": 8, "device": "cpu"},
        "probe": {"task": "frames", "logistic_c": [1.0], "knn_k": 3, "bootstrap_rounds": 100},
    }

    @staticmethod
    def run(recipe, checkpoint: Path, state=None, cache_dir=None, on_progress=None):
        return probe_frames(recipe, checkpoint, state, cache_dir, on_progress)


def frame_targets(clip_index: np.ndarray, frame_counts: np.ndarray, segments) -> tuple[np.ndarray, list[str]]:
    """Per-frame class numbers of the clips ``clip_index [K]`` (store numbers, ``frame_counts [K]``
    frames each, clip by clip as a :class:`~cltt.eval.features.FrameSet` orders them) from a
    :class:`~cltt.eval.segments.FrameSegments`: ``targets [N]`` int64 into the returned class
    names (the labels some frame has, in the segments' order), -1 for a frame in no segment or
    of a clip the segments do not list."""
    by_clip = dict(zip(segments.clip_index.tolist(), segments.label))
    if not len(clip_index):
        return np.zeros(0, np.int64), []
    raw = np.concatenate([by_clip.get(int(c), np.full(int(n), -1, np.int64)) for c, n in zip(clip_index, frame_counts)])
    present = np.unique(raw[raw >= 0])
    number = np.full(len(segments.names) + 1, -1, np.int64)  # number[-1] (raw -1: no label) stays -1
    number[present] = np.arange(len(present))
    return number[raw], [segments.names[i] for i in present]


def probe_frames(recipe, checkpoint: Path, state: dict | None = None, cache_dir: Path | None = None,
                 on_progress=None):
    """The readouts of ``probe.probes`` on the labelled frames of the clip labels' clips, for the
    checkpoint's encoder and ``probe.baselines``: a :class:`~cltt.eval.report.ProbeReport`, unwritten.
    Features are cached in ``cache_dir`` (default the checkpoint's folder ``/features``)."""
    from cltt.engine.checkpoint import load_checkpoint
    from cltt.engine.run_files import FEATURES_DIR
    from cltt.eval.features import extract_features
    from cltt.eval.labels import check_held_out, check_splits
    from cltt.eval.probe import SPLITS, image_sources, prepare_probe, score_features, small_sample_warnings
    from cltt.eval.report import ProbeReport
    from cltt.eval.samples import Samples
    from cltt.eval.segments import is_segments_file, load_segments

    config = recipe.probe
    if config.level != "frame":
        raise CLTTError(f"probe.task=frames scores labelled frames; set probe.level=frame (got {config.level})")
    if config.labels and is_segments_file(Path(config.labels)):
        raise CLTTError(f"probe.labels {config.labels} gives segments by time; task frames reads those from "
                        "probe.frames.segments and takes the clips' splits from probe.labels (clip,label[,split])")
    setup = prepare_probe(recipe)
    path = Path(config.frames.segments) if config.frames.segments else Path(setup.store.root) / SEGMENTS_FILE
    if not path.is_file():
        raise CLTTError(f"probe.task=frames needs labels by time in {path} (clip,start,end,label); set "
                        "probe.frames.segments, or write them (cltt extract --synthetic playroom does)")
    segments = load_segments(setup.store, path)
    frames = setup.frames
    targets, classes = frame_targets(frames.clip_index, frames.frame_counts, segments)
    clip = np.repeat(np.arange(len(frames.clip_index), dtype=np.int64), frames.frame_counts)
    keep = np.flatnonzero(targets >= 0)
    if not len(keep):
        raise CLTTError(f"{path} labels no frame of the clips of {setup.table.source}; check the clip names and times")
    targets, clip = targets[keep], clip[keep]
    splits = setup.splits[clip]
    where = f"{path} over the splits of {setup.table.source}"
    fix = "(move a clip that shows it to train in the split column, or drop the column to draw splits)"
    check_splits([classes[t] for t in targets], splits.tolist(), where, unit="frame", fix=fix)
    check_held_out(splits.tolist(), where, unit="frame")

    checkpoint = Path(checkpoint)
    state = state if state is not None else load_checkpoint(checkpoint)
    sources = image_sources(recipe, checkpoint, state, "labelled frames")
    cache_dir = Path(cache_dir) if cache_dir is not None else checkpoint.parent / FEATURES_DIR
    result = extract_features(frames, sources, cache_dir=cache_dir, batch_size=config.batch_size,
                              workers=max(1, recipe.data.num_workers), on_progress=on_progress,
                              decode_at_least=recipe.data.image_size)
    scores = []
    for source in sources:
        samples = Samples(result.features[source.name][keep], clip)
        scores += score_features(source.name, samples, targets, splits, len(classes), recipe, config.probes)
    counts = {s: {"clips": int(len(np.unique(clip[splits == s]))), "samples": int((splits == s).sum())} for s in SPLITS}
    # the warning counts the bootstrap's units: distinct (clip, class) pairs, not frames
    pairs = np.unique(np.stack([clip, targets]), axis=1)
    notes = [f"{len(keep)} of {frames.num_frames} frames labelled by {path} ({len(classes)} classes); splits by clip "
             f"from {setup.table.source}; intervals resample clips",
             *small_sample_warnings(pairs[1], setup.splits[pairs[0]], classes, scores, "clips", counts["test"]["clips"])]
    epoch = state.get("progress", {}).get("epoch")
    return ProbeReport(
        checkpoint=str(checkpoint),
        epoch=int(epoch) if epoch is not None else None,
        level="frame",
        labels=str(path),
        classes=classes,
        counts=counts,
        feature_dims={name: int(f.shape[1]) for name, f in result.features.items()},
        scores=scores,
        eval_row=None,  # metrics_eval.csv holds task classes' figures
        cache={s.name: f"{'reused' if s.name in result.reused else 'computed'} {result.paths.get(s.name, '')}".strip()
               for s in sources},
        notes=notes,
    )
