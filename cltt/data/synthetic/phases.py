"""``phases``: one object that every clip takes through the same four phases (appear, cross,
transform, leave; see :class:`Phases`), each clip on its own random time warp, for CARL's
frame-wise evaluation; label = the number of phases, and ``phases.csv``
(``clip,frame,phase,progress``) labels every frame.
"""

from __future__ import annotations

import colorsys
import math
from dataclasses import dataclass

import numpy as np

from cltt.data.synthetic.base import Generator, Scene, textured_background
from cltt.data.synthetic.registry import register_generator

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


@register_generator("phases", id=3)
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
    frame_table = (PHASES_FILE, PHASE_COLUMNS)
    fps = 10.0  # a task of 32 frames then takes 3.2 s, a short action

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
