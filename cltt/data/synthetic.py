"""Built-in synthetic datasets, written as frames on disk so everything runs with no download.

Four generators, each a folder of clips ``OUT/clip_0000/frame_000001.jpg ...``:

* ``bouncing-balls``: 1..max_objects coloured balls bouncing off the walls; label = ball count.
* ``moving-digits``: 1..max_objects handwritten digits (scikit-learn's 8x8 set, upscaled)
  bouncing off the walls on black, Moving-MNIST style; label = the digit for single-digit
  clips, empty for multi-digit clips. Train, val and test clips draw their digits from
  disjoint pools of samples, so a probe cannot score by remembering handwriting.
* ``phases``: one object that every clip takes through the same four phases (appear, cross,
  transform, leave; see :class:`Phases`), each clip on its own random time warp, for CARL's
  frame-wise evaluation; label = the number of phases, and ``phases.csv``
  (``clip,frame,phase,progress``) labels every frame.
* ``rotating-objects``: one 3-D object per clip (``max_objects`` distinct meshes built in
  code), flat-shaded in a hue every object shares, seen by a camera orbiting it; label = the
  object; every object has train clips and held-out clips, each clip its own orbit
  (:class:`RotatingObjects`, rendered by :mod:`cltt.data.render3d`).

Beside the clips go ``labels.csv`` (``clip,label,split``; splits are by clip, stratified by
label) and ``boxes.csv`` (``clip,frame,x1,y1,x2,y2``, one row per visible object per frame,
x2/y2 exclusive). Each clip also holds ``masks.npz`` (instance ids per pixel) and a marker
whose ``extra`` has the clip's label, split and objects.

A clip depends only on the config and its index, so runs are reproducible byte for byte and
a rerun skips finished clips (see :mod:`cltt.data.clipwriter`):

    for result in write_synthetic("moving-digits", Path("data/digits"), SyntheticConfig()):
        print(result.clip, result.status)
"""

from __future__ import annotations

import colorsys
import csv
import difflib
import functools
import math
import os
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import cv2
import numpy as np

from cltt.data.clipwriter import (
    ClipResult,
    ClipWriter,
    clip_status,
    describe_status,
    frame_file_name,
)
from cltt.data.focus import BOX_COLUMNS
from cltt.data.render3d import MESHES, Mesh, orbit_camera, rasterise, rotation
from cltt.errors import CLTTError
from cltt.recipe import SyntheticConfig

FORMAT_VERSION = 1  # bump when a generator's output changes, so old clips read as "different"
SPLITS = ("train", "val", "test")
SPLIT_FRACTIONS = (0.70, 0.15, 0.15)
LABEL_COLUMNS = ("clip", "label", "split")
LABELS_FILE = "labels.csv"
BOXES_FILE = "boxes.csv"
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


# --------------------------------------------------------------------------- generators


class Generator:
    """A synthetic dataset: :meth:`plan` fixes every clip's content, :meth:`scene` simulates one."""

    name = ""
    id = 0  # part of every random seed; nonzero, as SeedSequence pads seeds with zeros
    # (file name, columns) of a per-frame CSV beside labels.csv, rows from Scene.frame_labels
    frame_table: tuple[str, tuple[str, ...]] | None = None

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


class BouncingBalls(Generator):
    """Anti-aliased balls of distinct saturated colours on a gently textured background."""

    name = "bouncing-balls"
    id = 1

    def plan_contents(self, config, rng):
        counts = balanced(rng, config.clips, range(1, config.max_objects + 1))
        return [(int(c), (), str(int(c))) for c in counts]

    def scene(self, config, plan):
        rng = self.clip_rng(config, plan.index)
        size = config.size
        # largest first: a ball can only be covered by smaller ones, so none is ever fully hidden
        radii = np.sort(rng.uniform(0.08, 0.14, plan.objects) * size)[::-1]
        alphas = [disc_sprite(r) for r in radii]
        room = np.array([[size - a.shape[1], size - a.shape[0]] for a in alphas])
        positions = bounce_paths(rng, config.frames, room, self.speed(config))
        hues = (rng.uniform() + np.arange(plan.objects) / plan.objects) % 1.0
        colours = np.array([colorsys.hsv_to_rgb(h, rng.uniform(0.75, 1.0), rng.uniform(0.85, 1.0)) for h in hues])
        return Scene(
            background=textured_background(rng, size),
            alphas=alphas,
            colours=(rng.permutation(colours) * 255).astype(np.float32),
            positions=positions,
            blend="over",
            extra={"objects": plan.objects, "label": plan.label, "split": plan.split, "radii": [round(float(r), 3) for r in radii]},
        )


def disc_sprite(radius: float) -> np.ndarray:
    """Coverage ``[s, s]`` float32 of a disc of ``radius`` px, anti-aliased, centred in the sprite."""
    side = 2 * math.ceil(radius) + 1
    patch = np.zeros((side, side), np.uint8)
    shift = 4  # sub-pixel radius: cv2 takes fixed-point coordinates with this many fraction bits
    centre = (side - 1) * (1 << shift) // 2
    cv2.circle(patch, (centre, centre), round(radius * (1 << shift)), 255, -1, cv2.LINE_AA, shift)
    return patch.astype(np.float32) / 255.0


def textured_background(rng: np.random.Generator, size: int) -> np.ndarray:
    """A dim, slightly tinted background ``[size, size, 3]`` float32 with smooth low-contrast blotches."""
    base = rng.uniform(40, 80) + rng.uniform(-8, 8, 3)
    blotches = cv2.resize(rng.normal(0, 6, (4, 4)).astype(np.float32), (size, size), interpolation=cv2.INTER_CUBIC)
    return (base[None, None, :] + blotches[..., None]).astype(np.float32)


class MovingDigits(Generator):
    """Handwritten digits bouncing on black, composited with max as in Moving MNIST."""

    name = "moving-digits"
    id = 2

    def plan_contents(self, config, rng):
        # half the clips (all, when only one object is allowed) hold one digit, so a digit probe has data
        single = config.clips if config.max_objects == 1 else math.ceil(config.clips / 2)
        many = [2 + j % (config.max_objects - 1) for j in range(config.clips - single)]
        counts = rng.permutation(np.array([1] * single + many, dtype=np.int64))
        single_classes = iter(balanced(rng, single, range(10)))
        contents = []
        for count in counts:
            if count == 1:
                digit = int(next(single_classes))
                contents.append((1, (digit,), str(digit)))
            else:
                contents.append((int(count), tuple(int(d) for d in rng.integers(0, 10, count)), ""))
        return contents

    def scene(self, config, plan):
        rng = self.clip_rng(config, plan.index)
        images, targets, pools = digit_samples()
        pool = pools[plan.split]
        samples = [int(rng.choice(pool[targets[pool] == digit])) for digit in plan.classes]
        side = max(8, round(0.3 * config.size))
        alphas = [digit_sprite(images[s], side) for s in samples]
        room = np.full((plan.objects, 2), config.size - side)
        return Scene(
            background=np.zeros((config.size, config.size, 3), np.float32),
            alphas=alphas,
            colours=np.full((plan.objects, 3), 255.0, np.float32),
            positions=bounce_paths(rng, config.frames, room, self.speed(config)),
            blend="max",
            extra={"objects": plan.objects, "label": plan.label, "split": plan.split, "digits": list(plan.classes), "samples": samples},
        )


@functools.lru_cache(maxsize=1)
def digit_samples() -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """scikit-learn's digits: images ``[1797, 8, 8]`` float32 in 0..1, targets ``[1797]``, and
    disjoint sample pools per split (index arrays). The pools come from a fixed permutation,
    independent of any seed, so datasets written with different seeds never mix them either.
    """
    from sklearn.datasets import load_digits  # ships with scikit-learn, no download

    digits = load_digits()
    images = (digits.images / 16.0).astype(np.float32)
    order = np.random.default_rng(1797).permutation(len(images))
    cuts = np.cumsum([round(f * len(images)) for f in SPLIT_FRACTIONS[:-1]])
    pools = dict(zip(SPLITS, (np.sort(p) for p in np.split(order, cuts))))
    return images, digits.target.astype(np.int64), pools


def digit_sprite(image: np.ndarray, side: int) -> np.ndarray:
    """Coverage ``[side, side]`` float32 of an 8x8 digit (values 0..1), upscaled and softly thresholded."""
    padded = np.pad(image, 1)  # a blank rim, so strokes touching the 8x8 border still fade out
    big = cv2.resize(padded, (side, side), interpolation=cv2.INTER_CUBIC)
    # steepen the blurry upscale into strokes with a one-pixel soft edge
    return np.clip((big - 0.25) / 0.35, 0.0, 1.0).astype(np.float32)


# --------------------------------------------------------------------------- phases

PHASE_NAMES = ("appear", "cross", "transform", "leave")
PHASES_FILE = "phases.csv"
PHASE_COLUMNS = ("clip", "frame", "phase", "progress")


@dataclass(frozen=True)
class Timeline:
    """Where each frame of a clip is in the task: its phase and how far that phase has got.

    ``phase [T]`` int64 in ``0..K-1``; ``within [T]`` in [0, 1] is the fraction of the phase's
    change already shown (its content: the size reached, the distance crossed);
    ``progress = (phase + within) / K`` is the fraction of the whole task done, the phase
    progression target of TCC/CARL/LAV with every phase weighted equally.
    """

    phase: np.ndarray
    within: np.ndarray
    boundaries: np.ndarray  # [K + 1] phase starts (and the end, 1.0) as fractions of the clip

    @property
    def progress(self) -> np.ndarray:
        return (self.phase + self.within) / (len(self.boundaries) - 1)


def phase_timeline(rng: np.random.Generator, frames: int, phases: int = len(PHASE_NAMES),
                   min_share: float = 0.1, warp: float = 0.6) -> Timeline:
    """A random monotone time warp of ``phases`` phases over ``frames`` frames.

    Phase k takes a share ``d_k = min_share + (1 - K min_share) g_k`` of the clip,
    ``g ~ Dirichlet(2, ..., 2)``; inside it the change advances as ``s ** gamma_k`` of the
    elapsed share ``s`` of the phase, ``log gamma_k ~ U(-warp, warp)`` (slow then fast, or
    fast then slow). Frame t sits at time ``(t + 0.5) / T``.
    """
    shares = min_share + (1 - phases * min_share) * rng.dirichlet(np.full(phases, 2.0))
    boundaries = np.concatenate([[0.0], np.cumsum(shares)])
    boundaries[-1] = 1.0
    gammas = np.exp(rng.uniform(-warp, warp, phases))
    time = (np.arange(frames) + 0.5) / frames
    phase = np.clip(np.searchsorted(boundaries, time, side="right") - 1, 0, phases - 1)
    elapsed = np.clip((time - boundaries[phase]) / (boundaries[phase + 1] - boundaries[phase]), 0.0, 1.0)
    return Timeline(phase.astype(np.int64), elapsed ** gammas[phase], boundaries)


def shape_sprite(radius: float, squareness: float, supersample: int = 4) -> np.ndarray:
    """Coverage ``[s, s]`` float32 of a superellipse ``|x/r|^p + |y/r|^p <= 1``, centred.

    ``p = 2 * 8 ** squareness``: a disc at 0, all but a square at 1. Anti-aliased by
    averaging ``supersample`` x ``supersample`` points per pixel; ``s = 2 ceil(r) + 1``.
    """
    side = 2 * math.ceil(radius) + 1
    points = (np.arange(side * supersample) + 0.5) / supersample - side / 2
    power = 2.0 * 8.0 ** squareness
    scaled = (np.abs(points) / max(radius, 1e-6)) ** power
    inside = (scaled[:, None] + scaled[None, :]) <= 1.0
    return inside.reshape(side, supersample, side, supersample).mean(axis=(1, 3)).astype(np.float32)


class Phases(Generator):
    """Every clip shows one object doing the same task of four phases, at its own pace.

        appear     a small disc of a warm colour A grows to full size at its start point
        cross      the disc crosses the frame to its end point (left to right or right to left)
        transform  standing there, it turns from disc into square and from colour A into B
                   (B: A's hue turned half way round, a cool colour)
        leave      the square shrinks away

    Each clip draws its own phase durations and speeds (:func:`phase_timeline`), start and
    end points, direction, size, colours and background texture, so a frame's phase shows in
    its content (shape, colour, size, motion) while its position in the clip does not fix it.
    ``max_objects`` is not used. ``phases.csv`` holds each frame's phase number (0..3, in
    the order above) and progress (see :class:`Timeline`); ``labels.csv``'s label is the
    number of phases, the same for every clip (the splits are what the phases probe reads).
    """

    name = "phases"
    id = 3
    frame_table = (PHASES_FILE, PHASE_COLUMNS)

    def plan_contents(self, config, rng):
        return [(1, (), str(len(PHASE_NAMES)))] * config.clips

    def scene(self, config, plan):
        rng = self.clip_rng(config, plan.index)
        size = config.size
        timeline = phase_timeline(rng, config.frames)
        radius = rng.uniform(0.12, 0.16) * size
        half = math.ceil(radius) + 1
        start = np.array([rng.uniform(0.18, 0.3), rng.uniform(0.3, 0.7)]) * size
        end = np.array([rng.uniform(0.7, 0.82), rng.uniform(0.3, 0.7)]) * size
        leftward = bool(rng.random() < 0.5)
        if leftward:
            start[0], end[0] = size - start[0], size - end[0]
        hue = rng.uniform(-0.08, 0.08) % 1.0
        saturation, value = rng.uniform(0.7, 1.0), rng.uniform(0.85, 1.0)
        colour_a = np.array(colorsys.hsv_to_rgb(hue, saturation, value)) * 255
        colour_b = np.array(colorsys.hsv_to_rgb((hue + 0.5) % 1.0, saturation, value)) * 255
        background = textured_background(rng, size)

        alphas, colours, positions = [], [], []
        for phase, w in zip(timeline.phase.tolist(), timeline.within.tolist()):
            centre, r, square, mix = end, radius, 1.0, 1.0
            if phase == 0:
                centre, r, square, mix = start, radius * (0.15 + 0.85 * w), 0.0, 0.0
            elif phase == 1:
                centre, square, mix = start + w * (end - start), 0.0, 0.0
            elif phase == 2:
                square, mix = w, w
            else:
                r = radius * (1.0 - 0.85 * w)
            alpha = shape_sprite(r, square)
            corner = np.rint(np.clip(centre, half, size - 1 - half)).astype(np.int64) - alpha.shape[0] // 2
            alphas.append([alpha])
            colours.append([(1 - mix) * colour_a + mix * colour_b])
            positions.append([np.clip(corner, 0, size - alpha.shape[0])])
        labels = [(int(p), round(float(q), 6)) for p, q in zip(timeline.phase, timeline.progress)]
        return Scene(
            background=background,
            alphas=alphas[0],
            colours=np.asarray(colours[0], np.float32),
            positions=np.asarray(positions, np.int64),
            blend="over",
            extra={"objects": 1, "label": plan.label, "split": plan.split, "phases": list(PHASE_NAMES),
                   "boundaries": [round(float(b), 6) for b in timeline.boundaries],
                   "direction": "left" if leftward else "right"},
            frame_alphas=alphas,
            frame_colours=np.asarray(colours, np.float32),
            frame_labels=labels,
        )


class RotatingObjects(Generator):
    """One 3-D object per clip, seen by a camera orbiting it; label = which object.

    The objects are the first ``max_objects`` meshes of :data:`cltt.data.render3d.MESHES`
    (cube, tetrahedron, octahedron, pyramid, hexagonal prism, cylinder, cone, sphere, torus,
    L-block, T-block, dumbbell), each drawn flat-shaded in a colour drawn per clip from three
    hues that every object shares, so colour says nothing about the label and shape has to.
    Each clip has its own orbit: an elevation (-20..40 degrees), a start azimuth, a direction,
    4-9 degrees per frame, a camera distance and a small tilt of the object, so a held-out
    clip's views are new ones, never frames of a train clip. Every clip shares one background:
    a background of its own would let a model tell clips apart without looking at the object
    (measured: a cltt probe on such data scored no better than random-init features). Splits
    hold out whole clips, object by object: about 20% test, 15% val, at least one test clip.
    """

    name = "rotating-objects"
    id = 4
    hues = (0.02, 0.36, 0.62)  # red-orange, green, blue: shared by all objects
    elevation = (-20.0, 40.0)  # degrees, every clip its own

    def object_names(self, config) -> list[str]:
        return list(MESHES)[:min(config.max_objects, len(MESHES))]

    def plan(self, config):
        names = self.object_names(config)
        if config.clips < 2 * len(names):
            raise CLTTError(f"rotating-objects needs at least 2 clips per object (a train and a test clip): "
                            f"{len(names)} objects need extract.synthetic.clips >= {2 * len(names)}, got {config.clips}")
        rng = np.random.default_rng([config.seed, self.id])
        objects = [i % len(names) for i in range(config.clips)]
        splits = [""] * config.clips
        for k in range(len(names)):
            clips = rng.permutation([i for i, o in enumerate(objects) if o == k])
            test = max(1, round(0.2 * len(clips)))
            val = round(0.15 * len(clips)) if len(clips) - test >= 2 else 0
            for j, clip in enumerate(clips):
                splits[clip] = "test" if j < test else "val" if j < test + val else "train"
        return [ClipPlan(i, 1, (objects[i],), names[objects[i]], splits[i]) for i in range(config.clips)]

    def scene(self, config, plan):
        rng = self.clip_rng(config, plan.index)
        orbit = {"elevation": float(rng.uniform(*self.elevation)), "azimuth": float(rng.uniform(0, 360)),
                 "direction": int(rng.choice([-1, 1])), "speed": float(rng.uniform(4.0, 9.0)),
                 "distance": float(rng.uniform(3.0, 3.6)), "tilt": [float(a) for a in rng.uniform(-20, 20, 2)]}
        hue = float(rng.choice(self.hues) + rng.uniform(-0.02, 0.02)) % 1.0
        colour = np.array(colorsys.hsv_to_rgb(hue, rng.uniform(0.55, 0.8), rng.uniform(0.75, 0.95))) * 255
        # one background for every clip: a per-clip one would let a model tell clips apart without the object
        background = textured_background(np.random.default_rng([config.seed, self.id, 0]), config.size)
        name = plan.label
        mesh = MESHES[name]().normalised()
        tilted = Mesh(mesh.vertices @ (rotation("x", orbit["tilt"][0]) @ rotation("z", orbit["tilt"][1])).T, mesh.faces)

        def draw(images: bool) -> tuple[np.ndarray | None, np.ndarray]:
            frames = np.empty((config.frames, config.size, config.size, 3), np.uint8)
            masks = np.empty((config.frames, config.size, config.size), np.uint8)
            for t in range(config.frames):
                azimuth = orbit["azimuth"] + orbit["direction"] * orbit["speed"] * t
                camera = orbit_camera(azimuth, orbit["elevation"], orbit["distance"])
                frames[t], covered = rasterise(tilted, camera, colour, config.size, background)
                masks[t] = covered
            return (frames if images else None), masks

        return Scene(background=background, alphas=[], colours=np.zeros((1, 3), np.float32),
                     positions=np.zeros((config.frames, 1, 2), np.int64), blend="over",
                     extra={"objects": 1, "label": plan.label, "split": plan.split, "object": name,
                            "hue": round(hue, 4), **{k: (round(v, 3) if isinstance(v, float) else v) for k, v in orbit.items()}},
                     draw=draw)


GENERATORS: dict[str, Generator] = {g.name: g for g in (BouncingBalls(), MovingDigits(), Phases(), RotatingObjects())}


def get_generator(name: str) -> Generator:
    """The generator called ``name``; a :class:`CLTTError` naming the valid ones otherwise."""
    if name in GENERATORS:
        return GENERATORS[name]
    close = difflib.get_close_matches(name, list(GENERATORS), n=1, cutoff=0.4)
    hint = f"; did you mean '{close[0]}'?" if close else ""
    raise CLTTError(f"no synthetic dataset '{name}'{hint} (choose one of {', '.join(GENERATORS)})")


# --------------------------------------------------------------------------- writing


def fingerprint(name: str, config: SyntheticConfig, index: int) -> dict[str, Any]:
    """What a clip was made from; a finished clip with the same fingerprint is skipped."""
    return {"generator": name, "format": FORMAT_VERSION, **asdict(config), "clip": index}


def write_synthetic(
    name: str,
    out: Path,
    config: SyntheticConfig,
    workers: int = 1,
    on_frames: Callable[[int], None] | None = None,
) -> Iterator[ClipResult]:
    """Write dataset ``name`` under ``out``; yields one :class:`ClipResult` per clip.

    A clip already finished with the same fingerprint is ``skipped``; a folder in its place
    that cltt did not write, or wrote with other options, makes it ``failed`` (left untouched).
    ``on_frames(n)`` is called in this process once per written clip with its frame count.
    Once every clip is through, ``labels.csv`` and ``boxes.csv`` (and ``phases.csv`` for
    ``phases``) are (re)written, covering all clips except failed ones. Bad arguments raise :class:`CLTTError` here, before any writing.
    """
    generator = get_generator(name)
    config.validate("extract.synthetic")
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise CLTTError(f"--out {out} is a file; give a folder to write the clips into")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise CLTTError(f"cannot create {out} ({err.strerror}); choose another --out") from None
    return _write(generator, out, config, max(1, int(workers)), on_frames)


def _write(
    generator: Generator,
    out: Path,
    config: SyntheticConfig,
    workers: int,
    on_frames: Callable[[int], None] | None,
) -> Iterator[ClipResult]:
    plans = generator.plan(config)
    tables: dict[str, ClipTables] = {}  # clip -> its rows of boxes.csv (and the frame table), for clips on disk
    todo = []
    for plan in plans:
        status = clip_status(out, plan.clip, fingerprint(generator.name, config, plan.index))
        source = f"{generator.name} {plan.clip}"
        if status == "missing":
            todo.append(plan)
        elif status == "complete":
            scene = generator.scene(config, plan)
            _, masks = render(scene, images=False)
            tables[plan.clip] = _clip_tables(plan, scene, masks)
            yield ClipResult(plan.clip, source, "skipped", frames=config.frames)
        else:
            yield ClipResult(plan.clip, source, "failed", message=describe_status(status, out, plan.clip))

    def finished(result: ClipResult, rows: ClipTables | None):
        if rows is not None:
            tables[result.clip] = rows
            if on_frames is not None:
                on_frames(result.frames)
        return result

    if workers > 1 and len(todo) > 1:
        with ProcessPoolExecutor(min(workers, len(todo))) as pool:
            futures = [pool.submit(_make_clip, generator.name, config, plan, out) for plan in todo]
            for future in as_completed(futures):
                yield finished(*future.result())
    else:
        for plan in todo:
            yield finished(*_make_clip(generator.name, config, plan, out))

    written = [plan for plan in plans if plan.clip in tables]
    _write_csv(out / LABELS_FILE, LABEL_COLUMNS, [[p.clip, p.label, p.split] for p in written])
    _write_csv(out / BOXES_FILE, BOX_COLUMNS, [row for p in written for row in tables[p.clip].boxes])
    if generator.frame_table is not None:
        name, columns = generator.frame_table
        _write_csv(out / name, columns, [row for p in written for row in tables[p.clip].frames])


@dataclass
class ClipTables:
    """One clip's rows of ``boxes.csv`` and of the generator's frame table (none for most)."""

    boxes: list[list[Any]]
    frames: list[list[Any]]


def _make_clip(name: str, config: SyntheticConfig, plan: ClipPlan, out: Path) -> tuple[ClipResult, ClipTables | None]:
    """Simulate, render and write one clip (runs in a worker process); returns its result and table rows."""
    started = time.perf_counter()
    source = f"{name} {plan.clip}"
    scene = GENERATORS[name].scene(config, plan)
    frames, masks = render(scene)
    try:
        with ClipWriter(out, plan.clip, fingerprint(name, config, plan.index)) as writer:
            for image in frames:
                writer.write(image)
            writer.write_array("masks", masks)
            writer.extra = scene.extra
    except OSError as err:  # disk full, permissions: report the clip, keep going with the rest
        return ClipResult(plan.clip, source, "failed", message=f"could not write {out / plan.clip}: {err}"), None
    done = ClipResult(plan.clip, source, "done", frames=len(frames), seconds=time.perf_counter() - started)
    return done, _clip_tables(plan, scene, masks)


def _clip_tables(plan: ClipPlan, scene: Scene, masks: np.ndarray) -> ClipTables:
    frames = [[plan.clip, frame_file_name(t + 1), *row] for t, row in enumerate(scene.frame_labels or [])]
    return ClipTables(_box_rows(plan, masks), frames)


def _box_rows(plan: ClipPlan, masks: np.ndarray) -> list[list[Any]]:
    return [[plan.clip, frame_file_name(t + 1), *box] for t, _, *box in mask_boxes(masks, plan.objects)]


def _write_csv(path: Path, header: Sequence[str], rows: list[list[Any]]) -> None:
    """Write a CSV atomically: readers see the old file or the new one, never half of one."""
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)
    os.replace(tmp, path)
