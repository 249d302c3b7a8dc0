"""The one YAML recipe format every subcommand reads.

A recipe is a YAML file with the sections below; every key has a typed default, so a recipe
names only what it changes. On the command line ``key.sub=value`` overrides one key, the value
parsed as a YAML scalar (``train.lr=3e-4``, ``data.augment.consistent=false``,
``method.name=simclr``). An unknown key, a wrong type or an out-of-range value is a
:class:`~cltt.errors.RecipeError` whose one line names the key, what was expected and, for an
unknown key, the closest valid one.

    recipe = load_recipe("recipes/quickstart.yaml", ["train.epochs=2"])
    recipe.data.window_size          # typed access
    print(dump_recipe(recipe))       # the resolved recipe, as saved in a run dir

Derived values (a scaled learning rate, the number of windows) are never written back here.
"""

from __future__ import annotations

import dataclasses
import difflib
import re
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Optional, Sequence, Union

import yaml

from cltt.errors import CLTTError, RecipeError

# --------------------------------------------------------------------------- schema


@dataclass
class AugmentConfig:
    """Spatial and photometric augmentation of every view of a window."""

    enabled: bool = True
    consistent: bool = True  # one draw per window (True) or an independent draw per frame
    crop_scale: list[float] = field(default_factory=lambda: [0.2, 1.0])
    crop_ratio: list[float] = field(default_factory=lambda: [3 / 4, 4 / 3])
    flip_p: float = 0.5
    jitter_p: float = 0.8
    jitter: list[float] = field(default_factory=lambda: [0.4, 0.4, 0.4, 0.1])  # b, c, s, hue
    grayscale_p: float = 0.2
    blur_p: float = 0.0
    blur_sigma: list[float] = field(default_factory=lambda: [0.1, 2.0])

    def validate(self, at: str) -> None:
        check_pair(self.crop_scale, f"{at}.crop_scale", low=0.0, high=1.0)
        check_pair(self.crop_ratio, f"{at}.crop_ratio", low=0.0)
        check_pair(self.blur_sigma, f"{at}.blur_sigma", low=0.0)
        for name in ("flip_p", "jitter_p", "grayscale_p", "blur_p"):
            check_probability(getattr(self, name), f"{at}.{name}")
        if len(self.jitter) != 4 or any(v < 0 for v in self.jitter) or self.jitter[3] > 0.5:
            raise RecipeError(
                f"recipe key '{at}.jitter' must be [brightness, contrast, saturation, hue] "
                f"with values >= 0 and hue <= 0.5, got {self.jitter}"
            )


DEFAULT_MAX_PIXELS = 50_000_000  # data.max_pixels: 50 MP (a 4K video frame is 8.3 MP)


@dataclass
class DataConfig:
    """Where the frames are and how they become windows.

    window(t) = [t, t+s, ..., t+(W-1)s] with W = window_size and s = frame_step; the next
    window starts at t + window_stride; two_view_offset = k > 0 pairs window(t) with
    window(t+k) of the same clip.
    """

    root: str = "data/digits"  # a folder of clip folders, or a packed store (cltt pack)
    # built-in data written to root if missing (cltt.data.synthetic.GENERATORS; a test keeps the two equal)
    synthetic: Optional[Literal["moving-digits", "bouncing-balls", "phases", "rotating-objects"]] = None
    window_size: int = 5
    frame_step: int = 1
    window_stride: int = 1
    two_view_offset: int = 0
    gaps: Literal["split", "ignore", "error"] = "split"  # missing frame numbers in a clip: cut windows there, or not, or stop
    image_size: int = 64
    num_workers: int = 2
    decode: Literal["cpu", "gpu"] = "cpu"  # gpu: workers read bytes, JPEGs decoded and augmented on the CUDA device
    cache_dir: Optional[str] = None  # frames roots' manifests; default $CLTT_CACHE, else ~/.cache/cltt
    # a frame whose header says H * W is larger is corrupt (index --verify lists it, training skips it):
    # decoding costs 3 * H * W bytes at every read, 1.2 GB for 20000 x 20000
    max_pixels: int = DEFAULT_MAX_PIXELS
    boxes: Optional[str] = None  # CSV clip,frame,x1,y1,x2,y2; default ROOT/boxes.csv
    object_focus: Literal["none", "boxes", "boxes_or_center"] = "none"
    focus_blur_sigma: float = 6.0
    center_box_fraction: float = 0.5
    augment: AugmentConfig = field(default_factory=AugmentConfig)

    def validate(self, at: str) -> None:
        for name in ("window_size", "frame_step", "window_stride", "image_size", "max_pixels"):
            check_min(getattr(self, name), f"{at}.{name}", 1)
        check_min(self.two_view_offset, f"{at}.two_view_offset", 0)
        check_min(self.num_workers, f"{at}.num_workers", 0)
        if not 0 < self.center_box_fraction <= 1:
            raise RecipeError(
                f"recipe key '{at}.center_box_fraction' must be in (0, 1], "
                f"got {self.center_box_fraction}"
            )


@dataclass
class SyntheticConfig:
    """Size of the built-in data that ``cltt extract --synthetic NAME`` writes."""

    clips: int = 60
    frames: int = 48
    size: int = 64
    max_objects: int = 3
    seed: int = 0

    def validate(self, at: str) -> None:
        for name in ("clips", "frames", "max_objects"):
            check_min(getattr(self, name), f"{at}.{name}", 1)
        check_min(self.size, f"{at}.size", 24)
        check_min(self.seed, f"{at}.seed", 0)
        if self.clips < 3:
            raise RecipeError(
                f"recipe key '{at}.clips' must be at least 3 (one clip per split), got {self.clips}"
            )


@dataclass
class ExtractConfig:
    """How ``cltt extract`` turns videos into frames."""

    fps: Optional[float] = None  # target frames per second; None keeps the video's rate
    every_nth: int = 1  # keep every n-th decoded frame (used when fps is None)
    short_side: Optional[int] = None  # resize so the short side has this many pixels
    center_crop: bool = False  # crop the centre square after resizing
    jpeg_quality: int = 95
    start: Optional[float] = None  # seconds
    end: Optional[float] = None  # seconds
    workers: int = 1
    synthetic: SyntheticConfig = field(default_factory=SyntheticConfig)

    def validate(self, at: str) -> None:
        if self.fps is not None and self.fps <= 0:
            raise RecipeError(f"recipe key '{at}.fps' must be > 0, got {self.fps}")
        check_min(self.every_nth, f"{at}.every_nth", 1)
        if self.fps is not None and self.every_nth != 1:
            raise RecipeError(f"recipe keys '{at}.fps' and '{at}.every_nth' both choose the kept frames; "
                              f"give one of them (--fps {self.fps:g} or --every-nth {self.every_nth})")
        if self.short_side is not None:
            check_min(self.short_side, f"{at}.short_side", 8)
        if not 1 <= self.jpeg_quality <= 100:
            raise RecipeError(
                f"recipe key '{at}.jpeg_quality' must be in 1..100, got {self.jpeg_quality}"
            )
        if self.start is not None and self.start < 0:
            raise RecipeError(f"recipe key '{at}.start' must be >= 0 seconds, got {self.start}")
        if self.start is not None and self.end is not None and self.end <= self.start:
            raise RecipeError(
                f"recipe key '{at}.end' ({self.end}) must be after '{at}.start' ({self.start})"
            )
        check_min(self.workers, f"{at}.workers", 1)


@dataclass
class ViViTConfig:
    """ViViT's factorised encoder (Arnab et al. 2021, model 2): a spatial transformer per
    tubelet of ``tubelet`` frames, then a temporal transformer over the tubelets' class tokens.

    size: tiny (width 192, 3 heads), small (384, 6), base (768, 12).
    """

    size: Literal["tiny", "small", "base"] = "tiny"
    patch_size: int = 16
    tubelet: int = 2
    spatial_depth: int = 12
    temporal_depth: int = 4
    dropout: float = 0.0

    def validate(self, at: str) -> None:
        for name in ("patch_size", "tubelet", "spatial_depth", "temporal_depth"):
            check_min(getattr(self, name), f"{at}.{name}", 1)
        if not 0 <= self.dropout < 1:
            raise RecipeError(f"recipe key '{at}.dropout' must be in [0, 1), got {self.dropout}")


@dataclass
class ModelConfig:
    """The frame encoder and its projection head.

    backbone: resnet18|resnet34|resnet50 (pooled features), vit_s16|vit_b16|vit_t8 (class token;
    image_size a multiple of the patch), tiny_cnn (fast, for tests and CPU quickstarts), or
    ``timm/<name>`` for any timm model, built with the keyword arguments in ``timm`` and
    pooled by ``pool`` (timm's ``global_pool``: token, avg, ...); vivit (a window encoder,
    clip_simclr only, sized by ``vivit``). Object-centric methods read patch tokens after
    block ``patch_block`` (-1: the last). The projection head is Linear -> BatchNorm -> ReLU
    -> Linear(projection_dim), as in SimCLR. ``sync_batchnorm`` makes every BatchNorm use the
    statistics of the global batch when several processes train
    (:mod:`cltt.models.global_batchnorm`); one process is unaffected.

    Starting points: ``weights`` a local file of backbone weights (torchvision, timm, DINO,
    DINOv2, silicon-menagerie, safetensors: :mod:`cltt.models.weights`); ``init_from`` a run
    dir or checkpoint of the same method and architecture whose whole model starts this run,
    at step 0 under this recipe's schedule (unlike ``cltt resume``). ``freeze``: none, backbone,
    or a list of regular expressions on parameter names (null: the method's default, which
    is none except for slotcontrast's frozen ViT); frozen parameters never change and frozen
    modules stay in eval mode.
    """

    backbone: str = "resnet18"
    weights: Optional[str] = None  # local file of pretrained backbone weights; nothing is downloaded
    timm: dict[str, Any] = field(default_factory=dict)  # keyword arguments of timm.create_model (timm/<name> only)
    pool: Optional[str] = None  # timm's global_pool; null: the model's own
    patch_block: int = -1  # the block whose patch tokens object-centric methods read
    freeze: Union[str, list[str], None] = None
    init_from: Optional[str] = None  # run dir or checkpoint whose model weights start this run at step 0
    projection_hidden: Optional[int] = None  # None = the backbone's feature size
    projection_dim: int = 128
    head_batchnorm: bool = True
    sync_batchnorm: bool = False  # batch norm over the global batch of all processes (SimCLR's global BN)
    vivit: ViViTConfig = field(default_factory=lambda: ViViTConfig())  # model.backbone=vivit (clip_simclr)

    def validate(self, at: str) -> None:
        if self.projection_hidden is not None:
            check_min(self.projection_hidden, f"{at}.projection_hidden", 1)
        check_min(self.projection_dim, f"{at}.projection_dim", 1)
        if isinstance(self.freeze, str) and self.freeze not in FREEZE_CHOICES:
            raise RecipeError(f"recipe key '{at}.freeze' must be one of {', '.join(FREEZE_CHOICES)} or a list of "
                              f"regular expressions on parameter names, got {self.freeze!r}")
        for pattern in self.freeze if isinstance(self.freeze, list) else []:
            check_regex(pattern, f"{at}.freeze")


FREEZE_CHOICES = ("none", "backbone")


@dataclass
class MethodConfig:
    """How a batch of samples becomes a loss: ``method.name`` and the keys methods share.

    ``name`` is any registered method (``cltt train --help`` lists them, each with one line);
    each method's own settings are its section ``method.<name>.*``, declared in the method's
    file (:mod:`cltt.methods`). The keys here are read by the methods that say so
    (``Method.shared_keys``); setting one that the chosen method does not read is an error.

    positives: time (frames apart in time, one augmentation draw: SimCLR-TT), augment (two
    augmentations of one frame: SimCLR), both (apart in time and augmented apart: TT+); null
    takes the method's own default. temperature: of InfoNCE-style losses. reduction
    l_out|pairwise|l_in, pairing group|aligned|first_last and decoupled: the multi-positive
    InfoNCE of ``cltt`` (decoupled also for ``simclr``).
    """

    name: str = "cltt"
    positives: Optional[Literal["time", "augment", "both"]] = None
    temperature: float = 0.1
    reduction: Literal["l_out", "pairwise", "l_in"] = "l_out"
    pairing: Literal["group", "aligned", "first_last"] = "group"
    decoupled: bool = False

    @staticmethod
    def entry_of(name: Any, at: str = "method"):
        """The registry entry of method ``name``, or a :class:`RecipeError` naming the closest."""
        from cltt.methods.registry import method_entry

        try:
            return method_entry(name)
        except CLTTError as err:
            raise RecipeError(f"recipe key '{at}.name': {err}") from None

    def validate(self, at: str) -> None:
        from cltt.methods.registry import registered_methods

        check_positive(self.temperature, f"{at}.temperature")
        cls = self.entry_of(self.name, at).cls
        shared = set(cls.shared_keys)
        for f in dataclasses.fields(MethodConfig):
            if f.name == "name" or f.name in shared:
                continue
            if getattr(self, f.name) != f.default:
                readers = [n for n, e in registered_methods().items() if f.name in e.cls.shared_keys]
                raise RecipeError(f"recipe key '{at}.{f.name}' is not read by method {self.name} (it is read by "
                                  f"{', '.join(readers) or 'no method'}); remove it")
        supported = tuple(cls.supported_positives)
        if self.positives is not None and self.positives not in supported:
            raise RecipeError(f"recipe key '{at}.positives={self.positives}' does not apply to method {self.name}; "
                              + (f"it takes {', '.join(supported)}" if supported else "remove it"))
        for other, section in registered_methods().items():
            if other == self.name or section.config is None:
                continue
            if getattr(self, other) != section.config():
                raise RecipeError(f"recipe key '{at}.{other}' belongs to method {other}, but {at}.name is "
                                  f"{self.name}; remove the section or set {at}.name={other}")


_METHOD_CLASSES: dict[tuple, type] = {}
# sections that were renamed, so recipes saved in run dirs before the rename still load
LEGACY_METHOD_SECTIONS = {"slots": "slotcontrast"}


def method_config_class() -> type:
    """:class:`MethodConfig` with one section field per registered method that declares one."""
    from cltt.methods.registry import registered_methods

    sections = tuple((name, entry.config) for name, entry in registered_methods().items() if entry.config is not None)
    if sections not in _METHOD_CLASSES:
        fields = [(name, config, field(default_factory=config)) for name, config in sections]
        _METHOD_CLASSES[sections] = dataclasses.make_dataclass("MethodConfig", fields, bases=(MethodConfig,))
    return _METHOD_CLASSES[sections]


def _schema(cls: type) -> type:
    """The concrete dataclass for a schema node (the method section grows with the registry)."""
    return method_config_class() if cls is MethodConfig else cls


@dataclass
class ParamGroupConfig:
    """One entry of ``train.param_groups``: the parameters whose names ``match`` (``re.search``)
    train at base learning rate ``lr`` with ``weight_decay`` (null: ``train.weight_decay``)."""

    match: str = ""
    lr: float = 0.0
    weight_decay: Optional[float] = None

    def validate(self, at: str) -> None:
        if not self.match:
            raise RecipeError(f"recipe key '{at}.match' must be a regular expression on parameter names, e.g. '^encoder\\.'")
        check_regex(self.match, f"{at}.match")
        check_positive(self.lr, f"{at}.lr")
        if self.weight_decay is not None:
            check_min(self.weight_decay, f"{at}.weight_decay", 0)


@dataclass
class TrainConfig:
    """Optimisation, precision, run directory and checkpoints of ``cltt train``.

    The learning rate follows a linear warmup over ``warmup_epochs`` then a cosine decay to
    ``lr * min_lr_ratio``, both functions of the global step. ``sub_batch_size`` splits each
    batch for memory: ``accumulation: exact`` keeps the contrastive loss over the whole batch
    (embeddings first, then backpropagation sub-batch by sub-batch, dropout masks replayed),
    with BatchNorm statistics per sub-batch as they are per GPU, so its gradients are the full
    batch's only for models without BatchNorm; ``approximate`` computes the loss inside each
    sub-batch as the lab's original code did.

    ``param_groups`` gives parts of the model their own base learning rate and weight decay
    (fine-tuning: a low rate for a pretrained backbone): each parameter joins the first group
    whose ``match`` it satisfies, the rest train at ``lr``; the schedule scales every group
    alike (a group's rate at step t is its ``lr`` x lr(t) / ``lr``). Biases and norm weights
    are never decayed, in any group.
    """

    epochs: int = 10
    batch_size: int = 32  # windows per optimizer step, over all processes
    seed: int = 0  # python, numpy, torch, augmentation and worker seeds derive from it
    optimizer: Literal["adam", "adamw", "sgd"] = "adam"
    lr: float = 1e-3
    weight_decay: float = 1e-6
    momentum: float = 0.9  # sgd only
    schedule: Literal["cosine", "constant"] = "cosine"
    warmup_epochs: float = 0.0
    min_lr_ratio: float = 0.0
    grad_clip: Optional[float] = None  # max global gradient norm
    max_batches_per_epoch: Optional[int] = None
    sub_batch_size: Optional[int] = None
    accumulation: Literal["exact", "approximate"] = "exact"
    device: Literal["auto", "cpu", "cuda", "mps"] = "auto"
    precision: Literal["auto", "fp32", "bf16", "fp16"] = "auto"  # auto: bf16 on CUDA, else fp32
    channels_last: bool = True  # CUDA only
    compile: bool = False
    out_dir: str = "runs"
    name: Optional[str] = None  # run name; default the recipe file's name
    resume: Literal["never", "auto"] = "never"  # auto: continue the run dir when it exists
    save_every: int = 1  # epochs between checkpoints
    checkpoint_minutes: Optional[float] = 20.0  # also inside an epoch, this often (0: every step; null: never)
    keep_last: int = 3  # epoch checkpoints kept (the final one is always kept)
    requeue: bool = True  # on a preemption signal under Slurm, requeue the job
    param_groups: list[ParamGroupConfig] = field(default_factory=list)

    def validate(self, at: str) -> None:
        for index, group in enumerate(self.param_groups):
            group.validate(f"{at}.param_groups[{index}]")
            if group.weight_decay is None:  # resolved here, so recipe.yaml records the rate each group used
                group.weight_decay = self.weight_decay
        check_min(self.epochs, f"{at}.epochs", 1)
        check_min(self.batch_size, f"{at}.batch_size", 1)
        check_min(self.seed, f"{at}.seed", 0)
        check_positive(self.lr, f"{at}.lr")
        check_min(self.weight_decay, f"{at}.weight_decay", 0)
        check_probability(self.momentum, f"{at}.momentum")
        check_min(self.warmup_epochs, f"{at}.warmup_epochs", 0)
        check_probability(self.min_lr_ratio, f"{at}.min_lr_ratio")
        if self.grad_clip is not None and not self.grad_clip > 0:
            raise RecipeError(f"recipe key '{at}.grad_clip' must be > 0 or null, got {self.grad_clip}")
        if self.max_batches_per_epoch is not None:
            check_min(self.max_batches_per_epoch, f"{at}.max_batches_per_epoch", 1)
        if self.sub_batch_size is not None:
            check_min(self.sub_batch_size, f"{at}.sub_batch_size", 1)
        check_min(self.save_every, f"{at}.save_every", 1)
        if self.checkpoint_minutes is not None:
            check_min(self.checkpoint_minutes, f"{at}.checkpoint_minutes", 0)
        check_min(self.keep_last, f"{at}.keep_last", 1)


@dataclass
class WandbConfig:
    """Weights & Biases logging; ``mode: offline`` needs no network (``wandb sync`` later)."""

    enabled: bool = False
    project: str = "cltt"
    entity: Optional[str] = None
    name: Optional[str] = None  # default the run name
    tags: list[str] = field(default_factory=list)
    mode: Literal["online", "offline"] = "offline"


@dataclass
class LogConfig:
    """What ``cltt train`` prints and where else it reports.

    Every ``step_every`` steps a row goes to RUN_DIR/metrics_steps.csv and the same scalars
    (each loss term, learning rates, frames/s, data wait) to TensorBoard (``tensorboard:
    true``, event files in RUN_DIR/tensorboard, no network) and W&B; every ``images_every``
    steps both get images (a batch grid and the method's own: slot masks, CARL's alignment).
    """

    interval: float = 30.0  # seconds between plain progress lines when stdout is not a terminal
    collapse_warning: float = 0.1  # warn when an epoch's embedding spread falls below this (0 = never)
    step_every: int = 10  # steps between rows of RUN_DIR/metrics_steps.csv and TensorBoard/W&B scalars
    tensorboard: bool = False  # write TensorBoard event files to RUN_DIR/tensorboard
    images_every: int = 1000  # steps between images in TensorBoard and W&B (0: none)
    wandb: WandbConfig = field(default_factory=WandbConfig)

    def validate(self, at: str) -> None:
        check_positive(self.interval, f"{at}.interval")
        check_min(self.step_every, f"{at}.step_every", 1)
        check_min(self.images_every, f"{at}.images_every", 0)
        check_min(self.collapse_warning, f"{at}.collapse_warning", 0)


@dataclass
class ProbeConfig:
    """How ``cltt probe`` judges frozen features (and ``probe.every`` during training).

    Labels come from ``labels`` (default ROOT/labels.csv: clip,label[,split]) or from folders
    ROOT/<label>/<clip>/. Splits are by clip, never by frame: from the file's split column, or
    drawn with ``split_seed`` in ``split_fractions`` (train, val, test) when it has none.

    probes: ``linear`` (least squares on standardised features, its ridge picked on val from
    ``ridge``), ``logistic`` (C from ``logistic_c``), ``knn``, ``retrieval`` (recall@1, @5 and
    mAP of held-out frames against train frames). Every figure has a 95% interval from
    ``bootstrap_rounds`` resamples of the split's clips.
    """

    task: Literal["classes", "phases", "slots"] = "classes"  # phases: CARL's evaluation; slots: FG-ARI/mBO
    level: Literal["frame", "window", "clip"] = "frame"
    labels: Optional[str] = None
    split_fractions: list[float] = field(default_factory=lambda: [0.6, 0.2, 0.2])
    split_seed: int = 0
    probes: list[str] = field(default_factory=lambda: ["linear", "logistic", "knn", "retrieval"])
    baselines: list[str] = field(default_factory=lambda: ["random_init", "pixels"])
    logistic_c: list[float] = field(default_factory=lambda: [0.01, 0.1, 1.0, 10.0, 100.0])
    ridge: list[float] = field(default_factory=lambda: [0.0, 1.0, 10.0, 100.0, 1000.0, 10000.0])  # linear, on val
    bootstrap_rounds: int = 2000  # resamples of the clips behind every 95% interval
    knn_k: int = 20
    knn_temperature: float = 0.07
    standardise: bool = True  # kNN and retrieval: cosine of features standardised by the train split
    pixels_size: int = 16  # raw-pixel baseline: frames resized to this many pixels a side
    batch_size: int = 256
    every: Optional[int] = None  # epochs between probes during training (metrics_eval.csv)
    ap_k: list[int] = field(default_factory=lambda: [5, 10, 15])  # task phases: AP@K retrieval

    def validate(self, at: str) -> None:
        if len(self.split_fractions) != 3 or any(f < 0 for f in self.split_fractions) or \
                abs(sum(self.split_fractions) - 1) > 1e-6 or self.split_fractions[0] == 0:
            raise RecipeError(f"recipe key '{at}.split_fractions' must be [train, val, test] >= 0 summing to 1 "
                              f"with train > 0, got {self.split_fractions}")
        for name in self.probes:
            if name not in ("linear", "logistic", "knn", "retrieval"):
                raise RecipeError(f"recipe key '{at}.probes' lists {name!r}; choose from linear, logistic, knn, retrieval")
        if not self.ridge or any(r < 0 for r in self.ridge):
            raise RecipeError(f"recipe key '{at}.ridge' must be a non-empty list of values >= 0, got {self.ridge}")
        check_min(self.bootstrap_rounds, f"{at}.bootstrap_rounds", 100)
        for name in self.baselines:
            if name not in ("random_init", "pixels"):
                raise RecipeError(f"recipe key '{at}.baselines' lists {name!r}; choose from random_init, pixels")
        check_min(self.knn_k, f"{at}.knn_k", 1)
        check_positive(self.knn_temperature, f"{at}.knn_temperature")
        check_min(self.pixels_size, f"{at}.pixels_size", 1)
        check_min(self.batch_size, f"{at}.batch_size", 1)
        if self.every is not None:
            check_min(self.every, f"{at}.every", 1)
            if self.task != "classes":
                raise RecipeError(f"recipe key '{at}.every' runs the class probe during training; with "
                                  f"{at}.task={self.task} drop it and run cltt probe RUN_DIR after training")
        for k in self.ap_k:
            check_min(k, f"{at}.ap_k", 1)


@dataclass
class ExportConfig:
    """What ``cltt export`` writes."""

    format: Literal["safetensors", "torchscript", "onnx"] = "safetensors"
    with_head: bool = False  # include the projection head (outputs the contrastive embedding)
    onnx_opset: int = 17

    def validate(self, at: str) -> None:
        check_min(self.onnx_opset, f"{at}.onnx_opset", 9)


# One #SBATCH option value: letters, digits and the punctuation Slurm's values use (a@b.edu,
# 2-00:00:00, END,FAIL, 64G, gpu-debug, r00000).
_SBATCH_WORD = re.compile(r"[A-Za-z0-9_.,:@%+=/-]+")
# sweep.slurm.scratch: a path in which $VAR and ${VAR} are the only shell syntax; the job script
# expands them itself, without eval (slurm/array.sh.tmpl).
_SCRATCH_PATH = re.compile(r"(?:[^$`\\\x00-\x1f\x7f]|\$[A-Za-z_][A-Za-z0-9_]*|\$\{[A-Za-z_][A-Za-z0-9_]*\})*")


@dataclass
class SlurmConfig:
    """The job-array script ``cltt sweep --slurm`` renders (and slurm/train.sh's defaults)."""

    partition: Optional[str] = None
    account: Optional[str] = None
    gpus: int = 1
    cpus_per_task: int = 8
    mem: Optional[str] = None  # e.g. 64G
    time: str = "04:00:00"
    mail_user: Optional[str] = None
    mail_type: str = "END,FAIL"
    requeue: bool = True
    signal_seconds: int = 120  # USR1 this long before the time limit, to the trainer itself
    throttle: Optional[int] = None  # at most this many array tasks at once (%N)
    apptainer_image: Optional[str] = None  # run inside `apptainer exec --nv IMAGE`
    binds: list[str] = field(default_factory=list)  # apptainer --bind paths
    modules: list[str] = field(default_factory=list)  # `module load` lines
    scratch: Optional[str] = None  # local scratch dir to stage the frames root into, e.g. $TMPDIR
    extra: list[str] = field(default_factory=list)  # more #SBATCH options, e.g. --constraint=a100

    def validate(self, at: str) -> None:
        check_min(self.gpus, f"{at}.gpus", 0)
        check_min(self.cpus_per_task, f"{at}.cpus_per_task", 1)
        check_min(self.signal_seconds, f"{at}.signal_seconds", 0)
        if self.throttle is not None:
            check_min(self.throttle, f"{at}.throttle", 1)
        # #SBATCH lines take one word per option: a space would smuggle in another option, and a
        # line break would end the comment and start a command of the batch script.
        for name in ("partition", "account", "mem", "time", "mail_user", "mail_type"):
            value = getattr(self, name)
            if value is not None and not _SBATCH_WORD.fullmatch(str(value)):
                raise RecipeError(f"recipe key '{at}.{name}' must be one word without spaces, quotes or shell "
                                  f"characters, got {value!r}")
        if self.scratch is not None and not _SCRATCH_PATH.fullmatch(self.scratch):
            raise RecipeError(f"recipe key '{at}.scratch' may name environment variables as $VAR or ${{VAR}} and "
                              f"nothing else of the shell (no $(...), backticks, ${{VAR:-...}} or line breaks), "
                              f"got {self.scratch!r}")


@dataclass
class SweepConfig:
    """A grid of runs: ``grid`` maps dotted recipe keys to lists of values."""

    grid: dict[str, Any] = field(default_factory=dict)
    name: Optional[str] = None  # default the recipe file's name
    out_dir: str = "sweeps"
    slurm: SlurmConfig = field(default_factory=SlurmConfig)


@dataclass
class Recipe:
    """A whole recipe: one section per concern."""

    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    method: MethodConfig = field(default_factory=lambda: method_config_class()())
    train: TrainConfig = field(default_factory=TrainConfig)
    log: LogConfig = field(default_factory=LogConfig)
    probe: ProbeConfig = field(default_factory=ProbeConfig)
    export: ExportConfig = field(default_factory=ExportConfig)
    sweep: SweepConfig = field(default_factory=SweepConfig)
    extract: ExtractConfig = field(default_factory=ExtractConfig)


# --------------------------------------------------------------------------- range checks


def check_min(value: float, key: str, low: float) -> None:
    if value < low:
        raise RecipeError(f"recipe key '{key}' must be >= {low}, got {value}")


def check_positive(value: float, key: str) -> None:
    if not value > 0:
        raise RecipeError(f"recipe key '{key}' must be > 0, got {value}")


def check_probability(value: float, key: str) -> None:
    if not 0.0 <= value <= 1.0:
        raise RecipeError(f"recipe key '{key}' is a probability and must be in [0, 1], got {value}")


def check_regex(pattern: str, key: str) -> None:
    try:
        re.compile(pattern)
    except re.error as err:
        raise RecipeError(f"recipe key '{key}' holds {pattern!r}, which is not a regular expression ({err})") from None


def check_pair(pair: list[float], key: str, low: float, high: float | None = None) -> None:
    ok = len(pair) == 2 and low <= pair[0] <= pair[1] and (high is None or pair[1] <= high)
    if not ok:
        bound = f" within [{low}, {high}]" if high is not None else f" >= {low}"
        raise RecipeError(f"recipe key '{key}' must be [low, high] with low <= high{bound}, got {pair}")


# --------------------------------------------------------------------------- loading


def load_recipe(path: str | Path | None = None, overrides: Sequence[str] = ()) -> Recipe:
    """Read a recipe file (or the defaults when ``path`` is None) and apply ``key=value`` overrides."""
    tree: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise RecipeError(f"recipe file {path} does not exist; pass a YAML file such as recipes/quickstart.yaml")
        try:
            loaded = yaml.safe_load(path.read_text())
        except yaml.YAMLError as err:
            mark = getattr(err, "problem_mark", None)
            where = f" at line {mark.line + 1}" if mark is not None else ""
            raise RecipeError(f"recipe file {path} is not valid YAML{where}: {getattr(err, 'problem', err)}") from None
        if loaded is None:
            loaded = {}
        if not isinstance(loaded, dict):
            raise RecipeError(f"recipe file {path} must hold a mapping of sections (data:, train:, ...)")
        tree = loaded
    apply_overrides(tree, overrides)
    return recipe_from_dict(tree)


def apply_overrides(tree: dict[str, Any], overrides: Sequence[str]) -> None:
    """Apply ``key=value`` overrides in order (:func:`apply_override`), then refuse a ``data.root``
    set here that does not exist while ``data.synthetic`` comes from the recipe: built-in data
    are written only at the recipe's own ``data.root``, so a mistyped root given on the command
    line (or a copied quickstart pointed at the user's frames) never trains on synthetic frames.
    """
    data = tree.get("data")
    own_root = data.get("root") if isinstance(data, dict) else None
    keys = set()
    for override in overrides:
        apply_override(tree, override)
        keys.add(override.partition("=")[0].strip())
    data = tree.get("data")
    if "data.root" not in keys or "data.synthetic" in keys or not isinstance(data, dict) or not data.get("synthetic"):
        return
    root = data.get("root")
    if root is not None and not Path(str(root)).exists():
        own = f" ({own_root})" if own_root is not None else ""
        raise RecipeError(f"data.root {root} does not exist; the recipe's data.synthetic={data['synthetic']} writes built-in "
                          f"data only at its own data.root{own}: fix the path, or add data.synthetic=null to use your own frames")


def apply_override(tree: dict[str, Any], override: str) -> None:
    """Set ``a.b.c=value`` in a nested dict, the value parsed as a YAML scalar."""
    key, sep, raw = override.partition("=")
    key = key.strip()
    if not sep or not key or any(not part for part in key.split(".")):
        raise RecipeError(f"override '{override}' must look like section.key=value, e.g. train.epochs=5")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError:
        value = raw
    set_dotted(tree, key, value)


def set_dotted(tree: dict[str, Any], key: str, value: Any) -> None:
    """``tree[a][b][c] = value`` for ``key = "a.b.c"``, creating mappings on the way (an empty
    section becomes one); a section that holds something else is an error, never replaced."""
    node = tree
    parts = key.split(".")
    for depth, part in enumerate(parts[:-1]):
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        elif not isinstance(child, dict):
            section = ".".join(parts[:depth + 1])
            raise RecipeError(f"recipe key '{section}' must be a mapping of keys, got {child!r}; "
                              f"fix it in the recipe (the override {key}=... sets a key inside it)")
        node = child
    node[parts[-1]] = value


def recipe_from_dict(tree: dict[str, Any]) -> Recipe:
    """Build a typed, validated :class:`Recipe` from a nested dict (missing keys take defaults)."""
    recipe = _build(Recipe, tree, "")
    _validate(recipe, "")
    return recipe


def without_weights_file(recipe: Recipe) -> Recipe:
    """``recipe`` with ``model.weights`` unset: for building a model whose weights come from a
    checkpoint (resume, probe, export), where the file named at training time may be gone."""
    return dataclasses.replace(recipe, model=dataclasses.replace(recipe.model, weights=None))


def recipe_to_dict(recipe: Recipe) -> dict[str, Any]:
    """The recipe as plain nested dicts and lists (YAML- and JSON-ready); of the method
    sections only the chosen method's own."""
    tree = dataclasses.asdict(recipe)
    method = tree["method"]
    shared = {f.name for f in dataclasses.fields(MethodConfig)}
    tree["method"] = {key: value for key, value in method.items() if key in shared or key == method["name"]}
    return tree


class _RecipeDumper(yaml.SafeDumper):
    """Sections as blocks (one key per line), lists inline: ``crop_scale: [0.2, 1.0]``."""


_RecipeDumper.add_representer(
    list, lambda dumper, items: dumper.represent_sequence("tag:yaml.org,2002:seq", items, flow_style=True)
)


def dump_recipe(recipe: Recipe) -> str:
    """The resolved recipe as YAML text, every key present."""
    return yaml.dump(recipe_to_dict(recipe), Dumper=_RecipeDumper, sort_keys=False, default_flow_style=False)


def all_keys(cls: type = Recipe, prefix: str = "") -> list[str]:
    """Every valid dotted key of a schema, sections included (``data``, ``data.window_size``, ...)."""
    keys = []
    cls = _schema(cls)
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        key = f"{prefix}{f.name}"
        keys.append(key)
        if dataclasses.is_dataclass(hints[f.name]):
            keys.extend(all_keys(hints[f.name], key + "."))
    return keys


def _build(cls: type, tree: Any, at: str) -> Any:
    if tree is None:
        tree = {}
    if not isinstance(tree, dict):
        raise RecipeError(f"recipe key '{at.rstrip('.') or '<top>'}' must be a mapping of keys, got {tree!r}")
    cls = _schema(cls)
    if issubclass(cls, MethodConfig):
        if "name" in tree:
            MethodConfig.entry_of(tree["name"], at.rstrip("."))  # an unknown method before its unknown section
        tree = {LEGACY_METHOD_SECTIONS.get(key, key): value for key, value in tree.items()}
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    for key in tree:
        if key not in names:
            raise RecipeError(_unknown_key_message(f"{at}{key}"))
    values = {}
    for f in dataclasses.fields(cls):
        if f.name in tree:
            values[f.name] = _coerce(tree[f.name], hints[f.name], f"{at}{f.name}")
    return cls(**values)


def _validate(node: Any, at: str) -> None:
    for f in dataclasses.fields(node):
        value = getattr(node, f.name)
        if dataclasses.is_dataclass(value):
            _validate(value, f"{at}{f.name}.")
    check = getattr(node, "validate", None)
    if check is not None:
        check(at.rstrip("."))


def _unknown_key_message(key: str) -> str:
    candidates = all_keys()
    parent = key.rpartition(".")[0]
    siblings = [k for k in candidates if k.rpartition(".")[0] == parent]
    close = difflib.get_close_matches(key, siblings, n=1, cutoff=0.5) or difflib.get_close_matches(
        key, candidates, n=1, cutoff=0.6
    )
    hint = f"; did you mean '{close[0]}'?" if close else f"; valid keys here: {', '.join(siblings)}"
    return f"recipe key '{key}' is not known{hint}"


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is Literal:
        return "one of " + ", ".join(repr(c) for c in typing.get_args(tp))
    if origin is typing.Union:
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return " or ".join(_type_name(a) for a in args) + " or null"
    if origin in (list, tuple):
        return f"a list of {_type_name(typing.get_args(tp)[0])}"
    if origin is dict:
        return "a mapping"
    if dataclasses.is_dataclass(tp):
        return "a mapping of keys"
    return {int: "an int", float: "a number", bool: "true or false", str: "a string"}.get(tp, str(tp))


def _coerce(value: Any, tp: Any, key: str) -> Any:
    """Check ``value`` against the annotation ``tp`` and return it in canonical form."""

    def wrong() -> RecipeError:
        return RecipeError(
            f"recipe key '{key}' must be {_type_name(tp)}, got {value!r} ({type(value).__name__})"
        )

    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp):
        return _build(tp, value, key + ".")
    if origin is typing.Union:
        if value is None and type(None) in typing.get_args(tp):
            return None
        inner = [a for a in typing.get_args(tp) if a is not type(None)]
        for candidate in inner:
            try:
                return _coerce(value, candidate, key)
            except RecipeError:
                continue
        raise wrong()
    if origin is Literal:
        choices = typing.get_args(tp)
        if value in choices:
            return value
        close = difflib.get_close_matches(str(value), [str(c) for c in choices], n=1, cutoff=0.4)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        raise RecipeError(
            f"recipe key '{key}' must be one of {', '.join(str(c) for c in choices)}, got {value!r}{hint}"
        )
    if origin is list:
        if not isinstance(value, (list, tuple)):
            raise wrong()
        (item,) = typing.get_args(tp)
        return [_coerce(v, item, f"{key}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise wrong()
        return dict(value)
    if tp is Any:
        return value
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise wrong()
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise wrong()
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):  # YAML 1.1 reads 1e-3 (no dot) as a string
            try:
                return float(value)
            except ValueError:
                raise wrong() from None
        raise wrong()
    if tp is str:
        if isinstance(value, str):
            return value
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)
        raise wrong()
    raise TypeError(f"recipe schema uses an unsupported type {tp!r} at {key}")
