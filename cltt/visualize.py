"""Pictures of a recipe's windows and a run's curves, for ``cltt visualize``.

    image = window_strip(dataset, index)            # RGB uint8 [H, W, 3]: one row per view
    image = batch_grid(dataset, indices)            # one row per window (and view)
    save_png(image, "batch.png")
    plot_curves("runs/quickstart/metrics.csv", "curves.png")

The frames are drawn as the captioned tiles of :mod:`cltt.data.tiles` (also what the trainer
logs), so a window looks the same here and in TensorBoard.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

import cv2
import numpy as np

from cltt.data.dataset import WindowDataset
from cltt.data.tiles import MIN_TILE, captioned_tile, stack_rows, tile_row
from cltt.engine.run_files import METRICS_FILE, STEPS_FILE
from cltt.errors import CLTTError


def window_rows(dataset: WindowDataset, index: int, epoch: int = 0) -> list[np.ndarray]:
    """One image row per view of sample ``index``, each frame captioned ``clip #frame``."""
    sample = dataset[(index, epoch)]
    views = sample["views"]
    if views.is_floating_point():
        views = (views * 255).round().clamp(0, 255).byte()
    side = max(MIN_TILE, views.shape[-1])
    store = dataset.store
    rows = []
    for view, frames in zip(views, dataset.window_frames(sample["index"])):
        clip = store.clip_of_frame(frames[0])
        name = os.path.basename(store.clips[clip])
        tiles = []
        for image, global_frame in zip(view, frames):
            number = global_frame - int(store.clip_offsets[clip]) + 1
            tiles.append(captioned_tile(image.permute(1, 2, 0).numpy(), f"{name} #{number}", side))
        rows.append(tile_row(tiles))
    return rows


def window_strip(dataset: WindowDataset, index: int, epoch: int = 0) -> np.ndarray:
    """Sample ``index`` as an RGB image: its frames left to right, one row per view."""
    return stack_rows(window_rows(dataset, index, epoch))


def batch_indices(num_windows: int, batch_size: int, sampling: str, seed: int, start: int = 0) -> list[int]:
    """Windows of one batch: ``contiguous`` from ``start`` (neighbours in time) or ``random``."""
    batch_size = min(batch_size, num_windows)
    if sampling == "random":
        return np.random.default_rng(seed).choice(num_windows, size=batch_size, replace=False).tolist()
    return [(start + i) % num_windows for i in range(batch_size)]


def batch_grid(dataset: WindowDataset, indices: list[int], epoch: int = 0) -> np.ndarray:
    """A batch as an RGB image: one row per window (two rows for two-view samples)."""
    rows = []
    for index in indices:
        rows.extend(window_rows(dataset, index, epoch))
    return stack_rows(rows)


def save_png(image: np.ndarray, path: str | Path) -> Path:
    """Write an RGB image as PNG, creating the folder."""
    path = Path(path)
    check_png_path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR)):
        raise CLTTError(f"could not write {path}; check the folder is writable and the name ends in .png")
    return path


def check_png_path(path: Path) -> None:
    """One line for an ``--out`` that cannot be a picture: a folder, or another extension."""
    if path.is_dir():
        raise CLTTError(f"--out {path} is a folder; give a file name such as {path / 'batch.png'}")
    if path.suffix.lower() not in (".png", ".jpg", ".jpeg"):
        raise CLTTError(f"--out {path} must end in .png (or .jpg)")


def read_metrics(path: str | Path) -> dict[str, list[float]]:
    """Columns of a run's metrics as float lists: ``metrics_steps.csv`` (``step,epoch,loss,...``)
    when a run folder has one, else ``metrics.csv`` (``epoch,loss,learning_rate,decay_rate``)."""
    path = Path(path)
    if path.is_dir():
        path = path / STEPS_FILE if (path / STEPS_FILE).is_file() else path / METRICS_FILE
    if not path.is_file():
        raise CLTTError(f"no metrics file at {path}; pass a run folder, its metrics.csv or metrics_steps.csv")
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    if not rows or "epoch" not in rows[0] or "loss" not in rows[0]:
        raise CLTTError(f"{path} has no rows with epoch and loss columns")
    columns: dict[str, list[float]] = {name: [] for name in rows[0]}
    for row in rows:
        for name, value in row.items():
            columns[name].append(float(value) if value not in ("", None) else float("nan"))
    return columns


def plot_curves(metrics: str | Path, out: str | Path) -> Path:
    """Loss and learning rate of a run, side by side, as a PNG: per logged step when the run has
    step metrics (so short or interrupted runs draw a curve, not a dot), else per epoch."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    columns = read_metrics(metrics)
    x = "step" if "step" in columns else "epoch"
    fig, (loss_ax, lr_ax) = plt.subplots(1, 2, figsize=(9, 3.2), dpi=120)
    loss_ax.plot(columns[x], columns["loss"], marker="o", ms=3)
    loss_ax.set(xlabel=x, ylabel="loss", title="training loss")
    if "learning_rate" in columns:
        lr_ax.plot(columns[x], columns["learning_rate"], marker="o", ms=3, color="tab:orange")
    lr_ax.set(xlabel=x, ylabel="learning rate", title="learning rate")
    for ax in (loss_ax, lr_ax):
        ax.grid(alpha=0.3)
    fig.tight_layout()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    plt.close(fig)
    return out
