"""Checkpoints: what they hold, how they are written, which one is the latest.

A checkpoint is a dict of tensors, numbers, strings and lists only, so it loads with
``torch.load(weights_only=True)``: the recipe travels as YAML text and RNG states as tensors.

    format            "cltt-checkpoint/1"
    recipe            resolved recipe, YAML text
    model             method state dict (encoder + head)
    optimizer, scaler state dicts
    progress          epoch (completed), step (global), position (batches done in the
                      current epoch), epoch_loss_sum, epoch_loss_count, batches_per_epoch,
                      total_steps
    rng               python, numpy, torch and CUDA generator states
    wandb_id          W&B run id, kept across resumes (or "")

Files in the run dir are named by :mod:`cltt.engine.run_files`: ``checkpoint_epoch_003.pth``
after epoch 3, ``checkpoint_final.pth`` at the end, and ``checkpoint_step_0001234.pth`` when a
run stops inside an epoch (the lab's ``simclr_*`` names of older runs are read alike). Each is
written to a hidden temporary file, flushed and renamed, then the text file ``latest`` is
replaced to name it, so a kill at any moment leaves the previous checkpoint intact and
``latest`` pointing at a whole file.
"""

from __future__ import annotations

import os
import pickle
import random
import zipfile
from pathlib import Path

import numpy as np

from cltt.engine.run_files import LATEST_FILE, checkpoint_files, epoch_of, is_final, step_of
from cltt.errors import CLTTError, writing

FORMAT = "cltt-checkpoint/1"
# torch is imported by the functions that touch tensors: finding the latest checkpoint through
# the `latest` pointer (cltt runs, cltt sweep status) costs no torch.


# --------------------------------------------------------------------------- RNG states


def rng_state() -> dict:
    """Python, NumPy, torch (and CUDA) generator states as weights-only-safe values."""
    import torch

    version, words, gauss = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state = {
        "python": [version, list(words), gauss],
        "numpy": {"keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached": float(cached)},
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict) -> None:
    import torch

    version, words, gauss = state["python"]
    random.setstate((version, tuple(words), gauss))
    numpy_state = state["numpy"]
    np.random.set_state(("MT19937", numpy_state["keys"].numpy().astype(np.uint32), numpy_state["pos"],
                         numpy_state["has_gauss"], numpy_state["cached"]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])


# --------------------------------------------------------------------------- files


def replace_atomically(path: Path, write) -> None:
    """Write ``path`` through ``write(handle)`` into a temporary file that is flushed, synced and
    renamed over it: a kill or a full disk leaves the previous file whole (and a full disk is one
    :class:`~cltt.errors.CannotWrite` line naming ``path``)."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        # a full disk is one line naming the file (torch.save says "unexpected pos ..."), judged
        # while the temporary file still fills it; the previous file is untouched
        with writing(path), open(tmp, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    try:
        directory = os.open(path.parent, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(directory)
    except OSError:
        pass
    finally:
        os.close(directory)


def save_checkpoint(state: dict, path: Path) -> Path:
    """Write ``state`` to ``path`` atomically and point ``latest`` at it."""
    import torch

    path = Path(path)
    replace_atomically(path, lambda handle: torch.save(state, handle))
    replace_atomically(path.parent / LATEST_FILE, lambda handle: handle.write(path.name.encode() + b"\n"))
    return path


def load_checkpoint(path: Path) -> dict:
    """Read a cltt checkpoint with ``weights_only=True``; one clear error for anything else."""
    import torch

    path = Path(path)
    if not path.is_file():
        raise CLTTError(f"checkpoint {path} does not exist")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, zipfile.BadZipFile, ValueError, OSError) as err:  # OSError: truncated zip
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        if "weights only load failed" in first.lower():
            first = "not a torch.save file, or it pickles objects other than tensors"
        raise CLTTError(f"{path} is not a readable checkpoint ({first[:160]})") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CLTTError(f"{path} is not a cltt checkpoint (no '{FORMAT}' marker); "
                        "for pretrained backbone weights use model.weights=PATH")
    return state


def recorded_progress(path: Path) -> dict | None:
    """The ``progress`` a checkpoint records (epoch, step, ...), read without its tensors; None
    when the file does not open (truncated, not a cltt checkpoint).

    ``mmap=True`` maps the tensors instead of reading them, so this costs the zip directory and
    the small pickle, not the file; a truncated file has no zip directory and fails here.
    """
    import torch

    try:
        state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, zipfile.BadZipFile, ValueError, OSError):
        return None
    progress = state.get("progress") if isinstance(state, dict) and state.get("format") == FORMAT else None
    return progress if isinstance(progress, dict) and isinstance(progress.get("step"), int) else None


def by_recorded_step(files: list[Path]) -> list[Path]:
    """``files`` newest first by the optimizer step each records, never by modification time
    (which ``cp -r``, rsync and ``touch`` change). At one step the final checkpoint comes first.

    A file that does not open is placed by its name: ``step_S`` at step S, ``epoch_E`` at
    E x batches per epoch (as recorded by a file that opens), ``final`` after all of them.
    """
    recorded = {path: recorded_progress(path) for path in files}
    per_epoch = next((int(p["batches_per_epoch"]) for p in recorded.values() if p and p.get("batches_per_epoch")), 1)

    def recorded_step(path: Path) -> float:
        if recorded[path] is not None:
            return recorded[path]["step"]
        if is_final(path.name):
            return float("inf")
        epoch, step = epoch_of(path.name), step_of(path.name)
        return step if step is not None else epoch * per_epoch if epoch is not None else -1

    return sorted(files, key=lambda path: (recorded_step(path), is_final(path.name)), reverse=True)


def latest_checkpoint(run_dir: Path) -> Path | None:
    """The checkpoint ``latest`` names (written after each save), else the one of the highest recorded step, else None."""
    run_dir = Path(run_dir)
    pointer = run_dir / LATEST_FILE
    if pointer.is_file():
        named = run_dir / pointer.read_text().strip()
        if named.is_file():
            return named
    files = by_recorded_step(checkpoint_files(run_dir))
    return files[0] if files else None


def load_latest_intact(run_dir: Path) -> tuple[Path, dict, list[str]] | None:
    """The latest checkpoint of ``run_dir`` that loads: ``(path, state, notes)``, None if there is none.

    When the latest is truncated or unreadable (a disk that filled, a copy cut short), the one
    of the highest recorded step that loads is taken, and ``notes`` says which was skipped and why.
    """
    run_dir = Path(run_dir)
    latest = latest_checkpoint(run_dir)
    if latest is None:
        return None
    candidates = [latest] + by_recorded_step([p for p in checkpoint_files(run_dir) if p != latest])
    skipped: list[str] = []
    for path in candidates:
        try:
            state = load_checkpoint(path)
        except CLTTError as err:
            skipped.append(str(err))
            continue
        progress = state.get("progress", {})
        notes = [f"{skipped[0]}; continuing from {path.name} (epoch {progress.get('epoch')}, step {progress.get('step')}), "
                 "the checkpoint of the highest step that loads"
                 + (f" ({len(skipped) - 1} more unreadable)" if len(skipped) > 1 else "")] if skipped else []
        return path, state, notes
    raise CLTTError(f"no checkpoint in {run_dir} loads ({skipped[0]}); start a new run with another train.name")


def prune_checkpoints(run_dir: Path, keep_last: int) -> list[Path]:
    """Delete all but the ``keep_last`` newest epoch checkpoints and every superseded step one.

    Both namings count alike: a run resumed from the lab's ``simclr_epoch_*`` files prunes them
    with its own ``checkpoint_epoch_*`` ones, newest by epoch. The checkpoint ``latest`` names
    is never deleted.
    """
    run_dir = Path(run_dir)
    latest = latest_checkpoint(run_dir)
    files = checkpoint_files(run_dir)
    epochs = sorted((epoch, path.name, path) for path in files if (epoch := epoch_of(path.name)) is not None)
    doomed = [path for _, _, path in epochs[:-keep_last]]
    doomed += [path for path in files if step_of(path.name) is not None and path != latest]
    for path in doomed:
        if path != latest:
            path.unlink(missing_ok=True)
    return doomed
