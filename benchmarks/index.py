"""Indexing time and dataset memory for 1,000 clips x 1,000 frames, against the original approach.

    python benchmarks/index.py                      # makes 1M empty files in a temp dir (~1 min)
    python benchmarks/index.py --root /tmp/bench_index --clips 1000 --frames 1000

Measured in fresh subprocesses, so each figure is one process's own:
  index (cold)     scan + natural sort + write the manifest          target < 10 s
  index (fresh)    load the stored manifest and check it is fresh
  dataset RSS      resident memory added by a WindowDataset over every window at
                   window_stride 1 (window 5, frame_step 2)          target < 150 MB
  original RSS     the original approach: a Python list of path lists, one per window
Frame files are empty: indexing reads names, not pixels.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

MEASURE = r"""
import json, os, sys, time
from pathlib import Path

def rss_mb():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20

root, cache, what = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
import numpy, torch, cv2  # imports count in the baseline, not in the measurement
from cltt.data.manifest import index_frames
from cltt.data.dataset import WindowDataset
from cltt.data.windows import WindowSpec
from cltt.recipe import AugmentConfig
base = rss_mb()
started = time.perf_counter()
if what == "original":
    windows = []
    for clip in sorted(os.listdir(root)):
        if clip.startswith("."):
            continue
        paths = sorted(os.path.join(root, clip, f) for f in os.listdir(os.path.join(root, clip)))
        windows += [paths[t : t + 9 : 2] for t in range(len(paths) - 8)]
    count = len(windows)
else:
    result = index_frames(root, cache_dir=cache, rebuild=(what == "cold"))
    if what == "dataset":
        dataset = WindowDataset(result.manifest, WindowSpec(5, frame_step=2, window_stride=1), 64, AugmentConfig())
        count = len(dataset)
    else:
        count = result.manifest.num_frames
print(json.dumps({"seconds": time.perf_counter() - started, "rss_mb": rss_mb() - base, "count": count}))
"""


def make_tree(root: Path, clips: int, frames: int) -> None:
    for c in range(clips):
        folder = root / f"clip_{c:05d}"
        folder.mkdir(parents=True, exist_ok=True)
        for f in range(1, frames + 1):
            os.close(os.open(folder / f"frame_{f}.jpg", os.O_CREAT | os.O_WRONLY, 0o644))


def measure(root: Path, cache: Path, what: str) -> dict:
    out = subprocess.run([sys.executable, "-c", MEASURE, str(root), str(cache), what],
                         check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", type=Path, help="reuse or create the tree here (default: a temp dir, removed after)")
    parser.add_argument("--clips", type=int, default=1000)
    parser.add_argument("--frames", type=int, default=1000)
    args = parser.parse_args()
    root = args.root or Path(tempfile.mkdtemp(prefix="cltt_index_"))
    if not (root / f"clip_{args.clips - 1:05d}" / f"frame_{args.frames}.jpg").exists():
        print(f"creating {args.clips:,} clips x {args.frames:,} empty frame files in {root} ...", flush=True)
        make_tree(root, args.clips, args.frames)
    cache = Path(tempfile.mkdtemp(prefix="cltt_cache_"))
    try:
        cold = measure(root, cache, "cold")
        fresh = measure(root, cache, "fresh")
        dataset = measure(root, cache, "dataset")
        original = measure(root, cache, "original")
    finally:
        shutil.rmtree(cache)
        if args.root is None:
            shutil.rmtree(root)
    print(f"{args.clips:,} clips x {args.frames:,} frames = {cold['count']:,} frames")
    print(f"index (cold)   {cold['seconds']:6.2f} s   target < 10 s")
    print(f"index (fresh)  {fresh['seconds']:6.2f} s")
    print(f"dataset        {dataset['rss_mb']:6.1f} MB for {dataset['count']:,} windows (+{dataset['seconds']:.2f} s)   target < 150 MB")
    print(f"original       {original['rss_mb']:6.1f} MB for {original['count']:,} windows as path lists "
          f"({original['rss_mb'] / max(dataset['rss_mb'], 0.1):.0f}x the dataset), built in {original['seconds']:.1f} s")


if __name__ == "__main__":
    main()
