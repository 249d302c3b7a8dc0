"""Step time of two gloo processes on CPU: DistributedDataParallel against the flat all-reduce.

    python benchmarks/distributed_step.py                      # resnet18, 64 px, about a minute
    python benchmarks/distributed_step.py --backbone resnet50 --size 96 --steps 10

Both processes build the same model (the default recipe's resnet18 with its BatchNorm head),
take their half of a fixed global batch and run the real training step
(:func:`cltt.engine.step.accumulate_gradients` + optimizer step) with each gradient sync in
turn, alternating rows so that neither gets a warmer machine: ``ddp`` (the trainer's: bucketed
all-reduce overlapping the backward pass, with the unused-parameter search the trainer keeps
on for plugins), ``ddp, no unused search``, and ``flat`` (one all-reduce after the backward).
Each process uses ``--threads`` threads. Printed: median ms per step and the ratio to flat.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import torch
import torch.distributed as dist
import torch.multiprocessing as mp


def worker(rank: int, args, port: int, results) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(args.threads)
    dist.init_process_group("gloo", rank=rank, world_size=2)
    from cltt.engine.device import Placement
    from cltt.engine.distributed import GradientSync
    from cltt.engine.optim import build_optimizer
    from cltt.engine.step import accumulate_gradients, optimizer_step
    from cltt.methods import build_method
    from cltt.recipe import recipe_from_dict

    recipe = recipe_from_dict({"model": {"backbone": args.backbone}, "data": {"image_size": args.size, "window_size": 3}})
    torch.manual_seed(0)
    method = build_method(recipe)
    method.train()
    optimizer = build_optimizer(method, recipe.train)
    placement = Placement(torch.device("cpu"), None, False)
    scaler = placement.scaler()
    local = args.batch // 2
    views = torch.randint(0, 256, (args.batch, 1, 3, 3, args.size, args.size), dtype=torch.uint8,
                          generator=torch.Generator().manual_seed(1))[rank * local:(rank + 1) * local]
    syncs = {"ddp": GradientSync(method, "ddp"), "ddp, no unused search": GradientSync(method, "ddp", find_unused=False),
             "flat": GradientSync(method, "flat")}
    times = {name: [] for name in syncs}
    for step in range(args.warmup + args.steps):
        for name, sync in syncs.items():
            dist.barrier()
            started = time.perf_counter()
            accumulate_gradients(method, views, placement, scaler, sync=sync)
            optimizer_step(method, optimizer, scaler, None)
            if step >= args.warmup:
                times[name].append(time.perf_counter() - started)
    if rank == 0:
        results.update({name: statistics.median(values) for name, values in times.items()})
    dist.destroy_process_group()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backbone", default="resnet18")
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--batch", type=int, default=16, help="global batch of windows (3 frames each)")
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--threads", type=int, default=max(1, (os.cpu_count() or 2) // 2))
    args = parser.parse_args()
    with mp.Manager() as manager:
        results = manager.dict()
        mp.spawn(worker, args=(args, 29000 + os.getpid() % 1000, results), nprocs=2)
        results = dict(results)
    print(f"{args.backbone} at {args.size} px, global batch {args.batch} windows x 3 frames, 2 gloo processes x "
          f"{args.threads} threads, median of {args.steps} steps (torch {torch.__version__}, {sys.platform})")
    base = results["flat"]
    for name, seconds in results.items():
        print(f"  {name:<24}{seconds * 1e3:>9.0f} ms/step{base / seconds:>8.2f}x flat's speed")


if __name__ == "__main__":
    main()
