"""What a model takes: loader batches of uint8 frames -> float, ImageNet-normalised, on a device.

    x = to_model_input(views, device)   # uint8 [..., 3, S, S] -> float32 [..., 3, S, S] on device

Every encoder in cltt is fed through this one function (training, probes, export), and the
export sidecar records :data:`IMAGENET_MEAN` and :data:`IMAGENET_STD`, so code without cltt
prepares images the same way.
"""

from __future__ import annotations

import torch

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def to_model_input(views: torch.Tensor, device: torch.device) -> torch.Tensor:
    """uint8 ``[..., 3, S, S]`` from the loader -> float, ImageNet-normalised, on ``device``.

    The cast happens on the device, so only bytes cross the host-to-device link.
    """
    x = views.to(device, non_blocking=True)
    if x.dtype == torch.uint8:
        x = x.float().div_(255)
    else:  # a copy: the caller's float tensor is never normalised in place
        x = x.to(torch.promote_types(x.dtype, torch.float32), copy=True)
    mean = torch.tensor(IMAGENET_MEAN, device=device, dtype=x.dtype).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=device, dtype=x.dtype).view(3, 1, 1)
    return x.sub_(mean).div_(std)
