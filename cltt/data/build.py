"""From a recipe's ``data`` section to an up-to-date manifest and a windows dataset."""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

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
    )
