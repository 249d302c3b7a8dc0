"""The recipe section of method ``slotcontrast`` (:mod:`cltt.methods.slotcontrast`): ``method.slotcontrast.*``."""

from __future__ import annotations

from dataclasses import dataclass

from cltt.errors import RecipeError
from cltt.recipe.checks import check_min
from cltt.recipe.methods import declare_method


@dataclass
class SlotsConfig:
    """``method.slotcontrast``: object slots on frozen ViT patch features.

    Slot attention with ``num_slots`` slots of ``slot_dim``, ``iterations`` per frame
    (``first_iterations`` on the first); loss = ``recon_weight`` x feature reconstruction MSE
    + ``contrast_weight`` x slot-slot contrast at ``method.temperature``.
    """

    num_slots: int = 7
    slot_dim: int = 64
    iterations: int = 2
    first_iterations: int = 3
    mlp_hidden: int = 256  # hidden width of the MLP on the patch features
    decoder_hidden: int = 256  # hidden width of the MLP decoder
    predictor_heads: int = 4  # attention heads of the predictor that carries slots to the next frame
    recon_weight: float = 1.0
    contrast_weight: float = 0.5

    def validate(self, at: str) -> None:
        for name in ("num_slots", "slot_dim", "iterations", "first_iterations", "mlp_hidden", "decoder_hidden",
                     "predictor_heads"):
            check_min(getattr(self, name), f"{at}.{name}", 1)
        check_min(self.recon_weight, f"{at}.recon_weight", 0)
        check_min(self.contrast_weight, f"{at}.contrast_weight", 0)
        if self.slot_dim % self.predictor_heads:
            raise RecipeError(f"recipe key '{at}.slot_dim' ({self.slot_dim}) must be divisible by "
                              f"'{at}.predictor_heads' ({self.predictor_heads})")


declare_method("slotcontrast", SlotsConfig, shared_keys=("temperature",))
