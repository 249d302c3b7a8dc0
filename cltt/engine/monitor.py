"""What training shows in TensorBoard and W&B: the same scalars and images, to every sink.

    monitor = Monitor([TensorBoardSink(run_dir, purge_step=0)])
    monitor.scalars({"train/loss": 4.1, "train/lr": 1e-3}, step=10)
    monitor.images({"images/batch": grid}, step=10)          # RGB uint8 [H, W, 3]
    monitor.close()

Names (``log.step_every`` steps apart for ``train/*``, at each epoch's end for the rest):

    train/loss, train/loss_<term>     the loss and its parts (the method's contrast_term and
                                      local_term: slotcontrast's slot_contrast, reconstruction)
    train/lr, train/lr_<group>        the default group's rate, and each train.param_groups one
    train/frames_per_second, train/data_wait
    epoch/loss, epoch/learning_rate, epoch/decay_rate, epoch/embedding_spread
    probe/train_acc, probe/val_acc, probe/test_acc, ...   (probe.every)
    images/batch, images/<method's>   every log.images_every steps (slot masks, CARL's alignment)
    epoch                             W&B only, beside every row (an x-axis to choose there); in
                                      TensorBoard, whose x-axis is the step, it was a stray chart

TensorBoard also gets the resolved recipe at the run's first step: its keys as hyper-parameters
(the HPARAMS tab, dotted names, against epoch/loss and train/loss) and its YAML (the TEXT tab,
``recipe``); a resumed run adds them again at the step it resumes from. W&B has the recipe as
its run config. TensorBoard's event files go to ``RUN_DIR/tensorboard``; no network is used. A resumed run
opens its writer with ``purge_step`` just after the step it resumes from, so TensorBoard drops
what the stopped process logged after its last checkpoint and the curves stay those of one run.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import torch

from cltt.engine.run_files import TENSORBOARD_DIR

SHOWN_SAMPLES = 4  # samples of a batch drawn in images/batch and the method's images


HPARAM_METRICS = ("epoch/loss", "train/loss")  # the scalars TensorBoard's HPARAMS tab sets against the recipe


class TensorBoardSink:
    def __init__(self, run_dir: Path, purge_step: int | None = None, recipe=None, start_step: int = 0) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(log_dir=str(Path(run_dir) / TENSORBOARD_DIR), purge_step=purge_step)
        if recipe is not None:
            self._describe(recipe, start_step)

    def _describe(self, recipe, step: int) -> None:
        """The resolved recipe as hyper-parameters and as YAML text, at ``step``."""
        from torch.utils.tensorboard.summary import hparams

        from cltt.recipe import dump_recipe, recipe_to_dict

        values = {key: _hparam_value(value) for key, value in _dotted(recipe_to_dict(recipe)).items()}
        experiment, session_start, _ = hparams(values, dict.fromkeys(HPARAM_METRICS, 0.0))
        # into this run's own event file: SummaryWriter.add_hparams would open a second run beside it
        events = self.writer._get_file_writer()
        events.add_summary(experiment, step)
        events.add_summary(session_start, step)
        self.writer.add_text("recipe", "    " + dump_recipe(recipe).rstrip("\n").replace("\n", "\n    "), step)  # indented: shown as code

    def scalars(self, values: dict[str, float], step: int, epoch: float | None = None) -> None:
        for name, value in values.items():
            self.writer.add_scalar(name, value, step)

    def images(self, images: dict[str, np.ndarray], step: int) -> None:
        for name, image in images.items():
            self.writer.add_image(name, image, step, dataformats="HWC")
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


class WandbSink:
    """The run's :class:`~cltt.engine.wandb_run.WandbRun`, given the same names."""

    def __init__(self, run) -> None:
        self.run = run

    def scalars(self, values: dict[str, float], step: int, epoch: float | None = None) -> None:
        self.run.log(values if epoch is None else {**values, "epoch": epoch}, step=step)

    def images(self, images: dict[str, np.ndarray], step: int) -> None:
        self.run.log_images(images, step=step)

    def close(self) -> None:
        self.run.finish()


class Monitor:
    """Every sink at once; with none it does nothing, so the trainer can always call it."""

    def __init__(self, sinks: list) -> None:
        self.sinks = sinks

    @property
    def active(self) -> bool:
        return bool(self.sinks)

    def scalars(self, values: dict[str, float], step: int, epoch: float | None = None) -> None:
        """``values`` at global ``step``; ``epoch`` (fractional inside an epoch) for the sinks that plot against it."""
        for sink in self.sinks:
            sink.scalars(values, step, epoch)

    def images(self, images: dict[str, np.ndarray], step: int) -> None:
        if images:
            for sink in self.sinks:
                sink.images(images, step)

    def close(self) -> None:
        for sink in self.sinks:
            sink.close()
        self.sinks = []


def step_scalars(loss: float, terms: dict[str, float], rates: dict[str, float], lr: float,
                 frames_per_second: float, data_wait: float) -> dict[str, float]:
    """The ``train/*`` scalars of one step (module doc); ``rates`` are the groups' learning rates."""
    values = {"train/loss": loss, "train/lr": lr, "train/frames_per_second": frames_per_second,
              "train/data_wait": data_wait}
    if len(terms) > 1:
        values.update({f"train/loss_{name}": value for name, value in terms.items()})
    if len(rates) > 1:
        values.update({f"train/lr_{_tag(name)}": value for name, value in rates.items()})
    return values


def _dotted(tree: dict, prefix: str = "") -> dict:
    """``{"train": {"lr": 0.1}}`` -> ``{"train.lr": 0.1}``, as recipe keys are written on the command line."""
    flat = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            flat.update(_dotted(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _hparam_value(value):
    """A recipe value as TensorBoard's hyper-parameters take it: numbers and text as they are,
    anything else as text the recipe would accept: true/false (torch would log a bool as 1/0),
    null, lists."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float, str)):
        return value
    return "null" if value is None else str(value)


def _tag(pattern: str) -> str:
    """A parameter-group pattern as a tag TensorBoard and W&B show plainly: ``^encoder\\.features`` -> ``encoder_features``."""
    return re.sub(r"[^A-Za-z0-9]+", "_", pattern).strip("_") or "group"


@torch.no_grad()
def training_images(method, views: torch.Tensor, placement) -> dict[str, np.ndarray]:
    """``images/batch`` and the method's own images (:meth:`Method.monitor_images`) of this step's
    first :data:`SHOWN_SAMPLES` samples ``views [b, V, T, 3, S, S]`` uint8.

    The model is run in eval mode and torch's random state is restored afterwards, so a run
    with images trains exactly as one without.
    """
    from cltt.data.model_input import to_model_input
    from cltt.data.tiles import views_grid

    shown = views[:SHOWN_SAMPLES]
    frames = shown.flatten(1, 2).permute(0, 1, 3, 4, 2).cpu().numpy()  # [n, V*T, S, S, 3]
    images = {"images/batch": views_grid(frames)}
    devices = [placement.device] if placement.device.type == "cuda" else []
    was_training = method.training
    with torch.random.fork_rng(devices=devices):
        method.eval()
        try:
            own = method.monitor_images(to_model_input(shown, placement.device), frames.reshape(shown.shape[:3] + frames.shape[2:]))
        finally:
            method.train(was_training)
    images.update({f"images/{name}": image for name, image in own.items()})
    return images
