"""``bouncing-balls``: 1..max_objects coloured balls bouncing off the walls; label = ball count."""

from __future__ import annotations

import colorsys
import math

import cv2
import numpy as np

from cltt.data.synthetic.base import Generator, Scene, balanced, bounce_paths, textured_background
from cltt.data.synthetic.registry import register_generator


@register_generator("bouncing-balls", id=1)
class BouncingBalls(Generator):
    """Anti-aliased balls of distinct saturated colours on a gently textured background."""

    fps = 10.0  # a few pixels per frame (speed) reads as smooth motion at 10 frames a second

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
