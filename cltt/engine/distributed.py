"""Processes working on one run: torchrun or Slurm ``srun`` environments, collectives.

    torchrun --nproc-per-node 2 -m cltt train recipe.yaml          # RANK, WORLD_SIZE, LOCAL_RANK
    srun --ntasks-per-node 2 cltt train recipe.yaml                 # SLURM_PROCID, SLURM_STEP_NUM_TASKS

Under srun without torchrun, the rendezvous is the first host of ``SLURM_JOB_NODELIST`` and
a port derived from the job id (``MASTER_ADDR``/``MASTER_PORT`` override both). The backend is
NCCL on CUDA and gloo elsewhere, so the same code runs (and is tested) on CPUs.

Gradients are summed over processes by :class:`GradientSync`: DistributedDataParallel's
bucketed all-reduce, which overlaps with the backward pass (sub-batches before the last one
run under ``no_sync``), or, for reference and benchmarks, one flat all-reduce after it
(:func:`all_reduce_gradients`). Both sum, never average: each process backpropagates its
share of the global loss, so the sum is the global gradient.
"""

from __future__ import annotations

import contextlib
import datetime
import gc
import os
import re
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel


@dataclass(frozen=True)
class ProcessInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def process_info(env: dict | None = None) -> ProcessInfo:
    """Rank, world size and local rank from torchrun's or Slurm's environment variables."""
    env = os.environ if env is None else env
    if "WORLD_SIZE" in env and "RANK" in env:
        return ProcessInfo(int(env["RANK"]), int(env["WORLD_SIZE"]), int(env.get("LOCAL_RANK", 0)))
    # SLURM_STEP_NUM_TASKS, not SLURM_NTASKS: a batch script of an --ntasks=4 job sees
    # SLURM_NTASKS=4 too, but only srun's job steps are the processes of a run
    if int(env.get("SLURM_STEP_NUM_TASKS", "1")) > 1 and "SLURM_PROCID" in env:
        return ProcessInfo(int(env["SLURM_PROCID"]), int(env["SLURM_STEP_NUM_TASKS"]), int(env.get("SLURM_LOCALID", 0)))
    return ProcessInfo()


def first_host(nodelist: str) -> str:
    """The first host name of a Slurm node list such as ``gpu[003-005,007],cpu1``."""
    match = re.match(r"([^,\[]+)(?:\[([^\]]+)\])?", nodelist)
    if not match:
        return nodelist
    prefix, ranges = match.groups()
    if not ranges:
        return prefix
    first = ranges.split(",")[0].split("-")[0]
    return prefix + first


def init_processes(info: ProcessInfo, device: torch.device) -> None:
    """Join the process group (a no-op for one process)."""
    if not info.distributed or dist.is_initialized():
        return
    if "MASTER_ADDR" not in os.environ:
        os.environ["MASTER_ADDR"] = first_host(os.environ.get("SLURM_JOB_NODELIST", "127.0.0.1"))
    if "MASTER_PORT" not in os.environ:
        os.environ["MASTER_PORT"] = str(20000 + int(os.environ.get("SLURM_JOB_ID", "0")) % 20000)
    backend = "nccl" if device.type == "cuda" else "gloo"
    dist.init_process_group(backend, rank=info.rank, world_size=info.world_size,
                            timeout=datetime.timedelta(minutes=30))


def shutdown_processes() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def _active() -> bool:
    """True inside a process group of more than one process."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


class _GatherWithGradient(torch.autograd.Function):
    """all_gather whose backward sums every process's gradient for this process's rows."""

    @staticmethod
    def forward(ctx, local: torch.Tensor) -> torch.Tensor:
        parts = [torch.empty_like(local) for _ in range(dist.get_world_size())]
        dist.all_gather(parts, local.contiguous())
        ctx.rows = local.shape[0]
        return torch.cat(parts)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.contiguous()
        dist.all_reduce(grad)  # all_reduce rather than reduce_scatter: gloo lacks the latter
        start = dist.get_rank() * ctx.rows
        return grad[start:start + ctx.rows]


def gather_rows(local: torch.Tensor) -> tuple[torch.Tensor, int]:
    """Concatenate ``local`` ``[b, ...]`` of every process -> (``[P*b, ...]``, this process's first row).

    Gradients flow back to every process's own rows, so negatives from other processes
    train this one's encoder too. All processes must pass the same ``b``.
    """
    if not _active():
        return local, 0
    return _GatherWithGradient.apply(local), dist.get_rank() * local.shape[0]


def all_reduce_sum(*values: torch.Tensor) -> list[torch.Tensor]:
    """Sums of detached tensors over processes (the tensors themselves are unchanged)."""
    out = [v.detach().clone() for v in values]
    if _active():
        for v in out:
            dist.all_reduce(v)
    return out


def all_reduce_gradients(parameters) -> None:
    """Sum the gradients of ``parameters`` over processes, in one flat buffer."""
    if not _active():
        return
    grads = [p.grad for p in parameters if p.grad is not None]
    if not grads:
        return
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    offset = 0
    for g in grads:
        g.copy_(flat[offset:offset + g.numel()].view_as(g))
        offset += g.numel()


class _ForwardStep(nn.Module):
    """``forward`` is the method's ``forward_step``, so DDP sees the step's forward pass."""

    def __init__(self, method: nn.Module):
        super().__init__()
        self.method = method

    def forward(self, views: torch.Tensor, extras: dict):
        return self.method.forward_step(views, extras)


def _sum_hook(state, bucket):
    """DDP communication hook: sum a bucket over processes (DDP's default divides by P)."""
    return dist.all_reduce(bucket.buffer(), async_op=True).get_future().then(lambda fut: fut.value()[0])


class GradientSync:
    """How a step's forward passes run and their gradients reach every process.

        sync = GradientSync(method)                      # "ddp" in a process group, else a no-op
        for i, chunk in enumerate(chunks):
            with sync.accumulating(last=i == len(chunks) - 1):
                sync.forward(chunk, extras).embeddings ... .backward()
        sync.finish()                                    # the flat mode's all-reduce

    ``mode="ddp"`` wraps the method in DistributedDataParallel (gradient buckets all-reduced
    as the backward pass produces them, summed by a communication hook, buffers left to the
    trainer); ``mode="flat"`` all-reduces every gradient in one buffer after the last backward.
    ``find_unused`` lets DDP finish a step in which some parameters got no gradient (a method or
    plugin whose forward skips a module); it costs one walk of the autograd graph per step.
    """

    def __init__(self, method: nn.Module, mode: str = "ddp", device: torch.device | None = None,
                 find_unused: bool = True):
        if mode not in ("ddp", "flat"):
            raise ValueError(f"mode must be 'ddp' or 'flat', got {mode!r}")
        self.method = method
        self.mode = mode if _active() else "single"
        self.ddp = None
        if self.mode == "ddp":
            device_ids = [device] if device is not None and device.type == "cuda" else None
            self.ddp = DistributedDataParallel(_ForwardStep(method), device_ids=device_ids, forward_sync_buffers=False,
                                               find_unused_parameters=find_unused)
            self.ddp.register_comm_hook(None, _sum_hook)

    def forward(self, views: torch.Tensor, extras: dict):
        """The method's :class:`Forward` of ``views``, through DDP when it is on."""
        if self.mode == "closed":
            raise RuntimeError("GradientSync.forward after close(): make a new GradientSync")
        if self.ddp is not None and torch.is_grad_enabled():
            return self.ddp(views, extras)
        return self.method.forward_step(views, extras)

    def accumulating(self, last: bool):
        """Context for one forward and backward: gradients are only synchronised in the ``last``."""
        if self.ddp is not None and not last:
            return self.ddp.no_sync()
        return contextlib.nullcontext()

    def finish(self) -> None:
        """After the last backward: the flat mode's all-reduce (DDP has already synchronised)."""
        if self.mode == "flat":
            all_reduce_gradients(self.method.parameters())

    def close(self) -> None:
        """Free the DDP wrapper now, before :func:`shutdown_processes`.

        Its reducer holds the process group and the communication hook's Python callbacks.
        Left to the interpreter's exit, gloo's teardown runs while Python is half gone and can
        abort the process (SIGABRT, "terminate called without an active exception") after all
        its work was done, which torchrun and Slurm report as a failed job.
        """
        if self.ddp is not None:
            self.ddp = None
            self.mode = "closed"  # a later forward would skip the synchronisation: refused instead
            gc.collect()  # the wrapper sits in reference cycles with its module


def broadcast_module(module: torch.nn.Module) -> None:
    """Copy rank 0's parameters and buffers to every process."""
    if _active():
        for tensor in list(module.parameters()) + list(module.buffers()):
            dist.broadcast(tensor.data, 0)


def average_buffers(module: torch.nn.Module) -> None:
    """Average floating-point buffers (batch-norm running statistics) over processes."""
    if _active():
        for buffer in module.buffers():
            if buffer.is_floating_point():
                dist.all_reduce(buffer.data)
                buffer.data.div_(dist.get_world_size())


def any_process(*flags: bool, device: torch.device) -> tuple[bool, ...]:
    """Each flag: true when it is true on at least one process, in one all-reduce (all
    processes must call it with as many flags)."""
    if not _active():
        return flags
    value = torch.tensor([1.0 if flag else 0.0 for flag in flags], device=device)
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return tuple(bool(v) for v in value.tolist())


def barrier() -> None:
    if _active():
        dist.barrier()
