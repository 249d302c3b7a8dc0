"""``model.init_from``: start a new run from another run's weights (a second training stage).

    cltt train recipe.yaml train.name=stage2 model.init_from=runs/stage1 train.lr=1e-4 train.epochs=5

Unlike ``cltt resume``, which continues a run where it stopped (same optimizer state,
schedule and step), a run started this way begins at step 0 with a fresh optimizer, its own
recipe's learning rate, schedule and length, and only the *model* state of the source: every
tensor of the method (encoder, heads, teachers, buffers). The source is a run dir (its latest
intact checkpoint) or a checkpoint file, of the same method and architecture
(``model.backbone``, ``model.timm``, ``model.pool``); anything else is refused in one line,
as is any tensor whose shape differs. To start another method from a trained backbone,
export it (``cltt export --format safetensors``) and name the file in ``model.weights``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml
from torch import nn

from cltt.engine import checkpoint as ckpt
from cltt.errors import CLTTError

ARCHITECTURE_KEYS = ("backbone", "timm", "pool")


@dataclass(frozen=True)
class InitReport:
    path: Path
    tensors: int
    epoch: int  # of the source run when the checkpoint was written
    step: int
    notes: tuple[str, ...] = ()

    def summary(self) -> str:
        return (f"initialised from {self.path} (its epoch {self.epoch}, step {self.step}): {self.tensors} tensors; "
                "this run starts at step 0 under its own learning rate and schedule")


def initialise_from(method: nn.Module, recipe, source: str) -> InitReport:
    """Copy the model state of ``source`` (run dir or checkpoint) into ``method``; see the module doc."""
    path, state, notes = _source_checkpoint(Path(source))
    saved_method = state.get("method")
    if saved_method != recipe.method.name:
        raise CLTTError(f"model.init_from={source} is a {saved_method} run, this recipe trains {recipe.method.name}; "
                        "start from a run of the same method, or export its backbone (cltt export --format "
                        "safetensors) and load it with model.weights")
    saved_model = (yaml.safe_load(state.get("recipe") or "") or {}).get("model", {})
    ours = {"backbone": recipe.model.backbone, "timm": recipe.model.timm, "pool": recipe.model.pool}
    theirs = {"backbone": saved_model.get("backbone"), "timm": saved_model.get("timm") or {},
              "pool": saved_model.get("pool")}
    differing = [key for key in ARCHITECTURE_KEYS if ours[key] != theirs[key]]
    if differing:
        key = differing[0]
        raise CLTTError(f"model.init_from={source} is a run of another architecture: its model.{key} is {theirs[key]!r}, "
                        f"this recipe's is {ours[key]!r}; set model.{key} to match, or drop model.init_from")
    saved_state, own_state = state["model"], method.state_dict()
    for key, value in saved_state.items():
        if key in own_state and value.shape != own_state[key].shape:
            raise CLTTError(f"model.init_from={source}: {key!r} is {list(value.shape)} in {path.name} but "
                            f"{list(own_state[key].shape)} in this recipe's model; set the model and method sizes "
                            "it was trained with (see its recipe.yaml)")
    missing = [key for key in own_state if key not in saved_state]
    unexpected = [key for key in saved_state if key not in own_state]
    if missing or unexpected:
        which, keys = ("lacks", missing) if missing else ("has extra", unexpected)
        raise CLTTError(f"model.init_from={source}: {path.name} {which} {len(keys)} tensors of this model (first: "
                        f"{keys[0]!r}); the method's settings differ from the run's (see its recipe.yaml)")
    method.load_state_dict(saved_state)
    progress = state.get("progress", {})
    return InitReport(path, len(saved_state), int(progress.get("epoch", 0)), int(progress.get("step", 0)), tuple(notes))


def _source_checkpoint(source: Path) -> tuple[Path, dict, list[str]]:
    if source.is_dir():
        found = ckpt.load_latest_intact(source)
        if found is None:
            raise CLTTError(f"model.init_from={source} is a folder without checkpoints; name a run dir that has trained "
                            "at least one epoch, or a .pth checkpoint")
        return found
    if not source.exists():
        raise CLTTError(f"model.init_from={source} does not exist; name a run dir or one of its checkpoints")
    return source, ckpt.load_checkpoint(source), []
