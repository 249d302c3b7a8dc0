"""The recipe section of method ``carl`` (:mod:`cltt.methods.carl`): ``method.carl.*``."""

from __future__ import annotations

from dataclasses import dataclass, field

from cltt.errors import RecipeError
from cltt.recipe.checks import check_min, check_pair, check_positive
from cltt.recipe.methods import declare_method


@dataclass
class CarlConfig:
    """``method.carl``: sequence contrast between two temporal views of one video.

    Each view takes ``frames`` sorted frames from a random region covering a fraction in
    ``region`` of the video (fewer frames than that: the rest is padding, masked); the target
    over the other view's frames is a Gaussian of timestamp difference with variance
    ``sigma_squared`` (in frames).
    """

    frames: int = 16
    region: list[float] = field(default_factory=lambda: [0.5, 1.0])
    samples_per_clip: int = 1  # samples of each clip per epoch (fills batches when clips are few)
    sigma_squared: float = 10.0
    layers: int = 2  # transformer layers over each view's frames
    heads: int = 8  # attention heads of the transformer
    embedding_dim: int = 128  # size of each frame's embedding

    def validate(self, at: str) -> None:
        check_min(self.frames, f"{at}.frames", 2)
        check_min(self.samples_per_clip, f"{at}.samples_per_clip", 1)
        check_pair(self.region, f"{at}.region", 0.0, 1.0)
        if self.region[0] <= 0:
            raise RecipeError(f"recipe key '{at}.region' must be fractions in (0, 1], got {self.region}")
        check_positive(self.sigma_squared, f"{at}.sigma_squared")
        for name in ("layers", "heads", "embedding_dim"):
            check_min(getattr(self, name), f"{at}.{name}", 1)
        if self.embedding_dim % self.heads:
            raise RecipeError(f"recipe key '{at}.embedding_dim' ({self.embedding_dim}) must be divisible by "
                              f"'{at}.heads' ({self.heads})")


declare_method("carl", CarlConfig, shared_keys=("temperature",))
