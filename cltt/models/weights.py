"""Load a backbone's weights from a local file the user names; nothing is ever downloaded.

Accepted files: ``.pth``, ``.pt``, ``.bin`` (``torch.save``, read with ``weights_only=True``;
an ``argparse.Namespace`` of training arguments, as DINO saves, is allowed) and
``.safetensors``. What is understood:

* the state dict bare or nested under ``state_dict``, ``teacher``, ``model``, ``student``,
  ``encoder`` or ``backbone`` (torchvision, timm, Lightning, MoCo, DINO and cltt files); of a
  DINO/DINOv2 training checkpoint the teacher is taken, whether it is its own dict
  (``{"teacher": ..., "student": ...}``) or a prefix (DINOv2's ``teacher.backbone.*``);
* wrapper prefixes (``module.`` from DataParallel/DDP, ``backbone.``, ``encoder.``,
  ``model.``), in whatever chain makes the most keys match (silicon-menagerie's
  ``module.backbone.``);
* DINOv2's names: chunked blocks ``blocks.C.I.*`` become ``blocks.I.*``,
  ``register_tokens`` becomes timm's ``reg_token``, ``mask_token`` is not a weight;
* a ViT position embedding for another image size is resampled (bicubic, the class and
  register tokens' own positions kept): DINOv2's 518 px files load at 224 px.

Keys for parts the backbone does not have at all (``head.*``, ``dino_head.*``, ``fc.*``,
projection heads, prototypes) are skipped and counted. Keys *inside* the backbone's own
modules that it lacks (``blocks.0.ls1.gamma`` when the model has no layer scale,
``layer1.2.*`` of a deeper ResNet) mean another architecture and are refused, as are shape
mismatches, missing tensors and files that match nothing: each one :class:`~cltt.errors.CLTTError`
of one line.

    report = load_backbone_weights(backbone.module, "dino_say_vitb14.pth")
    print(report.summary())
    # loaded 150 tensors from dino_say_vitb14.pth (teacher; prefix 'module.backbone.'); 0 missing; 6 not in the backbone ignored (...)
"""

from __future__ import annotations

import argparse
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from torch import nn

from cltt.errors import CLTTError

TORCH_SUFFIXES = (".pth", ".pt", ".bin")
SAFETENSORS_SUFFIX = ".safetensors"
ACCEPTED = "accepted formats: .pth/.pt/.bin (torch.save of a state dict) or .safetensors"

NESTING_KEYS = ("state_dict", "teacher", "model", "student", "encoder", "backbone")
WRAPPER_PREFIXES = ("module.", "backbone.", "encoder.", "model.")
MAX_PREFIX_DEPTH = 3
# Older checkpoints were saved before BatchNorm counted its batches; the count is not a weight.
OPTIONAL_SUFFIXES = ("num_batches_tracked",)
NOT_WEIGHTS = ("mask_token",)  # DINOv2's masked-token embedding: used in training only
POSITION_KEYS = ("pos_embed", "encoder.pos_embedding")  # timm's and torchvision's ViT position embeddings
_CHUNKED_BLOCK = re.compile(r"(^|\.)blocks\.\d+\.(\d+)\.")


@dataclass(frozen=True)
class LoadReport:
    """What :func:`load_backbone_weights` did.

    ``loaded``: number of tensors copied into the model. ``ignored``: file keys of parts the
    backbone does not have (classifier, heads). ``stripped_prefix``: the wrapper prefix removed
    from the file's keys, ``""`` when none was. ``source``: the part of a training checkpoint
    taken (``teacher``), ``""`` for a plain state dict. ``notes``: renames and resampling done.
    """

    path: str
    loaded: int
    ignored: tuple[str, ...]
    stripped_prefix: str = ""
    source: str = ""
    notes: tuple[str, ...] = ()

    def summary(self) -> str:
        """One line for a log or the console: what loaded, what was missing, what was ignored."""
        how = ([self.source] if self.source else []) + ([f"prefix {self.stripped_prefix!r}"] if self.stripped_prefix else [])
        line = f"loaded {self.loaded} tensors from {self.path}"
        if how or self.notes:
            line += f" ({'; '.join(how + list(self.notes))})"
        line += "; 0 missing"
        if self.ignored:
            line += f"; ignored {len(self.ignored)} not in the backbone ({_first(self.ignored)})"
        return line


def load_backbone_weights(module: nn.Module, path: str | Path) -> LoadReport:
    """Copy the tensors in the file at ``path`` into ``module`` (in place) and say what loaded."""
    path = Path(path)
    file_tensors, source = _unwrap(_read(path), path)
    model_state = module.state_dict()

    renamed, prefix = _strip_prefixes(file_tensors, model_state)
    renamed, notes = _dinov2_names(renamed, model_state)
    renamed = {key: value for key, value in renamed.items() if key not in NOT_WEIGHTS}
    matched = {key: value for key, value in renamed.items() if key in model_state}
    unexpected = [key for key in renamed if key not in model_state]

    if not matched:
        raise CLTTError(
            f"no tensor in {path} matches the {type(module).__name__} backbone: 0 of the file's {len(renamed)} keys "
            f"match the model's {len(model_state)}; the file has keys like {_first(renamed, 2)}, the model expects "
            f"{_first(model_state, 2)}; is this a weights file for this backbone (model.backbone)?"
        )
    notes += _resample_positions(matched, model_state)

    mismatched = [key for key, value in matched.items() if value.shape != model_state[key].shape]
    if mismatched:
        key = mismatched[0]
        more = f" (and {len(mismatched) - 1} more)" if len(mismatched) > 1 else ""
        raise CLTTError(
            f"shape mismatch loading {path}: {key!r} is {list(matched[key].shape)} in the file but "
            f"{list(model_state[key].shape)} in the model{more}; the file is probably for a different "
            "architecture (check model.backbone and model.timm)"
        )

    inside = [key for key in unexpected if _inside_the_model(key, model_state)]
    if inside:
        hint = ("the file's blocks have layer scale and the model's do not (a DINOv2 ViT: use timm/vit_base_patch14_dinov2 "
                "or its size)" if any(".ls1." in key or ".ls2." in key for key in inside)
                else "the file is for a different architecture (check model.backbone and model.timm)")
        raise CLTTError(f"{path} has {len(inside)} tensors inside the backbone's own modules that the model lacks "
                        f"(first: {_first(inside)}); {hint}")

    missing = [key for key in model_state if key not in matched and not key.endswith(OPTIONAL_SUFFIXES)]
    if missing:
        hint = ("the model has layer scale and the file does not (DINO v1 and silicon-menagerie ViTs: build the model "
                "without it, e.g. timm/vit_base_patch16_224 with model.timm.patch_size=14)"
                if any(".ls1." in key for key in missing)
                else "the file may be for a different architecture or hold only part of one")
        raise CLTTError(
            f"{path} lacks {len(missing)} of the model's {len(model_state)} tensors ({len(matched)} matched; first "
            f"missing: {_first(missing)}); {hint}"
        )

    module.load_state_dict(matched, strict=False)
    ignored = tuple(key for key in unexpected if key not in inside)
    return LoadReport(str(path), loaded=len(matched), ignored=ignored, stripped_prefix=prefix, source=source,
                      notes=tuple(notes))


def _read(path: Path) -> object:
    """The object stored in ``path``, read without running any pickled code."""
    if not path.is_file():
        raise CLTTError(f"weights file not found: {path}")
    suffix = path.suffix.lower()
    try:
        if suffix == SAFETENSORS_SUFFIX:
            return load_file(str(path), device="cpu")
        if suffix in TORCH_SUFFIXES:
            with torch.serialization.safe_globals([argparse.Namespace]):  # DINO's saved training arguments
                return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # any reader failure is the same user-facing error
        raise CLTTError(f"cannot read weights file {path} ({_reason(error)}); {ACCEPTED}") from None
    raise CLTTError(f"weights file {path} has an unknown suffix {suffix!r}; {ACCEPTED}")


def _reason(error: Exception) -> str:
    """A short cause for a reader's exception, which can run to many lines."""
    if "weights only load failed" in str(error).lower():
        # torch's long message about weights_only hides the usual cause: not a torch.save file.
        return "not a torch.save file, or it pickles objects other than tensors"
    first_line = (str(error).strip().splitlines() or [type(error).__name__])[0]
    return first_line[:160]


def _unwrap(content: object, path: Path) -> tuple[dict[str, torch.Tensor], str]:
    """(the state dict inside ``content``, which training-checkpoint part it is: ``teacher``, ``student`` or "")."""
    source = ""
    for _ in range(len(NESTING_KEYS) + 1):
        if not isinstance(content, Mapping):
            break
        tensors = {str(key): value for key, value in content.items() if isinstance(value, torch.Tensor)}
        nested_key = next((key for key in NESTING_KEYS if isinstance(content.get(key), Mapping)), None)
        if tensors and (nested_key is None or len(tensors) == len(content)):
            return _teacher_of(tensors, source)
        if nested_key is None:
            break
        source = nested_key if nested_key in ("teacher", "student") else source
        content = content[nested_key]
    nesting = ", ".join(repr(key) for key in NESTING_KEYS)
    raise CLTTError(
        f"{path} holds no state dict: expected a mapping of names to tensors, bare or under one of "
        f"{nesting}"
    )


def _teacher_of(tensors: dict[str, torch.Tensor], source: str) -> tuple[dict[str, torch.Tensor], str]:
    """Of a state dict holding both ``teacher.*`` and ``student.*`` (DINOv2's), the teacher's tensors."""
    if any(key.startswith("teacher.") for key in tensors) and any(key.startswith("student.") for key in tensors):
        return {key.removeprefix("teacher."): value for key, value in tensors.items() if key.startswith("teacher.")}, \
            "teacher"
    return tensors, source


def _strip_prefixes(
    tensors: dict[str, torch.Tensor], model_state: Mapping[str, torch.Tensor]
) -> tuple[dict[str, torch.Tensor], str]:
    """``tensors`` with the chain of wrapper prefixes removed that makes the most keys match.

    Chains of up to :data:`MAX_PREFIX_DEPTH` prefixes are tried (``module.backbone.`` from a
    DDP-wrapped encoder takes two); among equally good chains the shortest wins, so a prefix the
    model itself uses (a ViT's ``encoder.``) stays. Keys are compared with DINOv2's chunked
    block names already undone, so a chunked file finds its prefix too.
    """
    def score(keys) -> int:
        return sum(key in model_state or _CHUNKED_BLOCK.sub(r"\1blocks.\2.", key) in model_state for key in keys)

    best_score, best_chain, best_tensors = score(tensors), "", tensors
    frontier = [("", tensors)]
    for _ in range(MAX_PREFIX_DEPTH):
        deeper = []
        for chain, current in frontier:
            for prefix in WRAPPER_PREFIXES:
                if not any(key.startswith(prefix) for key in current):
                    continue
                renamed = {key.removeprefix(prefix): value for key, value in current.items()}
                deeper.append((chain + prefix, renamed))
                if (found := score(renamed)) > best_score:
                    best_score, best_chain, best_tensors = found, chain + prefix, renamed
        frontier = deeper
    return best_tensors, best_chain


def _dinov2_names(tensors: dict[str, torch.Tensor], model_state: Mapping[str, torch.Tensor]
                  ) -> tuple[dict[str, torch.Tensor], list[str]]:
    """DINOv2's training names in timm's, where that makes keys match: chunked blocks, register tokens."""
    notes = []
    chunked = [key for key in tensors if _CHUNKED_BLOCK.search(key)]
    if chunked and not any(key in model_state for key in chunked) and \
            any(_CHUNKED_BLOCK.sub(r"\1blocks.\2.", key) in model_state for key in chunked):
        tensors = {_CHUNKED_BLOCK.sub(r"\1blocks.\2.", key): value for key, value in tensors.items()}
        notes.append("chunked blocks renamed")
    if "register_tokens" in tensors and "reg_token" in model_state:
        tensors = {("reg_token" if key == "register_tokens" else key): value for key, value in tensors.items()}
    return tensors, notes


def _resample_positions(matched: dict[str, torch.Tensor], model_state: Mapping[str, torch.Tensor]) -> list[str]:
    """Resample (in ``matched``) a ViT position embedding saved for another patch grid; what was done."""
    notes = []
    for key in POSITION_KEYS:
        if key not in matched or matched[key].shape == model_state[key].shape:
            continue
        saved, wanted = matched[key], model_state[key]
        if saved.dim() != 3 or saved.shape[-1] != wanted.shape[-1]:
            continue  # not a [1, tokens, width] embedding of the same width: the shape check reports it
        layout = _grid_layout(saved.shape[1], wanted.shape[1])
        if layout is None:
            continue
        prefix, old, new = layout
        grid = saved[:, prefix:].reshape(1, old, old, -1).permute(0, 3, 1, 2).float()
        grid = F.interpolate(grid, size=(new, new), mode="bicubic", align_corners=False)
        resampled = torch.cat([saved[:, :prefix].float(), grid.permute(0, 2, 3, 1).reshape(1, new * new, -1)], dim=1)
        matched[key] = resampled.to(saved.dtype)
        notes.append(f"{key} resampled from {old}x{old} to {new}x{new} patches")
    return notes


def _grid_layout(saved_tokens: int, wanted_tokens: int) -> tuple[int, int, int] | None:
    """(prefix tokens, old grid side, new grid side) that explain both token counts, or None."""
    for prefix in range(0, 9):  # class token and up to 8 registers
        old, new = math.isqrt(saved_tokens - prefix), math.isqrt(wanted_tokens - prefix)
        if old * old == saved_tokens - prefix and new * new == wanted_tokens - prefix and old > 0 and new > 0:
            return prefix, old, new
    return None


def _inside_the_model(key: str, model_state: Mapping[str, torch.Tensor]) -> bool:
    """Whether ``key`` lies in a top-level module the model has (not in a part it lacks altogether).

    ``blocks.0.ls1.gamma`` and ``layer1.2.conv1.weight`` are inside ``blocks`` and ``layer1``,
    which the model has; ``head.weight`` is in ``head``, which a headless backbone does not
    have (an ``Identity``).
    """
    top = key.split(".")[0] + "."
    return "." in key and any(name.startswith(top) for name in model_state)


def _first(keys: Iterable[str], count: int = 3) -> str:
    """The first ``count`` of ``keys`` for a message, with an ellipsis when there are more."""
    keys = list(keys)
    shown = ", ".join(repr(key) for key in keys[:count])
    return shown + (", ..." if len(keys) > count else "")
