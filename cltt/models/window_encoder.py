"""Window encoders: one vector per window of T frames, and a projection head (what
``clip_simclr`` trains; the method is :mod:`cltt.methods.clip_simclr`).

In cltt a *clip* is a whole video (``store.clips``, ``probe.level=clip``); a *window* is T
frames of one clip, ``data.frame_step`` apart (:mod:`cltt.data.windows`). A window encoder
``f`` maps a window ``[N, T, 3, S, S]`` to ``[N, F]``, and the head ``g`` gives
``z = g(f(window)) [N, D]``. Two kinds, picked by ``model.backbone``:

    any frame backbone   f(window) = (1/T) Σ_t h(frame_t): the per-frame backbone's features
                         averaged over time (:class:`FrameMeanEncoder`, also a per-frame
                         representation: ``represent(frames) [..., 3, S, S] -> [..., F]``)
    vivit                ViViT's factorised space-time transformer (:mod:`cltt.models.vivit`),
                         sized by ``model.vivit``; windows only (:class:`WindowEncoder`)

    encoder = build_window_encoder(recipe.model, window_size=8, image_size=64)
    h = encoder.represent_windows(windows)   # [N, T, 3, S, S] -> [N, F]     what probes read
    z = encoder(windows)                     # [N, T, 3, S, S] -> [N, D]     what the loss sees

State-dict names (``backbone`` for the window module, ``backbone.backbone`` for a frame-mean's
frame backbone, ``head``) are those of checkpoints written when these classes lived in the
method file as ``ClipEncoder``; keep them.
"""

from __future__ import annotations

import torch
from torch import nn

from cltt.errors import CLTTError
from cltt.models.backbones import backbone_from_model
from cltt.models.encoder import ContrastiveEncoder
from cltt.models.heads import ProjectionHead
from cltt.models.vivit import build_vivit


class FrameMean(nn.Module):
    """A frame backbone averaged over time: ``[N, T, 3, S, S]`` -> ``(1/T) Σ_t h(x_t)`` ``[N, F]``."""

    def __init__(self, backbone: nn.Module) -> None:
        super().__init__()
        self.backbone = backbone

    def frames(self, frames: torch.Tensor) -> torch.Tensor:
        """Per-frame features ``[M, 3, S, S]`` -> ``[M, F]``."""
        return self.backbone(frames)

    def forward(self, windows: torch.Tensor) -> torch.Tensor:
        n, t = windows.shape[:2]
        return self.frames(windows.flatten(0, 1)).view(n, t, -1).mean(dim=1)


class WindowEncoder(nn.Module):
    """A window encoder and its projection head (module doc).

    ``represent_windows(windows [N, T, 3, S, S]) -> [N, feature_dim]`` is the window
    representation before the head (what probes read); ``forward`` adds the head
    (``[N, out_dim]``, what the loss sees). A
    :class:`~cltt.models.representation.WindowRepresentation`.
    """

    def __init__(self, window_module: nn.Module, head: ProjectionHead, feature_dim: int) -> None:
        super().__init__()
        self.backbone = window_module
        self.head = head
        self.feature_dim = feature_dim
        self.out_dim = head.out_dim
        self.load_report = None

    def represent_windows(self, windows: torch.Tensor) -> torch.Tensor:
        """``[N, T, 3, S, S]`` -> ``[N, feature_dim]``."""
        if windows.dim() != 5:
            raise CLTTError(f"a window encoder takes windows [N, T, 3, S, S], got {list(windows.shape)}")
        return self.backbone(windows)

    def forward(self, windows: torch.Tensor) -> torch.Tensor:
        """``[N, T, 3, S, S]`` -> projections ``[N, out_dim]``."""
        return self.head(self.represent_windows(windows))


class FrameMeanEncoder(WindowEncoder):
    """A window encoder that is a mean of per-frame features, so also a per-frame representation
    (:class:`~cltt.models.representation.FrameRepresentation`): the mean of :meth:`represent`
    over a window's frames is :meth:`represent_windows` of the window."""

    def represent(self, frames: torch.Tensor) -> torch.Tensor:
        """Per-frame features ``[..., 3, S, S]`` -> ``[..., feature_dim]``."""
        leading = frames.shape[:-3]
        features = self.backbone.frames(frames.reshape(-1, *frames.shape[-3:]))
        return features.reshape(*leading, features.shape[-1])

    def frame_encoder(self) -> ContrastiveEncoder:
        """The per-frame backbone and this head as a frame encoder, sharing their weights (for export).

        Its ``represent`` of a window's frames averages to :meth:`represent_windows` of the
        window; its ``forward`` is ``g(h(x_t))`` per frame, not the ``g(mean_t h(x_t))`` the
        loss saw.
        """
        return ContrastiveEncoder(self.backbone.backbone, self.head, self.feature_dim)


def build_window_encoder(model, window_size: int, image_size: int) -> WindowEncoder:
    """The window encoder of ``model`` (the recipe's ``model`` section): ViViT when ``model.backbone``
    is ``vivit`` (built for windows of ``window_size`` frames), else frame backbone + mean."""
    if model.backbone == "vivit":
        if model.weights:
            raise CLTTError("model.weights loads frame backbones only; ViViT starts from random weights "
                            "(remove model.weights)")
        window_module = build_vivit(model.vivit, frames=window_size, image_size=image_size)
        feature_dim, report, kind = window_module.feature_dim, None, WindowEncoder
    else:
        built, report = backbone_from_model(model, image_size)
        window_module, feature_dim, kind = FrameMean(built.module), built.feature_dim, FrameMeanEncoder
    hidden = feature_dim if model.projection_hidden is None else model.projection_hidden
    head = ProjectionHead(feature_dim, hidden, model.projection_dim, batchnorm=model.head_batchnorm)
    encoder = kind(window_module, head, feature_dim)
    encoder.load_report = report
    return encoder
