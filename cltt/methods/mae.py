"""``mae``: masked autoencoder on a vision transformer (He et al., CVPR 2022).

One of the three families (DINO, Mugs, MAE) of Orhan & Lake's SAYCam models (Nature Machine
Intelligence 2024), and the non-contrastive baseline: no positives, no negatives. Every frame
of every window is an image on its own::

    patches  x [P, p*p*3]    the frame cut into P patches (cltt.objectives.mae.patchify)
    visible  V = floor(P (1 - r)) patches with the smallest noise u [P] (r = method.mae.mask_ratio)
    latent   z = ViT(class token, visible patches + their positions)        [1 + V, C]
    pred     = decoder(z, visible indices)                                  [P, p*p*3]
    L = mean over masked patches of the squared error to the normalised pixel patches

The encoder sees only the visible patches (:class:`~cltt.models.masked_vit.VisibleTokens`); the
decoder (``method.mae.decoder_depth`` blocks of ``decoder_dim``) is light and only used in
training. The noise ``u`` comes from a seed the dataset draws for each sample from the sample's
own generator (seed, epoch, index): a sample is masked alike on any process, in any
sub-batch, and after a resume, so exact resume and two processes equal one hold.

The loss needs no other sample: it is the engine's *local* part (units = masked patches), and
:meth:`MAE.loss_terms` is zero. The embeddings the engine sees are the pooled latents of the
visible patches, for the collapse monitor. ``method.positives`` does not apply (the recipe
refuses it in one line).

A temporal target (``method.mae.target: later``): a window holds two frames, ``x_t`` and
``x_t+k`` (``data.window_size: 2``, ``k = data.frame_step``); the encoder sees ``x_t``'s
visible patches only and the decoder's prediction at each hidden position is scored against
``x_t+k``'s patch there::

    latent = ViT(class token, visible patches of x_t)      pred = decoder(latent, visible)
    L = mean over masked positions j of || pred_j - target(x_t+k)_j ||^2

The visible positions are not scored: for small k they are near-copies of what the encoder
saw, so only the hidden ones ask where things went. One crop and flip serves both frames
(``data.augment.consistent: true``), so a position shows the same place at t and t+k; only
``x_t`` goes through the encoder, so a sample encodes one frame, as with ``self``.

Probes and export read the backbone's own readout of the whole frame: the class token for the
built-in ViTs (``vit_t8``, ``vit_s16``, ``vit_b16``), and for timm ViTs what ``model.pool``
says (``token``: the class token; ``avg``: the mean patch token). A CNN backbone is refused.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from cltt.errors import CLTTError
from cltt.methods import register_method
from cltt.methods.base import Forward, Method
from cltt.models.backbones import BACKBONES, VIT_SIZES, backbone_from_model
from cltt.models.encoder import ContrastiveEncoder
from cltt.models.masked_vit import MAEDecoder, VisibleTokens
from cltt.objectives.mae import masked_patch_loss, patchify, split_patches


class NoHead(nn.Identity):
    """The encoder's head slot: MAE has no projection; its decoder reads tokens, not pooled features."""

    def __init__(self, out_dim: int) -> None:
        super().__init__()
        self.out_dim = out_dim


class MaskSeeds:
    """Dataset extras: ``{"mask_seed": int64 []}``, one seed per sample from the sample's rng."""

    def __call__(self, images, rng: np.random.Generator) -> dict[str, torch.Tensor]:
        return {"mask_seed": torch.tensor(int(rng.integers(0, 2**62)), dtype=torch.int64)}


def mask_noise(seeds: torch.Tensor, per_sample: int, num_patches: int) -> torch.Tensor:
    """``seeds [b]`` -> uniform noise ``[b * per_sample, num_patches]``, sample i's rows from seed i alone."""
    rows = [torch.rand(per_sample, num_patches, generator=torch.Generator().manual_seed(int(seed)))
            for seed in seeds.tolist()]
    return torch.cat(rows).to(seeds.device)


@register_method("mae")
class MAE(Method):
    """A ViT encodes a quarter of each frame's patches; a light decoder reconstructs the rest (MAE)."""

    extra_keys = ("mask_seed",)
    loss_extra_keys = ()  # the seeds are model input only
    contrast_term = "none"
    local_term = "reconstruction"
    sample_kind = "windows"
    example = {"model": {"backbone": "vit_t8"}, "data": {"augment": {"enabled": False}},
               "method": {"mae": {"decoder_depth": 1, "decoder_dim": 32, "decoder_heads": 2}}}
    variants = {"later": {"data": {"window_size": 2, "frame_step": 2}, "method": {"mae": {"target": "later"}}}}

    @classmethod
    def check_recipe(cls, recipe) -> None:
        super().check_recipe(recipe)
        backbone = recipe.model.backbone
        if backbone in BACKBONES and backbone not in VIT_SIZES:  # timm names are checked when built
            raise CLTTError(f"method.name=mae masks the patches of a vision transformer; model.backbone={backbone} is "
                            f"not one (use {', '.join(VIT_SIZES)} or a timm ViT such as timm/vit_tiny_patch16_224)")

    @classmethod
    def check_training(cls, recipe) -> None:
        """``later`` trains on windows of two frames with one crop and flip for both."""
        if recipe.method.mae.target != "later":
            return
        data = recipe.data
        reads = "method.mae.target=later reads windows of two frames, the encoder's and the target data.frame_step later"
        if data.window_size != 2:
            raise CLTTError(f"{reads}; set data.window_size=2 (got {data.window_size})")
        if data.two_view_offset:
            raise CLTTError(f"{reads}, not two windows; set data.two_view_offset=0 (got {data.two_view_offset})")
        if data.augment.enabled and not data.augment.consistent:
            raise CLTTError("method.mae.target=later compares each hidden position with the same position in the "
                            "later frame, so both frames need one crop and flip; set data.augment.consistent=true")

    @classmethod
    def encoded_frames(cls, recipe) -> int:
        """``later``: the window's first frame only goes through the encoder; the second is a target."""
        frames = super().encoded_frames(recipe)
        return frames // 2 if recipe.method.mae.target == "later" else frames

    def build_encoder(self, recipe) -> ContrastiveEncoder:
        built, report = backbone_from_model(recipe.model, recipe.data.image_size)
        self.vit = VisibleTokens(built.module, recipe.model.backbone)
        encoder = ContrastiveEncoder(built.module, NoHead(built.feature_dim), built.feature_dim)
        encoder.load_report, encoder.fixed_size = report, built.fixed_size
        return encoder

    def __init__(self, recipe) -> None:
        super().__init__(recipe)
        options = self.options
        self.patch_size = self.vit.patch_size
        grid = recipe.data.image_size // self.patch_size  # the backbone refuses sizes that are not a multiple
        self.num_patches = grid * grid
        self.decoder = MAEDecoder(self.encoder.feature_dim, options.decoder_dim, options.decoder_depth,
                                  options.decoder_heads, grid, self.patch_size, self.vit.prefix_tokens)

    @classmethod
    def training_dataset(cls, recipe, store, seed: int):
        from cltt.data.build import windows_dataset

        return windows_dataset(recipe.data, store, views=cls.dataset_views(recipe), augment=True, seed=seed,
                               extras=MaskSeeds())

    def forward_step(self, views: torch.Tensor, extras: dict[str, torch.Tensor]) -> Forward:
        """``views [b, V, T, 3, S, S]`` -> pooled visible latents ``[b, V*T, C]`` and the summed
        masked-patch error over the ``b * V * T`` frames (units: masked patches). With
        ``target: later`` (T = 2) only frame 0 of each window is encoded (``[b, V, C]``) and
        frame 1 is its target."""
        if self.options.target == "later":
            frames, targets = views[:, :, 0].flatten(0, 1), views[:, :, 1].flatten(0, 1)
        else:
            frames = targets = views.flatten(0, 2)
        b, per_sample = views.shape[0], frames.shape[0] // views.shape[0]
        noise = mask_noise(extras["mask_seed"], per_sample, self.num_patches)
        visible, masked = split_patches(noise, self.options.mask_ratio)
        prefix, patches = self.vit.tokens(frames)
        seen = patches.gather(1, visible.unsqueeze(-1).expand(-1, -1, patches.shape[-1]))
        latent = self.vit.encode(prefix, seen)
        predicted = self.decoder(latent, visible)
        total, units = masked_patch_loss(predicted, patchify(targets, self.patch_size), masked,
                                         self.options.norm_pix_loss)
        return Forward(self.vit.pool(latent).view(b, per_sample, -1), total, units)

    def loss_terms(self, embeddings, first, count, extras=None):
        """No term across samples: zero, kept in the graph (exact sub-batching needs dL/dz)."""
        return embeddings.sum() * 0.0, torch.zeros((), device=embeddings.device)

    def export_encoder(self):
        return self.encoder, f"method {self.name}'s decoder reconstructs masked patches and is not a per-frame head"
