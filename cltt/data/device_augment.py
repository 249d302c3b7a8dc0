"""``data.decode: gpu``: JPEGs decoded and augmented on the training device, not in the workers.

The DataLoader workers only read each frame's file bytes and draw its augmentation with the
CPU path's own code (:meth:`WindowAugment.draw`, the same ``(seed, epoch, index)`` stream and
the same frame sizes), so a window gets the same crop, flip, colour jitter, grayscale and blur
on either path. A sample is then

    sample["encoded"]   [V * T] uint8 1-D tensors, the file bytes of each frame
    sample["params"]    float64 [V, T, PARAMS] the draws (:func:`pack_params`)
    sample["frames"]    int64 [V, T] global frame numbers (to name a frame that fails to decode)

:func:`collate_encoded` keeps the bytes as one flat list, and :class:`DeviceAugment` turns a
batch into uint8 ``[B, V, T, 3, S, S]`` on the device: one batched
``torchvision.io.decode_jpeg(device=...)`` (nvJPEG on CUDA), then the crop and resize, flip and
``torchvision.transforms.v2.functional``'s colour operations on each group of frames that share
one draw. The pixels are not bit-identical to the CPU path (different resampling kernels and
rounding; JPEGs are decoded in full, not at a reduced DCT scale), the parameters are.
"""

from __future__ import annotations

import math

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from cltt.data.decode import CorruptFrameError
from cltt.data.transforms import BRIGHTNESS, CONTRAST, HUE, SATURATION, FrameParams
from cltt.errors import CLTTError

_CANNOT_SKIP = "data.decode=gpu cannot skip it: run cltt index ROOT --verify and remove it, or use data.decode=cpu"
PARAMS = 16  # top, left, height, width, flip, grayscale, blur sigma (-1: none), steps, 4 x (operation, factor)


def pack_params(params: FrameParams) -> np.ndarray:
    """One draw as a float64 row of :data:`PARAMS` numbers."""
    row = np.zeros(PARAMS, dtype=np.float64)
    row[0:4] = params.crop
    row[4] = float(params.flip)
    row[5] = float(params.grayscale)
    row[6] = -1.0 if params.blur_sigma is None else params.blur_sigma
    steps = params.jitter or ()
    row[7] = -1.0 if params.jitter is None else len(steps)
    for k, (operation, factor) in enumerate(steps):
        row[8 + 2 * k: 10 + 2 * k] = (operation, factor)
    return row


def unpack_params(row) -> FrameParams:
    """The inverse of :func:`pack_params`."""
    row = [float(v) for v in row]
    jitter = None if row[7] < 0 else tuple((int(row[8 + 2 * k]), row[9 + 2 * k]) for k in range(int(row[7])))
    return FrameParams(tuple(row[0:4]), row[4] > 0.5, jitter, row[5] > 0.5, None if row[6] < 0 else row[6])


def collate_encoded(samples: list[dict]) -> dict:
    """A batch of encoded samples: ``encoded`` one flat list in (sample, view, frame) order."""
    return {
        "encoded": [frame for sample in samples for frame in sample["encoded"]],
        "params": torch.stack([sample["params"] for sample in samples]),
        "frames": torch.stack([sample["frames"] for sample in samples]),
        "index": torch.tensor([sample["index"] for sample in samples]),
        "replaced": torch.tensor([sample["replaced"] for sample in samples]),
    }


class DeviceAugment:
    """Decode and augment a collated encoded batch on ``device``; ``locate(frame)`` names frames in errors."""

    def __init__(self, size: int, device: torch.device, locate=str):
        self.size = size
        self.device = torch.device(device)
        self.locate = locate

    def __call__(self, batch: dict) -> torch.Tensor:
        params = batch["params"]  # [B, V, T, PARAMS]
        shape = params.shape[:3]
        images = self.decode(batch["encoded"], batch["frames"].reshape(-1).tolist())
        rows = params.reshape(-1, PARAMS)
        out = torch.empty((len(images), 3, self.size, self.size), dtype=torch.uint8, device=self.device)
        start = 0
        while start < len(images):  # frames that share one draw (a consistent window) go together
            stop = start + 1
            while (stop < len(images) and torch.equal(rows[stop], rows[start])
                   and images[stop].shape == images[start].shape):
                stop += 1
            out[start:stop] = self.apply(torch.stack(images[start:stop]), unpack_params(rows[start]))
            start = stop
        return out.view(*shape, 3, self.size, self.size)

    def decode(self, encoded: list[torch.Tensor], frames: list[int]) -> list[torch.Tensor]:
        """RGB uint8 ``[3, H, W]`` of each file: JPEGs decoded on the device in one call, the rest by OpenCV."""
        from torchvision.io import ImageReadMode, decode_jpeg

        jpeg = [bool(len(e) > 1 and int(e[0]) == 0xFF and int(e[1]) == 0xD8) for e in encoded]
        images: list[torch.Tensor | None] = [None] * len(encoded)
        which = [i for i, is_jpeg in enumerate(jpeg) if is_jpeg]
        try:
            if which:
                decoded = decode_jpeg([encoded[i] for i in which], mode=ImageReadMode.RGB, device=self.device)
                for i, image in zip(which, decoded):
                    images[i] = image
        except RuntimeError:
            raise self._name_the_bad_frame([encoded[i] for i in which], [frames[i] for i in which]) from None
        # PNG, TIFF, PGM, BMP, ...: by OpenCV on the CPU, as the CPU path decodes them (torchvision
        # reads none of TIFF, BMP or PBM/PGM/PPM)
        for i in (i for i, is_jpeg in enumerate(jpeg) if not is_jpeg):
            image = cv2.imdecode(encoded[i].numpy(), cv2.IMREAD_COLOR)
            if image is None:
                raise CLTTError(f"{CorruptFrameError(self.locate(frames[i]), 'not a decodable image')}; {_CANNOT_SKIP}")
            images[i] = torch.from_numpy(cv2.cvtColor(image, cv2.COLOR_BGR2RGB)).permute(2, 0, 1).to(self.device)
        return images

    def _name_the_bad_frame(self, encoded: list[torch.Tensor], frames: list[int]) -> CLTTError:
        from torchvision.io import ImageReadMode, decode_image

        for data, frame in zip(encoded, frames):
            try:
                decode_image(data, mode=ImageReadMode.RGB)
            except RuntimeError as err:
                why = str(err).splitlines()[0].rsplit(", ", 1)[-1]  # torchvision prefixes its source file and line
                return CLTTError(f"{CorruptFrameError(self.locate(frame), why)}; {_CANNOT_SKIP}")
        return CLTTError("a batch failed to decode on the device although every frame decodes on the CPU; "
                         "use data.decode=cpu")

    def apply(self, images: torch.Tensor, params: FrameParams) -> torch.Tensor:
        """One draw applied to uint8 ``[n, 3, H, W]`` -> ``[n, 3, S, S]``, in the CPU path's order."""
        from torchvision.transforms.v2 import functional as TF

        height, width = images.shape[-2:]
        top, left = round(params.crop[0] * height), round(params.crop[1] * width)
        crop_h = max(1, min(height - top, round(params.crop[2] * height)))
        crop_w = max(1, min(width - left, round(params.crop[3] * width)))
        patch = images[..., top:top + crop_h, left:left + crop_w].float()
        if crop_h > self.size and crop_w > self.size:  # shrinking: area averaging, as cv2.INTER_AREA
            patch = F.interpolate(patch, size=(self.size, self.size), mode="area")
        else:
            patch = F.interpolate(patch, size=(self.size, self.size), mode="bilinear", align_corners=False)
        out = patch.round_().clamp_(0, 255).to(torch.uint8)
        if params.flip:
            out = out.flip(-1)
        for operation, factor in params.jitter or ():
            if operation == BRIGHTNESS:
                out = TF.adjust_brightness(out, factor)
            elif operation == CONTRAST:
                out = TF.adjust_contrast(out, factor)
            elif operation == SATURATION:
                out = TF.adjust_saturation(out, factor)
            elif operation == HUE:
                out = TF.adjust_hue(out, factor)
        if params.grayscale:
            out = TF.rgb_to_grayscale(out, num_output_channels=3)
        if params.blur_sigma is not None:
            radius = max(1, int(math.ceil(3 * params.blur_sigma)))
            out = TF.gaussian_blur(out, kernel_size=[2 * radius + 1] * 2, sigma=[params.blur_sigma] * 2)
        return out
