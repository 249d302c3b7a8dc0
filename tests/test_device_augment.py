"""data.decode: gpu, run on the CPU device: the same draws as the CPU path, close pixels, one-line refusals.

No GPU is needed: the device path is torch and torchvision code that runs on any device; on
CUDA its decode is nvJPEG (not exercised here).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cltt.cli import main
from cltt.data.dataset import WindowDataset
from cltt.data.device_augment import DeviceAugment, collate_encoded, pack_params, unpack_params
from cltt.data.pack import pack_folder
from cltt.data.stores import open_store
from cltt.data.transforms import sample_params
from cltt.data.windows import WindowSpec
from cltt.errors import CLTTError
from cltt.recipe import AugmentConfig
from tests.conftest import invoke_in_process, write_clip
from tests.helpers.commands import QUICKSTART, one_line_error

EVERYTHING = AugmentConfig(crop_scale=[0.3, 1.0], flip_p=0.5, jitter_p=1.0, jitter=[0.4, 0.4, 0.4, 0.1],
                           grayscale_p=0.3, blur_p=0.5, consistent=True)


def test_params_round_trip():
    rng = np.random.default_rng(0)
    for _ in range(50):
        params = sample_params(rng, EVERYTHING, 48, 64)
        assert unpack_params(pack_params(params)) == params


@pytest.mark.parametrize("consistent", [True, False])
@pytest.mark.parametrize("views", [1, 2])
def test_encoded_samples_carry_the_cpu_paths_draws(frames_root, consistent, views):
    augment = AugmentConfig(**{**EVERYTHING.__dict__, "consistent": consistent})
    store = open_store(frames_root)
    cpu = WindowDataset(store, WindowSpec(3, frame_step=2), 32, augment, views=views, seed=3)
    device = WindowDataset(store, WindowSpec(3, frame_step=2), 32, augment, views=views, seed=3, encoded=True)
    for index, epoch in ((0, 0), (7, 2), (len(cpu) - 1, 5)):
        sample = device[(index, epoch)]
        assert sample["params"].shape == (views, 3, 16) and len(sample["encoded"]) == views * 3
        assert sample["frames"].tolist() == cpu.window_frames(index)
        rng = np.random.default_rng([3, epoch, index])  # what the CPU path's sample index draws from
        shapes = [store.read(f, cpu.reduction).shape[:2] for f in cpu.window_frames(index)[0]]
        expected = [cpu.augment.draw(shapes, rng) for _ in range(views)]
        got = [[unpack_params(row) for row in view] for view in sample["params"]]
        assert got == expected
        assert bytes(sample["encoded"][0].numpy()) == store.encoded_bytes(cpu.window_frames(index)[0][0])


def test_device_batch_is_close_to_the_cpu_batch(frames_root, tmp_path):
    pack_folder(frames_root, tmp_path / "store")
    for root in (frames_root, tmp_path / "store"):
        store = open_store(root)
        cpu = WindowDataset(store, WindowSpec(3), 32, EVERYTHING, views=2, seed=1)
        encoded = WindowDataset(store, WindowSpec(3), 32, EVERYTHING, views=2, seed=1, encoded=True)
        keys = [(i, 1) for i in (0, 5, 11, 20, 33)]
        batch = collate_encoded([encoded[k] for k in keys])
        views = DeviceAugment(32, torch.device("cpu"), store.locate)(batch)
        reference = torch.stack([cpu[k]["views"] for k in keys])
        assert views.shape == reference.shape == (5, 2, 3, 3, 32, 32) and views.dtype == torch.uint8
        difference = (views.int() - reference.int()).abs().float()
        assert difference.mean() < 4, difference.mean()  # resampling and rounding differ, the draws do not
        shuffled = (views.int() - reference.roll(1, 0).int()).abs().float().mean()
        assert shuffled > 4 * difference.mean()  # guard: other windows are far away


def without_segment(jpeg: bytes, marker: int) -> bytes:
    """``jpeg`` with every header segment of type ``marker`` removed (the scan data kept)."""
    out, position = bytearray(jpeg[:2]), 2
    while jpeg[position + 1] != 0xDA:
        length = int.from_bytes(jpeg[position + 2:position + 4], "big")
        if jpeg[position + 1] != marker:
            out += jpeg[position:position + 2 + length]
        position += 2 + length
    return bytes(out + jpeg[position:])


def test_frames_that_fail_on_the_device_are_named(tmp_path):
    root = tmp_path / "frames"
    write_clip(root, "clip0", 4)
    bad = root / "clip0" / "frame_2.jpg"
    bad.write_bytes(without_segment(bad.read_bytes(), 0xDB))  # no quantisation table: the size reads, decoding fails
    store = open_store(root)
    encoded = WindowDataset(store, WindowSpec(2), 32, EVERYTHING, encoded=True)
    batch = collate_encoded([encoded[(0, 0)]])
    with pytest.raises(CLTTError, match=r"corrupt frame .*clip0/frame_2.jpg: Quantization table 0x00 was not defined; "
                                         r"data.decode=gpu cannot skip it: run cltt index"):
        DeviceAugment(32, torch.device("cpu"), store.locate)(batch)
    truncated = root / "clip0" / "frame_3.jpg"
    truncated.write_bytes(truncated.read_bytes()[:300])
    assert WindowDataset(open_store(root), WindowSpec(1), 32, EVERYTHING, encoded=True)[(2, 0)]["replaced"] == 1


def test_gpu_decode_is_refused_where_it_cannot_run(frames_root, tmp_path):
    args = ["train", QUICKSTART, f"data.root={frames_root}", "data.decode=gpu", "data.image_size=32", "train.epochs=1",
            "train.batch_size=4"]
    one_line_error(invoke_in_process(main, args + ["train.device=cpu"], tmp_path),
                   "data.decode=gpu decodes JPEGs on a CUDA device, but this run trains on cpu")
    with pytest.raises(CLTTError, match="need the decoded frames in the workers"):
        WindowDataset(open_store(frames_root), WindowSpec(2), 32, EVERYTHING, encoded=True, focus="boxes_or_center")
    pack_folder(frames_root, tmp_path / "raw", raw_size=32)
    with pytest.raises(CLTTError, match="holds raw RGB frames .* nothing to decode; use data.decode=cpu"):
        open_store(tmp_path / "raw").encoded_bytes(0)
