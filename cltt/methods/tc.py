"""``tc``: temporal classification, each frame classified into its time segment of the corpus.

Orhan, Gupta & Lake, "Self-supervised learning through the eyes of a child", NeurIPS 2020:
the whole training corpus is cut into segments of ``method.tc.segment_seconds`` (288 s in
their best SAYCam model, TC-S, at 5 fps with colour and grayscale augmentation; its ResNeXt is
also where the vision encoder of Vong et al.'s CVCL, Science 2024, starts), and a linear
classifier on the backbone learns which segment each frame comes from, by cross-entropy
(optionally label-smoothed, :mod:`cltt.objectives.temporal_classification`).

Segments (:mod:`cltt.data.segments`) come from the frames' times (recorded timestamps, else the
clip's nominal frame rate); clips never share one; N segments are N classes. A sample is a window
``[V, T]`` of frames and every frame is classified with the class of its own segment, so a window
that crosses a boundary trains on both classes, frame by frame:

    views [b, V, T, 3, S, S] -> backbone [b*V*T, F] -> Linear(F, N) -> logits [b, V*T, N]
    segment [b, V, T] int64  -> labels [b*V*T];  loss = sum of CE / number of frames

The head's size N is the corpus's, so the method counts the segments of ``data.root`` when it is
built (the trainer has opened the data by then; a corpus with fewer than 2 segments, shorter
than one segment, or whose every clip is one segment, is refused in one line by
:meth:`TC.training_dataset`: with each clip one class, time plays no part). The segment
table (clip, first frame, frames of each class) is a buffer of every checkpoint: a load takes the
checkpoint's N (a probe or export may run where the training frames are not, or on other data),
and a resumed run whose corpus no longer gives the checkpoint's segments is refused in one line
before its first step. The head is not exported; probes and export read the backbone.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from cltt.data.build import open_frames
from cltt.data.segments import SegmentWindows, TimeSegments, time_segments
from cltt.data.timestamps import format_clock
from cltt.errors import CLTTError
from cltt.methods import register_method
from cltt.methods.base import Method
from cltt.models.encoder import ContrastiveEncoder, encoder_from_model
from cltt.objectives.temporal_classification import segment_classification_loss


class SegmentHead(nn.Linear):
    """The linear classifier ``[..., F] -> [..., N]`` logits over the corpus's N segments."""

    def __init__(self, feature_dim: int, segments: int):
        super().__init__(feature_dim, segments)
        self.out_dim = segments

    def resize(self, segments: int) -> None:
        """Take ``segments`` outputs (values unset: a state dict is about to fill them), keeping
        the same parameter objects, so an optimizer built already still holds them."""
        like = self.weight
        self.weight.data = torch.empty(segments, self.in_features, dtype=like.dtype, device=like.device)
        self.bias.data = torch.empty(segments, dtype=like.dtype, device=like.device)
        self.out_features = self.out_dim = segments


@register_method("tc")
class TC(Method):
    """Each frame is classified into its time segment of the whole corpus by a linear head (TC)."""

    extra_keys = ("segment",)
    contrast_term = "classification"
    example = {"method": {"tc": {"segment_seconds": 0.2}}}  # 9 segments of the 12/17/22-frame clips at 30 fps

    def build_encoder(self, recipe) -> ContrastiveEncoder:
        self.corpus = self.corpus_segments(recipe)
        self.data_root = recipe.data.root
        table = torch.zeros((0, 3), dtype=torch.int64) if self.corpus is None else torch.from_numpy(self.corpus.table)
        self.register_buffer("segment_table", table.clone())
        self.corpus_checked = False
        self.register_load_state_dict_pre_hook(TC._take_checkpoint_segments)
        # an unreadable corpus gets a placeholder of 2 classes: only a checkpoint's weights are used then
        return encoder_from_model(recipe.model, recipe.data.image_size,
                                  head=lambda dim: SegmentHead(dim, max(len(table), 2)))

    @staticmethod
    def corpus_segments(recipe) -> TimeSegments | None:
        """The segments of ``data.root``, or None where it cannot be read (an export elsewhere)."""
        if not Path(recipe.data.root).exists():
            return None  # never write built-in data just to build a model
        try:
            return time_segments(open_frames(recipe.data), recipe.method.tc.segment_seconds)
        except CLTTError:
            return None

    @classmethod
    def training_dataset(cls, recipe, store, seed: int) -> SegmentWindows:
        """The windows of :class:`Method`, each frame labelled with its segment; refuses, in one
        line, a corpus shorter than one segment, with fewer than 2 segments, or whose clips are
        all one segment each (the classes would be the clips: clip identity, not time)."""
        seconds = recipe.method.tc.segment_seconds
        segments = time_segments(store, seconds)
        where = f"{store.root} ({store.num_clips} clip(s), {format_clock(segments.duration)} in all)"
        if seconds > segments.duration:
            raise CLTTError(f"method.tc.segment_seconds={seconds:g} is longer than the whole corpus {where}; "
                            "lower it so that each clip holds several segments")
        if segments.count < 2:
            raise CLTTError(f"method.tc.segment_seconds={seconds:g} cuts {where} into {segments.count} segment, "
                            "and temporal classification needs at least 2 classes; lower method.tc.segment_seconds")
        if segments.count == segments.clips:  # no clip is cut: the classes are the clips, time plays no part
            raise CLTTError(f"method.tc.segment_seconds={seconds:g} leaves every clip of {where} whole (the longest spans "
                            f"{format_clock(segments.longest)}): each clip would be one class, so tc would learn which "
                            "clip a frame is from, not when in it; lower method.tc.segment_seconds below the longest "
                            "clip, to a few segments a clip")
        return SegmentWindows(super().training_dataset(recipe, store, seed), segments)

    # ------------------------------------------------------------------ checkpoints and the corpus

    def _take_checkpoint_segments(self, state_dict, prefix, *_) -> None:
        """Before a load: size the head and the segment table as the checkpoint's."""
        weight, table = state_dict.get(prefix + "encoder.head.weight"), state_dict.get(prefix + "segment_table")
        if weight is not None and weight.shape[0] != self.encoder.head.out_dim:
            self.encoder.head.resize(weight.shape[0])
            self.encoder.out_dim = weight.shape[0]
        if table is not None and table.shape != self.segment_table.shape:
            self.segment_table = torch.zeros_like(table, device=self.segment_table.device)
        self.corpus_checked = False

    def before_step(self, step: int, total_steps: int) -> None:
        """Refuse, once, to train weights loaded for other segments than this corpus's."""
        super().before_step(step, total_steps)
        if self.corpus_checked or self.corpus is None:
            return
        loaded = self.segment_table.cpu()
        if not torch.equal(loaded, torch.from_numpy(self.corpus.table)):
            now = f"{self.data_root} in segments of {self.corpus.seconds:g} s now gives"
            found = (f"other segments than the {len(loaded)} of the weights loaded" if len(loaded) == self.corpus.count
                     else f"{self.corpus.count} segments, the weights loaded classify {len(loaded)}")
            raise CLTTError(f"{now} {found}: the corpus changed since they were trained; restore the frames they were "
                            "trained on, or start a new run")
        self.corpus_checked = True

    # ------------------------------------------------------------------ the loss

    def loss_terms(self, embeddings: torch.Tensor, first: int, count: int,
                   extras: dict[str, torch.Tensor] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Cross-entropy of the logits ``embeddings [B, V*T, N]`` of samples ``first .. first+count-1``
        against their frames' segments ``extras["segment"] [B, V, T]``."""
        if extras is None or "segment" not in extras:
            raise CLTTError("method.name=tc needs each frame's segment from its training dataset; train it with cltt train")
        own = slice(first, first + count)
        logits = embeddings[own].flatten(0, 1)
        labels = extras["segment"][own].reshape(-1)
        return segment_classification_loss(logits, labels, self.options.label_smoothing)

    def export_encoder(self):
        return self.encoder, (f"method {self.name}'s head classifies the {self.encoder.head.out_dim} time segments of "
                              "its own training corpus, which mean nothing to other data")
