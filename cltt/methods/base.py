"""What every method shares, and the few things a method overrides.

A batch holds ``b`` samples ``views [b, V, T, 3, S, S]`` (V views of a window of T frames)
and, for methods that name them in :attr:`Method.extra_keys`, more per-sample tensors from the
dataset (CARL's timestamps and padding masks). A method turns its samples into embeddings
(:meth:`Method.forward_step` -> ``[b, K, D]``) and scores the embeddings of all B samples of
the global batch with :meth:`Method.loss_terms`, which returns ``(total, units)`` for the
anchors of one process so the engine can sum both over processes, split batches into
sub-batches (exact accumulation embeds first, then backpropagates) and average exactly:

    L = sum over processes of total / sum over processes of units

A loss that is not a sum over anchors (VICReg's variance, Barlow Twins' cross-correlation)
computes L on the gathered batch and returns ``(L * count, count)``: the shares then add up
to L, and the gradients flow back to every sample's owner through the gather.

A method may add a *local* loss that needs no other sample (SlotContrast's reconstruction):
:meth:`Method.forward_step` returns it beside the embeddings as ``(total, units)`` and the
engine minimises ``sum(totals) / sum(units)`` of each part, summed over parts:

    L = contrast_total / contrast_units + local_total / local_units     (weights inside totals)

What a method overrides, each optional but the loss:

    build_encoder(recipe)        the module in ``self.encoder`` (a projection-headed frame
                                 encoder by default); what probes and export read, through
                                 the protocols of :mod:`cltt.models.representation`
    check_recipe(recipe)         refuse, in one line, data the method cannot run with
    check_training(recipe)       refuse, in one line, samples it cannot train on (asked by the
                                 trainer only: a probe may read other windows)
    negatives(recipe)            where an anchor's negatives come from (a batch of one sample is
                                 refused when they all come from other samples, warned about
                                 when only those inside its own sample are left)
    training_dataset(...)        its kind of sample (windows by default)
    encoded_frames(recipe)       frames a sample puts through the encoder (V * T by default)
    forward_step / loss_terms    embeddings and the loss
    after_step(step, total)      runs after every optimizer step (momentum teachers, loss state)
    export_encoder()             the per-frame encoder ``cltt export`` writes
    monitored(embeddings)        what the collapse monitor measures

Its own recipe section ``method.<name>.*``, the shared keys it reads and the positives it takes
are declared in :mod:`cltt.recipe.methods` (a plugin: given to ``register_method`` and set as
class attributes); an instance reads its section as ``self.options``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from cltt.errors import CLTTError
from cltt.models.encoder import ContrastiveEncoder, encoder_from_model
from cltt.models.freezing import keep_frozen_in_eval
from cltt.objectives import multi_positive_infonce


@dataclass
class Forward:
    """What one forward pass over a chunk of samples gives the engine.

    ``embeddings [b, K, D]`` go to :meth:`Method.loss_terms` (gathered over processes);
    ``local_total`` (a scalar, already weighted) and ``local_units`` (a count) are a loss
    part that each sample computes alone; None when the method has none.
    """

    embeddings: torch.Tensor
    local_total: torch.Tensor | None = None
    local_units: torch.Tensor | None = None


class Method(nn.Module):
    name = "base"
    config_class = None  # set by register_method: the dataclass of method.<name>.*
    extra_keys: tuple[str, ...] = ()  # per-sample dataset fields besides "views" the method reads
    loss_extra_keys: tuple[str, ...] | None = None  # of those, what loss_terms reads (gathered); None: all
    sample_kind = "windows"  # what one training sample is, for progress lines
    # set by register_method from the declaration (a plugin's own class attributes are its declaration)
    shared_keys: tuple[str, ...] = ()  # keys of the shared method section this method reads
    supported_positives: tuple[str, ...] = ()  # method.positives values it takes; the first is its default
    batch_statistics = False  # the loss depends on statistics of the whole batch (no sub-batch approximation)
    default_freeze = "none"  # model.freeze when the recipe leaves it null
    contrast_term = "contrast"  # what the loss_terms part is called in TensorBoard and W&B
    local_term = "local"  # what the forward_step's local part is called
    # The recipe sections of this method's smallest run on tests/conftest.py's 32 px clips
    # (beside tests/test_train.py's tiny recipe): the registry-enumerated engine tests use it.
    example: dict = {}
    # Named sections on top of ``example`` for a mode whose data flow differs (mae's later
    # target): the engine tests run each as they run the method itself.
    variants: dict[str, dict] = {}

    def __init__(self, recipe):
        super().__init__()
        self.config = recipe.method
        self.options = getattr(recipe.method, self.name, None)
        self.positives = self.resolved_positives(recipe)
        self.channels_last = False
        self.step, self.total_steps = 0, 1
        self.check_recipe(recipe)
        self.encoder = self.build_encoder(recipe)

    def train(self, mode: bool = True) -> "Method":
        """Set training mode, keeping the modules ``model.freeze`` made static in eval mode."""
        super().train(mode)
        keep_frozen_in_eval(self)
        return self

    # ------------------------------------------------------------------ what a method declares

    @classmethod
    def resolved_positives(cls, recipe) -> str | None:
        """``method.positives``, or this method's default when the recipe leaves it null."""
        if not cls.supported_positives:
            return None
        return recipe.method.positives or cls.supported_positives[0]

    @classmethod
    def check_recipe(cls, recipe) -> None:
        """Raise :class:`CLTTError` (one line) when this method cannot run with ``recipe``'s data."""
        if cls.batch_statistics and recipe.train.sub_batch_size and recipe.train.accumulation == "approximate":
            raise CLTTError(f"method.name={cls.name}'s loss uses statistics of the whole batch, so a loss per "
                            "sub-batch would change the objective; use train.accumulation=exact (same loss and "
                            "gradients as the full batch) or drop train.sub_batch_size")
        if recipe.train.batch_size == 1:
            if cls.batch_statistics:
                raise CLTTError(f"train.batch_size=1: method.name={cls.name}'s loss uses statistics over the samples of "
                                "a batch (variances, correlations), which one sample does not have; use train.batch_size=2 "
                                "or more")
            if cls.negatives(recipe) == "batch":
                raise CLTTError(f"train.batch_size=1: method.name={cls.name} contrasts each sample with the other samples "
                                "of the batch, so a batch of one has no negatives and its loss could only pull embeddings together; "
                                "use train.batch_size=2 or more")

    @classmethod
    def check_training(cls, recipe) -> None:
        """Raise :class:`CLTTError` (one line) when this method cannot *train* on ``recipe``'s samples
        (their window shape, their augmentation). Only the trainer asks: ``cltt probe`` and
        ``visualize`` build the method with the windows they read (``data.window_size`` is theirs
        to change), which need not be the training ones."""

    @classmethod
    def negatives(cls, recipe) -> str:
        """Where an anchor's negatives come from with ``recipe``: ``batch`` (only the other samples of
        the global batch), ``batch+sample`` (those and other frames or slots of its own sample),
        ``sample`` (its own sample only), ``queue`` (a memory of earlier batches, as MoCo keeps) or
        ``none`` (a loss without negatives: BYOL, DINO, VICReg). Only ``batch`` refuses a batch of one."""
        return "none"

    @classmethod
    def batch_warning(cls, recipe) -> str | None:
        """A line to show when ``recipe`` trains but contrasts less than it seems to (None otherwise):
        a batch of one whose anchors keep only the negatives inside their own sample."""
        if recipe.train.batch_size == 1 and cls.negatives(recipe) == "batch+sample":
            return (f"warning: train.batch_size=1: method.name={cls.name} has no other sample to contrast with; each "
                    "anchor's only negatives are the other frames (or slots) of its own sample; raise train.batch_size "
                    "for negatives from other windows")
        return None

    def build_encoder(self, recipe) -> nn.Module:
        """The frame encoder with its projection head (``model.*``)."""
        return encoder_from_model(recipe.model, recipe.data.image_size)

    @classmethod
    def probe_levels(cls, recipe) -> tuple[str, ...]:
        """The ``probe.level`` values this method's encoder can give features at."""
        return ("frame", "window", "clip")

    @staticmethod
    def dataset_views(recipe) -> int:
        """Views per sample the dataset must produce (2 for two augmentations of one window)."""
        return 1

    @classmethod
    def encoded_frames(cls, recipe) -> int:
        """Frames one training sample puts through the trained encoder a step (a momentum teacher's
        are not counted): what a budget of equal compute across methods divides by. V * T by default."""
        views = 2 if recipe.data.two_view_offset else cls.dataset_views(recipe)  # k > 0: window(t) and window(t+k)
        return views * recipe.data.window_size

    @classmethod
    def training_dataset(cls, recipe, store, seed: int):
        """The augmented training samples over ``store`` (a :class:`~cltt.data.stores.FrameStore`): windows by default.

        Items are dicts with ``views`` uint8 ``[V, T, 3, S, S]`` and the :attr:`extra_keys`.
        """
        from cltt.data.build import windows_dataset

        return windows_dataset(recipe.data, store, views=cls.dataset_views(recipe), augment=True, seed=seed)

    # ------------------------------------------------------------------ one step

    def forward_step(self, views: torch.Tensor, extras: dict[str, torch.Tensor]) -> Forward:
        """``views [b, V, T, 3, S, S]`` float (model input) and this chunk's ``extras`` -> :class:`Forward`."""
        return Forward(self.embed(views))

    def embed(self, views: torch.Tensor) -> torch.Tensor:
        """``[b, V, T, 3, S, S]`` float -> projections of every frame ``[b, V*T, D]``."""
        return self.encode_frames(views.flatten(1, 2))

    def encode_frames(self, frames: torch.Tensor, module: nn.Module | None = None) -> torch.Tensor:
        """``frames [b, K, 3, S, S]`` through ``module`` (default the encoder) -> ``[b, K, D]``."""
        b, k = frames.shape[:2]
        flat = frames.flatten(0, 1)
        if self.channels_last:
            flat = flat.contiguous(memory_format=torch.channels_last)
        return (module or self.encoder)(flat).view(b, k, -1)

    def loss_terms(self, embeddings: torch.Tensor, first: int, count: int,
                   extras: dict[str, torch.Tensor] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """The loss of anchors from samples ``first .. first+count-1`` against all samples.

        ``embeddings [B, K, D]`` and ``extras`` (each ``[B, ...]``, all processes' samples)
        -> ``(total, units)``; loss = sum of totals / sum of units.
        """
        raise NotImplementedError

    def before_step(self, step: int, total_steps: int) -> None:
        """Called before optimizer step ``step + 1`` (``step`` steps done) of ``total_steps``, on
        every process, also after a resume: the schedule position, for schedules of the step."""
        self.step, self.total_steps = step, total_steps

    def after_step(self, step: int, total_steps: int) -> None:
        """Called after optimizer step ``step`` (1-based) of ``total_steps``, on every process."""

    # ------------------------------------------------------------------ what eval and export read

    def monitored(self, embeddings: torch.Tensor) -> torch.Tensor:
        """The ``[N, D]`` rows whose spread the collapse monitor reports (all embeddings by default)."""
        return embeddings.flatten(0, -2)

    def monitor_images(self, inputs: torch.Tensor, frames: np.ndarray) -> dict[str, np.ndarray]:
        """Pictures of what the method learns, for TensorBoard and W&B (``log.images_every``).

        ``inputs [n, V, T, 3, S, S]`` model input and the same samples' ``frames [n, V, T, S, S, 3]``
        uint8 -> ``{name: RGB uint8 [H, W, 3]}``; called in eval mode without a graph. None by default.
        """
        return {}

    def export_encoder(self) -> tuple[nn.Module, str | None]:
        """(the per-frame encoder ``cltt export`` writes, why its head cannot come along or None).

        The encoder must have ``backbone``, ``head`` and ``feature_dim``, as a
        :class:`~cltt.models.encoder.ContrastiveEncoder` does.
        """
        if isinstance(self.encoder, ContrastiveEncoder):
            return self.encoder, None
        raise CLTTError(f"method {self.name} has no per-frame encoder to export; judge it with cltt probe RUN_DIR")


class InfoNCEMethod(Method):
    """Methods whose loss is the multi-positive InfoNCE of :mod:`cltt.objectives.infonce`:
    embeddings with equal :meth:`frame_groups` ids are positives, every other embedding of the
    global batch a negative, at ``method.temperature`` with ``method.decoupled``."""

    shared_keys = ("temperature", "decoupled")

    @classmethod
    def negatives(cls, recipe) -> str:
        return "batch"

    def frame_groups(self, num_samples: int, frames: int, device: torch.device) -> torch.Tensor:
        """Group id of each of the ``num_samples * frames`` embeddings; equal ids are positives."""
        raise NotImplementedError

    def loss_terms(self, embeddings: torch.Tensor, first: int, count: int,
                   extras: dict[str, torch.Tensor] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        num_samples, frames = embeddings.shape[:2]
        groups = self.frame_groups(num_samples, frames, embeddings.device)
        anchors = torch.arange(first * frames, (first + count) * frames, device=embeddings.device)
        return multi_positive_infonce(
            embeddings.flatten(0, 1),
            groups,
            temperature=self.config.temperature,
            reduction=self.config.reduction,
            decoupled=self.config.decoupled,
            anchors=anchors,
        )


def batch_share(loss: torch.Tensor, count: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A loss ``L`` of the whole gathered batch as one process's share ``(L * count, count)``:
    summed over processes and divided by the summed counts it is ``L`` again."""
    return loss * count, torch.tensor(float(count), device=loss.device)


def window_groups(num_samples: int, frames: int, device: torch.device) -> torch.Tensor:
    """Every frame of sample i is in group i: ``[0]*K + [1]*K + ...``."""
    return torch.arange(num_samples, device=device).repeat_interleave(frames)


def aligned_groups(num_samples: int, frames: int, device: torch.device) -> torch.Tensor:
    """Frame t of view 0 and frame t of view 1 of a sample share a group (K = 2T).

    Embedding k of sample i is view k // T, frame k % T; its group is ``i * T + k % T``.
    """
    per_view = frames // 2
    within = torch.arange(frames, device=device) % per_view
    return (torch.arange(num_samples, device=device)[:, None] * per_view + within).reshape(-1)
