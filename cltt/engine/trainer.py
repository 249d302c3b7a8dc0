"""The training loop: one recipe, one run dir, any number of processes.

    cltt train recipes/quickstart.yaml                                   # one CPU or GPU
    torchrun --nproc-per-node 4 -m cltt train recipe.yaml                # 4 GPUs, one node
    srun --ntasks-per-node 4 cltt train recipe.yaml train.resume=auto    # Slurm, any nodes

Each optimizer step takes one global batch of ``train.batch_size`` windows (split over the
processes), sets the learning rate of its global step, backpropagates the method's loss
(:mod:`cltt.engine.step`) and updates the weights. After every epoch process 0 appends a row
to ``metrics.csv`` and writes a checkpoint. After every step all processes ask whether a
preemption signal arrived anywhere; if so process 0 writes a checkpoint with the position
inside the epoch and the run stops (and under Slurm requeues itself), to continue with exactly
the batches, learning rates and weights an uninterrupted run would have seen.
"""

from __future__ import annotations

import gc
import multiprocessing
import random
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import torch
from torch.utils.data import DataLoader

from cltt.data.build import open_frames
from cltt.data.device_augment import DeviceAugment, collate_encoded
from cltt.engine import checkpoint as ckpt
from cltt.engine import distributed as dist
from cltt.engine import preemption, run_files
from cltt.engine.device import resolve_placement
from cltt.engine.events import EpochDone, Outcome, Reporter, RunStart, StepDone
from cltt.engine.init_from import initialise_from
from cltt.engine.metrics_csv import MetricsCSV
from cltt.engine.monitor import Monitor, TensorBoardSink, WandbSink, step_scalars, training_images
from cltt.engine.optim import build_optimizer, describe_groups, group_learning_rates, set_learning_rate
from cltt.engine.provenance import RunRecord, StepMetrics
from cltt.engine.run_dir import write_recipe
from cltt.engine.sampler import EpochBatchSampler
from cltt.engine.schedule import Schedule
from cltt.engine.step import NonFiniteLoss, accumulate_gradients, optimizer_step
from cltt.errors import CannotWrite, CLTTError
from cltt.methods import build_method, method_class
from cltt.models.global_batchnorm import convert_to_global_batchnorm
from cltt.recipe import Recipe, dump_recipe, recipe_to_dict, without_weights_file


@dataclass
class Progress:
    """Where a run is; saved in every checkpoint."""

    epoch: int = 0  # finished epochs
    step: int = 0  # optimizer steps taken
    position: int = 0  # batches done in the epoch in progress
    epoch_loss_sum: float = 0.0
    epoch_loss_count: int = 0
    epoch_spread_sum: float = 0.0
    epoch_spread_count: int = 0

    def as_dict(self, batches_per_epoch: int, total_steps: int) -> dict:
        return {**self.__dict__, "batches_per_epoch": batches_per_epoch, "total_steps": total_steps}


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _stop_data_workers(abort: BaseException) -> None:
    """After a second Ctrl-C, stop the DataLoader workers now. The loader the abort unwound is
    released (its frames cleared), so it shuts its workers down itself; a worker it had started but
    not yet registered is SIGKILLed: Python's exit would SIGTERM it, which workers ignore (a scancel
    must not kill them before the main process saves), and then wait for it forever."""
    traceback.clear_frames(abort.__traceback__)
    gc.collect()
    for child in multiprocessing.active_children():
        if child.daemon:
            child.kill()


def _worker_init(worker_id: int) -> None:
    preemption.ignore_in_worker()
    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)
    random.seed(seed)


class EpochProbe(Protocol):
    """What the trainer runs on process 0 every ``probe.every`` epochs and after the last: the
    caller builds it from the recipe's probe task, so the engine never imports the eval layer."""

    def __call__(self, method: torch.nn.Module, device: torch.device, epoch: int) -> tuple[str, dict[str, float]]:
        """Probe ``method``'s encoder after ``epoch`` and write its rows: (a note for the log,
        scalars for TensorBoard and W&B)."""

    def forget_after(self, epoch: int) -> None:
        """Drop rows written after ``epoch``: a resumed run redoes those epochs."""


class Trainer:
    def __init__(
        self,
        recipe: Recipe,
        run_dir: Path,
        reporter: Reporter | None = None,
        resume: tuple[Path, dict] | None = None,
        probe: EpochProbe | None = None,
    ):
        """``probe``: run on process 0 every ``probe.every`` epochs (and after the last), built by
        the caller from the recipe's probe task (``cltt.eval.tasks.training_probe``); the engine
        knows only this interface, never the eval layer."""
        self.recipe = recipe
        self.probe = probe
        self.run_dir = Path(run_dir)
        self.reporter = reporter or Reporter()
        self.resume_path, self.resume_state = resume if resume else (None, None)
        self.pending_notes: list[str] = []  # said once the run has started
        self.info = dist.process_info()
        train = recipe.train
        self.placement = resolve_placement(train.device, train.precision, train.channels_last, self.info.local_rank)
        if train.batch_size % self.info.world_size:
            raise CLTTError(f"train.batch_size={train.batch_size} must be divisible by the {self.info.world_size} processes")
        dist.init_processes(self.info, self.placement.device)
        seed_everything(train.seed)
        chosen = method_class(recipe.method.name)
        chosen.check_recipe(recipe)  # before any data is read
        chosen.check_training(recipe)

        self.dataset = self._open_dataset()
        self.batches_per_epoch = len(self.dataset) // train.batch_size
        if self.batches_per_epoch == 0:
            raise CLTTError(
                f"{len(self.dataset)} windows in {recipe.data.root} are fewer than train.batch_size={train.batch_size}; "
                "lower train.batch_size or data.window_stride"
            )
        self.device_augment = self._device_augment()
        if train.max_batches_per_epoch:
            self.batches_per_epoch = min(self.batches_per_epoch, train.max_batches_per_epoch)
        self.total_steps = train.epochs * self.batches_per_epoch
        self.schedule = Schedule(
            base_lr=train.lr,
            total_steps=self.total_steps,
            warmup_steps=round(train.warmup_epochs * self.batches_per_epoch),
            kind=train.schedule,
            min_lr_ratio=train.min_lr_ratio,
        )

        # a resumed run's weights come from its checkpoint: the weights file need not still exist
        built_from = without_weights_file(recipe) if self.resume_state is not None else recipe
        self.method = build_method(built_from).to(self.placement.device)
        self.init_report = None
        if self.resume_state is None and recipe.model.init_from:
            self.init_report = initialise_from(self.method, recipe, recipe.model.init_from)
        if recipe.model.sync_batchnorm and self.info.distributed:
            convert_to_global_batchnorm(self.method)
        self.method.channels_last = self.placement.channels_last
        if self.placement.channels_last:
            self.method.to(memory_format=torch.channels_last)
        dist.broadcast_module(self.method)
        self.optimizer = build_optimizer(self.method, train)
        self.sync = dist.GradientSync(self.method, "ddp", self.placement.device)
        self.scaler = self.placement.scaler()
        self.progress = Progress()
        self.wandb_id = ""
        if self.resume_state is not None:
            self._restore(self.resume_state)
        if train.compile:
            self.method.encoder.compile()
        self.sampler = EpochBatchSampler(
            len(self.dataset), train.batch_size, self.batches_per_epoch,
            seed=train.seed, rank=self.info.rank, world_size=self.info.world_size,
        )
        self.metrics = MetricsCSV(self.run_dir / run_files.METRICS_FILE)
        self.step_metrics = StepMetrics(self.run_dir)
        self.record: RunRecord | None = None
        self.wandb = None
        self.monitor = Monitor([])

    # ------------------------------------------------------------------ setup

    def _open_dataset(self):
        data = self.recipe.data
        if self.info.is_main:  # one process refreshes the manifest (or writes built-in data), the others reuse it
            store = open_frames(data, synthetic=self.recipe.extract.synthetic)
        dist.barrier()
        if not self.info.is_main:
            store = open_frames(data)
        return method_class(self.recipe.method.name).training_dataset(self.recipe, store, seed=self.recipe.train.seed)

    def _restore(self, state: dict) -> None:
        where = self.resume_path
        try:
            self.method.load_state_dict(state["model"])
        except RuntimeError as err:
            first = str(err).splitlines()[0]
            raise CLTTError(f"checkpoint {where} does not fit this model ({first}); "
                            "it was written for another architecture or method") from None
        saved = state["progress"]
        if saved["batches_per_epoch"] != self.batches_per_epoch:
            raise CLTTError(
                f"checkpoint {where} was made with {saved['batches_per_epoch']} batches per epoch, the data now "
                f"give {self.batches_per_epoch}; restore the frames root it was trained on or start a new run"
            )
        try:
            self.optimizer.load_state_dict(state["optimizer"])
        except ValueError as err:  # another number or size of parameter groups
            raise CLTTError(f"checkpoint {where} was trained with other parameter groups ({str(err).splitlines()[0]}); "
                            "resume with the recipe it was trained with (its recipe.yaml)") from None
        self.scaler.load_state_dict(state["scaler"])
        self.progress = Progress(**{k: saved.get(k, 0) for k in Progress().__dict__})
        self.wandb_id = state.get("wandb_id", "")
        ckpt.restore_rng_state(state["rng"])
        trained_on = int(state.get("world_size", 1))
        if trained_on != self.info.world_size and self._has_batchnorm() and not self.recipe.model.sync_batchnorm:
            self.pending_notes.append(
                f"{where} was trained on {trained_on} process(es), this run has {self.info.world_size}: BatchNorm "
                f"normalises each process's {self.recipe.train.batch_size // self.info.world_size} samples instead "
                f"of {self.recipe.train.batch_size // trained_on}, so the continued run trains differently; resume "
                f"with {trained_on} process(es), or set model.sync_batchnorm=true in a new run")

    def _start_wandb(self) -> None:
        config = self.recipe.log.wandb
        if not (config.enabled and self.info.is_main):
            return
        from cltt.engine.wandb_run import WandbRun

        self.wandb_id = self.wandb_id or WandbRun.new_id()
        self.wandb = WandbRun(config, self.run_dir, self.run_dir.name, self.wandb_id, recipe_to_dict(self.recipe))

    def _start_monitor(self) -> None:
        """TensorBoard (``log.tensorboard``) and W&B, fed the same scalars and images (:mod:`cltt.engine.monitor`)."""
        if not self.info.is_main:
            return
        # a resumed run drops what the stopped process logged after its checkpoint (steps > progress.step)
        purge = self.progress.step + 1 if self.resume_state is not None else None
        sinks = []
        if self.recipe.log.tensorboard:
            sinks.append(TensorBoardSink(self.run_dir, purge_step=purge, recipe=self.recipe, start_step=self.progress.step))
        if self.wandb is not None:
            sinks.append(WandbSink(self.wandb))
        self.monitor = Monitor(sinks)

    def _say_what_starts_the_model(self) -> None:
        """One line each: the weights file, the run it continues from, what is frozen, the learning rates."""
        if not self.info.is_main:
            return
        report = getattr(self.method.encoder, "load_report", None)
        if report is not None:
            self.reporter.note(f"model.weights: {report.summary()}")
        if self.init_report is not None:
            self.reporter.note(f"model.init_from: {self.init_report.summary()}")
        if self.method.freeze_report.tensors:
            self.reporter.note(f"model.freeze: {self.method.freeze_report.summary()}")
        if self.recipe.train.param_groups or self.method.freeze_report.tensors:
            self.reporter.note(describe_groups(self.optimizer))

    # ------------------------------------------------------------------ checkpoints

    def _state(self) -> dict:
        return {
            "format": ckpt.FORMAT,
            "recipe": dump_recipe(self.recipe),
            "method": self.recipe.method.name,
            "model": self.method.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scaler": self.scaler.state_dict(),
            "progress": self.progress.as_dict(self.batches_per_epoch, self.total_steps),
            "rng": ckpt.rng_state(),
            "wandb_id": self.wandb_id,
            "world_size": self.info.world_size,
        }

    def _save(self, name: str) -> Path | None:
        self.last_save = time.monotonic()
        dist.average_buffers(self.method)
        path = None
        if self.info.is_main:
            with preemption.saving():  # a second Ctrl-C waits for the checkpoint
                path = ckpt.save_checkpoint(self._state(), self.run_dir / name)
                ckpt.prune_checkpoints(self.run_dir, self.recipe.train.keep_last)
        dist.barrier()
        return path

    # ------------------------------------------------------------------ loop

    def run(self) -> Outcome:
        """Train to the end, a preemption or a failure, recording each in ``run.json``."""
        try:
            outcome = self._run()
        except KeyboardInterrupt as abort:
            self._record_stop("interrupted", "interrupted", best_effort=True)
            _stop_data_workers(abort)
            raise
        except CannotWrite as err:
            failure = CannotWrite(err.path, err.reason, self._after_a_failed_write())
            self._close_monitor(best_effort=True)
            self._record_stop("failed", str(failure), best_effort=True)
            raise failure from None
        except BaseException as err:
            self._record_stop("failed", str(err).splitlines()[0] if str(err) else type(err).__name__, best_effort=True)
            raise
        finally:
            self._close_monitor(best_effort=True)  # what TensorBoard holds reaches the disk whatever ended the run
            self.sync.close()  # the process group outlives no DDP wrapper (see GradientSync.close)
        self._record_stop(outcome.status, outcome.message)
        return outcome

    def _record_stop(self, reason: str, message: str, best_effort: bool = False) -> None:
        """End run.json's segment; ``best_effort`` after a failure, which a full disk must not hide."""
        if self.record is not None:
            try:
                self.record.stop(reason, message, self.progress.step)
            except CannotWrite:
                if not best_effort:
                    raise

    def _close_monitor(self, best_effort: bool = False) -> None:
        try:
            self.monitor.close()
        except (CannotWrite, OSError):
            if not best_effort:
                raise

    def _after_a_failed_write(self) -> str:
        """What to do after a file of the run could not be written (a full disk): where the work is."""
        latest = ckpt.latest_checkpoint(self.run_dir)
        if latest is None:
            return "no checkpoint was written yet; free space there, or point train.out_dir at a disk with room"
        return (f"{latest} is the last good checkpoint; free space there (or move {self.run_dir} to a disk with "
                f"room) and continue with cltt resume {self.run_dir}")

    def _run(self) -> Outcome:
        started = time.perf_counter()
        train = self.recipe.train
        p = self.progress
        if self.info.is_main:
            write_recipe(self.run_dir, self.recipe)
            self.record = RunRecord(self.run_dir)
            self.record.start(self.info.world_size, str(self.placement.device), p.step)
            self.step_metrics.keep_steps_up_to(p.step)
            self.metrics.keep_epochs_up_to(p.epoch)
            if self.probe is not None:
                self.probe.forget_after(p.epoch)
        self._start_wandb()
        self._start_monitor()
        self.reporter.start(RunStart(
            run_dir=self.run_dir, backbone=self.recipe.model.backbone,
            method=self.recipe.method.name + (f" (positives: {self.method.positives})" if self.method.positives else ""),
            device=str(self.placement.device), precision=self.placement.precision,
            processes=self.info.world_size, samples=len(self.dataset), batch_size=train.batch_size,
            batches_per_epoch=self.batches_per_epoch, epochs=train.epochs, total_steps=self.total_steps,
            start_epoch=p.epoch, start_step=p.step, resumed_from=self.resume_path, start_batch=p.position,
            sample_kind=self.method.sample_kind,
        ))
        self._say_what_starts_the_model()
        self._note_sub_batch_normalisation()
        batch_warning = method_class(self.recipe.method.name).batch_warning(self.recipe)
        if batch_warning and self.info.is_main:
            self.reporter.note(batch_warning)
        for note in self.pending_notes if self.info.is_main else []:
            self.reporter.note(note)
        splits = getattr(getattr(self.dataset, "table", None), "splits", 0)
        if splits and self.info.is_main:
            self.reporter.note(f"{splits} gap(s) in the frame numbering: windows are cut there (data.gaps=split); "
                               f"cltt index {self.recipe.data.root} --verify lists them")
        if p.epoch >= train.epochs:
            final = run_files.final_checkpoint(self.run_dir) or self.run_dir / run_files.FINAL_CHECKPOINT
            message = f"{self.run_dir} already finished its {train.epochs} epochs"
            if self.resume_path is not None and ckpt.recorded_progress(final) is None:  # missing or truncated: the last
                # epoch's checkpoint, resumed from, holds the state the final one had
                self._save(final.name)
                message += f"; {final.name}, which did not load, rewritten from {self.resume_path.name}"
            return self._finish("already_finished", 0, message, started, ckpt.latest_checkpoint(self.run_dir))
        loader = DataLoader(
            self.dataset,
            batch_sampler=self.sampler,
            num_workers=self.recipe.data.num_workers,
            pin_memory=self.placement.device.type == "cuda",
            worker_init_fn=_worker_init,
            collate_fn=collate_encoded if self.device_augment is not None else None,
            # its own generator: each iter() draws the workers' base seed from it, not from torch's
            # global stream, which would shift dropout masks and make a resumed run differ
            generator=torch.Generator().manual_seed(train.seed),
        )
        last_checkpoint = None
        self.last_save = time.monotonic()
        while p.epoch < train.epochs:
            epoch_started = time.perf_counter()
            replaced = 0  # samples of this epoch replaced because of corrupt frames, on this process
            self.sampler.set_epoch(p.epoch, start_batch=p.position)
            waited = time.perf_counter()
            for batch in loader:
                fetched = time.perf_counter()
                replaced += int(batch["replaced"].sum()) if "replaced" in batch else 0
                views = self.device_augment(batch) if self.device_augment is not None else batch["views"]
                loss, lr, stats = self._train_step(views, {key: batch[key] for key in self.method.extra_keys})
                spread = stats.get("spread")
                done = time.perf_counter()
                p.step += 1
                p.position += 1
                p.epoch_loss_sum += loss
                p.epoch_loss_count += 1
                if spread is not None:
                    p.epoch_spread_sum += spread
                    p.epoch_spread_count += 1
                self._report_step(loss, lr, stats, views, fetched - waited, done - waited)
                stop, due = dist.any_process(preemption.requested() is not None, self._checkpoint_due(),
                                             device=self.placement.device)  # one all-reduce a step
                if stop:
                    return self._preempted(started)
                if due and p.position < self.batches_per_epoch:
                    last_checkpoint = self._save(run_files.step_checkpoint(p.step)) or last_checkpoint
                waited = time.perf_counter()
            last_checkpoint = self._end_epoch(time.perf_counter() - epoch_started)
            (replaced,) = dist.all_reduce_sum(torch.tensor(float(replaced), device=self.placement.device))
            if replaced and self.info.is_main:
                self.reporter.note(f"epoch {p.epoch}: {int(replaced)} sample(s) replaced by the next because of corrupt "
                                   f"frames (each logged above); cltt index {self.recipe.data.root} --verify lists them")
        final = self._save(run_files.FINAL_CHECKPOINT)
        return self._finish("finished", 0, f"trained {train.epochs} epochs", started, final or last_checkpoint)

    def _note_sub_batch_normalisation(self) -> None:
        """One line when exact sub-batches meet BatchNorm: the loss is the whole batch's, the
        statistics (and so the gradients) are per sub-batch."""
        train = self.recipe.train
        local = train.batch_size // self.info.world_size
        if not (train.sub_batch_size and train.sub_batch_size < local and train.accumulation == "exact"):
            return
        if self.info.is_main and self._has_batchnorm():
            self.reporter.note(
                f"train.sub_batch_size={train.sub_batch_size}: the contrastive loss is over the whole batch, but "
                f"BatchNorm normalises each sub-batch of {train.sub_batch_size} (as per GPU), so the gradients are not "
                "the full batch's; for strictly full-batch gradients use model.head_batchnorm=false with a backbone "
                "without BatchNorm (tiny_cnn's GroupNorm, vit_s16, vit_b16)")

    def _has_batchnorm(self) -> bool:
        return any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in self.method.modules())

    def _checkpoint_due(self) -> bool:
        """``train.checkpoint_minutes`` have passed since this process's last save: a kill -9, an
        OOM or a node failure then loses at most that much work (the processes agree through
        :func:`~cltt.engine.distributed.any_process`)."""
        minutes = self.recipe.train.checkpoint_minutes
        return minutes is not None and time.monotonic() - self.last_save >= minutes * 60

    def _device_augment(self) -> DeviceAugment | None:
        """With ``data.decode: gpu``, what decodes and augments each batch on the CUDA device."""
        data = self.recipe.data
        if data.decode != "gpu":
            return None
        if self.placement.device.type != "cuda":
            raise CLTTError(f"data.decode=gpu decodes JPEGs on a CUDA device, but this run trains on "
                            f"{self.placement.device}; use data.decode=cpu (the default)")
        if not getattr(self.dataset, "encoded", False) or self.method.extra_keys:
            raise CLTTError(f"data.decode=gpu works for window methods without extra per-sample tensors; "
                            f"{self.recipe.method.name} decodes in the workers: use data.decode=cpu")
        self.dataset.store.encoded_bytes(0)  # a store of raw frames says here that it has nothing to decode
        return DeviceAugment(data.image_size, self.placement.device, self.dataset.store.locate)

    def _train_step(self, views: torch.Tensor, extras: dict[str, torch.Tensor]) -> tuple[float, float, dict]:
        """One optimizer step -> (global batch loss, learning rate of train.lr's group, the step's
        stats: embedding ``spread`` and the loss ``terms``)."""
        train = self.recipe.train
        lr = self.schedule.lr_at(self.progress.step)
        set_learning_rate(self.optimizer, self.schedule.decay_rate(self.progress.step))
        self.method.train()
        self.method.before_step(self.progress.step, self.total_steps)
        stats: dict = {}
        try:
            loss = accumulate_gradients(self.method, views, self.placement, self.scaler,
                                        train.sub_batch_size, train.accumulation, extras, stats, self.sync)
        except NonFiniteLoss as err:
            latest = ckpt.latest_checkpoint(self.run_dir)
            kept = f"{latest} is the last good checkpoint" if latest else "no checkpoint was written yet"
            raise CLTTError(
                f"{err} at epoch {self.progress.epoch + 1}, batch {self.progress.position + 1} (step {self.progress.step + 1}); "
                f"{kept}; lower train.lr (now {lr:.3g}), set train.grad_clip, or raise method.temperature"
            ) from None
        optimizer_step(self.method, self.optimizer, self.scaler, train.grad_clip)
        self.method.after_step(self.progress.step + 1, self.total_steps)
        return loss, lr, stats

    def _report_step(self, loss: float, lr: float, stats: dict, views: torch.Tensor, wait: float, total: float) -> None:
        p = self.progress
        frames = views.shape[0] * views.shape[1] * views.shape[2] * self.info.world_size
        speed, waiting = frames / max(total, 1e-9), wait / max(total, 1e-9)
        self.reporter.step(StepDone(
            epoch=p.epoch + 1, batch=p.position, batches_per_epoch=self.batches_per_epoch, step=p.step,
            total_steps=self.total_steps, loss=loss, lr=lr, frames_per_second=speed, data_wait=waiting,
        ))
        if not self.info.is_main:
            return
        log = self.recipe.log
        if p.step % log.step_every == 0:
            self.step_metrics.append(p.step, p.epoch + 1, loss, lr, speed, waiting)
            self.monitor.scalars(step_scalars(loss, stats.get("terms", {}), group_learning_rates(self.optimizer), lr,
                                              speed, waiting),
                                 step=p.step, epoch=p.epoch + p.position / self.batches_per_epoch)
        if self.monitor.active and log.images_every and p.step % log.images_every == 0:
            self.monitor.images(training_images(self.method, views, self.placement), step=p.step)

    def _end_epoch(self, seconds: float) -> Path | None:
        p = self.progress
        loss = p.epoch_loss_sum / max(1, p.epoch_loss_count)
        spread = p.epoch_spread_sum / p.epoch_spread_count if p.epoch_spread_count else None
        last_lr = self.schedule.lr_at(p.step - 1)
        decay = self.schedule.decay_rate(p.step - 1)
        p.epoch += 1
        p.position = 0
        p.epoch_loss_sum, p.epoch_loss_count = 0.0, 0
        p.epoch_spread_sum, p.epoch_spread_count = 0.0, 0
        if self.info.is_main:
            self.metrics.append(p.epoch, loss, last_lr, decay)
            logged = {"epoch/loss": loss, "epoch/learning_rate": last_lr, "epoch/decay_rate": decay}
            if spread is not None:
                logged["epoch/embedding_spread"] = spread
            if self.probe is not None and (p.epoch % self.recipe.probe.every == 0 or p.epoch == self.recipe.train.epochs):
                note, scalars = self.probe(self.method, self.placement.device, p.epoch)
                self.reporter.note(f"probe after epoch {p.epoch}: {note}")
                logged.update(scalars)
            self.monitor.scalars(logged, step=p.step, epoch=p.epoch)
        path = None
        if p.epoch % self.recipe.train.save_every == 0 or p.epoch == self.recipe.train.epochs:
            path = self._save(run_files.epoch_checkpoint(p.epoch))
        self.reporter.epoch(EpochDone(p.epoch, self.recipe.train.epochs, loss, last_lr, decay, seconds, path, spread))
        threshold = self.recipe.log.collapse_warning
        if spread is not None and spread < threshold and self.info.is_main:
            self.reporter.note(f"warning: the embeddings are collapsing: spread {spread:.3f} < {threshold} in "
                               f"epoch {p.epoch} (sqrt(D) x per-dimension std of the normalised embeddings; 1 is "
                               "evenly spread, 0 one point); lower train.lr, or check the method's "
                               "momentum/variance settings")
        return path

    def _preempted(self, started: float) -> Outcome:
        signal_name = preemption.requested() or "a signal on another process"
        status = "interrupted" if signal_name == "SIGINT" else "preempted"  # a Ctrl-C is the user's stop, not the scheduler's
        preemption.finishing()
        path = self._save(run_files.step_checkpoint(self.progress.step))
        code, how = 0, ""
        if self.info.is_main:
            self._record_stop(status, f"{signal_name}: saved {path}")  # before a requeue, after which Slurm may kill us
            code, how = preemption.requeue_or_exit_code(self.recipe.train.requeue, preemption.requested())
        message = (f"{signal_name}: saved epoch {self.progress.epoch + 1} batch {self.progress.position} "
                   f"(step {self.progress.step}) to {path}; {how}")
        return self._finish(status, code if self.info.is_main else preemption.REQUEUE_EXIT_CODE, message,
                            started, path)

    def _finish(self, status: str, code: int, message: str, started: float, path: Path | None) -> Outcome:
        rows = self.metrics.rows() if self.info.is_main else []
        outcome = Outcome(
            status=status, exit_code=code, message=message, run_dir=self.run_dir, epoch=self.progress.epoch,
            step=self.progress.step, loss=float(rows[-1]["loss"]) if rows else None, checkpoint=path,
            seconds=time.perf_counter() - started,
        )
        self.monitor.close()  # finishes the W&B run too
        self.reporter.stop(outcome)
        return outcome
