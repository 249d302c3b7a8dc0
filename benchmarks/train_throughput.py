"""Training throughput (frames/s) of one method step: fp32 against bf16 autocast + channels_last.

    python benchmarks/train_throughput.py                                   # resnet18, 112 and 224 px
    python benchmarks/train_throughput.py --backbone resnet50 --sizes 224 --batch 32 --steps 30

Each configuration runs the real training step (cltt.engine.step: embed, InfoNCE over the
batch, backward, Adam update) on a fixed random uint8 batch of ``--batch`` windows of
``--window`` frames, after ``--warmup`` untimed steps; the rows are measured one after the
other in the same process and printed with their ratio to fp32 at the same size. On a CPU,
channels_last is not used (cltt applies it on CUDA only) and bf16 autocast is usually slower:
the figures that matter come from a GPU.

    python benchmarks/train_throughput.py --data data/frames.store --workers 8   # + the data path

With ``--data ROOT_OR_STORE`` each size also gets a row that trains from the real pipeline (a
DataLoader of the window dataset over that root or store, ``--workers`` processes, pinned
memory) with the faster precision, and its ratio to the same step on synthetic on-device input
(target: the data path reaches >= 90% of the model-only throughput). On CUDA two more rows
time the input pipeline alone, without the model: JPEG decode and augmentation in ``--workers``
CPU workers against ``data.decode: gpu`` (workers read bytes, nvJPEG decodes the batch and the
augmentations run on the GPU), in frames/s.
"""

from __future__ import annotations

import argparse
import time

import torch

from cltt.engine.device import Placement, resolve_device
from cltt.engine.optim import build_optimizer
from cltt.engine.step import accumulate_gradients, optimizer_step
from cltt.methods import build_method
from cltt.recipe import recipe_from_dict


def measure(backbone: str, size: int, batch: int, window: int, placement: Placement, steps: int, warmup: int,
            loader=None) -> float:
    """Frames/s of ``steps`` training steps after ``warmup``; from ``loader``'s batches when given."""
    recipe = recipe_from_dict({"model": {"backbone": backbone}, "data": {"image_size": size, "window_size": window}})
    torch.manual_seed(0)
    method = build_method(recipe).to(placement.device)
    method.channels_last = placement.channels_last
    if placement.channels_last:
        method.to(memory_format=torch.channels_last)
    optimizer = build_optimizer(method, recipe.train)
    scaler = placement.scaler()
    views = torch.randint(0, 256, (batch, 1, window, 3, size, size), dtype=torch.uint8)
    if placement.device.type == "cuda":
        views = views.pin_memory()
    method.train()
    batches = iter(loader) if loader is not None else None

    def step() -> None:
        source = next(batches)["views"] if batches is not None else views
        accumulate_gradients(method, source, placement, scaler)
        optimizer_step(method, optimizer, scaler, None)

    for _ in range(warmup):
        step()
    if placement.device.type == "cuda":
        torch.cuda.synchronize()
    started = time.perf_counter()
    for _ in range(steps):
        step()
    if placement.device.type == "cuda":
        torch.cuda.synchronize()
    return steps * batch * window / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", default="resnet18")
    parser.add_argument("--sizes", type=int, nargs="+", default=[112, 224])
    parser.add_argument("--batch", type=int, default=64, help="windows per step")
    parser.add_argument("--window", type=int, default=4, help="frames per window")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--data", help="a frames root or packed store: add the real data path's row")
    parser.add_argument("--workers", type=int, default=8, help="DataLoader workers of the data path")
    args = parser.parse_args()
    device = resolve_device(args.device)
    on_cuda = device.type == "cuda"
    if on_cuda:
        torch.backends.cudnn.benchmark = True
    configurations = [
        ("fp32", Placement(device, None, False)),
        ("bf16 + channels_last" if on_cuda else "bf16", Placement(device, torch.bfloat16, on_cuda)),
    ]
    name = torch.cuda.get_device_name(device) if on_cuda else f"CPU ({torch.get_num_threads()} threads)"
    print(f"{args.backbone}, batch {args.batch} windows x {args.window} frames, {args.steps} timed steps on {name}")
    print(f"{'size':>5}  {'precision':<22} {'frames/s':>10}  {'vs fp32':>7}")
    for size in args.sizes:
        baseline = None
        for label, placement in configurations:
            rate = measure(args.backbone, size, args.batch, args.window, placement, args.steps, args.warmup)
            baseline = baseline or rate
            print(f"{size:>5}  {label:<22} {rate:>10,.0f}  {rate / baseline:>6.2f}x", flush=True)
        if args.data:
            loader = data_loader(args.data, size, args.batch, args.window, args.workers, on_cuda)
            label, placement = configurations[-1]
            fed = measure(args.backbone, size, args.batch, args.window, placement, args.steps, args.warmup, loader)
            print(f"{size:>5}  {label + ', data path':<22} {fed:>10,.0f}  {fed / baseline:>6.2f}x   "
                  f"{fed / rate:.0%} of the synthetic-input step (target >= 90%)", flush=True)
            if on_cuda:
                for decode in ("cpu", "gpu"):
                    only = pipeline_rate(args.data, size, args.batch, args.window, args.workers, decode, device, args.steps)
                    print(f"{size:>5}  {'input only, decode ' + decode:<22} {only:>10,.0f}", flush=True)


def pipeline_rate(root: str, size: int, batch: int, window: int, workers: int, decode: str, device, steps: int) -> float:
    """Frames/s of the input pipeline alone: batches on ``device`` as uint8 [B, 1, T, 3, S, S]."""
    from cltt.data.device_augment import DeviceAugment

    loader = data_loader(root, size, batch, window, workers, True, decode)
    augment = DeviceAugment(size, device, loader.dataset.store.locate) if decode == "gpu" else None
    batches = iter(loader)
    for _ in range(3):  # workers started, caches warm
        next(batches)
    if device.type == "cuda":
        torch.cuda.synchronize()
    started = time.perf_counter()
    for _ in range(steps):
        item = next(batches)
        views = augment(item) if augment else item["views"].to(device, non_blocking=True)
    if device.type == "cuda":
        torch.cuda.synchronize()
    assert views.dtype == torch.uint8
    return steps * batch * window / (time.perf_counter() - started)


def data_loader(root: str, size: int, batch: int, window: int, workers: int, pin: bool, decode: str = "cpu"):
    """The training pipeline: the default augmentations over ``root``, endless, shuffled."""
    from torch.utils.data import DataLoader, RandomSampler

    from cltt.data.build import open_frames, windows_dataset
    from cltt.data.device_augment import collate_encoded
    from cltt.recipe import recipe_from_dict

    recipe = recipe_from_dict({"data": {"root": root, "image_size": size, "window_size": window, "decode": decode}})
    dataset = windows_dataset(recipe.data, open_frames(recipe.data), seed=0)
    sampler = RandomSampler(dataset, replacement=True, num_samples=10**9)
    return DataLoader(dataset, batch_size=batch, sampler=sampler, num_workers=workers, pin_memory=pin and decode == "cpu",
                      persistent_workers=workers > 0, prefetch_factor=4 if workers else None, drop_last=True,
                      collate_fn=collate_encoded if decode == "gpu" else None)


if __name__ == "__main__":
    main()
