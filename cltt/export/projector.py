"""TensorBoard projector files for exported embeddings (``cltt export RUN --embeddings ROOT --projector``).

Beside the ``.npy`` of :func:`cltt.export.embeddings.export_embeddings`, a folder
``<name>_projector/`` that ``tensorboard --logdir <name>_projector`` opens in its Projector tab:

    tensors.tsv              the features ``[N, D]``, one frame a line, tab-separated
    metadata.tsv             a header ``clip\tframe\ttime``, then one line per frame: the clip,
                             the frame's file name and its time in seconds
                             (:func:`cltt.eval.label_free.frame_times`)
    sprite.png               every frame as a ``s x s`` thumbnail (centre square), row-major in a
                             square grid of ``ceil(sqrt(N))`` columns, ``s = min(64, 8192 //
                             columns)`` so the image stays within the projector's 8192 px
    projector_config.pbtxt   the ProjectorConfig naming the three (paths relative to the folder)

The projector itself shows at most some tens of thousands of points smoothly; for a large root
export a part of it (a ROOT with fewer clips).
"""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np

from cltt.data.stores.base import FrameStore
from cltt.data.transforms import center_resize
from cltt.errors import CLTTError

SPRITE_MAX = 8192  # pixels a side the projector accepts
THUMB_MAX = 64


def sprite_layout(num_frames: int) -> tuple[int, int]:
    """(columns, thumbnail side) of the sprite of ``num_frames`` frames (module doc)."""
    columns = max(1, math.ceil(math.sqrt(num_frames)))
    return columns, min(THUMB_MAX, SPRITE_MAX // columns)


def tsv_cell(text: str) -> str:
    """``text`` as one TSV cell: a tab or line break in a clip or frame name (folders may hold
    them) would split the row, and the metadata would no longer line up with tensors.tsv."""
    return text.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")


def pbtxt_string(text: str) -> str:
    """``text`` as a quoted protobuf text-format string: backslash, double and single quotes
    escaped, other non-printable bytes of its UTF-8 as octal ``\\ooo`` (what protobuf's own
    ``CEscape`` writes), so any run or root name parses back to itself."""
    out = []
    for byte in text.encode("utf-8", "surrogateescape"):
        char = chr(byte)
        if char in '\\"\'':
            out.append("\\" + char)
        elif char == "\n":
            out.append("\\n")
        elif char == "\t":
            out.append("\\t")
        elif char == "\r":
            out.append("\\r")
        elif 0x20 <= byte < 0x7F:
            out.append(char)
        else:
            out.append(f"\\{byte:03o}")
    return '"' + "".join(out) + '"'


def write_projector(features: np.ndarray, store: FrameStore, folder: Path, tensor_name: str) -> Path:
    """Write the projector folder ``folder`` (module doc) for ``features [N, D]``, one row per
    frame of ``store`` in store order. Returns the config file."""
    from cltt.eval.label_free import frame_times

    if len(features) != store.num_frames:
        raise CLTTError(f"{len(features)} embeddings for {store.num_frames} frames of {store.root}")
    columns, side = sprite_layout(store.num_frames)
    if side < 2:
        raise CLTTError(f"{store.num_frames:,} frames are too many for one projector sprite; export a root with fewer")
    folder.mkdir(parents=True, exist_ok=True)
    np.savetxt(folder / "tensors.tsv", features, fmt="%.6g", delimiter="\t")
    with open(folder / "metadata.tsv", "w") as handle:
        handle.write("clip\tframe\ttime\n")
        for clip in range(store.num_clips):
            for name, time in zip(store.frame_names(clip), frame_times(store, clip)):
                handle.write(f"{tsv_cell(store.clips[clip])}\t{tsv_cell(name)}\t{time:.3f}\n")
    rows = math.ceil(store.num_frames / columns)
    sprite = np.zeros((rows * side, columns * side, 3), np.uint8)
    reduction = store.reduction_for(side)
    for j in range(store.num_frames):
        r, c = divmod(j, columns)
        sprite[r * side:(r + 1) * side, c * side:(c + 1) * side] = center_resize(store.read(j, reduction), side)
    cv2.imwrite(str(folder / "sprite.png"), cv2.cvtColor(sprite, cv2.COLOR_RGB2BGR))
    config = folder / "projector_config.pbtxt"
    config.write_text(
        "embeddings {\n"
        f"  tensor_name: {pbtxt_string(tensor_name)}\n"
        '  tensor_path: "tensors.tsv"\n'
        '  metadata_path: "metadata.tsv"\n'
        f"  tensor_shape: {features.shape[0]}\n  tensor_shape: {features.shape[1]}\n"
        f'  sprite {{\n    image_path: "sprite.png"\n    single_image_dim: {side}\n    single_image_dim: {side}\n  }}\n'
        "}\n")
    return config
