"""A packed store against the folder of JPEGs it came from, side by side on the same frames.

    python benchmarks/store.py                                    # 100,000 frames, about 10 minutes
    python benchmarks/store.py --frames 20000 --work /scratch/me/bench

Frames: 160x120 JPEGs at quality 90 cut from the real photographs bundled with scikit-image,
500 per clip, each clip a slow pan across one photograph. Rows:

  pack          cltt pack throughput (frames/s), JPEG bytes as they are, and --raw 64
  staging copy  cp -a of the folder tree against cp -a of the store (what sweep.slurm.scratch and
                slurm/train.sh CLTT_STAGE do on a node); target: the store >= 10x faster
  reads         random windows (5 frames, 64 px crops, the training dataset) through a DataLoader
                with 1 and 2 workers, folder vs store vs raw store, warm (in the page cache) and
                cold (every frame file and shard evicted with posix_fadvise DONTNEED first:
                /proc/sys/vm/drop_caches needs root; the eviction is per file and needs none)
  open          open and index a 1,000,000-frame store in a fresh process: seconds and resident
                memory (VmRSS after the open, and its increase over the interpreter with cltt
                imported); target: < 2 s and < 100 MB
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np
import torch
from torch.utils.data import DataLoader, RandomSampler

from cltt.data.dataset import WindowDataset
from cltt.data.pack import PackedFrame, StoreWriter, pack_folder
from cltt.data.stores import open_store
from cltt.data.windows import WindowSpec
from cltt.recipe import AugmentConfig

PHOTOS = ("astronaut", "coffee", "rocket", "chelsea", "hubble_deep_field", "immunohistochemistry")
WIDTH, HEIGHT, PER_CLIP = 160, 120, 500


def make_frames(root: Path, frames: int) -> None:
    """``frames`` JPEGs in clips of 500: clip k pans across photograph k mod 6 from its own start."""
    import skimage.data

    photos = [getattr(skimage.data, name)() for name in PHOTOS]
    photos = [p if p.ndim == 3 else np.stack([p] * 3, -1) for p in photos]

    def write_clip(clip: int) -> None:
        photo = photos[clip % len(photos)]
        scale = max((WIDTH + PER_CLIP) / photo.shape[1], HEIGHT / photo.shape[0])
        big = cv2.cvtColor(cv2.resize(photo, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA), cv2.COLOR_RGB2BGR)
        top = (clip * 7) % max(1, big.shape[0] - HEIGHT)
        folder = root / f"clip_{clip:05d}"
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(min(PER_CLIP, frames - clip * PER_CLIP)):
            cv2.imwrite(str(folder / f"frame_{i + 1:06d}.jpg"), big[top:top + HEIGHT, i:i + WIDTH],
                        [cv2.IMWRITE_JPEG_QUALITY, 90])

    with ThreadPoolExecutor(max_workers=os.cpu_count()) as pool:
        list(pool.map(write_clip, range(-(-frames // PER_CLIP))))


def evict(path: Path) -> None:
    """Drop ``path``'s files (recursively) from the page cache, as far as the kernel allows."""
    files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]

    def drop(file: Path) -> None:
        fd = os.open(file, os.O_RDONLY)
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)

    os.sync()  # dirty pages cannot be dropped

    with ThreadPoolExecutor(max_workers=16) as pool:
        list(pool.map(drop, files))


def timed(function) -> float:
    started = time.perf_counter()
    function()
    return time.perf_counter() - started


def read_rate(store, workers: int, batches: int) -> float:
    """Frames/s of random 5-frame windows at 64 px through a DataLoader with ``workers`` workers."""
    augment = AugmentConfig(crop_scale=[0.3, 1.0], flip_p=0.5, jitter_p=0.0, grayscale_p=0.0, blur_p=0.0)
    dataset = WindowDataset(store, WindowSpec(5, window_stride=5), 64, augment)
    sampler = RandomSampler(dataset, generator=torch.Generator().manual_seed(0))
    loader = DataLoader(dataset, batch_size=32, sampler=sampler, num_workers=workers, persistent_workers=False)
    frames, started = 0, time.perf_counter()
    for i, batch in enumerate(loader):
        frames += batch["views"].shape[0] * batch["views"].shape[2]
        if i + 1 == batches:
            break
    return frames / (time.perf_counter() - started)


def million_frame_store(path: Path) -> None:
    """1,000 clips of 1,000 frames, each frame the same tiny real JPEG (the index is what is measured)."""
    import skimage.data

    thumb = cv2.resize(skimage.data.astronaut(), (16, 12), interpolation=cv2.INTER_AREA)
    data = cv2.imencode(".jpg", thumb)[1].tobytes()
    writer = StoreWriter(path, shard_bytes=256 << 20)
    for clip in range(1000):
        writer.add_clip(f"clip_{clip:04d}", (PackedFrame(f"frame_{i + 1:06d}.jpg", data, 12, 16) for i in range(1000)))
    writer.close()


OPEN_PROBE = textwrap.dedent("""
    import sys, time
    def rss():
        return int(next(line for line in open("/proc/self/status") if line.startswith("VmRSS")).split()[1]) / 1024
    from cltt.data.stores import open_store
    before = rss()
    started = time.perf_counter()
    store = open_store(sys.argv[1])
    seconds = time.perf_counter() - started
    print(store.num_frames, seconds, rss(), rss() - before)
""")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=100_000)
    parser.add_argument("--work", type=Path, help="folder for the frames and stores (default: a temp dir, removed)")
    parser.add_argument("--batches", type=int, default=40, help="batches of 32 windows timed per read row")
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="cltt_store_bench_"))
    work.mkdir(parents=True, exist_ok=True)
    root, store_path, raw_path = work / "frames", work / "frames.store", work / "frames64.store"
    try:
        if not root.is_dir():
            print(f"writing {args.frames:,} frames to {root} ...", flush=True)
            make_frames(root, args.frames)
        for path in (store_path, raw_path, work / "copy"):
            shutil.rmtree(path, ignore_errors=True)
        folder = open_store(root, rebuild=True)
        print(f"{folder.num_frames:,} frames of {WIDTH}x{HEIGHT} JPEG q90 in {folder.num_clips} clips, {os.cpu_count()} CPUs")

        packed = pack_folder(root, store_path, workers=8)
        raw = pack_folder(root, raw_path, raw_size=64, workers=8)
        print("\npack (8 threads)        frames/s      MB   shards")
        for name, summary in (("JPEG bytes", packed), ("raw 64", raw)):
            print(f"  {name:<20}{summary.frames / summary.seconds:>10,.0f}{summary.bytes / 1e6:>8,.0f}{summary.shards:>9}")

        copies = {}
        for name, source in (("folder", root), ("store", store_path)):
            target = work / "copy"
            copies[name] = timed(lambda: subprocess.run(["cp", "-a", str(source), str(target)], check=True))
            shutil.rmtree(target)
        print(f"\nstaging copy (cp -a, warm)   folder {copies['folder']:.2f} s   store {copies['store']:.2f} s   "
              f"ratio {copies['folder'] / copies['store']:.1f}x (target >= 10x)")

        stores = {"folder": folder, "store": open_store(store_path), "raw 64": open_store(raw_path)}
        paths = {"folder": root, "store": store_path, "raw 64": raw_path}
        print("\nrandom windows, frames/s    " + "".join(f"{name:>12}" for name in stores))
        for workers in (1, 2):
            for cache in ("warm", "cold"):
                rates = {}
                for name, store in stores.items():
                    if cache == "warm":
                        read_rate(store, workers, max(4, args.batches // 4))  # bring the pages in
                    else:
                        evict(paths[name])
                    rates[name] = read_rate(store, workers, args.batches)
                print(f"  {workers} worker(s), {cache}:       " + "".join(f"{rates[n]:>12,.0f}" for n in stores)
                      + f"   store/folder {rates['store'] / rates['folder']:.2f}x")

        big = work / "million.store"
        shutil.rmtree(big, ignore_errors=True)
        million_frame_store(big)
        out = subprocess.run([sys.executable, "-c", OPEN_PROBE, str(big)], capture_output=True, text=True, check=True)
        frames, seconds, rss, grew = out.stdout.split()
        print(f"\nopen a {int(frames):,}-frame store: {float(seconds):.2f} s (target < 2 s), resident {float(rss):.0f} MB, "
              f"{float(grew):.0f} MB more than before the open (target < 100 MB)")
        shutil.rmtree(big)
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
