"""How much of SlotContrast's reconstruction target is about the objects? Errors of the decoder
against predictors that use no slots, and against an oracle that knows the objects.

    python benchmarks/slot_recon.py runs/slot_seeds/w0.5_s0 runs/slot_seeds/w0_s0

For each run dir (a ``slotcontrast`` run; its recipe and final checkpoint), on the test clips
with instance masks, the target is the frozen backbone's patch features ``h [T, P, C]`` of a
whole clip, and each predictor's mean squared error per element is printed as a fraction of
the first one's (the target's variance over the split):

    channel mean     every patch of every frame predicted by the split's mean feature
    position mean    each patch position predicted by its mean over the split's frames (what a
                     decoder can do from position alone, with no slot)
    frame mean       each frame's patches predicted by their own mean (one slot for the frame)
    object oracle    each frame's patches predicted by the mean of their object's patches, the
                     objects read from the generator's instance masks (a patch belongs to the
                     instance that covers most of it; background is one more object): what a
                     perfect split into objects, each with one feature, gives
    oracle + position  the object oracle plus the position mean's offset from the channel mean
    decoder          the trained model's reconstruction, slots carried through the whole clip
                     by the predictor (what the probe scores)
    decoder, windows the same with slots restarted every ``data.window_size`` frames from the
                     learned initial slots, as in training

plus the share of the frame-mean error that lies on foreground patches, and the decoder
masks' mean largest slot share per patch (1.0: one slot takes every patch). When the object
oracle removes little more error than the position mean, splitting the scene into objects
lowers the loss by little, and the gradient towards it is small beside the one towards a
single slot that reconstructs the background.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from cltt.data.build import open_frames
from cltt.data.model_input import to_model_input
from cltt.engine import checkpoint as ckpt
from cltt.engine import run_files
from cltt.engine.run_dir import saved_recipe
from cltt.eval.probe import load_trained_method
from cltt.eval.slots import center_square, clip_frames, read_masks, scored_clips

PREDICTORS = ("channel mean", "position mean", "frame mean", "object oracle", "oracle + position", "decoder",
              "decoder, windows")


def patch_labels(masks: np.ndarray, grid: int) -> np.ndarray:
    """Instance masks ``[T, H, W]`` (0 background) -> the instance covering most of each patch ``[T, grid * grid]``."""
    t, h, w = masks.shape
    blocks = masks[:, : h - h % grid, : w - w % grid].reshape(t, grid, h // grid, grid, w // grid)
    blocks = blocks.transpose(0, 1, 3, 2, 4).reshape(t, grid * grid, -1)
    labels = np.zeros((t, grid * grid), dtype=np.int64)
    for i in range(t):
        for p in range(grid * grid):
            labels[i, p] = np.bincount(blocks[i, p]).argmax()
    return labels


@torch.no_grad()
def clip_outputs(method, frames: np.ndarray, window: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(target ``[T, P, C]``, decoder reconstruction ``[T, P, C]``, decoder masks ``[T, K, P]``) of one
    clip: slots carried through the whole clip (as the probe does), or with ``window`` restarted
    from the learned initial slots every ``window`` frames (as in training)."""
    batch = to_model_input(torch.from_numpy(frames).permute(0, 3, 1, 2), torch.device("cpu"))
    features, inputs = method.encoder.patches(batch)
    step = window or len(frames)
    slots = torch.cat([method.encoder.track(inputs[i:i + step].unsqueeze(0))[0] for i in range(0, len(frames), step)])
    recon, masks = method.decoder(slots)
    return features.float().numpy(), recon.float().numpy(), masks.float().numpy()


def measure(run_dir: Path) -> dict[str, float]:
    path = run_dir / run_files.FINAL_CHECKPOINT
    state = ckpt.load_checkpoint(path)
    recipe = saved_recipe(state, path)
    method = load_trained_method(recipe, state, path).eval()
    store = open_frames(recipe.data, synthetic=recipe.extract.synthetic)
    grid = method.encoder.features.grid
    clips, _ = scored_clips(recipe, store)
    targets, recons, windows, labels, shares, window_shares = [], [], [], [], [], []
    for clip in clips:
        true = read_masks(store, clip)
        if true is None:
            continue
        frames = clip_frames(store, clip, recipe.data.image_size)
        target, recon, masks = clip_outputs(method, frames)
        _, windowed, window_masks = clip_outputs(method, frames, recipe.data.window_size)
        targets.append(target)
        recons.append(recon)
        windows.append(windowed)
        labels.append(patch_labels(center_square(true), grid))
        shares.append(masks.max(axis=1).mean())
        window_shares.append(window_masks.max(axis=1).mean())
    h = np.concatenate(targets)  # [F, P, C]
    found = {"channel mean": h.mean(axis=(0, 1), keepdims=True), "position mean": h.mean(axis=0, keepdims=True),
             "frame mean": h.mean(axis=1, keepdims=True)}
    label = np.concatenate(labels)  # [F, P]
    oracle = np.empty_like(h)
    for f in range(len(h)):
        for obj in np.unique(label[f]):
            where = label[f] == obj
            oracle[f, where] = h[f, where].mean(axis=0)
    found["object oracle"] = oracle
    found["oracle + position"] = oracle + (found["position mean"] - found["channel mean"])
    found["decoder"] = np.concatenate(recons)
    found["decoder, windows"] = np.concatenate(windows)
    errors = {name: float(((h - np.broadcast_to(p, h.shape)) ** 2).mean()) for name, p in found.items()}
    frame_error = ((h - found["frame mean"]) ** 2).mean(axis=2)  # [F, P]
    errors["foreground share of frame-mean error"] = float(frame_error[label > 0].sum() / frame_error.sum())
    errors["foreground patches"] = float((label > 0).mean())
    errors["largest slot share"] = float(np.mean(shares))
    errors["largest slot share, windows"] = float(np.mean(window_shares))
    errors["clips"] = len(targets)
    return errors


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", type=Path, nargs="+", help="slotcontrast run dirs")
    args = parser.parse_args()
    results = {run: measure(run) for run in args.runs}
    width = max(len(str(r)) for r in args.runs)
    print("MSE per element as a fraction of the channel-mean predictor's (the target's variance), test clips")
    print(f"{'run':{width}}  " + "  ".join(f"{p:>17}" for p in PREDICTORS)
          + f"  {'fg share of err':>15}  {'fg patches':>10}  {'top slot share':>14}  {'windows':>7}")
    for run, e in results.items():
        base = e["channel mean"]
        print(f"{str(run):{width}}  " + "  ".join(f"{e[p] / base:17.3f}" for p in PREDICTORS)
              + f"  {e['foreground share of frame-mean error']:15.3f}  {e['foreground patches']:10.3f}"
              + f"  {e['largest slot share']:14.3f}  {e['largest slot share, windows']:7.3f}")


if __name__ == "__main__":
    main()
