"""Frames/s of the original per-frame PIL pipeline against cltt's window dataset, side by side.

    python benchmarks/data_pipeline.py            # about a minute on one core
    python benchmarks/data_pipeline.py --windows 200 --frames-dir /tmp/bench_frames

Frames: 640x480 JPEGs at quality 90 made from real photographs bundled with scikit-image
(astronaut, coffee, rocket, ...), panned a few pixels per frame so consecutive frames differ as
video frames do. Everything runs in this process with one thread (``torch.set_num_threads(1)``,
``cv2.setNumThreads(1)``): the figure is per DataLoader worker.

Rows:
  original      PIL open + convert, Resize(256), RandomResizedCrop(224), ToTensor; frame by frame
  original-112  the same with Resize(128), RandomResizedCrop(112), for reference
  cltt-224/112  WindowDataset with the same random resized crop (torchvision's default scale,
                drawn per frame), decoding JPEGs at reduced size, uint8 output (converted to
                float on the training device) and float output
  packed-224/112  the same dataset reading a packed store of the same JPEG bytes (cltt pack)
  raw-112       the same dataset reading a store packed with --raw 112 (no decoding at all)
Targets: cltt-224 uint8 >= 3x original, cltt-112 uint8 >= 6x (issue 2); packed-224 >= 3.8x,
packed-112 >= 6x, raw-112 >= 20x (issue 13).

Then the cost of the CRC-32 check of every frame read from a packed store (issue 24):
``store.read`` of the timed windows' frames, at the reductions of the packed-112, packed-224 and
raw-112 rows, with the check on and off alternated over a few rounds, in frames per CPU second
of the reading thread, and the median ratio of the rates. Target: packed JPEG reads lose under 5%.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import torch
from PIL import Image
from torchvision import transforms

from cltt.data.dataset import WindowDataset
from cltt.data.pack import pack_folder
from cltt.data.stores import open_store
from cltt.data.windows import WindowSpec
from cltt.recipe import AugmentConfig

PHOTOS = ("astronaut", "coffee", "rocket", "chelsea", "hubble_deep_field", "immunohistochemistry")
WIDTH, HEIGHT = 640, 480


def make_frames(root: Path, frames_per_clip: int) -> None:
    """One clip per photograph: a slow pan across it, written as 640x480 JPEG quality 90."""
    import skimage.data

    for name in PHOTOS:
        photo = getattr(skimage.data, name)()
        scale = max((WIDTH + frames_per_clip * 2) / photo.shape[1], HEIGHT / photo.shape[0])
        big = cv2.resize(photo, None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC)
        folder = root / name
        folder.mkdir(parents=True, exist_ok=True)
        top = (big.shape[0] - HEIGHT) // 2
        for i in range(frames_per_clip):
            frame = big[top : top + HEIGHT, 2 * i : 2 * i + WIDTH]
            cv2.imwrite(str(folder / f"frame_{i + 1:06d}.jpg"), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR),
                        [cv2.IMWRITE_JPEG_QUALITY, 90])


class OriginalWindows:
    """The lab's original loader: a list of path lists, PIL and torchvision, one frame at a time."""

    def __init__(self, root: Path, window_size: int, resize: int, crop: int):
        self.windows = []
        for clip in sorted(p for p in root.iterdir() if p.is_dir()):
            paths = sorted(str(p) for p in clip.glob("*.jpg"))
            self.windows += [paths[t : t + window_size] for t in range(len(paths) - window_size + 1)]
        self.transform = transforms.Compose(
            [transforms.Resize(resize), transforms.RandomResizedCrop(crop), transforms.ToTensor()]
        )

    def __len__(self) -> int:
        return len(self.windows)

    def __getitem__(self, index: int) -> torch.Tensor:
        return torch.stack([self.transform(Image.open(p).convert("RGB")) for p in self.windows[index]])


def frames_per_second(dataset, indices: list[int], window_size: int) -> float:
    dataset[indices[0]]  # warm up caches and lazy imports
    started = time.perf_counter()
    for i in indices:
        dataset[i]
    return len(indices) * window_size / (time.perf_counter() - started)


def crc_check_cost(store, reduction: int, frames: list[int], rounds: int = 9) -> tuple[float, float, float]:
    """Frames per CPU second of ``store.read(frame, reduction)`` over ``frames`` with and without
    the CRC-32 check of the stored bytes, and the median over ``rounds`` of the per-round ratio
    on / off. CPU time of this thread (user and system: the pread too), not wall time, and on and
    off alternate within each round, so other work on the machine hardly moves the ratio."""
    def rate(verify: bool) -> float:
        store.verify_crc = verify
        started = time.thread_time()
        for frame in frames:
            store.read(frame, reduction)
        return len(frames) / (time.thread_time() - started)

    rate(True)  # warm the page cache and the descriptors
    pairs = [(rate(True), rate(False)) for _ in range(rounds)]
    store.verify_crc = True
    return max(on for on, _ in pairs), max(off for _, off in pairs), float(np.median([on / off for on, off in pairs]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--windows", type=int, default=120, help="windows timed per row")
    parser.add_argument("--window-size", type=int, default=5)
    parser.add_argument("--frames-dir", type=Path, help="reuse or create frames here (default: a temp dir)")
    args = parser.parse_args()

    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    root = args.frames_dir or Path(tempfile.mkdtemp(prefix="cltt_bench_"))
    if not any(root.glob("*/*.jpg")):
        make_frames(root, frames_per_clip=40)
    folder = open_store(root)
    stores = Path(tempfile.mkdtemp(prefix="cltt_bench_stores_"))
    packed = open_store(pack_folder(root, stores / "jpeg").store)
    raw = open_store(pack_folder(root, stores / "raw112", raw_size=112).store)
    crop_only = AugmentConfig(crop_scale=[0.08, 1.0], flip_p=0.0, jitter_p=0.0, grayscale_p=0.0, blur_p=0.0,
                              consistent=False)
    spec = WindowSpec(args.window_size)
    rows = {
        "original": OriginalWindows(root, args.window_size, 256, 224),
        "original-112": OriginalWindows(root, args.window_size, 128, 112),
        "cltt-224 uint8": WindowDataset(folder, spec, 224, crop_only),
        "cltt-224 float": WindowDataset(folder, spec, 224, crop_only, dtype="float"),
        "cltt-112 uint8": WindowDataset(folder, spec, 112, crop_only),
        "cltt-112 float": WindowDataset(folder, spec, 112, crop_only, dtype="float"),
        "packed-224 uint8": WindowDataset(packed, spec, 224, crop_only),
        "packed-112 uint8": WindowDataset(packed, spec, 112, crop_only),
        "raw-112 uint8": WindowDataset(raw, spec, 112, crop_only),
    }
    count = min(args.windows, min(len(d) for d in rows.values()))
    indices = np.random.default_rng(0).choice(min(len(d) for d in rows.values()), size=count, replace=False).tolist()
    print(f"{count} windows x {args.window_size} frames of 640x480 JPEG q90, one thread, frames in {root}")
    results = {}
    for name, dataset in rows.items():
        results[name] = frames_per_second(dataset, indices, args.window_size)
    base = results["original"]
    print(f"{'pipeline':<18}{'frames/s':>10}{'vs original':>13}")
    for name, rate in results.items():
        print(f"{name:<18}{rate:>10.0f}{rate / base:>12.1f}x")
    targets = {"cltt-224 uint8": 3, "cltt-112 uint8": 6, "packed-224 uint8": 3.8, "packed-112 uint8": 6, "raw-112 uint8": 20}
    print("targets: " + ", ".join(f"{name} >= {goal}x ({results[name] / base:.1f}x{'' if results[name] / base >= goal else ', NOT met'})"
                                  for name, goal in targets.items()))
    print(f"{'store.read, CRC-32':<22}{'on':>8}{'off':>8}{'on/off (median)':>17}   (frames per CPU second)")
    frames = sorted({frame for i in indices for view in rows["packed-112 uint8"].window_frames(i) for frame in view})
    for name in ("packed-112 uint8", "packed-224 uint8", "raw-112 uint8"):
        dataset = rows[name]
        checked, unchecked, ratio = crc_check_cost(dataset.store, dataset.reduction, frames)
        label = f"{name.split()[0]} (1/{dataset.reduction})"
        print(f"{label:<22}{checked:>8.0f}{unchecked:>8.0f}{ratio:>17.3f}")
    print("target: the check costs packed JPEG reads under 5% (on/off >= 0.95)")
    shutil.rmtree(stores)
    if args.frames_dir is None:
        shutil.rmtree(root)


if __name__ == "__main__":
    main()
