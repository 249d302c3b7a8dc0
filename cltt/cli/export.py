"""``cltt export``: a trained encoder as safetensors, TorchScript or ONNX, or per-frame features."""

from __future__ import annotations

import contextlib
import shlex
import time
import typing
from pathlib import Path

import click
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from cltt.cli.common import console, fail, show_option, show_recipe, split_arguments, writing_run_dir
from cltt.errors import CLTTError
from cltt.recipe import ExportConfig

FORMATS = typing.get_args(typing.get_type_hints(ExportConfig)["format"])  # safetensors, torchscript, onnx


@click.command(
    name="export",
    epilog="""\b
Examples:
  cltt export runs/quickstart                                  # latest checkpoint -> safetensors
  cltt export runs/quickstart/checkpoint_epoch_003.pth --format onnx --out exports/
  cltt export runs/quickstart --embeddings data/digits train.device=cpu
  cltt export runs/quickstart --embeddings data/objects --projector   # then tensorboard --logdir <shown folder>

\b
Load an exported encoder in Python with one call:
  from cltt.export import load_encoder
  encoder = load_encoder("runs/quickstart/exports/quickstart_epoch010-1a2b3c4d.safetensors")
  features = encoder(frames)   # [N, 3, S, S] float, ImageNet-normalised -> [N, D]""",
)
@click.argument("args", nargs=-1)
@click.option("--format", "fmt", type=click.Choice(FORMATS),
              help="safetensors (weights + JSON sidecar; default, recipe key export.format), torchscript "
                   "(a traced .pt for C++/TorchServe) or onnx (needs pip install 'cltt[onnx]').")
@click.option("--with-head", is_flag=True,
              help="Include the projection head: output the contrastive embedding instead of the "
                   "representation before the head (which is what probes and most analyses want).")
@click.option("--out", type=click.Path(path_type=Path),
              help="Folder to write into (created if missing; default RUN_DIR/exports), or a file name "
                   "ending in the format's suffix (.safetensors, .pt, .onnx; .npy with --embeddings).")
@click.option("--embeddings", "embeddings_root", type=click.Path(path_type=Path), metavar="ROOT",
              help="Instead of the weights, write features of every frame under ROOT: a .npy float32 "
                   "[num_frames, D] and an index CSV clip,frame,row.")
@click.option("--batch-size", type=click.IntRange(min=1), default=256, show_default=True,
              help="Frames per forward pass with --embeddings; lower it if the GPU runs out of memory.")
@click.option("--projector", is_flag=True,
              help="With --embeddings: also write TensorBoard projector files (tensors, metadata clip/frame/time, "
                   "a sprite of the frames) to <name>_projector/; open with tensorboard --logdir on that folder.")
@click.option("--force", is_flag=True,
              help="Replace existing files of the names this export writes: the file, its .json sidecar, "
                   "the .csv index, the _projector/ folder (refused without it, before any work).")
@show_option
def command(args: tuple[str, ...], fmt: str | None, with_head: bool, out: Path | None,
            embeddings_root: Path | None, batch_size: int, projector: bool, force: bool, show: bool) -> None:
    """Export the encoder of a CHECKPOINT (or a RUN_DIR's latest) for use outside cltt.

    ARGS: CHECKPOINT|RUN_DIR [key.sub=value ...]. The model comes from the recipe inside the
    checkpoint; overrides may set export.* and data.root, data.cache_dir, data.num_workers,
    train.device. Every format takes [N, 3, S, S] float32 RGB frames at the training image
    size S, centre-cropped and ImageNet-normalised (the JSON sidecar X.EXT.json holds
    input.preprocess_python, which prepares an image file exactly as cltt does), and returns
    [N, D]: the representation, or the projection with --with-head. Files are named
    RUN_epochNNN-SHA8.EXT, SHA8 being the start of the file's SHA-256.
    """
    try:
        _export(args, fmt, with_head, out, embeddings_root, batch_size, force, show, projector)
    except CLTTError as err:  # also when this command is used outside the cltt group
        fail(str(err), err.exit_code)


def _export(args, fmt, with_head, out, embeddings_root, batch_size, force, show, projector=False) -> None:
    parsed = split_arguments(args)
    if projector and embeddings_root is None:
        raise CLTTError("--projector writes TensorBoard projector files of embeddings; add --embeddings ROOT")
    if parsed.recipe_path is not None:
        raise CLTTError(f"cltt export reads the recipe from the checkpoint; drop {parsed.recipe_path} "
                        "and pass CHECKPOINT|RUN_DIR [key=value ...]")
    if len(parsed.paths) != 1:
        got = f"got {' '.join(map(str, parsed.paths))}" if parsed.paths else "got none"
        raise CLTTError(f"cltt export takes one CHECKPOINT or RUN_DIR, {got}; e.g. cltt export runs/quickstart")
    overrides = list(parsed.overrides)
    if fmt is not None:
        overrides.append(f"export.format={fmt}")
    if with_head:
        overrides.append("export.with_head=true")

    from cltt.export import open_checkpoint

    source = open_checkpoint(parsed.paths[0], overrides)
    if show:
        show_recipe(source.recipe)
        return
    where = f"{source.checkpoint} (epoch {source.epoch}, step {source.step})"
    # an export into the run dir (the default RUN_DIR/exports) is one of its writers; one to --out
    # elsewhere only reads checkpoints, which are replaced atomically, so a run in training does not block it
    writes_run_dir = out is None or Path(out).resolve().is_relative_to(source.run_dir.resolve())
    with writing_run_dir(source.run_dir, "wait for it to finish, or export elsewhere with --out DIR") \
            if writes_run_dir else contextlib.nullcontext():
        if embeddings_root is not None:
            _embeddings(source, embeddings_root, out, batch_size, where, force, projector)
        else:
            _weights(source, out, where, force)


def _weights(source, out: Path | None, where: str, force: bool) -> None:
    from cltt.export import export_encoder

    settings = source.recipe.export
    with console.status(f"exporting {settings.format} ..."):
        result = export_encoder(source, settings.format, settings.with_head, out, force=force)
    architecture = source.architecture(settings.with_head)
    size = source.recipe.data.image_size
    console.print(
        f"exported {architecture['backbone']} {architecture['output']} "
        f"[N, 3, {size}, {size}] -> [N, {architecture['output_dim']}] from {where}", soft_wrap=True)
    checked = "" if result.max_difference is None else f", max |{settings.format} - torch| {result.max_difference:.1e}"
    console.print(f"  {result.path} ({result.size_bytes / 1e6:.1f} MB, sha256 {result.sha256[:8]}{checked})", soft_wrap=True)
    console.print(f"  {result.sidecar}", soft_wrap=True)
    if settings.format != "onnx":
        console.print(f"  load: from cltt.export import load_encoder; load_encoder('{result.path}')", soft_wrap=True)


def _embeddings(source, root: Path, out: Path | None, batch_size: int, where: str, force: bool,
                projector: bool = False) -> None:
    from cltt.export import export_embeddings

    columns = (TextColumn("embedding frames"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    started = time.perf_counter()
    with Progress(*columns, console=console, transient=True) as progress:
        task = progress.add_task("embed", total=None)
        result = export_embeddings(source, root, source.recipe.export.with_head, out, batch_size,
                                   on_progress=lambda done, total: progress.update(task, completed=done, total=total),
                                   force=force, projector=projector)
    seconds = time.perf_counter() - started
    console.print(f"embedded {result.num_frames:,} frames of {root} -> [{result.num_frames}, {result.feature_dim}] "
                  f"in {seconds:.1f} s ({result.num_frames / max(seconds, 1e-9):,.0f} frames/s) from {where}",
                  soft_wrap=True)
    for path in (result.features, result.index, result.sidecar):
        console.print(f"  {path}", soft_wrap=True)
    if result.projector is not None:
        folder = result.projector.parent  # the hint is quoted for a shell: it works as written for any path
        console.print(f"  {folder}/ (TensorBoard projector: tensorboard --logdir {shlex.quote(str(folder))})",
                      soft_wrap=True)
