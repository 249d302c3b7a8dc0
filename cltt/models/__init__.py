"""Models: frame encoders by name, projection heads, and the encoder that joins them.

    from cltt.models import build_encoder
    encoder = build_encoder("tiny_cnn", image_size=64, projection_dim=128)
    z = encoder(frames)              # [N, 3, 64, 64] -> [N, 128]   what the loss sees
    h = encoder.represent(frames)    # [N, 3, 64, 64] -> [N, 128]   what probes and export use

``backbones`` holds the registry (``resnet18/34/50``, ``vit_s16``, ``vit_b16``, ``vit_t8``,
``tiny_cnn``; ``timm/<name>`` through ``timm_backbones``), ``heads`` the projection MLP,
``encoder`` the pair, ``weights`` loading from a local file, ``freezing`` ``model.freeze``,
``patch_features`` patch tokens for object slots. The encoders of methods that are more than a
frame backbone and a head: ``window_encoder`` (a window of T frames to one vector, frame mean or
``vivit``; clip_simclr), ``carl_encoder`` (per-frame backbone, ``sequence`` transformer,
projection; CARL), ``slot_encoder`` (patches to slots tracked through time with ``slots``;
SlotContrast).
"""

from cltt.models.backbones import (
    BACKBONES,
    Backbone,
    TinyCNN,
    build_backbone,
    register_backbone,
)
from cltt.models.encoder import ContrastiveEncoder, build_encoder
from cltt.models.heads import ProjectionHead
from cltt.models.weights import LoadReport, load_backbone_weights

__all__ = [
    "BACKBONES",
    "Backbone",
    "ContrastiveEncoder",
    "LoadReport",
    "ProjectionHead",
    "TinyCNN",
    "build_backbone",
    "build_encoder",
    "load_backbone_weights",
    "register_backbone",
]
