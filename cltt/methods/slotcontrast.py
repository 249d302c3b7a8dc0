"""``slotcontrast``: temporally consistent object slots by contrasting slots across time.

Manasyan et al., "Temporally Consistent Object-Centric Learning by Contrasting Slots", CVPR 2025.
A sample is one window of T consecutive frames (one view). Per frame:

    h_t = ViT(frame_t)                     patch features (frozen)      [P, C]
    x_t = MLP(h_t + pos)                   2-layer transform            [P, D]
    s_0 = SlotAttention(x_0, learned init, first_iterations)           [K, D]
    s_t = SlotAttention(x_t, Predictor(s_{t-1}), iterations),  t >= 1
    recon_t, masks_t = Decoder(s_t)        [P, C], [K, P]

    L = recon_weight * mean over elements of (recon_t - h_t)^2
      + contrast_weight * slot-slot contrast

Slot-slot contrast (``method.temperature`` tau; cosine similarity of L2-normalised slots): for
every t < T-1, the slot k of video i at t+1 is an anchor, every slot of every video in the
global batch at t is a candidate (B*K of them) and the one positive is slot k of video i at
t, so slot k must keep following the same object:

    l(i, t, k) = -log  exp(<z_{i,t+1,k}, z_{i,t,k}> / tau) / sum_{j, m} exp(<z_{i,t+1,k}, z_{j,t,m}> / tau)

averaged over anchors (units = anchors). The reconstruction needs no other sample, so it is
the engine's *local* part (units = elements); the contrast is :meth:`loss_terms`. With
``contrast_weight: 0`` the same model trains on reconstruction alone (the ablation).

``pos`` is slot attention's soft position embedding (Locatello et al. 2020): a learned linear
map of each patch's grid coordinates ``(x, y, 1-x, 1-y)`` to ``[C]``. Without it a slot knows
what it attends to but not where, so the decoder cannot place objects: a frozen ViT with
random weights keeps almost nothing of its own position embedding (initialised at std 0.02
beside patch embeddings of order 1).

SlotContrast trains without strong augmentation: colour jitter would change what an object
looks like between the windows the model sees; see ``recipes/slotcontrast.yaml`` for the
recommended ``data.augment`` (a mild, window-consistent crop and flip, no colour changes).

``method.encoder`` (what ``cltt probe`` and export read) is :class:`SlotEncoder`: frames to
slots. Its ``represent(frames)`` is the mean of a frame's slots, the frame taken on its own
(learned init, ``first_iterations``): ``[N, 3, S, S] -> [N, slot_dim]``.
:meth:`SlotContrast.slot_masks` gives masks of whole clips for :mod:`cltt.eval.slots` and
``cltt visualize --mode slots``: the decoder's alpha masks (DINOSAUR's and SlotContrast's
choice) or slot attention's own attention maps.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from cltt.errors import CLTTError, RecipeError
from cltt.methods import register_method
from cltt.methods.base import Forward, Method
from cltt.models.patch_features import PatchFeatures
from cltt.models.slots import SlotAttention, SlotDecoder, SlotPredictor
from cltt.recipe import check_min


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
    mlp_hidden: int = 256
    decoder_hidden: int = 256
    predictor_heads: int = 4
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

MASK_KINDS = ("decoder", "attention")


class SoftPosition(nn.Module):
    """Learned position embedding of a ``grid x grid`` patch grid: ``Linear(x, y, 1-x, 1-y) -> [P, C]``."""

    def __init__(self, grid: int, width: int) -> None:
        super().__init__()
        ticks = torch.linspace(0.0, 1.0, grid)
        y, x = torch.meshgrid(ticks, ticks, indexing="ij")  # row-major, as the ViT orders patches
        self.register_buffer("coords", torch.stack([x, y, 1 - x, 1 - y], dim=-1).reshape(grid * grid, 4),
                             persistent=False)
        self.project = nn.Linear(4, width)

    def forward(self) -> torch.Tensor:
        return self.project(self.coords)


class SlotEncoder(nn.Module):
    """Frames to object slots: frozen ViT patches, MLP transform, slot attention, predictor."""

    def __init__(self, recipe) -> None:
        super().__init__()
        slots = recipe.method.slotcontrast
        self.features = PatchFeatures(recipe.model, recipe.data.image_size)
        self.load_report = self.features.load_report
        width = self.features.feature_dim
        self.position = SoftPosition(self.features.grid, width)
        self.transform = nn.Sequential(nn.LayerNorm(width), nn.Linear(width, slots.mlp_hidden), nn.ReLU(),
                                       nn.Linear(slots.mlp_hidden, slots.slot_dim))
        self.slot_attention = SlotAttention(slots.slot_dim, slots.slot_dim, slots.num_slots, slots.mlp_hidden)
        self.predictor = SlotPredictor(slots.slot_dim, slots.predictor_heads)
        self.iterations = slots.iterations
        self.first_iterations = slots.first_iterations
        self.num_slots = slots.num_slots
        self.feature_dim = slots.slot_dim  # width of represent()

    def patches(self, frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``[N, 3, S, S]`` -> (frozen features ``[N, P, C]``, slot-attention inputs ``[N, P, D]``)."""
        features = self.features(frames)
        return features, self.transform(features + self.position())

    def track(self, inputs: torch.Tensor, previous: torch.Tensor | None = None,
              with_attention: bool = False) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """Slots of each frame of ``inputs [b, T, P, D]`` -> ``[b, T, K, D]`` (and, with
        ``with_attention``, each frame's last slot-attention map ``[b, T, K, P]``).

        Frame 0 starts from the learned slots (``first_iterations``) or, when ``previous``
        ``[b, K, D]`` (the last slots of an earlier chunk of the same clip) is given, from
        ``predictor(previous)`` (``iterations``); every later frame from the predictor.
        """
        b, frames = inputs.shape[:2]
        if previous is None:
            slots, attn = self.slot_attention(inputs[:, 0], self.slot_attention.initial(b), self.first_iterations)
        else:
            slots, attn = self.slot_attention(inputs[:, 0], self.predictor(previous), self.iterations)
        out, maps = [slots], [attn]
        for t in range(1, frames):
            slots, attn = self.slot_attention(inputs[:, t], self.predictor(slots), self.iterations)
            out.append(slots)
            maps.append(attn)
        if with_attention:
            return torch.stack(out, dim=1), torch.stack(maps, dim=1)
        return torch.stack(out, dim=1)

    def represent(self, frames: torch.Tensor) -> torch.Tensor:
        """Mean slot of each frame on its own: ``[..., 3, S, S] -> [..., slot_dim]``."""
        leading = frames.shape[:-3]
        _, inputs = self.patches(frames.reshape(-1, *frames.shape[-3:]))
        slots = self.track(inputs.unsqueeze(1))[:, 0]
        return slots.mean(dim=1).reshape(*leading, -1)


def slot_contrast(slots: torch.Tensor, first: int, count: int, temperature: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Slot-slot InfoNCE of the anchors of samples ``first .. first+count-1`` (module doc).

    ``slots [B, T, K, D]`` of the whole (global) batch -> (sum of the anchors' terms, number of
    anchors = ``count * (T - 1) * K``). Anchor (i, t+1, k) is scored against the ``B * K``
    slots at t; its positive is (i, t, k).
    """
    num_videos, frames, k, _ = slots.shape
    z = F.normalize(slots.float(), dim=-1)
    anchors = z[first:first + count, 1:]  # [count, T-1, K, D]
    candidates = z[:, :-1]  # [B, T-1, K, D]
    logits = torch.einsum("itkd,jtmd->tikjm", anchors, candidates).reshape(frames - 1, count * k, num_videos * k)
    positives = torch.arange(first * k, (first + count) * k, device=slots.device)
    targets = positives.expand(frames - 1, -1)
    total = F.cross_entropy((logits / temperature).flatten(0, 1), targets.reshape(-1), reduction="sum")
    return total, torch.tensor(float(targets.numel()), device=slots.device)


@register_method("slotcontrast", config=SlotsConfig)
class SlotContrast(Method):
    """Object slots tracked through time on frozen ViT features, with a slot-slot contrast (SlotContrast)."""

    shared_keys = ("temperature",)
    default_freeze = "backbone"  # the ViT's features are the targets; model.freeze=none fine-tunes it too
    contrast_term = "slot_contrast"
    local_term = "reconstruction"
    example = {"model": {"backbone": "vit_t8"}, "data": {"augment": {"enabled": False}},
               "method": {"slotcontrast": {"num_slots": 3, "slot_dim": 16, "mlp_hidden": 32, "decoder_hidden": 32,
                                           "predictor_heads": 2}}}

    @classmethod
    def check_recipe(cls, recipe) -> None:
        super().check_recipe(recipe)
        if recipe.data.two_view_offset:
            raise CLTTError("method.name=slotcontrast reads one window of consecutive frames; set data.two_view_offset=0")
        if recipe.method.slotcontrast.contrast_weight > 0 and recipe.data.window_size < 2:
            raise CLTTError("the slot-slot contrast compares frames t and t+1, so data.window_size must be >= 2 "
                            "(or set method.slotcontrast.contrast_weight=0)")

    def build_encoder(self, recipe) -> SlotEncoder:
        return SlotEncoder(recipe)

    def __init__(self, recipe) -> None:
        super().__init__(recipe)
        self.num_slots = self.options.num_slots
        features = self.encoder.features
        self.decoder = SlotDecoder(self.options.slot_dim, features.feature_dim, features.num_patches,
                                   self.options.decoder_hidden)

    def forward_step(self, views: torch.Tensor, extras: dict[str, torch.Tensor]) -> Forward:
        """``views [b, 1, T, 3, S, S]`` -> slots ``[b, T*K, D]`` and the weighted reconstruction error."""
        frames = views[:, 0]
        b, t = frames.shape[:2]
        features, inputs = self.encoder.patches(frames.flatten(0, 1))
        slots = self.encoder.track(inputs.unflatten(0, (b, t)))
        recon, _ = self.decoder(slots.flatten(0, 1))
        # the target is detached: a ViT being fine-tuned (model.freeze=none) learns through the slots,
        # not by moving its own features towards what the decoder already predicts
        error = (recon.float() - features.detach().float()).pow(2).sum()
        units = torch.tensor(float(recon.numel()), device=recon.device)
        return Forward(slots.flatten(1, 2), self.options.recon_weight * error, units)

    def loss_terms(self, embeddings: torch.Tensor, first: int, count: int,
                   extras: dict[str, torch.Tensor] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """``embeddings [B, T*K, D]`` -> (contrast_weight x sum of anchor terms, anchors)."""
        k = self.num_slots
        slots = embeddings.unflatten(1, (embeddings.shape[1] // k, k))
        weight = self.options.contrast_weight
        frames = slots.shape[1]
        anchors = torch.tensor(float(count * max(frames - 1, 0) * k), device=embeddings.device)
        if weight == 0 or frames < 2:
            return embeddings.sum() * 0.0, anchors  # keeps the graph: exact sub-batching needs dL/dz
        total, anchors = slot_contrast(slots, first, count, self.config.temperature)
        return weight * total, anchors

    def monitor_images(self, inputs: torch.Tensor, frames) -> dict:
        """``slot_masks``: each window's frames, then tinted by the decoder's argmax slot."""
        from cltt.visualize import slot_mask_grid

        masks = self.all_slot_masks(inputs[:, 0])["decoder"]
        return {"slot_masks": slot_mask_grid(frames[:, 0], masks.float().cpu().numpy())}

    def slot_masks(self, frames: torch.Tensor, chunk_size: int | None = None, kind: str = "decoder") -> torch.Tensor:
        """Masks of whole clips: ``frames [N, T, 3, S, S]`` -> ``[N, T, K, h, w]`` on the patch grid.

        ``kind``: ``decoder`` (the decoder's alpha masks, what the reconstruction used) or
        ``attention`` (slot attention's last attention map of each frame); see :meth:`all_slot_masks`.
        """
        if kind not in MASK_KINDS:
            raise CLTTError(f"slot mask kind must be one of {', '.join(MASK_KINDS)}, got {kind!r}")
        return self.all_slot_masks(frames, chunk_size)[kind]

    @torch.no_grad()
    def all_slot_masks(self, frames: torch.Tensor, chunk_size: int | None = None) -> dict[str, torch.Tensor]:
        """Both kinds of masks of whole clips, ``{kind: [N, T, K, h, w]}``, each summing to 1 over slots.

        Frames go through in chunks of ``chunk_size`` along T (all at once when None); the
        slots carry from chunk to chunk through the predictor, so the result is the same as
        one pass over the clip, only the memory differs.
        """
        n, total = frames.shape[:2]
        step = chunk_size or total
        grid = self.encoder.features.grid
        previous, masks = None, {kind: [] for kind in MASK_KINDS}
        for start in range(0, total, step):
            chunk = frames[:, start:start + step]
            _, inputs = self.encoder.patches(chunk.flatten(0, 1))
            slots, attention = self.encoder.track(inputs.unflatten(0, chunk.shape[:2]), previous, with_attention=True)
            previous = slots[:, -1]
            _, alphas = self.decoder(slots.flatten(0, 1))
            masks["decoder"].append(alphas.unflatten(0, chunk.shape[:2]))
            masks["attention"].append(attention)
        return {kind: torch.cat(parts, dim=1).unflatten(-1, (grid, grid)) for kind, parts in masks.items()}
