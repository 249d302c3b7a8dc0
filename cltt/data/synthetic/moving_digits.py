"""``moving-digits``: 1..max_objects handwritten digits (scikit-learn's 8x8 set, upscaled)
bouncing off the walls on black, Moving-MNIST style; label = the digit for single-digit clips,
empty for multi-digit clips. Train, val and test clips draw their digits from disjoint pools of
samples, so a probe cannot score by remembering handwriting.
"""

from __future__ import annotations

import functools
import math

import cv2
import numpy as np

from cltt.data.synthetic.base import SPLIT_FRACTIONS, SPLITS, Generator, Scene, balanced, bounce_paths
from cltt.data.synthetic.registry import register_generator


@register_generator("moving-digits", id=2)
class MovingDigits(Generator):
    """Handwritten digits bouncing on black, composited with max as in Moving MNIST."""

    fps = 10.0  # Moving MNIST has no frame rate; 10 frames a second, like the other generators

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
