"""Export a trained encoder for use outside cltt, and per-frame features for analysis.

From the command line (``cltt export --help``)::

    cltt export runs/quickstart                          # safetensors + JSON sidecar
    cltt export runs/quickstart --format onnx --with-head
    cltt export runs/quickstart --embeddings data/digits # features.npy + index.csv

From Python, the same steps::

    from cltt.export import open_checkpoint, export_encoder, export_embeddings
    source = open_checkpoint("runs/quickstart")          # a run dir or a checkpoint file
    result = export_encoder(source, "safetensors", with_head=False)

and one call loads an exported encoder back, in eval mode, on the CPU::

    from cltt.export import load_encoder
    encoder = load_encoder("runs/quickstart/exports/quickstart_epoch010-1a2b3c4d.safetensors")
    features = encoder(frames)   # [N, 3, S, S] float, ImageNet-normalised -> [N, D]

``D`` is the backbone's feature size (the representation before the projection head), or the
projection size for an export made ``with_head``. ``frames`` are RGB, resized so the short
side is ``S`` and centre-cropped, scaled to [0, 1] and normalised with the ImageNet mean and
std (``cltt.data.model_input.to_model_input`` does this for a uint8 batch). The JSON sidecar
(``X.safetensors.json``) records ``S``, the mean and the std, and ``input.preprocess_python``:
source that code without cltt runs to prepare an image file exactly as cltt does, reduced-size
JPEG decode included (:mod:`cltt.export.preprocess`).
"""

from cltt.export.embeddings import EmbeddingsResult, export_embeddings, frame_features
from cltt.export.files import FORMATS, ExportResult, export_encoder, load_encoder
from cltt.export.source import ExportSource, FrameEncoder, open_checkpoint

__all__ = [
    "FORMATS",
    "EmbeddingsResult",
    "ExportResult",
    "ExportSource",
    "FrameEncoder",
    "export_embeddings",
    "export_encoder",
    "frame_features",
    "load_encoder",
    "open_checkpoint",
]
