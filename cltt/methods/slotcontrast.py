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

The encoder (everything up to ``s_t``, and ``pos``, slot attention's soft position embedding)
is :class:`~cltt.models.slot_encoder.SlotEncoder`; the slot-slot contrast (``method.temperature``
tau: slot k of video i at t+1 against every slot of the global batch at t, its positive slot k
of video i at t) is :func:`~cltt.objectives.slot_contrast.slot_contrast`, averaged over anchors
(units = anchors). The reconstruction needs no other sample, so it is the engine's *local*
part (units = elements); the contrast is :meth:`loss_terms`. With ``contrast_weight: 0`` the
same model trains on reconstruction alone (the ablation).

SlotContrast trains without strong augmentation: colour jitter would change what an object
looks like between the windows the model sees; see ``recipes/slotcontrast.yaml`` for the
recommended ``data.augment`` (a mild, window-consistent crop and flip, no colour changes).

``method.encoder`` (what ``cltt probe`` and export read) is the :class:`SlotEncoder`: frames to
slots. Its ``represent(frames)`` is the mean of a frame's slots, the frame taken on its own
(learned init, ``first_iterations``): ``[N, 3, S, S] -> [N, slot_dim]``.
:meth:`SlotContrast.slot_masks` gives masks of whole clips for :mod:`cltt.eval.slots` and
``cltt visualize --mode slots``: the decoder's alpha masks (DINOSAUR's and SlotContrast's
choice) or slot attention's own attention maps.
"""

from __future__ import annotations

import torch

from cltt.errors import CLTTError
from cltt.methods import register_method
from cltt.methods.base import Forward, Method
from cltt.models.patch_features import PatchFeatures
from cltt.models.slot_encoder import SlotEncoder
from cltt.models.slots import SlotDecoder
from cltt.objectives.slot_contrast import slot_contrast

MASK_KINDS = ("decoder", "attention")


@register_method("slotcontrast")
class SlotContrast(Method):
    """Object slots tracked through time on frozen ViT features, with a slot-slot contrast (SlotContrast)."""

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

    @classmethod
    def negatives(cls, recipe) -> str:
        # every slot at t is a candidate, the other slots of the anchor's own video included
        return "batch+sample" if recipe.method.slotcontrast.contrast_weight > 0 else "none"

    def build_encoder(self, recipe) -> SlotEncoder:
        slots = recipe.method.slotcontrast
        return SlotEncoder(PatchFeatures(recipe.model, recipe.data.image_size), slots.num_slots, slots.slot_dim,
                           slots.mlp_hidden, slots.predictor_heads, slots.iterations, slots.first_iterations)

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
        from cltt.data.tiles import slot_mask_grid

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
