"""From a recipe's ``data`` section to an up-to-date manifest and a windows dataset."""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import numpy as np

from cltt.data.dataset import WindowDataset
from cltt.data.focus import load_boxes
from cltt.data.stores import FrameStore, open_store
from cltt.data.synthetic import get_generator, write_synthetic
from cltt.data.windows import WindowSpec
from cltt.errors import CLTTError, RecipeError
from cltt.recipe import DataConfig, SyntheticConfig

log = logging.getLogger("cltt.data")


def open_frames(data: DataConfig, rebuild: bool = False, synthetic: SyntheticConfig | None = None) -> FrameStore:
    """The frame store at ``data.root``: a packed store, or a folder whose manifest is reused
    when fresh and rebuilt when stale.

    With ``data.synthetic`` set and no ``data.root`` yet, the built-in data are written there
    first (sized by ``synthetic``, the recipe's ``extract.synthetic``), so a quickstart recipe
    runs on a fresh checkout with one command.
    """
    if data.synthetic:  # checked even where the root exists: a mistyped name must not pass unseen
        try:
            get_generator(data.synthetic)
        except CLTTError as err:
            raise RecipeError(f"recipe key 'data.synthetic': {err}, or null for your own frames") from None
    if data.synthetic and not Path(data.root).exists():
        log.warning("%s does not exist; writing the built-in %s data there first", data.root, data.synthetic)
        failed = [r for r in write_synthetic(data.synthetic, Path(data.root), synthetic or SyntheticConfig())
                  if r.status == "failed"]
        if failed:
            raise CLTTError(f"writing built-in data to {data.root} failed: {failed[0].message}")
    return open_store(data.root, data.cache_dir, rebuild=rebuild, max_pixels=data.max_pixels)


def windows_dataset(
    data: DataConfig,
    store: FrameStore,
    *,
    views: int = 1,
    augment: bool = True,
    seed: int = 0,
    dtype: str = "uint8",
    same_draw: bool = False,
    extras=None,
) -> WindowDataset:
    """A :class:`WindowDataset` configured by ``data``; ``augment=False`` gives centre views."""
    boxes = None
    if data.object_focus != "none":
        path = Path(data.boxes) if data.boxes else store.root_file("boxes.csv")
        if data.boxes or path.is_file() or data.object_focus == "boxes":
            boxes = load_boxes(path, store)
    augment_config = data.augment if augment else dataclasses.replace(data.augment, enabled=False)
    return WindowDataset(
        store,
        WindowSpec.from_recipe(data),
        data.image_size,
        augment_config,
        views=views,
        seed=seed,
        dtype=dtype,
        boxes=boxes,
        focus=data.object_focus,
        focus_blur_sigma=data.focus_blur_sigma,
        center_box_fraction=data.center_box_fraction,
        same_draw=same_draw,
        extras=extras,
        encoded=data.decode == "gpu" and augment_config.enabled,
        gaps=data.gaps,
        clips=training_clips(data, store),
    )


def training_clips(data: DataConfig, store: FrameStore):
    """Store numbers (int64, sorted) of the clips listed in ``data.clips`` (one name a line, blank
    lines and ``#`` comments skipped), or None when it is unset: training reads all clips."""
    if not data.clips:
        return None
    path = Path(data.clips)
    try:
        names = [line.strip().strip("/") for line in path.read_text(encoding="utf-8").splitlines()]
    except (OSError, UnicodeDecodeError) as err:
        raise CLTTError(f"cannot read the clip list {path} (data.clips): {err}") from None
    names = [name for name in names if name and not name.startswith("#")]
    known = set(store.clips)
    missing = [name for name in names if name not in known]
    if missing:
        raise CLTTError(f"data.clips lists {len(missing)} clip(s) not under {store.root}, first {missing[0]!r}; "
                        "list clip names as cltt index shows them")
    if not names:
        raise CLTTError(f"the clip list {path} (data.clips) names no clip; list one clip name a line")
    return np.unique([store.clip_index(name) for name in names]).astype(np.int64)
