"""Frozen features of every frame of some clips, computed once and cached beside the run.

Probes read one vector per frame from a *feature source*:

    trained       ``method.encoder.represent`` of a checkpoint: the representation before the
                  projection head, ``[N, 3, S, S] -> [N, F]``, in eval mode under no_grad
    random_init   the same architecture as built from the recipe with ``train.seed`` (the
                  weights the run started from), never trained
    pixels        the frame itself, centre-resized to ``P x P``, scaled to [0, 1], flattened
                  to ``[N, 3 P P]``

Frames are decoded once per pass and fed to every source that has no fresh cache; each frame
is the deterministic centre view (short side resized to ``S``, centre square), as in
:func:`cltt.data.transforms.center_resize`, with no augmentation.

The cache is one ``.npz`` per source under ``cache_dir`` (``RUN_DIR/features/``), named by
a hash of what the features depend on: the source's identity (the checkpoint file's path,
size and modification time; the random-init recipe and seed; the pixel size) and the frames'
identity (root, clip names, frame names and the clips' folder modification times from the
store). A changed checkpoint, a re-extracted clip or another image size is another hash,
so a stale file is never read; delete ``RUN_DIR/features/`` to reclaim the space.

Window encoders (a :class:`~cltt.models.representation.WindowRepresentation` without per-frame
features) come through :mod:`cltt.eval.window_features`, which reuses this module's cache files.

    frames = FrameSet(store, table.clip_index)
    result = extract_features(frames, [trained, pixels], cache_dir=run_dir / "features")
    result.features["trained"]        # [frames.num_frames, F] float32, frames in FrameSet order
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from cltt.data.model_input import to_model_input
from cltt.data.stores.base import FrameStore
from cltt.data.transforms import center_resize
from cltt.engine.events import Progress
from cltt.errors import CLTTError

CACHE_VERSION = 1


class FrameSet:
    """Every frame of the clips ``clip_index`` (store numbers) of ``store``, clip by clip.

    Frame ``j`` of this set is frame ``j - offsets[k]`` of its ``k``-th clip; ``offsets``
    ``[K + 1]`` and ``frame_counts`` ``[K]`` describe the clips in the order given.
    """

    def __init__(self, store: FrameStore, clip_index: Sequence[int]):
        self.store = store
        self._identity: dict | None = None
        self.clip_index = np.asarray(clip_index, dtype=np.int64)
        self.frame_counts = store.frame_counts[self.clip_index].astype(np.int64)
        self.offsets = np.concatenate([[0], np.cumsum(self.frame_counts)]).astype(np.int64)
        starts = store.clip_offsets[self.clip_index]
        self.global_frames = (np.repeat(starts - self.offsets[:-1], self.frame_counts)
                              + np.arange(self.num_frames, dtype=np.int64))

    @property
    def num_frames(self) -> int:
        return int(self.offsets[-1])

    def read(self, j: int, reduction: int) -> np.ndarray:
        """Frame ``j`` of this set, RGB uint8 ``[H, W, 3]`` decoded ``reduction`` times smaller."""
        return self.store.read(int(self.global_frames[j]), reduction)

    def reader(self, short_side: int) -> Callable[[int], np.ndarray]:
        """``read(j)``: frame ``j`` decoded at the coarsest JPEG scale that keeps its short side at
        least ``short_side`` (one scale for the store, whose frames share a size)."""
        reduction = self.store.reduction_for(short_side)
        return lambda j: self.read(j, reduction)

    def identity(self) -> dict:
        """What the frames are, for cache keys: names of the clips' frames and their byte sizes
        with mtimes (folders) or CRC-32s (packed stores), no path, so a moved root keeps its
        cached features and a frame rewritten in place at the same size does not. Read once
        per set (a folder stats every frame for it), then kept."""
        if self._identity is None:
            self._identity = {"clips": len(self.clip_index), "frames": self.num_frames,
                              "content": self.store.identity(self.clip_index.tolist())}
        return self._identity


# --------------------------------------------------------------------------- sources


@dataclass
class FeatureSource:
    """A way to turn decoded frames into vectors.

    ``identity`` is what the features depend on besides the frames (None: never cached, as
    for weights still being trained); ``decode_size`` the side the source needs.
    """

    name: str
    identity: dict | None
    decode_size: int

    def encode(self, frames: list[np.ndarray]) -> np.ndarray:
        """RGB ``uint8`` frames ``[H, W, 3]`` -> features ``[n, F]`` float32."""
        raise NotImplementedError


@dataclass
class EncoderSource(FeatureSource):
    """``encoder.represent`` of centre views of side ``decode_size``, ImageNet-normalised."""

    encoder: torch.nn.Module = field(default=None, repr=False)
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    def encode(self, frames: list[np.ndarray]) -> np.ndarray:
        views = np.stack([center_resize(f, self.decode_size) for f in frames])
        batch = torch.from_numpy(views).permute(0, 3, 1, 2)
        with torch.no_grad():
            features = self.encoder.represent(to_model_input(batch, self.device))
        return features.float().cpu().numpy()


@dataclass
class PixelSource(FeatureSource):
    """Centre views of side ``decode_size`` as ``[n, 3 * size * size]`` values in [0, 1]."""

    def encode(self, frames: list[np.ndarray]) -> np.ndarray:
        views = np.stack([center_resize(f, self.decode_size) for f in frames])
        return (views.reshape(len(frames), -1).astype(np.float32) / 255.0)


def encoder_source(name: str, encoder: torch.nn.Module, image_size: int, device: torch.device,
                   identity: dict | None) -> EncoderSource:
    return EncoderSource(name=name, identity=identity, decode_size=image_size, encoder=encoder, device=device)


def pixel_source(size: int) -> PixelSource:
    return PixelSource(name="pixels", identity={"kind": "pixels", "size": size}, decode_size=size)


def checkpoint_identity(path: Path, image_size: int) -> dict:
    """A checkpoint file's identity: resolved path, size and modification time."""
    path = Path(path).resolve()
    stat = path.stat()
    return {"kind": "checkpoint", "path": str(path), "bytes": stat.st_size, "mtime_ns": stat.st_mtime_ns,
            "image_size": image_size}


# --------------------------------------------------------------------------- extraction


@dataclass
class FeatureResult:
    features: dict[str, np.ndarray]  # source name -> [num_frames, F] float32
    reused: list[str]  # sources read from the cache
    computed: list[str]  # sources computed in this call
    paths: dict[str, Path]  # where each cached source lives (absent: not cached)


def cache_path(cache_dir: Path, source: FeatureSource, frames_identity: dict) -> tuple[Path, str]:
    """The cache file of ``source`` over these frames and the key text stored inside it."""
    key = json.dumps({"version": CACHE_VERSION, "source": source.identity, "frames": frames_identity}, sort_keys=True)
    digest = hashlib.sha256(key.encode()).hexdigest()[:20]
    return Path(cache_dir) / f"{source.name}-{digest}.npz", key


def _load_cached(path: Path, key: str, rows: int) -> np.ndarray | None:
    try:
        with np.load(path, allow_pickle=False) as data:
            if str(data["key"]) != key or data["features"].shape[0] != rows:
                return None
            return data["features"]
    except (OSError, ValueError, KeyError, EOFError):
        return None


def _save_cached(path: Path, key: str, features: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as handle:
            np.savez(handle, key=np.array(key), features=features)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def extract_features(
    frames: FrameSet,
    sources: Sequence[FeatureSource],
    cache_dir: Path | None = None,
    batch_size: int = 256,
    workers: int = 2,
    on_progress: Progress | None = None,
    decode_at_least: int = 0,
) -> FeatureResult:
    """Features of every frame in ``frames`` from each source, reused from ``cache_dir`` when fresh.

    ``frames`` is a :class:`FrameSet` or any set of images with ``num_frames``, ``identity()``
    and ``reader(short_side)`` (:class:`cltt.eval.image_set.ImageFiles`: the files of an image set).

    One pass decodes the frames in batches of ``batch_size`` (``workers`` decoding threads,
    the next batch decoded while the current one is encoded) for all sources that need it.
    ``on_progress(done, total)`` follows the frames of that pass. JPEGs are decoded at the
    coarsest scale that keeps the short side at least the largest ``decode_size`` of the pass
    and ``decode_at_least``; pass the recipe's image size there so that a source's features
    (the pixels') do not depend on which other sources share the pass or were cached.
    """
    return cached_features(
        sources, frames.identity, frames.num_frames, cache_dir,
        lambda todo: _compute(frames, todo, batch_size, max(1, workers), on_progress, decode_at_least))


def cached_features(
    sources: Sequence[FeatureSource],
    identity: Callable[[], dict],
    rows: int,
    cache_dir: Path | None,
    compute: Callable[[list[FeatureSource]], dict[str, np.ndarray]],
) -> FeatureResult:
    """``rows`` feature rows per source: from ``cache_dir`` when a fresh file exists, else from
    ``compute(sources_without_cache)`` (then saved). ``identity()`` says what the rows are (the
    frames, and for clip features their windows); it is only called when there is a cache.
    Features with NaN or infinity (an encoder whose weights are not finite) are one
    :class:`CLTTError`, never saved: every probe's linear algebra fails on them with a traceback."""
    rows_identity = identity() if cache_dir is not None else {}
    features: dict[str, np.ndarray] = {}
    paths: dict[str, Path] = {}
    keys: dict[str, str] = {}
    todo: list[FeatureSource] = []
    for source in sources:
        if cache_dir is not None and source.identity is not None:
            path, key = cache_path(cache_dir, source, rows_identity)
            paths[source.name], keys[source.name] = path, key
            cached = _load_cached(path, key, rows) if path.is_file() else None
            if cached is not None:
                check_finite_features(source.name, cached)  # saved before NaN features were refused
                features[source.name] = cached
                continue
        todo.append(source)
    reused = [s.name for s in sources if s.name in features]
    if todo:
        computed = compute(todo)
        for source in todo:
            check_finite_features(source.name, computed[source.name])
            features[source.name] = computed[source.name]
            if source.name in paths:
                try:
                    _save_cached(paths[source.name], keys[source.name], computed[source.name])
                except OSError:  # a read-only run dir: features still returned, just not kept
                    del paths[source.name]
    return FeatureResult(features, reused, [s.name for s in todo], paths)


def check_finite_features(name: str, features: np.ndarray) -> None:
    """Refuse features ``[N, D]`` holding NaN or infinity in one line naming the source."""
    bad = ~np.isfinite(features).all(axis=1) if features.ndim == 2 else np.zeros(0, bool)
    if bad.any():
        raise CLTTError(f"the {name} features of {int(bad.sum())} of {len(bad)} inputs hold NaN or infinity (the first: "
                        f"number {int(np.argmax(bad))}); the encoder's weights are not finite (a diverged run?): probe "
                        "an earlier checkpoint")


def _compute(frames: FrameSet, sources: Sequence[FeatureSource], batch_size: int, workers: int,
             on_progress: Progress | None, decode_at_least: int = 0) -> dict[str, np.ndarray]:
    total = frames.num_frames
    if total == 0:
        return {s.name: np.zeros((0, 0), np.float32) for s in sources}
    read = frames.reader(max(decode_at_least, *(s.decode_size for s in sources)))
    modes = [(s, s.encoder.training) for s in sources if isinstance(s, EncoderSource)]
    for source, _ in modes:
        source.encoder.eval()
    out: dict[str, list[np.ndarray]] = {s.name: [] for s in sources}
    starts = list(range(0, total, batch_size))
    try:
        with ThreadPoolExecutor(max_workers=workers) as pool:

            def submit(start: int):
                return [pool.submit(read, j) for j in range(start, min(start + batch_size, total))]

            pending = submit(starts[0])
            for i, start in enumerate(starts):
                decoded = [future.result() for future in pending]
                if i + 1 < len(starts):
                    pending = submit(starts[i + 1])
                for source in sources:
                    out[source.name].append(source.encode(decoded))
                if on_progress is not None:
                    on_progress(start + len(decoded), total)
    finally:
        for source, was_training in modes:
            source.encoder.train(was_training)
    return {name: np.concatenate(parts).astype(np.float32, copy=False) for name, parts in out.items()}
