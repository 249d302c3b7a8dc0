"""``carl``: frame-wise representations by sequence contrast (Chen et al. 2022, CARL).

A sample is two temporally augmented views of one whole video (:mod:`cltt.data.sequences`:
T sorted frames from an overlapping random region each, padding masked, one spatial
augmentation per view). Each frame goes through the backbone alone; a small transformer over
the view's frames (positions = the frames' ranks 0..T-1 in the view, as CARL does) turns them
into ``method.carl.embedding_dim``-d frame embeddings; a projection MLP maps those to what the
loss sees: :class:`~cltt.models.carl_encoder.CarlEncoder`. The loss is the sequence
contrastive KL of :mod:`cltt.objectives.sequence_contrast` between the two views of each
sample only, its Gaussian target over original frame numbers with variance
``method.carl.sigma_squared`` and temperature ``method.temperature``.

What downstream code reads:

    method.frame_embeddings(frames, valid)    # [N, T, 3, S, S] -> [N, T, E]   phases probe
    method.encoder.represent(frames)          # [..., 3, S, S] -> [..., F]     the backbone alone,
                                              # per frame (class probes, export without head)

The projection head is Linear -> ReLU -> Linear (``model.projection_hidden``, default E, and
``model.projection_dim``) without batch norm (``model.head_batchnorm`` is not used), so a
sample's embeddings never depend on the other samples of a batch.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from cltt.data.build import training_clips
from cltt.data.sequences import SequenceDataset
from cltt.errors import CLTTError
from cltt.methods import register_method
from cltt.methods.base import Forward, Method
from cltt.models.backbones import backbone_from_model
from cltt.models.carl_encoder import CarlEncoder
from cltt.objectives.sequence_contrast import sequence_contrast_loss


@register_method("carl")
class CARL(Method):
    """Frame embeddings of whole videos by sequence contrast between two temporal views (CARL)."""

    extra_keys = ("times", "valid")
    sample_kind = "video samples"
    example = {"method": {"carl": {"frames": 4, "layers": 1, "heads": 2, "embedding_dim": 16, "samples_per_clip": 4}},
               "train": {"batch_size": 4}}

    @classmethod
    def negatives(cls, recipe) -> str:
        return "sample"  # the other frames of the two views of one video

    def build_encoder(self, recipe) -> CarlEncoder:
        carl, model = recipe.method.carl, recipe.model
        built, report = backbone_from_model(model, recipe.data.image_size)
        encoder = CarlEncoder(built.module, built.feature_dim, carl.embedding_dim, carl.layers, carl.heads,
                              model.projection_hidden or carl.embedding_dim, model.projection_dim, carl.frames)
        encoder.load_report = report
        return encoder

    @classmethod
    def training_dataset(cls, recipe, store, seed: int):
        """``samples_per_clip`` samples (two views of T frames) per clip per epoch; see
        :mod:`cltt.data.sequences`. More than one lets a handful of clips fill a batch."""
        carl = recipe.method.carl
        return SequenceDataset(store, carl.frames, tuple(carl.region), recipe.data.image_size,
                               recipe.data.augment, seed=seed, samples_per_clip=carl.samples_per_clip,
                               clips=training_clips(recipe.data, store))

    def forward_step(self, views: torch.Tensor, extras: dict[str, torch.Tensor]) -> Forward:
        """``views [b, 2, T, 3, S, S]``, ``extras["valid"] [b, 2, T]`` -> projections ``[b, 2T, P]``
        (view 0's frames first, then view 1's)."""
        b, v, t = views.shape[:3]
        flat = views.reshape(-1, *views.shape[-3:])
        if self.channels_last:
            flat = flat.contiguous(memory_format=torch.channels_last)
        features = self.encoder.backbone(flat).view(b * v, t, -1)
        embeddings = self.encoder.contextualise(features, extras["valid"].reshape(b * v, t))
        return Forward(self.encoder.projection(embeddings).view(b, v * t, -1))

    def loss_terms(self, embeddings: torch.Tensor, first: int, count: int,
                   extras: dict[str, torch.Tensor] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Sequence contrast between the two views of each of samples ``first .. first+count-1``."""
        if extras is None or "times" not in extras or "valid" not in extras:
            raise CLTTError("method.name=carl needs the dataset's times and valid tensors; train it with cltt train")
        t = embeddings.shape[1] // 2
        own = slice(first, first + count)
        z, times, valid = embeddings[own], extras["times"][own], extras["valid"][own]
        return sequence_contrast_loss(z[:, :t], z[:, t:], times[:, 0], times[:, 1], valid[:, 0], valid[:, 1],
                                      temperature=self.config.temperature,
                                      sigma_squared=self.options.sigma_squared)

    def monitor_images(self, inputs: torch.Tensor, frames) -> dict:
        """``alignment``: the two sampled sequences of the first video and the cosine similarity
        of their frame embeddings, each frame's nearest neighbour in the other marked."""
        from cltt.data.tiles import alignment_image

        embeddings = F.normalize(self.frame_embeddings(inputs[0]).float(), dim=-1)  # [2, T, E]
        similarity = (embeddings[0] @ embeddings[1].T).cpu().numpy()
        return {"alignment": alignment_image(frames[0, 0], frames[0, 1], similarity)}

    def frame_embeddings(self, frames: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor:
        """``[N, T, 3, S, S]`` model input -> frame embeddings ``[N, T, E]`` (positions = ranks)."""
        return self.encoder.frame_embeddings(frames, valid)

    def export_encoder(self):
        return self.encoder, f"method {self.name}'s projection reads sequences of frames, not one frame"
