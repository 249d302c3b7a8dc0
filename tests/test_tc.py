"""Method ``tc`` (temporal classification, Orhan et al. 2020): its loss against a hand-worked
case, torch's own label-smoothed cross-entropy and a NumPy double loop; the segments of a corpus
(by time, clip by clip, never shared, pauses skipped); each frame's label in a window; and the
one-line refusals: a segment longer than the corpus, fewer than 2 segments, a segment that
leaves every clip whole, ``method.positives``,
a resumed run whose corpus changed. The engine tests (smoke, round trip, exact resume, two
processes, export refusal with the head) enumerate it from the registry
(``tests/test_methods_engine.py -k tc``)."""

from __future__ import annotations

import math
import shutil

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from cltt.cli import main
from cltt.data.build import open_frames, windows_dataset
from cltt.data.segments import SegmentWindows, time_segments
from cltt.data.timestamps import write_timestamps
from cltt.engine import checkpoint as ckpt
from cltt.engine import run_files
from cltt.engine.run_dir import prepare_resume
from cltt.engine.trainer import Trainer
from cltt.errors import CLTTError, RecipeError
from cltt.export import open_checkpoint
from cltt.methods import build_method
from cltt.objectives.temporal_classification import segment_classification_loss
from cltt.recipe import load_recipe
from tests.conftest import invoke_in_process, write_clip
from tests.helpers.commands import one_line_error
from tests.helpers.training import method_recipe, train_in_process

# --------------------------------------------------------------------------- the loss


def test_loss_on_a_case_worked_by_hand():
    # logits (0, ln 3): softmax (1/4, 3/4)
    logits = torch.tensor([[0.0, math.log(3.0)], [0.0, math.log(3.0)]])
    total, units = segment_classification_loss(logits, torch.tensor([1, 0]))
    assert float(units) == 2
    assert float(total) == pytest.approx(math.log(4 / 3) + math.log(4))
    # ε = 0.5 over 2 classes: targets (1/4, 3/4) and (3/4, 1/4)
    total, _ = segment_classification_loss(logits, torch.tensor([1, 0]), label_smoothing=0.5)
    first = -(0.25 * math.log(0.25) + 0.75 * math.log(0.75))
    second = -(0.75 * math.log(0.25) + 0.25 * math.log(0.75))
    assert float(total) == pytest.approx(first + second)


def numpy_loss(logits: np.ndarray, labels: np.ndarray, smoothing: float) -> float:
    total = 0.0
    for row, label in zip(logits.astype(np.float64), labels):
        shift = row.max()
        log_norm = shift + math.log(sum(math.exp(v - shift) for v in row))
        classes = len(row)
        for c, value in enumerate(row):
            target = (1 - smoothing) * (c == label) + smoothing / classes
            total -= target * (value - log_norm)
    return total


@pytest.mark.parametrize("frames, classes", [(1, 2), (7, 3), (32, 50)])
@pytest.mark.parametrize("smoothing", [0.0, 0.1, 0.7])
@pytest.mark.parametrize("scale", [1.0, 30.0])
def test_loss_equals_torch_cross_entropy_and_a_double_loop(frames, classes, smoothing, scale):
    generator = torch.Generator().manual_seed(frames * classes)
    logits = torch.randn(frames, classes, generator=generator) * scale
    labels = torch.randint(classes, (frames,), generator=generator)
    total, units = segment_classification_loss(logits, labels, smoothing)
    reference = F.cross_entropy(logits, labels, label_smoothing=smoothing, reduction="sum")
    torch.testing.assert_close(total, reference, rtol=1e-5, atol=1e-5)
    assert float(total) == pytest.approx(numpy_loss(logits.numpy(), labels.numpy(), smoothing), rel=1e-5, abs=1e-6)
    assert float(units) == frames


# --------------------------------------------------------------------------- segments


def test_segments_by_time_clip_by_clip(frames_root):
    # clips of 12, 17 and 22 frames at the nominal 30 fps; 0.2 s = 6 frames a segment
    segments = time_segments(open_frames(load_recipe(overrides=[f"data.root={frames_root}"]).data), 0.2)
    assert segments.table.tolist() == [[0, 0, 6], [0, 6, 6],
                                       [1, 0, 6], [1, 6, 6], [1, 12, 5],
                                       [2, 0, 6], [2, 6, 6], [2, 12, 6], [2, 18, 4]]
    assert segments.of_frame.tolist() == [0] * 6 + [1] * 6 + [2] * 6 + [3] * 6 + [4] * 5 + \
        [5] * 6 + [6] * 6 + [7] * 6 + [8] * 4
    assert segments.duration == pytest.approx((12 + 17 + 22) / 30)


def test_recorded_times_decide_and_a_pause_takes_no_class(tmp_path):
    root = tmp_path / "frames"
    folder = write_clip(root, "walk", 6)
    names = sorted(p.name for p in folder.iterdir())
    # 10 fps, then a 1 s pause before the last two frames; 0.7 / 0.1 must be segment 7, not 6
    write_timestamps(folder / "timestamps.csv", names, [None] * 6, [0.0, 0.1, 0.2, 0.7, 1.7, 1.8])
    store = open_frames(load_recipe(overrides=[f"data.root={root}"]).data)
    segments = time_segments(store, 0.1)
    assert segments.of_frame.tolist() == [0, 1, 2, 3, 4, 5]
    by_half = time_segments(store, 0.5)  # segments 0, 1, (2 empty), 3
    assert by_half.of_frame.tolist() == [0, 0, 0, 1, 2, 2]
    assert by_half.table.tolist() == [[0, 0, 3], [0, 3, 1], [0, 4, 2]]


def test_each_frame_of_a_window_carries_its_own_segment(frames_root):
    recipe = load_recipe(overrides=[f"data.root={frames_root}", "data.window_size=3", "data.window_stride=1",
                                    "data.image_size=32", "method.name=tc", "method.tc.segment_seconds=0.2"])
    store = open_frames(recipe.data)
    dataset = SegmentWindows(windows_dataset(recipe.data, store), time_segments(store, 0.2))
    crossing = dataset[4]  # clip 0, frames 4, 5, 6: across the boundary at frame 6
    assert dataset.windows.window_frames(4) == [[4, 5, 6]]
    assert crossing["segment"].tolist() == [[0, 0, 1]]
    assert crossing["views"].shape == (1, 3, 3, 32, 32)


# --------------------------------------------------------------------------- one-line refusals


@pytest.mark.parametrize("seconds, fragment", [
    (5.0, "method.tc.segment_seconds=5 is longer than the whole corpus"),
    (0.5, "into 1 segment, and temporal classification needs at least 2 classes"),
])
def test_a_corpus_of_too_few_segments_is_refused_in_one_line(tmp_path, seconds, fragment):
    root = tmp_path / "frames"
    write_clip(root, "clip0", 15)  # 0.5 s at 30 fps
    recipe = method_recipe(tmp_path, root, "tc", epochs=1)
    one_line_error(invoke_in_process(main, ["train", recipe, f"method.tc.segment_seconds={seconds}"], tmp_path),
                   fragment)


def test_a_segment_that_leaves_every_clip_whole_is_refused_in_one_line(tmp_path, frames_root):
    """Clips of 0.4, 0.57 and 0.73 s (12, 17, 22 frames at 30 fps): a 1 s segment is shorter
    than the corpus (1.7 s) and gives 3 classes, but each is a whole clip, so tc would learn clip
    identity and no time; it trained silently. One segment short of that, 0.7 s, cuts the
    longest clip in two and trains."""
    recipe = method_recipe(tmp_path, frames_root, "tc", epochs=1)
    store = open_frames(load_recipe(overrides=[f"data.root={frames_root}"]).data)
    whole = time_segments(store, 1.0)
    assert (whole.count, whole.clips, whole.duration, whole.longest) == (3, 3, pytest.approx(1.7), pytest.approx(22 / 30))
    one_line_error(invoke_in_process(main, ["train", recipe, "method.tc.segment_seconds=1.0"], tmp_path),
                   "method.tc.segment_seconds=1 leaves every clip of", "(the longest spans 0:00.73)",
                   "each clip would be one class", "lower method.tc.segment_seconds below the longest clip")
    assert not list((tmp_path / "runs").glob("*/checkpoint_*.pth"))  # refused before training
    assert time_segments(store, 0.7).count == 4  # the 22-frame clip in two
    assert invoke_in_process(main, ["train", recipe, "method.tc.segment_seconds=0.7"], tmp_path).exit_code == 0


def test_positives_are_refused_for_tc():
    with pytest.raises(RecipeError, match="'method.positives' is not read by method tc") as info:
        load_recipe(overrides=["method.name=tc", "method.positives=time"])
    assert "\n" not in str(info.value)


# --------------------------------------------------------------------------- checkpoints and the corpus


def test_a_checkpoint_loads_where_the_frames_are_not_and_exports_only_the_backbone(tmp_path, frames_root):
    recipe_path = method_recipe(tmp_path, frames_root, "tc", epochs=1)
    assert train_in_process(recipe_path).status == "finished"
    state = ckpt.load_checkpoint(tmp_path / "runs" / "tiny" / run_files.FINAL_CHECKPOINT)
    assert state["model"]["encoder.head.weight"].shape[0] == 9 and state["model"]["segment_table"].shape == (9, 3)

    elsewhere = build_method(load_recipe(recipe_path, [f"data.root={tmp_path / 'gone'}"]))
    assert elsewhere.encoder.head.out_dim == 2  # a placeholder until the weights say
    elsewhere.load_state_dict(state["model"])
    trained = build_method(load_recipe(recipe_path))
    trained.load_state_dict(state["model"])
    frames = torch.rand(2, 3, 32, 32)
    torch.testing.assert_close(elsewhere.eval().encoder(frames), trained.eval().encoder(frames))
    assert elsewhere.encoder(frames).shape == (2, 9)
    with pytest.raises(CLTTError, match="classifies the 9 time segments of its own training corpus"):
        open_checkpoint(tmp_path / "runs" / "tiny").frame_encoder(True)


def test_a_resumed_run_on_a_changed_corpus_is_refused_in_one_line(tmp_path, frames_root):
    recipe_path = method_recipe(tmp_path, frames_root, "tc", epochs=1)
    assert train_in_process(recipe_path).status == "finished"
    shutil.rmtree(frames_root / "clip0")
    write_clip(frames_root, "clip0", 14)  # 47 windows: the same 5 batches an epoch, but 10 segments
    recipe, run_dir, resume, _ = prepare_resume(tmp_path / "runs" / "tiny", ["train.epochs=2"], True)
    with pytest.raises(CLTTError) as info:
        Trainer(recipe, run_dir, None, resume).run()
    message = str(info.value)
    assert "\n" not in message
    assert "in segments of 0.2 s now gives 10 segments, the weights loaded classify 9" in message
