"""The windows dataset on real JPEGs: frame order, views, augmentation, corrupt frames, boxes."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from cltt.data.build import open_frames, windows_dataset
from cltt.data.dataset import WindowDataset
from cltt.data.stores import open_store
from cltt.data.transforms import WindowAugment, sample_params
from cltt.data.windows import WindowSpec
from cltt.errors import CLTTError
from cltt.recipe import AugmentConfig, load_recipe
from tests.conftest import write_clip

NO_AUGMENT = AugmentConfig(enabled=False)


def frame_number(frame: torch.Tensor) -> int:
    """Read back the grey band written by write_clip (10 * frame number)."""
    return round(float(frame[:, :2, :2].float().mean()) / 10)


def test_sample_shapes_and_order(frames_root):
    dataset = WindowDataset(open_store(frames_root), WindowSpec(3, frame_step=2), 48, NO_AUGMENT)
    sample = dataset[0]
    views = sample["views"]
    assert views.shape == (1, 3, 3, 48, 48) and views.dtype == torch.uint8
    assert [frame_number(f) for f in views[0]] == [1, 3, 5]
    assert len(dataset) == (12 - 4) + (17 - 4) + (22 - 4)


def test_two_view_offset_returns_the_offset_window(frames_root):
    spec = WindowSpec(window_size=2, frame_step=1, window_stride=5, two_view_offset=3)
    dataset = WindowDataset(open_store(frames_root), spec, 48, NO_AUGMENT, dtype="float")
    views = dataset[1]["views"]  # clip0, start 5
    assert views.shape == (2, 2, 3, 48, 48) and views.dtype == torch.float32
    assert 0.0 <= views.min() and views.max() <= 1.0
    assert [frame_number(f * 255) for f in views[0]] == [6, 7]
    assert [frame_number(f * 255) for f in views[1]] == [9, 10]


def test_two_augmentations_of_the_same_window_differ(frames_root):
    dataset = WindowDataset(open_store(frames_root), WindowSpec(1), 32, AugmentConfig(), views=2)
    views = dataset[4]["views"]
    assert views.shape == (2, 1, 3, 32, 32)
    assert not torch.equal(views[0], views[1])


def test_augmentation_is_a_function_of_seed_epoch_and_index(frames_root):
    manifest = open_store(frames_root)
    make = lambda seed: WindowDataset(manifest, WindowSpec(3), 32, AugmentConfig(), seed=seed)  # noqa: E731
    a, b = make(0), make(0)
    assert torch.equal(a[(5, 1)]["views"], b[(5, 1)]["views"])
    assert not torch.equal(a[(5, 1)]["views"], a[(5, 2)]["views"])
    assert not torch.equal(a[(5, 1)]["views"], make(1)[(5, 1)]["views"])


def test_consistent_augmentation_keeps_identical_frames_identical():
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 256, size=(40, 56, 3), dtype=np.uint8)
    config = AugmentConfig(consistent=True, jitter_p=1.0, grayscale_p=0.5, blur_p=0.5, flip_p=0.5)
    augment = WindowAugment(config, 24)
    for trial in range(20):
        out = augment([frame.copy() for _ in range(5)], np.random.default_rng(trial))
        assert all(torch.equal(out[0], out[t]) for t in range(1, 5))
    independent = WindowAugment(dataclasses.replace(config, consistent=False), 24)
    out = independent([frame.copy() for _ in range(5)], np.random.default_rng(0))
    assert not all(torch.equal(out[0], out[t]) for t in range(1, 5))


def test_crop_parameters_respect_scale_and_ratio():
    rng = np.random.default_rng(0)
    config = AugmentConfig(crop_scale=[0.3, 0.6], crop_ratio=[0.5, 2.0])
    for _ in range(200):
        top, left, h, w = sample_params(rng, config, 48, 64).crop
        assert 0 <= top and top + h <= 1 + 1e-9 and 0 <= left and left + w <= 1 + 1e-9
        assert 0.3 - 1e-9 <= h * w <= 0.6 + 1e-9
        assert 0.5 - 1e-9 <= (w * 64) / (h * 48) <= 2.0 + 1e-9


def test_corrupt_frame_is_replaced_and_counted(frames_root, caplog):
    bad = frames_root / "clip0" / "frame_2.jpg"
    bad.write_bytes(bad.read_bytes()[:200])  # truncated JPEG
    dataset = WindowDataset(open_store(frames_root), WindowSpec(3), 32, NO_AUGMENT)
    sample = dataset[0]  # frames 1-3 of clip0 include the bad one; so do windows 1 (2-4)
    assert sample["replaced"] == 2 and sample["index"] == 2
    assert "frame_2.jpg" in caplog.text and "truncated JPEG" in caplog.text
    # every sample of an epoch still loads
    assert all(dataset[i]["views"].shape == (1, 3, 3, 32, 32) for i in range(len(dataset)))


def test_all_corrupt_gives_one_clear_error(tmp_path):
    root = tmp_path / "frames"
    folder = write_clip(root, "c", 20)
    for path in list(folder.iterdir())[1:]:
        path.write_bytes(b"garbage")
    dataset = WindowDataset(open_store(root), WindowSpec(2), 32, NO_AUGMENT)
    with pytest.raises(CLTTError, match="have corrupt frames; run cltt index .* --verify"):
        dataset[0]


def test_window_longer_than_every_clip(frames_root):
    with pytest.raises(CLTTError, match="no clip under .* is long enough for one window: a sample needs 25 frames"):
        WindowDataset(open_store(frames_root), WindowSpec(25), 32, NO_AUGMENT)


def test_object_focus_blurs_outside_the_box(frames_root):
    (frames_root / "boxes.csv").write_text("clip,frame,x1,y1,x2,y2\nclip0,frame_1.jpg,0,0,32,48\n")
    recipe = load_recipe(overrides=[f"data.root={frames_root}", "data.window_size=1", "data.image_size=48",
                                    "data.object_focus=boxes", "data.augment.enabled=false"])
    focused = windows_dataset(recipe.data, open_frames(recipe.data))[0]["views"][0, 0]
    plain = windows_dataset(dataclasses.replace(recipe.data, object_focus="none"), open_frames(recipe.data))[0]["views"][0, 0]
    # centre view of a 48x64 frame keeps columns 8..55; the box covers original columns 0..31 -> 0..23 here
    assert torch.equal(focused[:, :, :20], plain[:, :, :20])
    assert not torch.equal(focused[:, :, 28:], plain[:, :, 28:])
    # frame 2 has no box: unchanged with "boxes", blurred centre-out with "boxes_or_center"
    second = windows_dataset(recipe.data, open_frames(recipe.data))[1]["views"][0, 0]
    plain_second = windows_dataset(dataclasses.replace(recipe.data, object_focus="none"), open_frames(recipe.data))[1]["views"][0, 0]
    assert torch.equal(second, plain_second)
    center = windows_dataset(dataclasses.replace(recipe.data, object_focus="boxes_or_center"), open_frames(recipe.data))[1]["views"][0, 0]
    assert torch.equal(center[:, 20:28, 20:28], plain_second[:, 20:28, 20:28])
    assert not torch.equal(center[:, :4], plain_second[:, :4])


def test_boxes_naming_an_unknown_clip(frames_root):
    (frames_root / "boxes.csv").write_text("clip,frame,x1,y1,x2,y2\nnope,frame_1.jpg,0,0,3,3\n")
    recipe = load_recipe(overrides=[f"data.root={frames_root}", "data.object_focus=boxes"])
    with pytest.raises(CLTTError, match="line 2: clip 'nope' is not under"):
        windows_dataset(recipe.data, open_frames(recipe.data))


def test_reduced_decode_for_small_outputs(tmp_path):
    root = tmp_path / "frames"
    write_clip(root, "big", 3, size=(480, 640))
    dataset = WindowDataset(open_store(root), WindowSpec(1), 112, NO_AUGMENT)
    assert dataset.reduction == 4  # 480 / 4 = 120 >= 112
    assert dataset[0]["views"].shape[-2:] == (112, 112)


def test_same_draw_gives_two_views_one_augmentation(frames_root):
    """positives: time — window(t) and window(t+1) share frame t+1, which must come out identical;
    with a draw per view (positives: both) it does not."""
    recipe = load_recipe(None, [f"data.root={frames_root}", "data.window_size=2", "data.two_view_offset=1",
                                "data.image_size=32", "data.augment.crop_scale=[0.2, 0.5]"])
    index = open_frames(recipe.data)
    shared = windows_dataset(recipe.data, index, seed=3, same_draw=True)[(5, 0)]["views"]
    own = windows_dataset(recipe.data, index, seed=3)[(5, 0)]["views"]
    assert torch.equal(shared[0, 1], shared[1, 0])
    assert not torch.equal(own[0, 1], own[1, 0])
    assert torch.equal(own[0], windows_dataset(recipe.data, index, seed=3)[(5, 0)]["views"][0])  # deterministic


def test_data_clips_keeps_only_the_listed_clips_windows(frames_root, tmp_path):
    listed = tmp_path / "train_clips.txt"
    listed.write_text("# the train split\nclip0\n\nclip2/\n")
    recipe = load_recipe(overrides=[f"data.root={frames_root}", "data.window_size=3", f"data.clips={listed}"])
    store = open_frames(recipe.data)
    every = windows_dataset(dataclasses.replace(recipe.data, clips=None), store, augment=False)
    kept = windows_dataset(recipe.data, store, augment=False)
    assert set(every.table.clip.tolist()) == {0, 1, 2}
    assert set(kept.table.clip.tolist()) == {0, 2}
    assert len(kept) == len(every) - (17 - 2)  # clip1's 15 windows of 3 frames are gone, the others all kept
    frames = {f for i in range(len(kept)) for view in kept.window_frames(i) for f in view}
    assert frames.isdisjoint(range(store.clip_offsets[1], store.clip_offsets[2]))


def test_data_clips_also_restricts_sequences(frames_root, tmp_path):
    from cltt.data.build import training_clips
    from cltt.data.sequences import SequenceDataset

    listed = tmp_path / "train_clips.txt"
    listed.write_text("clip1\n")
    recipe = load_recipe(overrides=[f"data.root={frames_root}", f"data.clips={listed}"])
    store = open_frames(recipe.data)
    dataset = SequenceDataset(store, 4, (0.5, 1.0), 32, NO_AUGMENT, samples_per_clip=3,
                              clips=training_clips(recipe.data, store))
    assert len(dataset) == 3 and {dataset.clip_of(i) for i in range(3)} == {1}


def test_data_clips_naming_an_unknown_clip_or_none(frames_root, tmp_path):
    listed = tmp_path / "train_clips.txt"
    listed.write_text("clip0\nclip9\n")
    recipe = load_recipe(overrides=[f"data.root={frames_root}", f"data.clips={listed}"])
    with pytest.raises(CLTTError, match="data.clips lists 1 clip.* not under .*, first 'clip9'"):
        windows_dataset(recipe.data, open_frames(recipe.data))
    listed.write_text("# nothing\n")
    with pytest.raises(CLTTError, match="names no clip"):
        windows_dataset(recipe.data, open_frames(recipe.data))
    recipe = load_recipe(overrides=[f"data.root={frames_root}", f"data.clips={tmp_path / 'missing.txt'}"])
    with pytest.raises(CLTTError, match="cannot read the clip list"):
        windows_dataset(recipe.data, open_frames(recipe.data))
