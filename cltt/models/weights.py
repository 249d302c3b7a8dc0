"""Load a backbone's weights from a local file the user names; nothing is ever downloaded.

Accepted files: ``.pth``, ``.pt``, ``.bin`` (``torch.save``, read with ``weights_only=True``)
and ``.safetensors``. The state dict may be bare or nested under ``state_dict``, ``model``,
``encoder`` or ``backbone`` (as DINO, Lightning, MoCo and cltt checkpoints nest it), its keys
may carry wrapper prefixes (``module.`` from DataParallel/DDP, ``backbone.``, ``encoder.``,
``model.``), and keys the backbone lacks -- classifier layers (``fc.*``, ``head.*``,
``heads.*``), projection heads, prototypes -- are skipped and listed in the report. What the
file must do is cover every tensor of the backbone with the right shape. Every way this can go
wrong ends in a :class:`~cltt.errors.CLTTError` of one line.

    report = load_backbone_weights(backbone.module, "resnet18_imagenet.pth")
    print(report.summary())   # loaded 122 tensors from resnet18_imagenet.pth; ignored 2 (fc.weight, fc.bias)
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file
from torch import nn

from cltt.errors import CLTTError

TORCH_SUFFIXES = (".pth", ".pt", ".bin")
SAFETENSORS_SUFFIX = ".safetensors"
ACCEPTED = "accepted formats: .pth/.pt/.bin (torch.save of a state dict) or .safetensors"

NESTING_KEYS = ("state_dict", "model", "encoder", "backbone")
WRAPPER_PREFIXES = ("module.", "backbone.", "encoder.", "model.")
MAX_PREFIX_DEPTH = 3
# Older checkpoints were saved before BatchNorm counted its batches; the count is not a weight.
OPTIONAL_SUFFIXES = ("num_batches_tracked",)


@dataclass(frozen=True)
class LoadReport:
    """What :func:`load_backbone_weights` did.

    ``loaded``: number of tensors copied into the model. ``ignored``: file keys not used
    (classifier layers and other parts the backbone does not have). ``stripped_prefix``: the
    wrapper prefix removed from the file's keys, ``""`` when none was.
    """

    path: str
    loaded: int
    ignored: tuple[str, ...]
    stripped_prefix: str = ""

    def summary(self) -> str:
        """One line for a log or the console."""
        line = f"loaded {self.loaded} tensors from {self.path}"
        if self.stripped_prefix:
            line += f" (stripped prefix {self.stripped_prefix!r})"
        if self.ignored:
            line += f"; ignored {len(self.ignored)} ({_first(self.ignored)})"
        return line


def load_backbone_weights(module: nn.Module, path: str | Path) -> LoadReport:
    """Copy the tensors in the file at ``path`` into ``module`` (in place) and say what loaded."""
    path = Path(path)
    file_tensors = _unwrap(_read(path), path)
    model_state = module.state_dict()

    renamed, prefix = _strip_prefixes(file_tensors, model_state)
    matched = {key: value for key, value in renamed.items() if key in model_state}
    ignored = tuple(key for key in renamed if key not in model_state)

    if not matched:
        raise CLTTError(
            f"no tensor in {path} matches the {type(module).__name__} backbone: the file has keys "
            f"like {_first(renamed, 2)}, the model expects {_first(model_state, 2)}; "
            "is this a weights file for this backbone?"
        )

    mismatched = [key for key, value in matched.items() if value.shape != model_state[key].shape]
    if mismatched:
        key = mismatched[0]
        more = f" (and {len(mismatched) - 1} more)" if len(mismatched) > 1 else ""
        hint = (
            "the file was saved for another image size; set data.image_size to the one it was trained at"
            if "pos_embed" in key
            else "the file is probably for a different architecture (check model.backbone)"
        )
        raise CLTTError(
            f"shape mismatch loading {path}: {key!r} is {list(matched[key].shape)} in the file but "
            f"{list(model_state[key].shape)} in the model{more}; {hint}"
        )

    missing = [key for key in model_state if key not in matched and not key.endswith(OPTIONAL_SUFFIXES)]
    if missing:
        raise CLTTError(
            f"{path} lacks {len(missing)} of the model's {len(model_state)} tensors "
            f"(first: {_first(missing)}); the file may be for a different architecture or hold only "
            "part of one"
        )

    module.load_state_dict(matched, strict=False)
    return LoadReport(str(path), loaded=len(matched), ignored=ignored, stripped_prefix=prefix)


def _read(path: Path) -> object:
    """The object stored in ``path``, read without running any pickled code."""
    if not path.is_file():
        raise CLTTError(f"weights file not found: {path}")
    suffix = path.suffix.lower()
    try:
        if suffix == SAFETENSORS_SUFFIX:
            return load_file(str(path), device="cpu")
        if suffix in TORCH_SUFFIXES:
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # any reader failure is the same user-facing error
        raise CLTTError(f"cannot read weights file {path} ({_reason(error)}); {ACCEPTED}") from error
    raise CLTTError(f"weights file {path} has an unknown suffix {suffix!r}; {ACCEPTED}")


def _reason(error: Exception) -> str:
    """A short cause for a reader's exception, which can run to many lines."""
    if "weights only load failed" in str(error).lower():
        # torch's long message about weights_only hides the usual cause: not a torch.save file.
        return "not a torch.save file, or it pickles objects other than tensors"
    first_line = (str(error).strip().splitlines() or [type(error).__name__])[0]
    return first_line[:160]


def _unwrap(content: object, path: Path) -> dict[str, torch.Tensor]:
    """The state dict inside ``content``: the tensors of the first mapping holding any."""
    for _ in range(len(NESTING_KEYS) + 1):
        if not isinstance(content, Mapping):
            break
        tensors = {str(key): value for key, value in content.items() if isinstance(value, torch.Tensor)}
        nested = next(
            (content[key] for key in NESTING_KEYS if isinstance(content.get(key), Mapping)), None
        )
        if tensors and (nested is None or len(tensors) == len(content)):
            return tensors
        if nested is None:
            break
        content = nested
    nesting = ", ".join(repr(key) for key in NESTING_KEYS)
    raise CLTTError(
        f"{path} holds no state dict: expected a mapping of names to tensors, bare or under one of "
        f"{nesting}"
    )


def _strip_prefixes(
    tensors: dict[str, torch.Tensor], model_state: Mapping[str, torch.Tensor]
) -> tuple[dict[str, torch.Tensor], str]:
    """``tensors`` with the chain of wrapper prefixes removed that makes the most keys match.

    Chains of up to :data:`MAX_PREFIX_DEPTH` prefixes are tried (``module.backbone.`` from a
    DDP-wrapped encoder takes two); among equally good chains the shortest wins, so a prefix the
    model itself uses (a ViT's ``encoder.``) stays.
    """
    best_score, best_chain, best_tensors = sum(key in model_state for key in tensors), "", tensors
    frontier = [("", tensors)]
    for _ in range(MAX_PREFIX_DEPTH):
        deeper = []
        for chain, current in frontier:
            for prefix in WRAPPER_PREFIXES:
                if not any(key.startswith(prefix) for key in current):
                    continue
                renamed = {key.removeprefix(prefix): value for key, value in current.items()}
                deeper.append((chain + prefix, renamed))
                score = sum(key in model_state for key in renamed)
                if score > best_score:
                    best_score, best_chain, best_tensors = score, chain + prefix, renamed
        frontier = deeper
    return best_tensors, best_chain


def _first(keys: Iterable[str], count: int = 3) -> str:
    """The first ``count`` of ``keys`` for a message, with an ellipsis when there are more."""
    keys = list(keys)
    shown = ", ".join(repr(key) for key in keys[:count])
    return shown + (", ..." if len(keys) > count else "")
