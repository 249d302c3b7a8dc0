"""Optimizers named in ``train.optimizer``: adam, adamw, sgd (with momentum and Nesterov off).

Weight decay applies to weights of convolutions and linear layers only; biases and
normalisation parameters (1-d tensors) are not decayed, the usual practice for contrastive
training (SimCLR, DINO).
"""

from __future__ import annotations

import torch

from cltt.recipe import TrainConfig


def build_optimizer(module: torch.nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    decayed = [p for p in module.parameters() if p.requires_grad and p.ndim > 1]
    plain = [p for p in module.parameters() if p.requires_grad and p.ndim <= 1]
    groups = [
        {"params": decayed, "weight_decay": config.weight_decay},
        {"params": plain, "weight_decay": 0.0},
    ]
    if config.optimizer == "adam":
        return torch.optim.Adam(groups, lr=config.lr)
    if config.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=config.lr)
    return torch.optim.SGD(groups, lr=config.lr, momentum=config.momentum)


def set_learning_rate(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr
