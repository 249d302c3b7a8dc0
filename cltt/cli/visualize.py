"""``cltt visualize``: windows as the model sees them, and training curves, as PNG."""

from __future__ import annotations

from pathlib import Path

import click

from cltt.cli.common import console, show_option, show_recipe, split_arguments
from cltt.errors import CLTTError


@click.command(
    name="visualize",
    epilog="""\b
Examples:
  cltt visualize recipes/quickstart.yaml --mode batch --out batch.png
  cltt visualize recipes/quickstart.yaml --mode sample --index 40 --no-augment --out window.png
  cltt visualize runs/quickstart --mode curves --out curves.png""",
)
@click.argument("args", nargs=-1)
@click.option("--mode", type=click.Choice(["sample", "batch", "curves"]), default="batch", show_default=True,
              help="sample: one window in a row; batch: a grid, one window per row; curves: loss and lr of a run.")
@click.option("--out", "-o", type=click.Path(path_type=Path), help="PNG to write (default: <mode>.png).")
@click.option("--index", type=int, default=0, show_default=True, help="Window number (sample mode) or first window (contiguous batch).")
@click.option("--batch-size", type=int, default=8, show_default=True, help="Windows in batch mode.")
@click.option("--batch-sampling", type=click.Choice(["contiguous", "random"]), default="contiguous", show_default=True,
              help="contiguous: neighbouring windows (what shuffled training never shows); random: a training-like batch.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed for random batches and augmentation.")
@click.option("--augment/--no-augment", default=True, show_default=True, help="Apply the recipe's augmentation.")
@show_option
def command(args: tuple[str, ...], mode: str, out: Path | None, index: int, batch_size: int,
            batch_sampling: str, seed: int, augment: bool, show: bool) -> None:
    """Draw windows of frames, or the curves of a run.

    ARGS: [RECIPE] [key.sub=value ...] for sample and batch; RUN_DIR or metrics.csv for curves.
    """
    from cltt.data.build import open_frames, windows_dataset  # torch loads only when needed
    from cltt.visualize import batch_grid, batch_indices, plot_curves, save_png, window_strip

    parsed = split_arguments(args)
    out = out or Path(f"{mode}.png")
    if mode == "curves":
        if len(parsed.paths) != 1:
            raise CLTTError("curves mode takes a run folder or its metrics.csv, e.g. cltt visualize runs/quickstart --mode curves")
        console.print(f"wrote {plot_curves(parsed.paths[0], out)}")
        return
    recipe = parsed.recipe()
    if show:
        show_recipe(recipe)
        return
    if parsed.paths:
        raise CLTTError(f"unexpected argument {parsed.paths[0]}; set the frames root with data.root=PATH")
    dataset = windows_dataset(recipe.data, open_frames(recipe.data, synthetic=recipe.extract.synthetic), augment=augment, seed=seed)
    if not 0 <= index < len(dataset):
        raise CLTTError(f"--index {index} is out of range: this recipe gives {len(dataset)} windows")
    if mode == "sample":
        image = window_strip(dataset, index)
    else:
        image = batch_grid(dataset, batch_indices(len(dataset), batch_size, batch_sampling, seed, index))
    console.print(f"wrote {save_png(image, out)} ({image.shape[1]}x{image.shape[0]} px)")
