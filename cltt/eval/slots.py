"""Object-discovery scores of slot masks over whole clips: video FG-ARI and mBO.

    report = probe_slots(recipe, Path("runs/slotcontrast/checkpoint_final.pth"))
    report.metrics["trained"]["fg_ari"]          # mean over clips, in [-1, 1] (1 = perfect)

Ground truth is each clip's ``masks.npz`` (array ``masks`` ``[T, H, W]``, instance id per
pixel, 0 = background), which the built-in generators write. Predictions are a method's
slot masks ``[T, K, h, w]`` on the patch grid (``all_slot_masks``: the decoder's alpha
masks, the headline numbers as in DINOSAUR and SlotContrast, and slot attention's own
attention maps, reported beside them), upsampled *bilinearly* to the masks' resolution and
then arg-maxed over slots, which gives smoother object outlines than nearest-neighbour
blocks. Frames are the deterministic centre views of training
(:func:`cltt.data.transforms.center_resize`); the masks are cut to the same centre square.
Training is unsupervised and sees every clip, test clips included; the split only keeps
the scored clips the same as the class probe's.

    video FG-ARI   adjusted Rand index between true ids and predicted slots over every
                   foreground pixel of *every frame* of the clip at once, so a slot that
                   swaps objects between frames is penalised; identical to scikit-learn's
                   ``adjusted_rand_score`` on those flattened labels (computed here from the
                   contingency table).
    mBO            for each true object, the best IoU of its pixels over the clip with one
                   predicted slot's pixels (background pixels included in the slot); mean
                   over the clip's objects.

Read the two together: as for any FG-ARI, a model that gives the whole clip to one slot
scores 1 on a clip with a single object (a third of the bouncing-balls clips) and 0 on the
others, while its mBO stays near the objects' share of the frame.

Clips: those of the test split when the labels file (``probe.labels``, default
ROOT/labels.csv) has a split column, else every clip; clips without ``masks.npz`` are left
out. A clip goes through the model whole, in chunks of ``data.window_size`` frames whose
slots carry over through the predictor (so chunking changes memory, not the result).
Scores are mean and standard deviation over clips, for the trained checkpoint and, when
``probe.baselines`` has ``random_init``, for the untrained model. Nothing is cached.
"""

from __future__ import annotations

import csv
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from cltt.data.build import open_frames
from cltt.data.model_input import to_model_input
from cltt.data.stores.base import FrameStore
from cltt.data.transforms import center_resize
from cltt.engine.checkpoint import load_checkpoint
from cltt.engine.device import resolve_device
from cltt.engine.events import Progress
from cltt.errors import CLTTError
from cltt.eval.report import TaskReport
from cltt.models.representation import SlotMasks
from cltt.recipe import Recipe

MASKS_FILE = "masks.npz"
COLUMNS = ["features", "masks", "clips", "video FG-ARI", "± std", "mBO", "± std"]
MASK_KINDS = ("decoder", "attention")  # metrics keys: fg_ari, ... for decoder; attention_fg_ari, ... for attention


# --------------------------------------------------------------------------- metrics


def adjusted_rand_index(true: np.ndarray, predicted: np.ndarray) -> float:
    """ARI of two labellings of the same points (any integer labels), as scikit-learn defines it.

    From the contingency table n_ij with row sums a_i, column sums b_j over n points, count
    ordered pairs of distinct points: together in both (tp = sum n_ij^2 - n), only in
    ``true`` (fn = sum a_i^2 - sum n_ij^2), only in ``predicted`` (fp = sum b_j^2 - sum n_ij^2),
    in neither (tn = n^2 - n - tp - fn - fp); then

        ARI = 2 (tp tn - fn fp) / ((tp + fn)(fn + tn) + (tp + fp)(fp + tn)),

    and 1 when fn = fp = 0 (both labellings agree, including all-one-cluster cases). Exact
    integer arithmetic (Python ints), so large clips do not overflow. NaN for no points.
    """
    true = np.asarray(true).ravel()
    predicted = np.asarray(predicted).ravel()
    if true.shape != predicted.shape:
        raise ValueError(f"labellings differ in length: {true.size} vs {predicted.size}")
    n = int(true.size)
    if n == 0:
        return float("nan")
    _, rows = np.unique(true, return_inverse=True)
    _, cols = np.unique(predicted, return_inverse=True)
    cells = np.unique(rows.astype(np.int64) * (int(cols.max()) + 1) + cols, return_counts=True)[1]
    same_both = int((cells.astype(np.int64) ** 2).sum())
    same_true = int((np.bincount(rows).astype(np.int64) ** 2).sum())
    same_pred = int((np.bincount(cols).astype(np.int64) ** 2).sum())
    tp = same_both - n
    fn = same_true - same_both
    fp = same_pred - same_both
    tn = n * n - n - tp - fn - fp
    if fn == 0 and fp == 0:
        return 1.0
    return float(2 * (tp * tn - fn * fp) / ((tp + fn) * (fn + tn) + (tp + fp) * (fp + tn)))


def video_fg_ari(true: np.ndarray, predicted: np.ndarray) -> float:
    """ARI over the foreground (``true > 0``) pixels of a whole clip: ``[T, H, W]`` each."""
    foreground = true > 0
    return adjusted_rand_index(true[foreground], predicted[foreground])


def mean_best_overlap(true: np.ndarray, predicted: np.ndarray) -> float:
    """mBO of a clip: mean over true objects (ids > 0) of the best IoU with any predicted label.

    ``true``, ``predicted`` ``[T, H, W]`` integer labels; IoU over all pixels of all frames.
    NaN when the clip has no object.
    """
    objects = [o for o in np.unique(true) if o > 0]
    if not objects:
        return float("nan")
    slots = np.unique(predicted)
    best = []
    for o in objects:
        mask = true == o
        ious = [(mask & (predicted == s)).sum() / (mask | (predicted == s)).sum() for s in slots]
        best.append(max(ious))
    return float(np.mean(best))


def predicted_labels(masks: torch.Tensor, height: int, width: int) -> np.ndarray:
    """Slot masks ``[T, K, h, w]`` -> label of the strongest slot per pixel ``[T, height, width]``
    (bilinear upsampling, then arg-max over slots)."""
    up = F.interpolate(masks.float(), size=(height, width), mode="bilinear", align_corners=False)
    return up.argmax(dim=1).cpu().numpy()


def center_square(masks: np.ndarray) -> np.ndarray:
    """The centre square of ``[T, H, W]`` masks: the part :func:`center_resize` keeps."""
    height, width = masks.shape[1:]
    side = min(height, width)
    top, left = round((height - side) / 2), round((width - side) / 2)
    return masks[:, top:top + side, left:left + side]


# --------------------------------------------------------------------------- clips


def read_masks(store: FrameStore, clip: int) -> np.ndarray | None:
    """Instance masks ``[T, H, W]`` of a clip, or None when it has no ``masks.npz``."""
    path = store.clip_file(clip, MASKS_FILE)
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as data:
            return data["masks"]
    except (OSError, ValueError, KeyError, EOFError) as err:
        raise CLTTError(f"cannot read instance masks {path} ({err}); rewrite the clip with cltt extract --synthetic") from None


def clip_frames(store: FrameStore, clip: int, image_size: int, limit: int | None = None) -> np.ndarray:
    """Centre views of the frames of a clip (the first ``limit``, or all): uint8 ``[T, S, S, 3]``."""
    count = int(store.frame_counts[clip]) if limit is None else min(limit, int(store.frame_counts[clip]))
    reduction = store.reduction_for(image_size)
    first = store.frame_number(clip, 0)
    return np.stack([center_resize(store.read(first + j, reduction), image_size) for j in range(count)])


def clip_slot_masks(method, frames: np.ndarray, device: torch.device, chunk_size: int) -> dict[str, torch.Tensor]:
    """``method.all_slot_masks`` of one clip's uint8 frames ``[T, S, S, 3]`` -> ``{kind: [T, K, h, w]}``."""
    batch = torch.from_numpy(frames).permute(0, 3, 1, 2)
    masks = method.all_slot_masks(to_model_input(batch, device).unsqueeze(0), chunk_size)
    return {kind: value[0] for kind, value in masks.items()}


def scored_clips(recipe: Recipe, store: FrameStore) -> tuple[list[int], str]:
    """Clip numbers to score and how they were chosen: the labels file's test split, else all."""
    path = Path(recipe.probe.labels) if recipe.probe.labels else store.root_file("labels.csv")
    every = list(range(store.num_clips))
    if not path.is_file():
        return every, "all clips (no labels file with a split column)"
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    if not rows or "split" not in rows[0] or "clip" not in rows[0]:
        return every, f"all clips ({path} has no split column)"
    names = {name: i for i, name in enumerate(store.clips)}
    chosen = sorted(names[r["clip"]] for r in rows if r["split"] == "test" and r["clip"] in names)
    if not chosen:
        return every, f"all clips ({path} names no test clip of this root)"
    return chosen, f"test split of {path}"


def score_clips(method, store: FrameStore, clips: list[int], image_size: int, chunk_size: int,
                device: torch.device, on_frame: Callable[[int], None] | None = None) -> dict[str, list[float]]:
    """Per-clip video FG-ARI and mBO of ``method`` (in eval mode) over ``clips`` with masks:
    ``{kind: {"fg_ari": [...], "mbo": [...]}}`` for each kind of slot mask."""
    was_training = method.training
    method.eval()
    scores: dict[str, dict[str, list[float]]] = {}
    try:
        for clip in clips:
            true = read_masks(store, clip)
            if true is None:
                continue
            frames = clip_frames(store, clip, image_size)
            if len(true) != len(frames):
                raise CLTTError(f"{store.clips[clip]} has {len(frames)} frames but {len(true)} masks in {MASKS_FILE}; "
                                "rewrite it with cltt extract --synthetic")
            true = center_square(true)
            for kind, masks in clip_slot_masks(method, frames, device, chunk_size).items():
                predicted = predicted_labels(masks, *true.shape[1:])
                found = scores.setdefault(kind, {"fg_ari": [], "mbo": []})
                found["fg_ari"].append(video_fg_ari(true, predicted))
                found["mbo"].append(mean_best_overlap(true, predicted))
            if on_frame is not None:
                on_frame(len(frames))
    finally:
        method.train(was_training)
    return scores


def _summary(values: list[float]) -> tuple[float | None, float | None]:
    kept = np.asarray([v for v in values if np.isfinite(v)], dtype=np.float64)
    if not len(kept):
        return None, None
    return float(kept.mean()), float(kept.std())


# --------------------------------------------------------------------------- cltt probe


def probe_slots(recipe: Recipe, checkpoint: Path, state: dict | None = None, cache_dir: Path | None = None,
                on_progress: Progress | None = None) -> TaskReport:
    """Video FG-ARI and mBO of a checkpoint's slot masks (and of ``random_init``) over whole clips.

    ``cache_dir`` is accepted for symmetry with the class probe and unused (nothing is
    cached: masks are cheap next to training). ``on_progress(done, total)`` counts frames.
    """
    from cltt.eval.probe import load_trained_method, random_init_method  # heavy: method registry

    checkpoint = Path(checkpoint)
    state = state if state is not None else load_checkpoint(checkpoint)
    index = open_frames(recipe.data, synthetic=recipe.extract.synthetic)
    store = index
    clips, chosen = scored_clips(recipe, store)
    with_masks = [c for c in clips if store.clip_file(c, MASKS_FILE).is_file()]
    if not with_masks:
        raise CLTTError(f"no clip under {store.root} has instance masks ({MASKS_FILE}); the slots probe needs "
                        "them: write built-in data with cltt extract --synthetic bouncing-balls")
    device = resolve_device(recipe.train.device)
    methods = {"trained": load_trained_method(recipe, state, checkpoint)}
    if "random_init" in recipe.probe.baselines:
        methods["random_init"] = random_init_method(recipe)
    if not all(isinstance(m, SlotMasks) for m in methods.values()):
        raise CLTTError(f"probe.task=slots needs a method with slot masks (method.name=slotcontrast); "
                        f"this checkpoint is {recipe.method.name}")
    total = len(methods) * int(store.frame_counts[with_masks].sum())
    done = 0

    def on_frame(count: int) -> None:
        nonlocal done
        done += count
        if on_progress is not None:
            on_progress(done, total)

    rows, metrics = [], {}
    for name, method in methods.items():
        scores = score_clips(method.to(device), store, with_masks, recipe.data.image_size,
                             recipe.data.window_size, device, on_frame)
        metrics[name] = {"clips": len(with_masks)}
        for kind in MASK_KINDS:
            ari, ari_std = _summary(scores[kind]["fg_ari"])
            mbo, mbo_std = _summary(scores[kind]["mbo"])
            rows.append([name, kind, len(scores[kind]["fg_ari"]), ari, ari_std, mbo, mbo_std])
            prefix = "" if kind == "decoder" else f"{kind}_"
            metrics[name].update({f"{prefix}fg_ari": ari, f"{prefix}fg_ari_std": ari_std,
                                  f"{prefix}mbo": mbo, f"{prefix}mbo_std": mbo_std})
    notes = [f"clips: {chosen}; {len(with_masks)} with {MASKS_FILE}",
             "decoder: the decoder's alpha masks (the headline score); attention: slot attention's maps. "
             "Masks upsampled bilinearly from the patch grid, arg-max over slots; FG-ARI over all foreground "
             "pixels of each whole clip; mean ± std over clips"]
    if "pixels" in recipe.probe.baselines:
        notes.append("the pixels baseline has no slots and is not scored here")
    if len(with_masks) < len(clips):
        notes.append(f"{len(clips) - len(with_masks)} clip(s) without {MASKS_FILE} left out")
    epoch = state.get("progress", {}).get("epoch")
    return TaskReport(task="slots", checkpoint=str(checkpoint), epoch=int(epoch) if epoch is not None else None,
                      columns=list(COLUMNS), rows=rows, metrics=metrics, notes=notes)
