"""Batch normalisation over the global batch of all processes (``model.sync_batchnorm: true``).

Per channel c, with x_p the rows of process p and n the global count of values per channel:

    mean_c = sum_p sum x_p[:, c] / n
    var_c  = sum_p sum (x_p[:, c] - mean_c)^2 / n
    y      = (x - mean_c) / sqrt(var_c + eps) * weight_c + bias_c

Both sums are all-reduced with a backward that all-reduces their gradient, so every process's
loss reaches every process's rows: P processes on B/P samples each give the normalisation, the
loss and the gradients of one process on all B. Running statistics take the global mean and
the unbiased global variance, as BatchNorm does. SimCLR (Chen et al. 2020) uses global BN so
that the statistics of one device cannot tell which of its samples are positives.

torch's ``SyncBatchNorm`` refuses CPU tensors; this one runs on CPU (gloo) and CUDA (NCCL)
alike, so the CPU tests exercise the same code as a GPU cluster. Outside a process group, or
in eval mode, it is plain BatchNorm. State-dict keys are BatchNorm's, so checkpoints move
freely between runs with and without it.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import nn


class _AllReduceSum(torch.autograd.Function):
    """Sum over processes whose gradient is the sum of every process's gradient."""

    @staticmethod
    def forward(ctx, local: torch.Tensor) -> torch.Tensor:
        total = local.clone()
        dist.all_reduce(total)
        return total

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.contiguous().clone()
        dist.all_reduce(grad)
        return grad


def _active() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


class GlobalBatchNorm(nn.modules.batchnorm._BatchNorm):
    """BatchNorm1d/2d/3d whose training statistics are those of the global batch."""

    def _check_input_dim(self, input: torch.Tensor) -> None:
        if input.dim() < 2:
            raise ValueError(f"expected at least 2-D input (N, C, ...), got {input.dim()}-D")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and _active()):
            return super().forward(x)
        dims = [0, *range(2, x.dim())]
        shape = [1, -1] + [1] * (x.dim() - 2)
        n = x.numel() / x.shape[1] * dist.get_world_size()  # every process passes the same batch size
        wide = x if x.dtype == torch.float64 else x.float()  # statistics in at least float32 (bf16 under autocast)
        mean = _AllReduceSum.apply(wide.sum(dims)) / n
        centred = wide - mean.view(shape)
        var = _AllReduceSum.apply(centred.pow(2).sum(dims)) / n
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                factor = (1.0 / float(self.num_batches_tracked)) if self.momentum is None else self.momentum
                self.running_mean.mul_(1 - factor).add_(mean.detach(), alpha=factor)
                self.running_var.mul_(1 - factor).add_(var.detach() * (n / max(n - 1, 1)), alpha=factor)
        y = centred * torch.rsqrt(var + self.eps).view(shape)
        if self.affine:
            y = y * self.weight.view(shape) + self.bias.view(shape)
        return y.to(x.dtype)


def convert_to_global_batchnorm(module: nn.Module) -> nn.Module:
    """Replace every BatchNorm1d/2d/3d in ``module`` (in place) by a :class:`GlobalBatchNorm`
    holding the same parameters and buffers; returns ``module`` (or the replacement if it is one)."""
    if isinstance(module, nn.modules.batchnorm._BatchNorm) and not isinstance(module, GlobalBatchNorm):
        replacement = GlobalBatchNorm(module.num_features, module.eps, module.momentum, module.affine,
                                      module.track_running_stats)
        reference = module.weight if module.affine else module.running_mean
        if reference is not None:
            replacement.to(device=reference.device, dtype=reference.dtype)
        replacement.load_state_dict(module.state_dict())
        replacement.train(module.training)
        return replacement
    for name, child in module.named_children():
        converted = convert_to_global_batchnorm(child)
        if converted is not child:
            setattr(module, name, converted)
    return module


def count_global_batchnorm(module: nn.Module) -> int:
    return sum(isinstance(m, GlobalBatchNorm) for m in module.modules())
