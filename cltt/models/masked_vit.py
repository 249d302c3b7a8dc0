"""A vision transformer that encodes only some of its patches, and MAE's light decoder.

The masked autoencoder (He et al. 2022) runs its encoder on the visible patches alone, which
is both its point and its speed. :class:`VisibleTokens` opens a ViT backbone (the built-in
torchvision ones, ``vit_t8``, ``vit_s16``, ``vit_b16``, or a timm ``VisionTransformer``) into the
three parts that allows, without copying or re-registering its weights:

    prefix, patches = vit.tokens(frames)   # [N, 3, S, S] -> [N, n, C] class/register tokens,
                                           #                 [N, P, C] patch tokens, positions added
    latent = vit.encode(prefix, visible)   # [N, n, C] + [N, V, C] -> [N, n + V, C]: blocks, final norm
    h = vit.pool(latent)                   # -> [N, C]: what the backbone's own forward returns

With every patch visible, ``pool(encode(*tokens(frames)))`` is ``backbone(frames)``: the class
token (torchvision; timm with ``model.pool: token``) or the mean patch token (timm with
``model.pool: avg``), the representation probes and export read.

:class:`MAEDecoder` puts the encoded visible tokens back among learned mask tokens at their
grid positions, adds a fixed 2-D sine-cosine position code, runs a few pre-norm transformer
blocks and predicts each patch's ``p*p*3`` pixel values.
"""

from __future__ import annotations

import torch
from torch import nn
from torchvision.models.vision_transformer import VisionTransformer

from cltt.errors import CLTTError


class VisibleTokens:
    """The parts of a ViT ``module`` (see module doc); holds the module, registers nothing."""

    def __init__(self, module: nn.Module, name: str) -> None:
        self.module = module
        if isinstance(module, VisionTransformer):
            self.kind, self.patch_size, self.prefix_tokens = "torchvision", module.patch_size, 1
            return
        try:
            from timm.models.vision_transformer import VisionTransformer as TimmViT
        except ImportError:  # pragma: no cover - timm is a dependency
            TimmViT = ()
        if not isinstance(module, TimmViT) or getattr(module, "dynamic_img_size", False):
            raise CLTTError(f"method.name=mae masks the patches of a vision transformer; model.backbone={name} is "
                            "not one (use vit_t8, vit_s16, vit_b16 or a timm ViT such as timm/vit_tiny_patch16_224)")
        self.kind, self.patch_size = "timm", int(module.patch_embed.patch_size[0])
        self.prefix_tokens = int(module.num_prefix_tokens)

    def tokens(self, frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``[N, 3, S, S]`` -> (prefix tokens ``[N, n, C]``, patch tokens ``[N, P, C]``), positions added."""
        vit = self.module
        if self.kind == "torchvision":
            patches = vit._process_input(frames)
            cls = vit.class_token.expand(patches.shape[0], -1, -1)
            x = torch.cat([cls, patches], dim=1) + vit.encoder.pos_embedding
        else:
            x = vit._pos_embed(vit.patch_embed(frames))
        return x[:, :self.prefix_tokens], x[:, self.prefix_tokens:]

    def encode(self, prefix: torch.Tensor, visible: torch.Tensor) -> torch.Tensor:
        """The transformer on the prefix and the visible patch tokens: ``[N, n + V, C]``, final norm applied."""
        vit = self.module
        x = torch.cat([prefix, visible], dim=1)
        if self.kind == "torchvision":
            return vit.encoder.ln(vit.encoder.layers(vit.encoder.dropout(x)))
        return vit.norm(vit.blocks(vit.norm_pre(vit.patch_drop(x))))

    def pool(self, latent: torch.Tensor) -> torch.Tensor:
        """``[N, n + V, C]`` -> ``[N, C]``: the backbone's own readout (class token, or its ``model.pool``)."""
        if self.kind == "torchvision":
            return latent[:, 0]
        return self.module.forward_head(latent, pre_logits=True)


def sincos_position_code(grid: int, dim: int) -> torch.Tensor:
    """``[grid*grid, dim]`` fixed 2-D sine-cosine code, row-major: a quarter of the channels each
    for sin and cos of the column and of the row, at frequencies ``10000^(-k / (dim/4))``."""
    quarter = dim // 4
    frequencies = 1.0 / 10000 ** (torch.arange(quarter, dtype=torch.float64) / quarter)
    rows, cols = torch.meshgrid(torch.arange(grid, dtype=torch.float64), torch.arange(grid, dtype=torch.float64),
                                indexing="ij")
    col_angles = cols.reshape(-1, 1) * frequencies
    row_angles = rows.reshape(-1, 1) * frequencies
    code = torch.cat([col_angles.sin(), col_angles.cos(), row_angles.sin(), row_angles.cos()], dim=1)
    return code.float()


class MAEDecoder(nn.Module):
    """``latent [N, n + V, C]`` and the visible indices ``[N, V]`` -> predicted patches ``[N, P, p*p*3]``.

    Linear ``C -> dim``; the visible tokens scattered into ``P`` learned mask tokens at their
    indices; plus the sine-cosine code of each grid position (the prefix tokens get none);
    ``depth`` pre-norm transformer blocks (``heads`` heads, MLP 4 x dim, GELU); LayerNorm;
    Linear ``dim -> p*p*3``; prefix tokens dropped.
    """

    def __init__(self, in_dim: int, dim: int, depth: int, heads: int, grid: int, patch_size: int,
                 prefix_tokens: int) -> None:
        super().__init__()
        self.embed = nn.Linear(in_dim, dim)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, dim))
        nn.init.normal_(self.mask_token, std=0.02)
        self.register_buffer("position", sincos_position_code(grid, dim), persistent=False)
        self.blocks = nn.ModuleList(
            nn.TransformerEncoderLayer(dim, heads, 4 * dim, dropout=0.0, activation="gelu", batch_first=True,
                                       norm_first=True)
            for _ in range(depth))
        self.norm = nn.LayerNorm(dim)
        self.predict = nn.Linear(dim, patch_size * patch_size * 3)
        self.prefix_tokens = prefix_tokens
        self.num_patches = grid * grid

    def forward(self, latent: torch.Tensor, visible: torch.Tensor) -> torch.Tensor:
        x = self.embed(latent)
        prefix, tokens = x[:, :self.prefix_tokens], x[:, self.prefix_tokens:]
        n, _, dim = tokens.shape
        grid = self.mask_token.to(tokens.dtype).expand(n, self.num_patches, dim)
        grid = grid.scatter(1, visible.unsqueeze(-1).expand(-1, -1, dim), tokens) + self.position.to(tokens.dtype)
        x = torch.cat([prefix, grid], dim=1)
        for block in self.blocks:
            x = block(x)
        return self.predict(self.norm(x))[:, self.prefix_tokens:]

