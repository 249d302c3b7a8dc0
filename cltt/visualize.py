"""Pictures of what the model sees: windows as rows of frames, and training curves.

    image = window_strip(dataset, index)            # RGB uint8 [H, W, 3]: one row per view
    image = batch_grid(dataset, indices)            # one row per window (and view)
    save_png(image, "batch.png")
    plot_curves("runs/quickstart/metrics.csv", "curves.png")
    image = slot_strip(frames, labels, num_slots, "clip_0003")   # frames, then tinted by slot

Frames are enlarged (nearest neighbour, so pixels stay honest) to at least ``MIN_TILE`` pixels
and captioned with the clip name and the frame numbers (1-based, as in the file names). A
caption wider than its tile takes two lines, the frame number whole on the second
(:func:`caption_lines`).
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

import cv2
import numpy as np

from cltt.data.dataset import WindowDataset
from cltt.engine.provenance import STEPS_FILE
from cltt.errors import CLTTError

MIN_TILE = 96
CAPTION = 14  # pixels of one caption line above each tile
CAPTION_MARGIN = 2  # pixels left of the text
CAPTION_FONT, CAPTION_SCALE = cv2.FONT_HERSHEY_PLAIN, 0.8
BAND_GREY = 24
GAP = 4


def caption_width(text: str) -> int:
    """Pixels ``text`` takes in a caption, margin included."""
    return cv2.getTextSize(text, CAPTION_FONT, CAPTION_SCALE, 1)[0][0] + CAPTION_MARGIN


def caption_lines(caption: str, width: int) -> list[str]:
    """``caption`` as lines that each fit ``width`` pixels: the caption itself when it fits, else
    the text before its last space (the clip name) over the rest (the frame number, ``#12``), a
    line still too wide losing characters from its start (``..ip_0003``), so a frame number is
    never cut off."""
    if caption_width(caption) <= width:
        return [caption]
    head, _, tail = caption.rpartition(" ")
    return [_shortened(line, width) for line in ([head, tail] if head else [tail])]


def _shortened(text: str, width: int) -> str:
    """``text``, or ``..`` and its longest ending that fits ``width`` pixels."""
    cut = 0
    while caption_width(text if cut == 0 else ".." + text[cut:]) > width and cut < len(text) - 1:
        cut += 1
    return text if cut == 0 else ".." + text[cut:]


def _tile(frame: np.ndarray, caption: str, side: int) -> np.ndarray:
    """One frame [H, W, 3] enlarged to ``side`` with a caption band on top (one or two lines)."""
    scale = max(1, -(-side // frame.shape[0]))  # ceiling: small frames are enlarged to at least side
    image = cv2.resize(frame, (frame.shape[1] * scale, frame.shape[0] * scale), interpolation=cv2.INTER_NEAREST)
    lines = caption_lines(caption, image.shape[1])
    band = np.full((CAPTION * len(lines), image.shape[1], 3), BAND_GREY, dtype=np.uint8)
    for number, line in enumerate(lines, start=1):
        cv2.putText(band, line, (CAPTION_MARGIN, CAPTION * number - 4), CAPTION_FONT, CAPTION_SCALE, (235, 235, 235), 1,
                    cv2.LINE_AA)
    return np.concatenate([band, image], axis=0)


def _row(tiles: list[np.ndarray]) -> np.ndarray:
    """Tiles side by side; a tile with a one-line caption beside two-line ones gets a taller band."""
    height = max(tile.shape[0] for tile in tiles)
    tiles = [np.pad(tile, ((height - tile.shape[0], 0), (0, 0), (0, 0)), constant_values=BAND_GREY) for tile in tiles]
    gap = np.full((height, GAP, 3), 255, dtype=np.uint8)
    parts = []
    for tile in tiles:
        parts += [tile, gap]
    return np.concatenate(parts[:-1], axis=1)


def _stack(rows: list[np.ndarray]) -> np.ndarray:
    width = max(r.shape[1] for r in rows)
    padded = [np.pad(r, ((0, GAP), (0, width - r.shape[1]), (0, 0)), constant_values=255) for r in rows]
    return np.concatenate(padded, axis=0)[:-GAP]


def slot_palette(num_slots: int) -> np.ndarray:
    """``[K, 3]`` uint8 RGB colours, evenly spaced hues, one per slot."""
    hues = np.linspace(0, 180, num_slots, endpoint=False).astype(np.uint8)
    hsv = np.stack([hues, np.full_like(hues, 220), np.full_like(hues, 255)], axis=1)[None]
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)[0]


def overlay_slots(frames: np.ndarray, labels: np.ndarray, num_slots: int, opacity: float = 0.5) -> np.ndarray:
    """Frames ``[T, S, S, 3]`` uint8 with each pixel tinted by its slot's colour (``labels [T, S, S]``)."""
    colours = slot_palette(num_slots)[labels]
    return np.round((1 - opacity) * frames + opacity * colours).astype(np.uint8)


def slot_strip(frames: np.ndarray, labels: np.ndarray, num_slots: int, clip: str) -> np.ndarray:
    """Two rows: frames ``[T, S, S, 3]`` of ``clip``, then the same frames tinted by slot ``labels [T, S, S]``."""
    side = max(MIN_TILE, frames.shape[1])
    plain = [_tile(f, f"{clip} #{j + 1}", side) for j, f in enumerate(frames)]
    tinted = [_tile(f, f"slots #{j + 1}", side) for j, f in enumerate(overlay_slots(frames, labels, num_slots))]
    return _stack([_row(plain), _row(tinted)])


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
            tiles.append(_tile(image.permute(1, 2, 0).numpy(), f"{name} #{number}", side))
        rows.append(_row(tiles))
    return rows


def window_strip(dataset: WindowDataset, index: int, epoch: int = 0) -> np.ndarray:
    """Sample ``index`` as an RGB image: its frames left to right, one row per view."""
    return _stack(window_rows(dataset, index, epoch))


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
    return _stack(rows)


def views_grid(views: np.ndarray, side: int = MIN_TILE) -> np.ndarray:
    """Training samples as an RGB image: ``views [b, F, S, S, 3]`` uint8, one row of F frames per sample."""
    return _stack([_row([_tile(frame, f"sample {i + 1} #{j + 1}", side) for j, frame in enumerate(frames)])
                   for i, frames in enumerate(views)])


def slot_mask_grid(frames: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """Windows and their slots: ``frames [n, T, S, S, 3]`` uint8, ``masks [n, T, K, h, w]`` (sum 1
    over slots); two rows per window (:func:`slot_strip`), each pixel tinted by its argmax slot."""
    n, t, size = frames.shape[:3]
    labels = masks.argmax(axis=2)  # [n, T, h, w]
    scale = -(-size // labels.shape[-1])
    full = labels.repeat(scale, axis=-2).repeat(scale, axis=-1)[..., :size, :size]
    return _stack([slot_strip(frames[i], full[i], masks.shape[2], f"window {i + 1}") for i in range(n)])


def alignment_image(first: np.ndarray, second: np.ndarray, similarity: np.ndarray) -> np.ndarray:
    """Two sequences and how they align: ``first [T1, S, S, 3]``, ``second [T2, S, S, 3]`` uint8
    as rows, then ``similarity [T1, T2]`` as a heat map (row i: frame i of the first sequence),
    with each row's most similar frame of the second marked white."""
    cell = 16
    low, high = float(similarity.min()), float(similarity.max())
    scaled = np.uint8(np.round(255 * (similarity - low) / max(high - low, 1e-8)))
    heat = cv2.cvtColor(cv2.applyColorMap(scaled, cv2.COLORMAP_VIRIDIS), cv2.COLOR_BGR2RGB)
    heat = heat.repeat(cell, axis=0).repeat(cell, axis=1)
    for row, column in enumerate(similarity.argmax(axis=1)):
        centre = (int(column) * cell + cell // 2, row * cell + cell // 2)
        cv2.circle(heat, centre, cell // 4, (255, 255, 255), -1)
    side = max(MIN_TILE // 2, first.shape[1])
    rows = [_row([_tile(f, f"a #{j + 1}", side) for j, f in enumerate(first)]),
            _row([_tile(f, f"b #{j + 1}", side) for j, f in enumerate(second)]),
            _tile(heat, f"similarity a x b ({low:.2f}..{high:.2f})", heat.shape[0])]
    return _stack(rows)


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
        path = path / STEPS_FILE if (path / STEPS_FILE).is_file() else path / "metrics.csv"
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
