"""The run dir ``<train.out_dir>/<name>/`` and what may change when a run continues.

A run dir holds ``recipe.yaml`` (resolved, rewritten whenever the run starts), checkpoints, ``metrics.csv`` and, with W&B on,
``wandb/``. ``cltt train`` refuses to write into a run dir that already has a checkpoint unless
``train.resume: auto``; then it continues from the latest checkpoint. Continuing accepts only
changes that do not alter what is being learned (:data:`FREE_KEYS`: where the data live, the
device, worker counts, logging); the run's length (``train.epochs``) changes only when asked,
because the cosine schedule is a function of the total number of steps.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from cltt.engine.checkpoint import latest_checkpoint, load_checkpoint, load_latest_intact, replace_atomically
from cltt.engine.run_files import RECIPE_FILE
from cltt.errors import CLTTError
from cltt.recipe import Recipe, apply_overrides, dump_recipe, recipe_from_dict, recipe_to_dict

FREE_PREFIXES = ("log.", "extract.", "probe.", "export.", "sweep.")
FREE_KEYS = {
    "data.root", "data.cache_dir", "data.num_workers",
    "train.device", "train.precision", "train.channels_last", "train.compile",
    "train.sub_batch_size", "train.out_dir", "train.name", "train.resume",
    "train.save_every", "train.checkpoint_minutes", "train.keep_last", "train.requeue",
}


def run_name(recipe: Recipe, recipe_path: Path | None) -> str:
    """``train.name``, else the recipe file's stem, else ``run``."""
    if recipe.train.name:
        return recipe.train.name
    return recipe_path.stem if recipe_path is not None else "run"


def write_recipe(run_dir: Path, recipe: Recipe) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    text = dump_recipe(recipe).encode()
    replace_atomically(run_dir / RECIPE_FILE, lambda handle: handle.write(text))  # a full disk keeps the previous one


def recipe_from_text(text: str) -> Recipe:
    """A recipe saved as YAML text (in a checkpoint or run dir)."""
    tree = yaml.safe_load(text) or {}
    return recipe_from_dict(tree)


def changed_keys(before: dict, after: dict, prefix: str = "") -> list[str]:
    """Dotted keys whose values differ between two recipe trees."""
    keys = []
    for key in sorted(set(before) | set(after)):
        a, b = before.get(key), after.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            keys += changed_keys(a, b, f"{prefix}{key}.")
        elif a != b:
            keys.append(f"{prefix}{key}")
    return keys


def check_continuation(saved: Recipe, new: Recipe, change_length: bool, where: Path) -> list[str]:
    """Refuse changes that would make the continued run a different experiment.

    Returns the accepted changed keys (for a note); raises :class:`CLTTError` otherwise.
    """
    changes = changed_keys(recipe_to_dict(saved), recipe_to_dict(new))
    refused = [k for k in changes if k not in FREE_KEYS and not k.startswith(FREE_PREFIXES)
               and not (k == "train.epochs" and change_length)]
    if refused == ["train.epochs"]:
        raise CLTTError(
            f"train.epochs differs from the run in {where} ({saved.train.epochs} -> {new.train.epochs}); "
            "the learning-rate schedule depends on it; add --change-length to continue with the new length"
        )
    if refused:
        shown = ", ".join(f"{k}" for k in refused[:5]) + (" ..." if len(refused) > 5 else "")
        raise CLTTError(
            f"the recipe differs from the run in {where} in {shown}; a continued run must keep them; "
            "start a new run with another train.name instead"
        )
    return changes


def resolve_resume_target(target: Path) -> Path:
    """A checkpoint file, or the latest checkpoint of a run dir."""
    if target.is_dir():
        latest = latest_checkpoint(target)
        if latest is None:
            raise CLTTError(f"{target} has no checkpoint yet; start it with cltt train {target / RECIPE_FILE} train.resume=auto")
        return latest
    if not target.exists():
        raise CLTTError(f"{target} does not exist; pass a run dir (runs/NAME) or a checkpoint file")
    return target


def saved_recipe(checkpoint: dict, path: Path) -> Recipe:
    """The resolved recipe stored inside a checkpoint."""
    try:
        return recipe_from_text(checkpoint["recipe"])
    except CLTTError as err:
        raise CLTTError(f"the recipe stored in {path} no longer loads ({err})") from None


def load_for_resume(target: Path) -> tuple[Path, dict, Recipe, list[str]]:
    """(checkpoint path, checkpoint, its recipe, notes) for ``cltt resume TARGET``; a run dir
    whose latest checkpoint is unreadable resumes from the newest one that loads (noted)."""
    path = resolve_resume_target(target)
    notes: list[str] = []
    if target.is_dir():
        path, state, notes = load_latest_intact(target)
    else:
        state = load_checkpoint(path)
    return path, state, saved_recipe(state, path), notes


def prepare_training(recipe: Recipe, recipe_path: Path | None, change_length: bool):
    """For ``cltt train``: (recipe, run dir, (checkpoint path, state) or None, notes).

    A run dir with a checkpoint is continued with ``train.resume: auto`` and refused
    otherwise; one without (a run that failed before its first checkpoint) starts afresh.
    """
    run_dir = Path(recipe.train.out_dir) / run_name(recipe, recipe_path)
    notes: list[str] = []
    resume = None
    latest = latest_checkpoint(run_dir)
    if latest is not None:
        if recipe.train.resume != "auto":
            raise CLTTError(
                f"{run_dir} already holds a run; continue it with cltt resume {run_dir} "
                "(or train.resume=auto), or start another with train.name=NEW_NAME"
            )
        latest, state, notes = load_latest_intact(run_dir)
        changes = check_continuation(saved_recipe(state, latest), recipe, change_length, latest)
        notes.append(f"continuing {run_dir} from {latest.name}" + (f" with changed {', '.join(changes)}" if changes else ""))
        resume = (latest, state)
    elif (run_dir / RECIPE_FILE).is_file():
        notes.append(f"{run_dir} has no checkpoint; starting it from the beginning")
    return recipe, run_dir, resume, notes


def prepare_resume(target: Path, overrides: list[str], change_length: bool):
    """For ``cltt resume TARGET [key=value ...]``: same tuple as :func:`prepare_training`."""
    path, state, saved, notes = load_for_resume(Path(target))
    tree = recipe_to_dict(saved)
    apply_overrides(tree, overrides)
    recipe = recipe_from_dict(tree)
    changes = check_continuation(saved, recipe, change_length, path)
    run_dir = path.parent
    notes.append(f"resuming {run_dir} from {path.name}" + (f" with changed {', '.join(changes)}" if changes else ""))
    edited = _edited_keys(run_dir / RECIPE_FILE, saved)
    if edited:
        notes.append(f"{run_dir / RECIPE_FILE} differs from the recipe inside {path.name} in "
                     f"{', '.join(edited[:5])}{' ...' if len(edited) > 5 else ''}; the run continues as its checkpoint "
                     "was trained (a resume reads the checkpoint; that file is rewritten to match)")
    return recipe, run_dir, (path, state), notes


def _edited_keys(recipe_file: Path, saved: Recipe) -> list[str]:
    """Keys in which a run dir's ``recipe.yaml`` (edited by hand, or another run's) differs from its checkpoint's."""
    try:
        on_disk = recipe_from_text(recipe_file.read_text())
    except (OSError, CLTTError):
        return []
    return [k for k in changed_keys(recipe_to_dict(saved), recipe_to_dict(on_disk))
            if k not in FREE_KEYS and not k.startswith(FREE_PREFIXES)]
