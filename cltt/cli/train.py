"""``cltt train`` and ``cltt resume``: run a method on the windows of a frames root."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click
from rich.markup import escape

from cltt.cli.common import console, err_console, show_option, show_recipe, split_arguments, writing_run_dir
from cltt.engine import preemption
from cltt.engine.run_files import TRAIN_LOG
from cltt.errors import CLTTError, Interrupted

change_length_option = click.option(
    "--change-length", is_flag=True,
    help="Allow train.epochs to differ from the run being continued (the cosine schedule stretches from here on).")


class MethodListingCommand(click.Command):
    """``--help`` lists every registered method with its one-line description, read from the
    methods' source without importing them (:func:`~cltt.methods.registry.method_descriptions`),
    so ``cltt train --help`` starts without torch like the other everyday commands."""

    def format_epilog(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        from cltt.methods.registry import method_descriptions

        with formatter.section("Methods (method.name; method.<name>.* is its own section)"):
            formatter.write_dl(list(method_descriptions().items()))
        super().format_epilog(ctx, formatter)


@click.command(
    name="train",
    cls=MethodListingCommand,
    epilog="""\b
Examples:
  cltt train recipes/quickstart.yaml
  cltt train recipes/quickstart.yaml model.backbone=resnet18 train.epochs=20 train.name=r18
  torchrun --nproc-per-node 2 -m cltt train recipes/egocentric.yaml
  cltt train recipes/egocentric.yaml train.resume=auto     # what a requeued Slurm job runs

\b
If the loss does not fall: lower train.lr, raise train.batch_size (more negatives), or
raise method.temperature towards 0.2; on CPU try model.backbone=tiny_cnn first.""",
)
@click.argument("args", nargs=-1)
@change_length_option
@show_option
def train_command(args: tuple[str, ...], change_length: bool, show: bool) -> None:
    """Train a temporal contrastive method; checkpoints and metrics go to train.out_dir/NAME.

    ARGS: RECIPE [key.sub=value ...]. NAME is train.name or the recipe file's name. An
    existing run dir is continued only with train.resume=auto (or use cltt resume).
    SIGUSR1, SIGUSR2, SIGTERM or Ctrl-C finish the step, save, and under Slurm requeue; a
    checkpoint is also written every train.checkpoint_minutes (20) inside an epoch.

    train.sub_batch_size with train.accumulation=exact keeps the contrastive loss over the whole
    batch and replays dropout, so the gradients are those of that loss; BatchNorm statistics are
    per sub-batch (as per GPU), so with BatchNorm (the default resnet18 and head) they are not
    the full batch's: for that use model.head_batchnorm=false and a backbone without BatchNorm.
    """
    preemption.install()  # first: a Slurm warning may arrive while torch is still importing
    parsed = split_arguments(args)
    if parsed.paths:
        raise CLTTError(f"unexpected argument {parsed.paths[0]}; cltt train takes RECIPE [key=value ...]")
    if parsed.recipe_path is None:
        raise CLTTError("cltt train needs a recipe, e.g. cltt train recipes/quickstart.yaml")
    recipe = parsed.recipe()
    if show:
        show_recipe(recipe)
        return
    from cltt.engine.run_dir import prepare_training, run_name

    run_dir = Path(recipe.train.out_dir) / run_name(recipe, parsed.recipe_path)
    with _writing(run_dir, "wait for it to finish, or start another run with train.name=NEW_NAME"):
        _run(*prepare_training(recipe, parsed.recipe_path, change_length))


@click.command(
    name="resume",
    epilog="""\b
Examples:
  cltt resume runs/quickstart
  cltt resume runs/quickstart/checkpoint_epoch_003.pth
  cltt resume runs/quickstart train.epochs=10 --change-length
  cltt resume runs/quickstart data.root=/scratch/$USER/frames data.num_workers=8""",
)
@click.argument("target", type=click.Path(path_type=Path))
@click.argument("overrides", nargs=-1)
@change_length_option
def resume_command(target: Path, overrides: tuple[str, ...], change_length: bool) -> None:
    """Continue a run from its latest checkpoint (RUN_DIR) or from a CHECKPOINT file.

    The recipe comes from the checkpoint; key=value overrides may change where the data
    live, the device, workers and logging, and train.epochs with --change-length.
    """
    preemption.install()
    from cltt.engine.run_dir import prepare_resume, resolve_resume_target

    run_dir = resolve_resume_target(target).parent  # refuses a missing target before any lock file is made
    with _writing(run_dir, "wait for it to finish; a run dir has one writer"):
        _run(*prepare_resume(target, list(overrides), change_length))


def _writing(run_dir: Path, advice: str):
    """The run dir's lock, from before its checkpoints are read until the process ends, so two
    runs never interleave in one dir; held by process 0 of a DDP run (the others write nothing there)."""
    from cltt.engine import distributed

    return writing_run_dir(run_dir, advice, take=distributed.process_info().is_main)


def _run(recipe, run_dir: Path, resume, notes: list[str]) -> None:
    from cltt.cli.train_progress import reporter_for
    from cltt.engine import distributed
    from cltt.engine.checkpoint import latest_checkpoint
    from cltt.engine.trainer import Trainer
    from cltt.eval.tasks import training_probe

    info = distributed.process_info()
    for note in notes if info.is_main else []:
        err_console.print(f"[dim]note:[/] {escape(note)}", soft_wrap=True)
    try:
        probe = training_probe(recipe, run_dir) if info.is_main else None  # labels checked before training starts
        trainer = Trainer(recipe, run_dir, reporter_for(recipe.log.interval, info.is_main, run_dir / TRAIN_LOG), resume,
                          probe)
        outcome = trainer.run()
    except KeyboardInterrupt:  # a second Ctrl-C aborted the step: one line that says where the work is
        latest = latest_checkpoint(run_dir) if info.is_main else None
        kept = f"{latest} is the last checkpoint; continue with cltt resume {run_dir}" if latest else "no checkpoint was written"
        raise Interrupted(f"interrupted; {kept}") from None
    finally:
        distributed.shutdown_processes()
    if outcome.status in ("preempted", "interrupted") and info.is_main and preemption.slurm_job_to_requeue() is None \
            and outcome.exit_code in (preemption.REQUEUE_EXIT_CODE, preemption.INTERRUPTED_EXIT_CODE):
        err_console.print(f"continue with: cltt resume {escape(str(run_dir))}", soft_wrap=True)  # the stop itself: the summary line
    console.file.flush()
    _report_exit_code(outcome.exit_code, info.is_main)
    sys.exit(outcome.exit_code)


def _report_exit_code(code: int, is_main: bool) -> None:
    """Write the trainer's exit code to ``$CLTT_EXIT_CODE_FILE`` (process 0 only), for a batch
    script that must tell "saved, requeue me" (75) from a failure: torchrun exits 1 whenever a
    worker exits non-zero, 75 included (slurm/train.sh reads this file)."""
    path = os.environ.get("CLTT_EXIT_CODE_FILE")
    if path and is_main:
        try:
            Path(path).write_text(f"{code}\n")
        except OSError as err:
            err_console.print(f"warning: cannot write CLTT_EXIT_CODE_FILE={escape(path)}: {escape(str(err))}", soft_wrap=True)



