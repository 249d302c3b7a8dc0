"""The recipe's schema: one dataclass per section, every key typed and defaulted, each
section's ``validate(at)`` checking ranges. The data sections live in
:mod:`cltt.recipe.data_sections`, the method section in :mod:`cltt.recipe.method_section`."""

from __future__ import annotations

import dataclasses
import re
import typing
from dataclasses import dataclass, field
from typing import Any, Literal, Optional, Union

from cltt.errors import RecipeError
from cltt.recipe.checks import check_min, check_positive, check_probability, check_regex
from cltt.recipe.data_sections import DataConfig, ExtractConfig
from cltt.recipe.method_section import MethodConfig, concrete_schema, method_config_class
from cltt.recipe.probe_section import ProbeConfig, probe_config_class


@dataclass
class ViViTConfig:
    """ViViT's factorised encoder (Arnab et al. 2021, model 2): a spatial transformer per
    tubelet of ``tubelet`` frames, then a temporal transformer over the tubelets' class tokens.

    size: tiny (width 192, 3 heads), small (384, 6), base (768, 12).
    """

    size: Literal["tiny", "small", "base"] = "tiny"
    patch_size: int = 16  # ViViT's patch side, in pixels
    tubelet: int = 2
    spatial_depth: int = 12  # transformer blocks of the spatial encoder
    temporal_depth: int = 4  # transformer blocks of the temporal encoder
    dropout: float = 0.0  # dropout inside ViViT's blocks, in [0, 1)

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
    projection_dim: int = 128  # size of the projection head's output (the contrastive embedding)
    head_batchnorm: bool = True  # BatchNorm inside the projection head (false: a head without batch statistics)
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

    epochs: int = 10  # passes over the training windows
    batch_size: int = 32  # windows per optimizer step, over all processes
    seed: int = 0  # python, numpy, torch, augmentation and worker seeds derive from it
    optimizer: Literal["adam", "adamw", "sgd"] = "adam"  # the optimizer
    lr: float = 1e-3  # base learning rate, after warmup
    weight_decay: float = 1e-6  # weight decay (never on biases and norm weights)
    momentum: float = 0.9  # sgd only
    schedule: Literal["cosine", "constant"] = "cosine"  # learning rate after warmup: cosine decay to lr * min_lr_ratio, or constant
    warmup_epochs: float = 0.0  # linear warmup from 0, in epochs (fractions allowed)
    min_lr_ratio: float = 0.0  # the cosine ends at lr * min_lr_ratio
    grad_clip: Optional[float] = None  # max global gradient norm
    max_batches_per_epoch: Optional[int] = None  # cut each epoch after this many batches (quick runs)
    sub_batch_size: Optional[int] = None  # windows per forward pass, for memory; accumulation says how the loss is kept
    accumulation: Literal["exact", "approximate"] = "exact"  # exact: the loss over the whole batch (GradCache); approximate: per sub-batch
    device: Literal["auto", "cpu", "cuda", "mps"] = "auto"  # auto: CUDA, then MPS, then the CPU
    precision: Literal["auto", "fp32", "bf16", "fp16"] = "auto"  # auto: bf16 on CUDA, else fp32
    channels_last: bool = True  # CUDA only
    compile: bool = False  # torch.compile the encoder
    out_dir: str = "runs"  # where run dirs are made
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
        if self.grad_clip is not None:
            check_positive(self.grad_clip, f"{at}.grad_clip")
        if self.max_batches_per_epoch is not None:
            check_min(self.max_batches_per_epoch, f"{at}.max_batches_per_epoch", 1)
        if self.sub_batch_size is not None:
            check_min(self.sub_batch_size, f"{at}.sub_batch_size", 1)
        check_min(self.save_every, f"{at}.save_every", 1)
        if self.checkpoint_minutes is not None:
            check_min(self.checkpoint_minutes, f"{at}.checkpoint_minutes", 0)
        check_min(self.keep_last, f"{at}.keep_last", 1)
        if self.name is not None and (self.name in (".", "..") or "/" in self.name or "\\" in self.name):
            raise RecipeError(f"recipe key '{at}.name' names the run dir inside {at}.out_dir, so it must be one folder "
                              f"name, not '.', '..' or a path with '/' or '\\', got {self.name!r}")


@dataclass
class WandbConfig:
    """Weights & Biases logging; ``mode: offline`` needs no network (``wandb sync`` later)."""

    enabled: bool = False  # log to W&B
    project: str = "cltt"  # W&B project
    entity: Optional[str] = None  # W&B entity (team or user); null: your default
    name: Optional[str] = None  # default the run name
    tags: list[str] = field(default_factory=list)  # W&B tags of the run
    mode: Literal["online", "offline"] = "offline"  # offline writes RUN_DIR/wandb with no network


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
class ExportConfig:
    """What ``cltt export`` writes."""

    format: Literal["safetensors", "torchscript", "onnx"] = "safetensors"  # the file format cltt export writes
    with_head: bool = False  # include the projection head (outputs the contrastive embedding)
    onnx_opset: int = 17  # ONNX opset version (at least 9)

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

    partition: Optional[str] = None  # #SBATCH --partition
    account: Optional[str] = None  # #SBATCH --account
    gpus: int = 1  # GPUs per array task
    cpus_per_task: int = 8  # CPUs per array task (also the DataLoader workers)
    mem: Optional[str] = None  # e.g. 64G
    time: str = "04:00:00"  # #SBATCH --time, the limit of each task
    mail_user: Optional[str] = None  # #SBATCH --mail-user
    mail_type: str = "END,FAIL"  # #SBATCH --mail-type
    requeue: bool = True  # #SBATCH --requeue: a preempted task is requeued and resumes
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
    out_dir: str = "sweeps"  # where sweep folders are made
    slurm: SlurmConfig = field(default_factory=SlurmConfig)


@dataclass
class Recipe:
    """A whole recipe: one section per concern."""

    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    method: MethodConfig = field(default_factory=lambda: method_config_class()())
    train: TrainConfig = field(default_factory=TrainConfig)
    log: LogConfig = field(default_factory=LogConfig)
    probe: ProbeConfig = field(default_factory=lambda: probe_config_class()())
    export: ExportConfig = field(default_factory=ExportConfig)
    sweep: SweepConfig = field(default_factory=SweepConfig)
    extract: ExtractConfig = field(default_factory=ExtractConfig)


def all_keys(cls: type = Recipe, prefix: str = "") -> list[str]:
    """Every valid dotted key of a schema, sections included (``data``, ``data.window_size``, ...)."""
    keys = []
    cls = concrete_schema(cls)
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        key = f"{prefix}{f.name}"
        keys.append(key)
        if dataclasses.is_dataclass(hints[f.name]):
            keys.extend(all_keys(hints[f.name], key + "."))
    return keys
