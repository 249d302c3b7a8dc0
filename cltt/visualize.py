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
    return save_figure(fig, out)


PROBE_REPORT = "probe.json"
SOURCE_COLOURS = {"trained": "tab:blue", "random_init": "tab:orange", "pixels": "tab:gray"}


def read_probe_scores(report: str | Path) -> tuple[list[str], list[str], dict, str]:
    """The test scores of a class probe's report (a run dir's ``probe.json``, or the file):
    ``(sources, probes, {(source, probe): (value, low, high)}, title)``, accuracies in %."""
    import json

    path = Path(report)
    if path.is_dir():
        path = path / PROBE_REPORT
    if not path.is_file():
        raise CLTTError(f"{path} does not exist; run cltt probe {path.parent} first")
    data = json.loads(path.read_text())
    if data.get("format") != "cltt-probe/1":
        raise CLTTError(f"{path} is not a class probe's report (format {data.get('format')!r}); probe mode draws "
                        "the trained, random-init and pixel accuracies of probe.task=classes or image_set")
    scores, sources, probes = {}, [], []
    for score in data["scores"]:
        if score.get("test") is None:
            continue
        interval = (score.get("intervals") or {}).get("test")  # null: one test clip, no interval
        low, high = interval if interval else (np.nan, np.nan)
        scores[score["features"], score["probe"]] = (100 * score["test"], 100 * low, 100 * high)
        sources += [score["features"]] if score["features"] not in sources else []
        probes += [score["probe"]] if score["probe"] not in probes else []
    if not scores:
        raise CLTTError(f"{path} holds no test scores to draw")
    counts = data.get("counts", {}).get("test", {})
    unit = data.get("unit", "clips")
    units = counts.get(unit, "?")
    if all(np.isnan(low) for _, low, _ in scores.values()):  # a bootstrap over one unit only repeats it
        units = f"{units} {unit.removesuffix('s') if units == 1 else unit}"
        title = f"{Path(data['checkpoint']).name}: test accuracy, no 95% interval (n/a: {units})"
    else:
        title = f"{Path(data['checkpoint']).name}: test accuracy, 95% interval over {units} {unit}"
    return sources, probes, scores, title


def plot_probe(report: str | Path, out: str | Path) -> Path:
    """Trained vs random init vs pixels: each readout's test accuracy as a bar per feature source,
    its 95% interval (bootstrap over clips) as an error bar, as a PNG. A test split of one clip
    has no interval: no error bars, and the title says so."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sources, probes, scores, title = read_probe_scores(report)
    fig, ax = plt.subplots(figsize=(max(5.0, 1.3 * len(probes) + 2), 3.4), dpi=120)
    width = 0.8 / len(sources)
    for i, source in enumerate(sources):
        xs = [p + (i - (len(sources) - 1) / 2) * width for p in range(len(probes))]
        cells = [scores.get((source, probe)) for probe in probes]
        values = [c[0] if c else np.nan for c in cells]
        errors = [[c[0] - c[1] if c else 0 for c in cells], [c[2] - c[0] if c else 0 for c in cells]]  # NaN: no bar
        ax.bar(xs, values, width, yerr=errors, capsize=3, label=source.replace("_", " "),
               color=SOURCE_COLOURS.get(source))
    ax.set_xticks(range(len(probes)), probes)
    ax.set(ylabel="test %", ylim=(0, 115), yticks=range(0, 101, 20), title=title)
    ax.title.set_fontsize(9)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8, loc="upper center", ncol=len(sources), frameon=False)
    return save_figure(fig, out)


def save_figure(fig, out: str | Path) -> Path:
    """Lay out ``fig``, write it to ``out`` (folders made) and close it; returns the path."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    plt.close(fig)
    return out
