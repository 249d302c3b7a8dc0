"""The masked autoencoder's masking and reconstruction loss (He et al., "Masked Autoencoders Are
Scalable Vision Learners", CVPR 2022).

An image ``[N, C, H, W]`` is cut into ``P = (H/p)^2`` patches of ``p x p`` pixels, row-major,
each flattened in (row, column, channel) order to ``p*p*C`` values (:func:`patchify`). Per image
a uniform noise ``u [P]`` ranks the patches; the ``keep = max(1, floor(P (1 - r)))`` with the
smallest noise are visible to the encoder, the rest are masked (:func:`split_patches`, mask
ratio ``r``). The decoder predicts every patch; the loss reads the masked ones only:

    target_j = (x_j - mean(x_j)) / sqrt(var(x_j) + 1e-6)     (norm_pix_loss; else target_j = x_j)
    L = 1/|M| sum_{(n, j) in M} 1/(p*p*C) ||pred_nj - target_nj||^2

with ``var`` the unbiased variance over the patch's ``p*p*C`` values (as in the paper's code)
and ``M`` the masked (image, patch) pairs of the batch. :func:`masked_patch_loss` returns
``(sum over M, |M|)`` so that processes and sub-batches add their shares. Failure mode: a
constant patch (a flat background) has zero variance and its target is 0, whatever its colour.
"""

from __future__ import annotations

import torch

NORM_EPS = 1e-6


def patchify(images: torch.Tensor, patch_size: int) -> torch.Tensor:
    """``[N, C, H, W]`` -> ``[N, (H/p)*(W/p), p*p*C]``, patches row-major, values (row, column, channel)."""
    n, c, h, w = images.shape
    rows, cols = h // patch_size, w // patch_size
    grid = images.reshape(n, c, rows, patch_size, cols, patch_size)
    return grid.permute(0, 2, 4, 3, 5, 1).reshape(n, rows * cols, patch_size * patch_size * c)


def kept_count(num_patches: int, mask_ratio: float) -> int:
    """How many of ``num_patches`` patches the encoder sees at ``mask_ratio`` (at least one)."""
    return max(1, int(num_patches * (1 - mask_ratio)))


def split_patches(noise: torch.Tensor, mask_ratio: float) -> tuple[torch.Tensor, torch.Tensor]:
    """``noise [N, P]`` -> (visible ``[N, keep]``, masked ``[N, P - keep]``) patch indices, each in
    increasing order of noise: the patches with the smallest noise stay visible."""
    order = torch.argsort(noise, dim=1)
    keep = kept_count(noise.shape[1], mask_ratio)
    return order[:, :keep], order[:, keep:]


def patch_targets(patches: torch.Tensor, normalize: bool) -> torch.Tensor:
    """``[N, P, D]`` pixel patches -> the reconstruction targets (each patch normalised when ``normalize``)."""
    if not normalize:
        return patches
    mean = patches.mean(dim=-1, keepdim=True)
    var = patches.var(dim=-1, keepdim=True)  # unbiased, as in the paper's code
    return (patches - mean) / (var + NORM_EPS).sqrt()


def masked_patch_loss(predicted: torch.Tensor, patches: torch.Tensor, masked: torch.Tensor,
                      normalize: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """(sum over masked patches of their mean squared error, number of masked patches).

    ``predicted [N, P, D]`` the decoder's patches, ``patches [N, P, D]`` the image's pixel
    patches (:func:`patchify`), ``masked [N, M]`` the masked patch indices of each image.
    """
    targets = patch_targets(patches.float(), normalize)
    error = (predicted.float() - targets).pow(2).mean(dim=-1)  # [N, P]
    total = error.gather(1, masked).sum()
    return total, torch.tensor(float(masked.numel()), device=predicted.device)
