"""``cltt visualize``: windows as the model sees them, training curves, and object slots, as PNG."""

from __future__ import annotations

from pathlib import Path

import click
from rich.markup import escape

from cltt.cli.common import console, err_console, show_option, show_recipe, split_arguments
from cltt.errors import CLTTError


@click.command(
    name="visualize",
    epilog="""\b
Examples:
  cltt visualize recipes/quickstart.yaml --mode batch --out batch.png
  cltt visualize recipes/quickstart.yaml --mode sample --index 40 --no-augment --out window.png
  cltt visualize runs/quickstart --mode curves --out curves.png
  cltt visualize runs/quickstart --mode probe --out probe.png
  cltt visualize runs/slotcontrast --mode slots --clip clip_0003 --out slots.png
  cltt visualize runs/quickstart --mode neighbours --queries 6 --neighbours 5 --out neighbours.png""",
)
@click.argument("args", nargs=-1)
@click.option("--mode", type=click.Choice(["sample", "batch", "curves", "probe", "slots", "neighbours"]), default="batch",
              show_default=True,
              help="sample: one window in a row; batch: a grid, one window per row; curves: loss and lr of a run; "
                   "probe: a run's probe.json, trained vs random init vs pixels, 95% intervals as error bars; "
                   "slots: a slot model's masks over the frames of one clip; neighbours: held-out query frames and "
                   "their nearest frames in feature space, trained beside random init (same-clip hits in red).")
@click.option("--out", "-o", type=click.Path(path_type=Path), help="PNG to write (default: <mode>.png).")
@click.option("--index", type=int, default=0, show_default=True, help="Window number (sample mode) or first window (contiguous batch).")
@click.option("--batch-size", type=click.IntRange(min=1), default=8, show_default=True, help="Windows in batch mode.")
@click.option("--batch-sampling", type=click.Choice(["contiguous", "random"]), default="contiguous", show_default=True,
              help="contiguous: neighbouring windows (what shuffled training never shows); random: a training-like batch.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed for random batches and augmentation.")
@click.option("--augment/--no-augment", default=True, show_default=True, help="Apply the recipe's augmentation.")
@click.option("--clip", help="Slots mode: the clip to draw (default: the first clip of the root).")
@click.option("--frames", "num_frames", type=click.IntRange(min=1), default=8, show_default=True,
              help="Slots mode: frames to draw, from the clip's start (the model still sees them in order).")
@click.option("--masks", "mask_kind", type=click.Choice(["decoder", "attention"]), default="decoder", show_default=True,
              help="Slots mode: the decoder's alpha masks or slot attention's maps.")
@click.option("--queries", type=click.IntRange(min=1), default=6, show_default=True,
              help="Neighbours mode: query frames, the middle frame of as many held-out clips (drawn with --seed).")
@click.option("--neighbours", "num_neighbours", type=click.IntRange(min=1), default=5, show_default=True,
              help="Neighbours mode: nearest frames shown per query and encoder.")
@show_option
def command(args: tuple[str, ...], mode: str, out: Path | None, index: int, batch_size: int,
            batch_sampling: str, seed: int, augment: bool, clip: str | None, num_frames: int, mask_kind: str,
            queries: int, num_neighbours: int, show: bool) -> None:
    """Draw windows of frames, the curves of a run, or a slot model's masks.

    ARGS: [RECIPE] [key.sub=value ...] for sample and batch; RUN_DIR or metrics.csv for curves; RUN_DIR or probe.json for probe;
    RUN_DIR or CHECKPOINT [data.root=PATH] for slots and neighbours.
    """
    from cltt.data.build import open_frames, windows_dataset  # torch loads only when needed
    from cltt.visualize import batch_grid, batch_indices, check_png_path, plot_curves, save_png, window_strip

    parsed = split_arguments(args)
    out = out or Path(f"{mode}.png")
    check_png_path(out)  # before any work
    if mode == "curves":
        if len(parsed.paths) != 1:
            raise CLTTError("curves mode takes a run folder or its metrics.csv, e.g. cltt visualize runs/quickstart --mode curves")
        console.print(f"wrote {plot_curves(parsed.paths[0], out)}")
        return
    if mode == "probe":
        from cltt.visualize import plot_probe

        if len(parsed.paths) != 1 or parsed.overrides:
            raise CLTTError("probe mode takes a run folder or its probe.json, e.g. cltt visualize runs/quickstart --mode probe")
        console.print(f"wrote {plot_probe(parsed.paths[0], out)}")
        return
    if mode == "neighbours":
        image, notes = _neighbours_image(parsed, queries, num_neighbours, seed)
        for note in notes:
            err_console.print(f"[dim]note:[/] {escape(note)}", soft_wrap=True)
        console.print(f"wrote {save_png(image, out)} ({image.shape[1]}x{image.shape[0]} px)")
        return
    if mode == "slots":
        image = _slots_image(parsed, clip, num_frames, mask_kind)
        console.print(f"wrote {save_png(image, out)} ({image.shape[1]}x{image.shape[0]} px)")
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


def _neighbours_image(parsed, queries: int, num_neighbours: int, seed: int):
    """Held-out query frames and their nearest frames, trained beside random init (:mod:`cltt.eval.neighbours`)."""
    from cltt.engine.checkpoint import load_checkpoint
    from cltt.engine.run_dir import resolve_resume_target, saved_recipe
    from cltt.eval.neighbours import neighbours_image
    from cltt.recipe import apply_overrides, recipe_from_dict, recipe_to_dict

    if len(parsed.paths) != 1 or parsed.recipe_path is not None:
        raise CLTTError("neighbours mode takes one run folder or checkpoint, e.g. "
                        "cltt visualize runs/quickstart --mode neighbours")
    path = resolve_resume_target(parsed.paths[0])
    state = load_checkpoint(path)
    tree = recipe_to_dict(saved_recipe(state, path))
    apply_overrides(tree, parsed.overrides)
    return neighbours_image(recipe_from_dict(tree), path, state, queries, num_neighbours, seed)


def _slots_image(parsed, clip: str | None, num_frames: int, mask_kind: str):
    """Two rows: a clip's first ``num_frames`` frames, then the same frames tinted by slot."""
    from cltt.data.build import open_frames
    from cltt.data.tiles import slot_strip
    from cltt.engine.checkpoint import load_checkpoint
    from cltt.engine.device import resolve_device
    from cltt.engine.run_dir import resolve_resume_target, saved_recipe
    from cltt.eval.probe import load_trained_method
    from cltt.eval.slots import clip_frames, clip_slot_masks, predicted_labels
    from cltt.models.representation import SlotMasks
    from cltt.recipe import apply_overrides, recipe_from_dict, recipe_to_dict

    if len(parsed.paths) != 1 or parsed.recipe_path is not None:
        raise CLTTError("slots mode takes one run folder or checkpoint of a slot model, e.g. "
                        "cltt visualize runs/slotcontrast --mode slots")
    if num_frames < 1:
        raise CLTTError(f"--frames must be at least 1, got {num_frames}")
    path = resolve_resume_target(parsed.paths[0])
    state = load_checkpoint(path)
    tree = recipe_to_dict(saved_recipe(state, path))
    apply_overrides(tree, parsed.overrides)
    recipe = recipe_from_dict(tree)
    method = load_trained_method(recipe, state, path)
    if not isinstance(method, SlotMasks):
        raise CLTTError(f"{path} was trained with method.name={recipe.method.name}, which has no object slots; "
                        "slots mode needs a slotcontrast run")
    store = open_frames(recipe.data, synthetic=recipe.extract.synthetic)
    names = [name.rsplit("/", 1)[-1] for name in store.clips]
    if clip is None:
        number = 0
    elif clip in store.clips or clip in names:
        number = store.clips.index(clip) if clip in store.clips else names.index(clip)
    else:
        raise CLTTError(f"--clip {clip} is not a clip of {store.root}; it has {', '.join(store.clips[:3])}"
                        + (", ..." if store.num_clips > 3 else ""))
    frames = clip_frames(store, number, recipe.data.image_size, limit=num_frames)
    device = resolve_device(recipe.train.device)
    method.to(device).eval()
    masks = clip_slot_masks(method, frames, device, recipe.data.window_size)[mask_kind]
    labels = predicted_labels(masks, *frames.shape[1:3])
    return slot_strip(frames, labels, method.num_slots, names[number])
