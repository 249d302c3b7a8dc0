"""The recipe section of method ``mae`` (:mod:`cltt.methods.mae`): ``method.mae.*``."""

from __future__ import annotations

from dataclasses import dataclass

from cltt.errors import RecipeError
from cltt.recipe.checks import check_min
from cltt.recipe.methods import declare_method

TARGETS = ("self", "later")  # what the hidden patches are compared with (MAEConfig.target)


@dataclass
class MAEConfig:
    """``method.mae``: the masked autoencoder's mask ratio, light decoder and target.

    ``mask_ratio`` of each frame's patches are hidden from the encoder (He et al. 2022: 0.75);
    the decoder has ``decoder_depth`` pre-norm transformer blocks of width ``decoder_dim`` with
    ``decoder_heads`` heads; ``norm_pix_loss`` normalises each target patch by its own mean and
    variance (the paper's better setting). ``target`` is what the masked patches are compared
    with: ``self``, the frame's own patches (the paper), or ``later``, the same positions in the
    window's second frame (``data.window_size: 2``, ``data.frame_step`` frames later), which the
    encoder never sees: time, not only the frame, fills the hidden patches.
    """

    mask_ratio: float = 0.75  # fraction of each frame's patches hidden from the encoder
    decoder_depth: int = 2  # transformer blocks of the decoder (the paper: 8)
    decoder_dim: int = 128  # the decoder's width, a multiple of 4 (the paper: 512)
    decoder_heads: int = 4  # attention heads of each decoder block
    norm_pix_loss: bool = True  # targets are each patch's pixels normalised by its own mean and variance
    target: str = "self"  # self: the frame's own hidden patches; later: those of the frame data.frame_step later

    def validate(self, at: str) -> None:
        if not 0 < self.mask_ratio < 1:
            raise RecipeError(f"recipe key '{at}.mask_ratio' must be in (0, 1): some patches hidden, some seen; "
                              f"got {self.mask_ratio}")
        if self.target not in TARGETS:
            raise RecipeError(f"recipe key '{at}.target' must be one of {', '.join(TARGETS)}, got {self.target!r}")
        for name in ("decoder_depth", "decoder_dim", "decoder_heads"):
            check_min(getattr(self, name), f"{at}.{name}", 1)
        if self.decoder_dim % 4:
            raise RecipeError(f"recipe key '{at}.decoder_dim' must be a multiple of 4 (the 2-D sine-cosine position "
                              f"code), got {self.decoder_dim}")
        if self.decoder_dim % self.decoder_heads:
            raise RecipeError(f"recipe key '{at}.decoder_dim' ({self.decoder_dim}) must be divisible by "
                              f"'{at}.decoder_heads' ({self.decoder_heads})")


# no shared keys and no positives: method.positives (and temperature, ...) set for mae is refused in one line
declare_method("mae", MAEConfig)
