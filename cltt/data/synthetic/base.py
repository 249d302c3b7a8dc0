"""What every synthetic generator shares: a clip's plan, the simulated scene and how it is
drawn, splits, bouncing paths, a background, and the :class:`Generator` base class.

A clip ``T`` frames of ``size x size`` px is planned first (:class:`ClipPlan`: objects, label,
split; splits need every label), then simulated (:class:`Scene`: K sprites on paths over a
background, or a scene that draws itself) and drawn by :func:`render` into frames
``[T, H, W, 3]`` uint8 and instance masks ``[T, H, W]``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import cv2
import numpy as np

from cltt.errors import CLTTError
from cltt.recipe import SyntheticConfig

SPLITS = ("train", "val", "test")
SPLIT_FRACTIONS = (0.70, 0.15, 0.15)
MASK_THRESHOLD = 0.5  # a pixel belongs to an object where its coverage is at least this


def clip_name(index: int) -> str:
    """``clip_0007`` for index 7."""
    return f"clip_{index:04d}"


@dataclass(frozen=True)
class ClipPlan:
    """What one clip will show, fixed before any clip is simulated (splits need every label)."""

    index: int
    objects: int
    classes: tuple[int, ...]  # digit of each object; empty for balls
    label: str
    split: str

    @property
    def clip(self) -> str:
        return clip_name(self.index)


@dataclass
class Scene:
    """One simulated clip: sprites on paths over a static background. Rendering is separate."""

    background: np.ndarray  # [H, W, 3] float32 in 0..255
    alphas: list[np.ndarray]  # K sprites, each [h, w] float32 coverage in 0..1, in drawing order
    colours: np.ndarray  # [K, 3] float32 RGB in 0..255
    positions: np.ndarray  # [T, K, 2] int64, top-left (x, y) of each sprite per frame
    blend: Literal["over", "max"]
    extra: dict[str, Any]
    # sprites that change over time: per frame, K coverages [T][K] and colours [T, K, 3], in
    # place of ``alphas`` / ``colours`` (a sprite must fit the canvas at its position)
    frame_alphas: list[list[np.ndarray]] | None = None
    frame_colours: np.ndarray | None = None
    # per-frame rows for the generator's frame table (phases.csv), e.g. (phase, progress)
    frame_labels: list[tuple[Any, ...]] | None = None
    # a scene that draws itself (3-D objects): draw(images) -> (frames or None, masks), as render returns
    draw: Callable[[bool], tuple[np.ndarray | None, np.ndarray]] | None = None
    # frame-table rows that only the drawn masks [T, H, W] tell (what is seen where), in place of frame_labels
    label_frames: Callable[[np.ndarray], list[tuple[Any, ...]]] | None = None
    # the clip's label (labels.csv) from those frame rows, when only the drawn frames tell it; else the plan's
    clip_label: Callable[[list[tuple[Any, ...]]], str] | None = None

    def sprites(self, t: int) -> tuple[list[np.ndarray], np.ndarray]:
        """Coverages (K of ``[h, w]``) and colours ``[K, 3]`` of the sprites in frame ``t``."""
        alphas = self.alphas if self.frame_alphas is None else self.frame_alphas[t]
        colours = self.colours if self.frame_colours is None else self.frame_colours[t]
        return alphas, colours


# --------------------------------------------------------------------------- shared pieces


def balanced(rng: np.random.Generator, n: int, values: Sequence[int]) -> np.ndarray:
    """``n`` values cycling through ``values`` (so each appears equally often), shuffled; ``[n]``."""
    return rng.permutation(np.resize(np.asarray(values), n))


def assign_splits(labels: Sequence[str], rng: np.random.Generator) -> list[str]:
    """A split name per clip: ~70/15/15, at least one clip each, stratified by label.

    Clips are ordered label by label (shuffled within a label) and dealt out along a
    low-discrepancy sequence with exact split totals, so every run of consecutive clips, and
    hence every label, is split close to the target fractions.
    """
    n = len(labels)
    held_out = [max(1, round(n * f)) for f in SPLIT_FRACTIONS[1:]]
    totals = [n - sum(held_out), *held_out]
    if totals[0] < 1:
        raise CLTTError(f"synthetic data needs at least 3 clips (one per split), got {n}; raise extract.synthetic.clips")
    tie = rng.permutation(n)
    order = sorted(range(n), key=lambda i: (labels[i], tie[i]))
    dealt = [0, 0, 0]
    splits = [""] * n
    for step, clip in enumerate(order, start=1):
        open_splits = [s for s in range(3) if dealt[s] < totals[s]]
        choice = max(open_splits, key=lambda s: step * totals[s] / n - dealt[s])
        dealt[choice] += 1
        splits[clip] = SPLITS[choice]
    return splits


def bounce_paths(rng: np.random.Generator, frames: int, room: np.ndarray, speed: tuple[float, float]) -> np.ndarray:
    """Top-left corners ``[T, K, 2]`` (int, x then y) of K sprites moving at constant speed.

    ``room`` ``[K, 2]`` is how far each sprite's corner may go in x and y (canvas minus sprite).
    A sprite reflects elastically off the walls; unfolding the reflections makes the path a
    triangle wave of the straight-line one, which is exact however fast the sprite moves.
    """
    room = np.asarray(room, dtype=np.float64)
    count = len(room)
    start = rng.uniform(0.0, 1.0, (count, 2)) * room
    angle = rng.uniform(0.0, 2 * math.pi, count)
    velocity = np.stack([np.cos(angle), np.sin(angle)], axis=1) * rng.uniform(*speed, (count, 1))
    straight = start + np.arange(frames)[:, None, None] * velocity
    period = np.maximum(2 * room, 1e-9)
    folded = room - np.abs(np.mod(straight, period) - room)
    return np.rint(np.clip(folded, 0, room)).astype(np.int64)


def textured_background(rng: np.random.Generator, size: int) -> np.ndarray:
    """A dim, slightly tinted background ``[size, size, 3]`` float32 with smooth low-contrast blotches."""
    base = rng.uniform(40, 80) + rng.uniform(-8, 8, 3)
    blotches = cv2.resize(rng.normal(0, 6, (4, 4)).astype(np.float32), (size, size), interpolation=cv2.INTER_CUBIC)
    return (base[None, None, :] + blotches[..., None]).astype(np.float32)


def render(scene: Scene, images: bool = True) -> tuple[np.ndarray | None, np.ndarray]:
    """Draw a scene: frames ``[T, H, W, 3]`` RGB uint8 (None when ``images`` is False) and
    instance masks ``[T, H, W]`` uint8 (0 background, k for the k-th sprite; later sprites
    cover earlier ones). Masks alone are cheap, which is how skipped clips get their boxes.
    """
    if scene.draw is not None:
        return scene.draw(images)
    frames_n = len(scene.positions)
    height, width = scene.background.shape[:2]
    masks = np.zeros((frames_n, height, width), np.uint8)
    frames = np.empty((frames_n, height, width, 3), np.uint8) if images else None
    static = [alpha >= MASK_THRESHOLD for alpha in scene.alphas] if scene.frame_alphas is None else None
    for t in range(frames_n):
        canvas = scene.background.copy() if images else None
        alphas, colours = scene.sprites(t)
        solid = static if static is not None else [alpha >= MASK_THRESHOLD for alpha in alphas]
        for k, alpha in enumerate(alphas):
            x, y = scene.positions[t, k]
            region = (slice(y, y + alpha.shape[0]), slice(x, x + alpha.shape[1]))
            masks[t][region][solid[k]] = k + 1
            if canvas is not None:
                paint = alpha[..., None] * colours[k]
                if scene.blend == "max":
                    np.maximum(canvas[region], paint, out=canvas[region])
                else:
                    canvas[region] = canvas[region] * (1 - alpha[..., None]) + paint
        if frames is not None:
            frames[t] = np.clip(np.rint(canvas), 0, 255).astype(np.uint8)
    return frames, masks


def mask_boxes(masks: np.ndarray, objects: int) -> list[tuple[int, int, int, int, int, int]]:
    """Tight boxes of the visible pixels of each object in ``masks`` ``[T, H, W]``.

    Returns ``(t, k, x1, y1, x2, y2)`` per frame t and object id k (1-based) that has any
    pixel in that frame; x2/y2 are exclusive. Fully hidden objects get no row.
    """
    boxes = []
    for t, mask in enumerate(masks):
        for k in range(1, objects + 1):
            hit = mask == k
            rows, cols = np.flatnonzero(hit.any(axis=1)), np.flatnonzero(hit.any(axis=0))
            if len(rows):
                boxes.append((t, k, int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1))
    return boxes


class Generator:
    """A synthetic dataset: :meth:`plan` fixes every clip's content, :meth:`scene` simulates one.

    A subclass in its own module of this package, decorated with
    :func:`~cltt.data.synthetic.registry.register_generator`, is a new dataset: the decorator
    gives it its ``name`` (``data.synthetic`` and ``cltt extract --synthetic``) and its ``id``.
    """

    name = ""
    id = 0  # part of every random seed; nonzero, as SeedSequence pads seeds with zeros
    # (file name, columns) of a per-frame CSV beside labels.csv, rows from Scene.frame_labels
    frame_table: tuple[str, tuple[str, ...]] | None = None
    # file name of the frame table's labels (its first column after clip and frame) by time, or None
    segments_file: str | None = None
    # nominal frames per second: frame t of a clip is at t / fps seconds (each clip's timestamps.csv);
    # every generator states its own
    fps: float

    def clip_rng(self, config: SyntheticConfig, index: int) -> np.random.Generator:
        return np.random.default_rng([config.seed, index, self.id])

    def plan(self, config: SyntheticConfig) -> list[ClipPlan]:
        """One :class:`ClipPlan` per clip, index order; depends only on ``config``."""
        rng = np.random.default_rng([config.seed, self.id])
        contents = self.plan_contents(config, rng)
        splits = assign_splits([label for _, _, label in contents], rng)
        return [
            ClipPlan(i, objects, classes, label, split)
            for i, ((objects, classes, label), split) in enumerate(zip(contents, splits))
        ]

    def plan_contents(self, config: SyntheticConfig, rng: np.random.Generator) -> list[tuple[int, tuple[int, ...], str]]:
        """``(objects, classes, label)`` per clip."""
        raise NotImplementedError

    def scene(self, config: SyntheticConfig, plan: ClipPlan) -> Scene:
        """The simulated clip ``plan.index``; depends only on ``config`` and ``plan``."""
        raise NotImplementedError

    def speed(self, config: SyntheticConfig) -> tuple[float, float]:
        """Pixels per frame: a few at 64 px, scaled with the canvas so motion looks alike."""
        return 0.03 * config.size, 0.06 * config.size
