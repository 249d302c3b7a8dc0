"""Per-frame features of a frames root, for analysis outside cltt.

Every frame is decoded, resized so its short side is ``data.image_size`` and centre-cropped
(no augmentation, no object focus), normalised as in training and encoded in eval mode
without gradients, batch by batch. The result is a ``.npy`` float32 array
``[num_frames, D]`` in the store's order (clips, then frames, in natural order) and an
index CSV ``clip,frame,row`` that maps each frame's file name to its row::

    features = np.load("quickstart_epoch010_digits.npy", mmap_mode="r")   # [num_frames, D]
    index = pandas.read_csv("quickstart_epoch010_digits.csv")              # clip, frame, row
"""

from __future__ import annotations

import csv
import json
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import torch
from torch import nn

from cltt.data.model_input import to_model_input
from cltt.data.stores import open_store
from cltt.data.stores.base import FrameStore
from cltt.data.transforms import center_resize
from cltt.engine.device import resolve_device
from cltt.engine.events import Progress
from cltt.engine.run_files import EXPORTS_DIR
from cltt.errors import writing
from cltt.export.files import ELSEWHERE, destination, make_folder, refuse_existing, shareable, sidecar_of
from cltt.export.source import ExportSource


@dataclass
class EmbeddingsResult:
    """What :func:`export_embeddings` wrote."""

    features: Path  # .npy float32 [num_frames, feature_dim]
    index: Path  # .csv clip,frame,row
    sidecar: Path  # .json: source, architecture, root, shape
    num_frames: int
    feature_dim: int
    projector: Path | None = None  # projector_config.pbtxt of the <name>_projector/ folder, when asked for


def centre_view_batches(store: FrameStore, image_size: int, batch_size: int, workers: int = 4) -> Iterator[torch.Tensor]:
    """uint8 ``[B, 3, S, S]`` centre views of every frame of ``store``, in its order.

    A thread pool decodes the next batch while the caller encodes this one. JPEGs are decoded
    at reduced size when that still covers ``S``, judged from the first frame as the training
    dataset does, so features match what the model saw.
    """
    total = store.num_frames
    reduction = store.reduction_for(image_size)

    def load(frame: int) -> np.ndarray:
        return center_resize(store.read(frame, reduction), image_size)

    bounds = [(start, min(start + batch_size, total)) for start in range(0, total, batch_size)]
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        def submit(k: int) -> list:
            return [pool.submit(load, frame) for frame in range(*bounds[k])] if k < len(bounds) else []

        ahead = submit(0)
        for k in range(len(bounds)):
            current, ahead = ahead, submit(k + 1)
            frames = np.stack([future.result() for future in current])  # [B, S, S, 3]
            yield torch.from_numpy(frames).permute(0, 3, 1, 2)


def frame_features(encoder: nn.Module, store: FrameStore, image_size: int, *, batch_size: int = 256,
                   device: torch.device | str = "cpu", workers: int = 4, on_progress: Progress | None = None,
                   out: np.ndarray | None = None) -> np.ndarray:
    """``encoder``'s output for every frame of ``store``: float32 ``[num_frames, D]``.

    ``encoder`` maps ``[B, 3, S, S]`` ImageNet-normalised floats to ``[B, D]``; it runs in
    eval mode without gradients. ``out`` (e.g. a ``np.lib.format.open_memmap`` array) receives
    the rows when given, so a large root need not fit in memory.
    """
    device = torch.device(device)
    encoder.eval()
    total, done = store.num_frames, 0
    with torch.no_grad():
        for views in centre_view_batches(store, image_size, batch_size, workers):
            features = encoder(to_model_input(views, device)).float().cpu().numpy()
            if out is None:
                out = np.empty((total, features.shape[1]), dtype=np.float32)
            out[done : done + len(features)] = features
            done += len(features)
            if on_progress is not None:
                on_progress(done, total)
    return out


def export_embeddings(source: ExportSource, root: str | Path, with_head: bool = False, out: str | Path | None = None,
                      batch_size: int = 256, on_progress: Progress | None = None, force: bool = False,
                      projector: bool = False) -> EmbeddingsResult:
    """Features of every frame under ``root`` from ``source``'s encoder, written for analysis.

    Writes ``<run>_epoch<E>[_head]_<root name>.npy`` (float32 ``[num_frames, D]``), ``.csv``
    (``clip,frame,row``) and ``.npy.json`` (provenance and preprocessing) into ``out`` (a
    folder, created if missing, default ``RUN_DIR/exports/``), or to ``out`` itself when it ends
    in ``.npy``. Runs on ``train.device`` of the recipe (override with ``train.device=cpu``).
    With ``projector``, also the TensorBoard projector folder ``<name>_projector/``
    (:func:`cltt.export.projector.write_projector`). None of them replaces a file or folder
    without ``force``, all checked before any frame is read.
    """
    recipe = source.recipe
    store = open_store(root, recipe.data.cache_dir)
    folder, name = destination(out, source.run_dir / EXPORTS_DIR, ".npy")
    make_folder(folder)
    features_path = folder / (name or f"{source.stem(with_head)}_{store.root.name}.npy")
    index_path, sidecar = features_path.with_suffix(".csv"), sidecar_of(features_path)
    projector_folder = projector_folder_of(features_path) if projector else None
    outputs = [features_path, index_path, sidecar] + ([projector_folder] if projector_folder else [])
    refuse_existing(outputs, force)  # before embedding a single frame
    device = resolve_device(recipe.train.device)
    encoder = source.frame_encoder(with_head).to(device)
    feature_dim = source.architecture(with_head)["output_dim"]

    temporary = features_path.with_name(f".{features_path.name}.tmp-{os.getpid()}")
    try:
        with writing(features_path, ELSEWHERE):
            array = np.lib.format.open_memmap(temporary, mode="w+", dtype=np.float32,
                                              shape=(store.num_frames, feature_dim))
            # take the disk blocks now: on a full disk this fails with ENOSPC, while writing a
            # sparse memory map would kill the process with SIGBUS halfway through
            with open(temporary, "r+b") as handle:
                os.posix_fallocate(handle.fileno(), 0, os.path.getsize(temporary))
        frame_features(encoder, store, recipe.data.image_size, batch_size=batch_size, device=device,
                       workers=recipe.data.num_workers, on_progress=on_progress, out=array)
        array.flush()
        del array
        shareable(temporary)
        os.replace(temporary, features_path)
    finally:
        temporary.unlink(missing_ok=True)

    with writing(index_path, ELSEWHERE):
        write_index(store, index_path)
    description = source.describe(with_head)
    description.update(kind="embeddings", root=str(store.root), num_frames=store.num_frames,
                       feature_dim=feature_dim, features=features_path.name, index=index_path.name)
    with writing(sidecar, ELSEWHERE):
        sidecar.write_text(json.dumps(description, indent=2) + "\n")
    config = None
    if projector_folder is not None:
        from cltt.export.projector import write_projector

        with writing(projector_folder, ELSEWHERE):
            config = write_projector(np.load(features_path, mmap_mode="r"), store, projector_folder, features_path.stem)
    return EmbeddingsResult(features_path, index_path, sidecar, store.num_frames, feature_dim, config)


def projector_folder_of(features: Path) -> Path:
    """The projector folder written beside the embeddings ``features`` (``X.npy`` -> ``X_projector/``)."""
    return features.with_name(features.stem + "_projector")


def write_index(store: FrameStore, path: Path) -> None:
    """CSV ``clip,frame,row``: row ``r`` of the features is frame file ``frame`` of ``clip``."""
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["clip", "frame", "row"])
        row = 0
        for clip_number, clip in enumerate(store.clips):
            for frame in store.frame_names(clip_number):
                writer.writerow([clip, frame, row])
                row += 1
