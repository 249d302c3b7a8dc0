"""Augmentations of a window of frames, on ``uint8`` arrays with OpenCV.

Each frame goes through, in order: random resized crop to ``size x size``, horizontal flip,
colour jitter (brightness, contrast, saturation, hue in a random order), grayscale and Gaussian
blur, each with its own probability. The semantics follow torchvision's transforms
(``RandomResizedCrop``, ``ColorJitter``, ...): a brightness of 0.4 draws a factor in
[0.6, 1.4], a hue of 0.1 shifts hue by up to a tenth of the colour circle.

The parameters are drawn once per window (``consistent``: every frame of the window sees the
same crop, flip and colours, so frames differ only by what moved) or independently per frame.
Work stays in ``uint8`` (OpenCV saturating arithmetic) until the caller converts, which is
several times faster than float tensors for the hue and blur steps.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np
import torch

from cltt.recipe import AugmentConfig


@dataclass
class FrameParams:
    """One draw of every augmentation; crop in fractions of the frame's height and width."""

    crop: tuple[float, float, float, float]  # top, left, height, width in [0, 1]
    flip: bool
    jitter: tuple[tuple[int, float], ...] | None  # (operation, factor) in application order
    grayscale: bool
    blur_sigma: float | None


BRIGHTNESS, CONTRAST, SATURATION, HUE = range(4)


def sample_crop(
    rng: np.random.Generator, height: int, width: int, scale: list[float], ratio: list[float]
) -> tuple[float, float, float, float]:
    """A crop of area ``scale`` x frame area and aspect ratio (w/h, in pixels) in ``ratio``.

    Ten tries as torchvision does; then the largest centred crop whose ratio is in range.
    """
    log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
    for _ in range(10):
        area = rng.uniform(scale[0], scale[1])
        aspect = math.exp(rng.uniform(*log_ratio))
        crop_w = math.sqrt(area * aspect * height / width)
        crop_h = math.sqrt(area / aspect * width / height)
        if 0 < crop_w <= 1 and 0 < crop_h <= 1:
            top = rng.uniform(0, 1 - crop_h)
            left = rng.uniform(0, 1 - crop_w)
            return (top, left, crop_h, crop_w)
    frame_ratio = width / height
    if frame_ratio < ratio[0]:
        crop_h = frame_ratio / ratio[0]
        return ((1 - crop_h) / 2, 0.0, crop_h, 1.0)
    if frame_ratio > ratio[1]:
        crop_w = ratio[1] / frame_ratio
        return (0.0, (1 - crop_w) / 2, 1.0, crop_w)
    return (0.0, 0.0, 1.0, 1.0)


def sample_params(rng: np.random.Generator, config: AugmentConfig, height: int, width: int) -> FrameParams:
    """Draw every augmentation for one frame (or one whole window)."""
    crop = sample_crop(rng, height, width, config.crop_scale, config.crop_ratio)
    flip = bool(rng.random() < config.flip_p)
    jitter = None
    if rng.random() < config.jitter_p:
        steps = []
        for operation in rng.permutation(4):
            amount = config.jitter[operation]
            if amount <= 0:
                continue
            if operation == HUE:
                steps.append((HUE, float(rng.uniform(-amount, amount))))
            else:
                steps.append((int(operation), float(rng.uniform(max(0.0, 1 - amount), 1 + amount))))
        jitter = tuple(steps)
    grayscale = bool(rng.random() < config.grayscale_p)
    blur_sigma = float(rng.uniform(*config.blur_sigma)) if rng.random() < config.blur_p else None
    return FrameParams(crop, flip, jitter, grayscale, blur_sigma)


def resized_crop(frame: np.ndarray, crop: tuple[float, float, float, float], size: int) -> np.ndarray:
    """Cut ``crop`` (fractions) out of ``frame`` [H, W, 3] and resize it to ``[size, size, 3]``."""
    height, width = frame.shape[:2]
    top, left = round(crop[0] * height), round(crop[1] * width)
    crop_h = max(1, min(height - top, round(crop[2] * height)))
    crop_w = max(1, min(width - left, round(crop[3] * width)))
    patch = frame[top : top + crop_h, left : left + crop_w]
    shrinking = crop_h > size and crop_w > size
    return cv2.resize(patch, (size, size), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)


def center_resize(frame: np.ndarray, size: int) -> np.ndarray:
    """Deterministic view: resize the short side to ``size`` and cut the centre square."""
    height, width = frame.shape[:2]
    side = min(height, width)
    crop = ((height - side) / 2 / height, (width - side) / 2 / width, side / height, side / width)
    return resized_crop(frame, crop, size)


def _gray(frame: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)


def adjust(frame: np.ndarray, operation: int, factor: float) -> np.ndarray:
    """One colour-jitter step on an RGB ``uint8`` frame, as torchvision defines it.

    brightness: x * f; contrast: f * x + (1 - f) * mean(gray(x)); saturation:
    f * x + (1 - f) * gray(x); hue: rotate the hue channel by ``factor`` of a full turn.
    """
    if operation == BRIGHTNESS:
        return cv2.convertScaleAbs(frame, alpha=factor)
    if operation == CONTRAST:
        mean = float(_gray(frame).mean())
        return cv2.addWeighted(frame, factor, frame, 0.0, (1 - factor) * mean)
    if operation == SATURATION:
        gray = cv2.cvtColor(_gray(frame), cv2.COLOR_GRAY2RGB)
        return cv2.addWeighted(frame, factor, gray, 1 - factor, 0.0)
    hsv = cv2.cvtColor(frame, cv2.COLOR_RGB2HSV)  # uint8 hue is in [0, 180)
    shift = int(round(factor * 180))
    lut = ((np.arange(256) + shift) % 180).astype(np.uint8)
    hsv[..., 0] = cv2.LUT(hsv[..., 0], lut)
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)


def apply_params(frame: np.ndarray, params: FrameParams, size: int) -> np.ndarray:
    """Apply one draw of augmentations to an RGB ``uint8`` frame; returns ``[size, size, 3]``."""
    out = resized_crop(frame, params.crop, size)
    if params.flip:
        out = cv2.flip(out, 1)
    for operation, factor in params.jitter or ():
        out = adjust(out, operation, factor)
    if params.grayscale:
        out = cv2.cvtColor(_gray(out), cv2.COLOR_GRAY2RGB)
    if params.blur_sigma is not None:
        radius = max(1, int(math.ceil(3 * params.blur_sigma)))
        out = cv2.GaussianBlur(out, (2 * radius + 1, 2 * radius + 1), params.blur_sigma)
    return out


def center_params(height: int, width: int) -> FrameParams:
    """The deterministic centre view (:func:`center_resize`) as a draw: the centre square, nothing else."""
    side = min(height, width)
    crop = ((height - side) / 2 / height, (width - side) / 2 / width, side / height, side / width)
    return FrameParams(crop, False, None, False, None)


class WindowAugment:
    """Turn the decoded frames of one view into a ``uint8`` tensor ``[T, 3, size, size]``.

    ``config.enabled = False`` gives the deterministic centre view (evaluation, export).
    :meth:`draw` and :meth:`apply` are the two halves of a call: the draw needs only the frames'
    sizes, so the device path (:mod:`cltt.data.device_augment`) takes the very same parameters.
    """

    def __init__(self, config: AugmentConfig, size: int):
        self.config = config
        self.size = size

    def draw(self, shapes: list[tuple[int, int]], rng: np.random.Generator) -> list[FrameParams]:
        """One :class:`FrameParams` per frame of ``shapes`` ((height, width) each), advancing ``rng``."""
        if not self.config.enabled:
            return [center_params(*shape) for shape in shapes]
        if self.config.consistent:
            return [sample_params(rng, self.config, *shapes[0])] * len(shapes)
        return [sample_params(rng, self.config, *shape) for shape in shapes]

    def apply(self, frames: list[np.ndarray], params: list[FrameParams]) -> torch.Tensor:
        out = [apply_params(f, p, self.size) for f, p in zip(frames, params)]
        # a permuted view: the batch collate copies once into [B, V, T, 3, S, S] anyway
        return torch.from_numpy(np.stack(out)).permute(0, 3, 1, 2)

    def __call__(self, frames: list[np.ndarray], rng: np.random.Generator) -> torch.Tensor:
        return self.apply(frames, self.draw([f.shape[:2] for f in frames], rng))
