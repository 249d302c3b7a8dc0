"""What every torchrun (or srun-like) worker script of the tests does around its own steps.

The parent test writes a short script to ``tmp_path`` and starts it with
:func:`tests.helpers.launchers.launch_torchrun` (the launched process finds this module on the
``PYTHONPATH`` the launcher sets). The script calls :func:`start_worker` for an aligned method,
runs its steps, and hands its result to :func:`finish_worker`::

    from tests.helpers.workers import finish_worker, start_worker

    work, info, method, placement = start_worker(lambda work: build_method(load_recipe(work / "tiny.yaml")))
    sync = GradientSync(method, "ddp")
    result = {...}                                  # this rank's losses and gradients
    finish_worker(work, info, result, [sync])       # work/rank{rank}.pt, sync.close(), group down

The order of :func:`finish_worker` matters: each :class:`GradientSync` is closed (its DDP
wrapper freed) before the process group is destroyed, since a reducer freed only at interpreter
exit can abort a finished gloo worker (tests/helpers/launchers.py, ``EXIT_ABORT``).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable
from pathlib import Path

import torch

from cltt.engine.device import resolve_placement
from cltt.engine.distributed import ProcessInfo, broadcast_module, init_processes, process_info, shutdown_processes


def start_worker(make_method: Callable[[Path], torch.nn.Module], seed: int | None = None):
    """``(work, info, method, placement)`` for a worker process started with the work folder as
    its argument: one thread, this rank's :func:`process_info`, the gloo group up, then
    ``make_method(work)`` (after ``torch.manual_seed(seed + rank)`` when ``seed`` is given, so
    the ranks start apart on purpose and :func:`broadcast_module` must align them) in train
    mode, with rank 0's weights from ``work/init.pt`` broadcast to every rank, and the fp32 CPU
    placement the steps run under."""
    torch.set_num_threads(1)
    work = Path(sys.argv[1])
    info = process_info()
    init_processes(info, torch.device("cpu"))
    if seed is not None:
        torch.manual_seed(seed + info.rank)
    method = make_method(work)
    method.train()
    if info.rank == 0:
        method.load_state_dict(torch.load(work / "init.pt"))
    broadcast_module(method)
    return work, info, method, resolve_placement("cpu", "fp32", False)


def finish_worker(work: Path, info: ProcessInfo, result: dict[str, torch.Tensor], syncs: Iterable,
                  after_close: Callable[[], None] | None = None) -> None:
    """Save ``result`` as ``work/rank{rank}.pt`` (what the parent compares), close every
    :class:`GradientSync` of ``syncs``, run ``after_close`` (a check of the closed syncs) and
    only then destroy the process group."""
    torch.save(result, work / f"rank{info.rank}.pt")
    for sync in syncs:
        sync.close()
    if after_close is not None:
        after_close()
    shutdown_processes()
