"""Optimizers named in ``train.optimizer`` (adam, adamw, sgd with momentum), with parameter groups.

Every trainable parameter joins the first entry of ``train.param_groups`` whose ``match``
``re.search``-es its name, or the default group (``train.lr``, ``train.weight_decay``). Each
group is two torch groups: weights of convolutions and linear layers, decayed, and biases and
normalisation parameters (1-d tensors), never decayed, the usual practice for contrastive
training (SimCLR, DINO). Every torch group remembers its ``base_lr``; the schedule's factor
``r(t) = lr(t) / train.lr`` (warmup, cosine) scales all of them:

    lr_g(t) = base_lr_g * r(t)
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import torch

from cltt.errors import CLTTError
from cltt.recipe import TrainConfig

DEFAULT_GROUP = "rest"


@dataclass(frozen=True)
class GroupSummary:
    name: str  # the pattern, or "rest"
    lr: float
    weight_decay: float
    tensors: int
    parameters: int


def build_optimizer(module: torch.nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    """The optimizer over ``module``'s trainable parameters, grouped by ``config.param_groups``."""
    members: dict[str, list[tuple[str, torch.nn.Parameter]]] = {group.match: [] for group in config.param_groups}
    members[DEFAULT_GROUP] = []
    for name, parameter in module.named_parameters():
        if not parameter.requires_grad:
            continue
        group = next((g.match for g in config.param_groups if re.search(g.match, name)), DEFAULT_GROUP)
        members[group].append((name, parameter))
    for group in config.param_groups:
        if not members[group.match]:
            raise CLTTError(f"train.param_groups pattern {group.match!r} matches {_why_empty(module, group.match)}; "
                            f"parameter names look like {', '.join(n for n, _ in list(module.named_parameters())[:3])}, "
                            "... (re.search on each name)")
    settings = {group.match: (group.lr, group.weight_decay) for group in config.param_groups}
    settings[DEFAULT_GROUP] = (config.lr, config.weight_decay)
    torch_groups = []
    for group, params in members.items():
        lr, decay = settings[group]
        decayed = [p for _, p in params if p.ndim > 1]
        plain = [p for _, p in params if p.ndim <= 1]
        for kind, chosen, weight_decay in (("decayed", decayed, decay), ("plain", plain, 0.0)):
            if chosen:
                torch_groups.append({"params": chosen, "weight_decay": weight_decay, "lr": lr, "base_lr": lr,
                                     "group": group, "kind": kind})
    if not torch_groups:
        raise CLTTError("the model has no trainable parameter (model.freeze froze everything); freeze less")
    if config.optimizer == "adam":
        return torch.optim.Adam(torch_groups, lr=config.lr)
    if config.optimizer == "adamw":
        return torch.optim.AdamW(torch_groups, lr=config.lr)
    return torch.optim.SGD(torch_groups, lr=config.lr, momentum=config.momentum)


def _why_empty(module: torch.nn.Module, pattern: str) -> str:
    matching = [p for name, p in module.named_parameters() if re.search(pattern, name)]
    if any(p.requires_grad for p in matching):
        return "only parameters an earlier group already took"
    return "only frozen parameters (model.freeze)" if matching else "no parameter"


def group_summaries(optimizer: torch.optim.Optimizer) -> list[GroupSummary]:
    """One summary per configured group (decayed and plain halves joined), in the optimizer's order."""
    joined: dict[str, list[dict]] = {}
    for group in optimizer.param_groups:
        joined.setdefault(group.get("group", DEFAULT_GROUP), []).append(group)
    summaries = []
    for name, groups in joined.items():
        decayed = [g for g in groups if g.get("kind") == "decayed"]
        summaries.append(GroupSummary(
            name, groups[0]["base_lr"], decayed[0]["weight_decay"] if decayed else 0.0,
            sum(len(g["params"]) for g in groups), sum(p.numel() for g in groups for p in g["params"])))
    return summaries


def describe_groups(optimizer: torch.optim.Optimizer) -> str:
    """One line: each group's base learning rate, weight decay and size."""
    summaries = group_summaries(optimizer)
    parts = [f"{_label(s.name)} lr {s.lr:.3g} wd {s.weight_decay:.3g} ({s.tensors} tensors, {s.parameters / 1e6:.2f}M)"
             for s in summaries]
    if len(summaries) == 1:
        return f"learning rate {summaries[0].lr:.3g} for all {summaries[0].tensors} trainable tensors " \
               f"({summaries[0].parameters / 1e6:.2f}M parameters)"
    return "learning rates: " + "; ".join(parts)


def _label(group: str) -> str:
    return "the rest" if group == DEFAULT_GROUP else "'" + group + "'"


def set_learning_rate(optimizer: torch.optim.Optimizer, rate: float) -> None:
    """Every group's learning rate to ``base_lr * rate`` (``rate``: the schedule's factor at this step)."""
    for group in optimizer.param_groups:
        group["lr"] = group.get("base_lr", group["lr"]) * rate


def group_learning_rates(optimizer: torch.optim.Optimizer) -> dict[str, float]:
    """The current learning rate of each configured group: ``{name: lr}``."""
    return {group.get("group", DEFAULT_GROUP): group["lr"] for group in optimizer.param_groups}
