r"""``model.freeze``: parameters that never train, and the modules they make static.

    report = freeze(method, "backbone")                 # every module built as a backbone
    report = freeze(method, [r"^encoder\.backbone\.layer[12]\."])   # by regular expression
    print(report.summary())   # froze the backbone: 62 tensors, 11.2M parameters (kept in eval mode)

A frozen parameter gets ``requires_grad=False``, so no optimizer holds it and it stays
bit-identical. The largest modules all of whose parameters this call froze are kept in eval
mode through every ``train()`` (:func:`keep_frozen_in_eval`): batch-norm running statistics
and dropout of a frozen backbone stay as they were, as a frozen feature extractor should.
Parameters that were not trainable before (a momentum teacher's) are left alone, and so are
the modes of their modules.

``"backbone"`` means every module carrying ``is_backbone`` (set by
:func:`cltt.models.backbones.build_backbone`); patterns are ``re.search``-ed against the
method's parameter names (``encoder.backbone.conv1.weight``), and each must match a
trainable parameter.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from torch import nn

from cltt.errors import CLTTError


@dataclass(frozen=True)
class FreezeReport:
    what: str  # "nothing", "the backbone", or the patterns
    tensors: int
    parameters: int

    def summary(self) -> str:
        if not self.tensors:
            return "nothing frozen"
        return f"froze {self.what}: {self.tensors} tensors, {self.parameters / 1e6:.1f}M parameters (kept in eval mode)"


def freeze(method: nn.Module, spec: str | list[str]) -> FreezeReport:
    """Freeze ``method``'s parameters named by ``spec`` (none, backbone, or regexes); see the module doc."""
    trainable = {name: p for name, p in method.named_parameters() if p.requires_grad}
    if spec == "none" or spec == []:
        chosen, what = {}, "nothing"
    elif spec == "backbone":
        prefixes = [name + "." for name, module in method.named_modules() if getattr(module, "is_backbone", False)]
        if not prefixes:
            raise CLTTError(f"model.freeze=backbone, but {type(method).__name__} has no backbone module to freeze "
                            "(its encoder is not built from model.backbone); list parameter patterns instead")
        chosen = {name: p for name, p in trainable.items() if name.startswith(tuple(prefixes))}
        what = "the backbone"
    else:
        chosen = {}
        for pattern in spec:
            found = {name: p for name, p in trainable.items() if re.search(pattern, name)}
            if not found:
                raise CLTTError(f"model.freeze pattern {pattern!r} matches no trainable parameter; names look like "
                                f"{', '.join(list(trainable)[:3])} (re.search on each name)")
            chosen.update(found)
        what = ", ".join(f"'{pattern}'" for pattern in spec)
    for p in chosen.values():
        p.requires_grad_(False)
    method.frozen_modules = _static_modules(method, {id(p) for p in chosen.values()})
    return FreezeReport(what, len(chosen), sum(p.numel() for p in chosen.values()))


def _static_modules(root: nn.Module, frozen: set[int]) -> list[nn.Module]:
    """The largest submodules of ``root`` that have parameters, all of them in ``frozen``."""
    found: list[nn.Module] = []

    def visit(module: nn.Module) -> None:
        params = [id(p) for p in module.parameters()]
        if params and all(p in frozen for p in params):
            found.append(module)
            return
        for child in module.children():
            visit(child)

    if frozen:
        visit(root)
    return found


def keep_frozen_in_eval(method: nn.Module) -> None:
    """Put the modules :func:`freeze` made static back in eval mode (after ``method.train()``)."""
    for module in getattr(method, "frozen_modules", ()):
        module.eval()
