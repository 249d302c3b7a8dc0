"""Every name in a run dir, and the words for how a run stands, in one module that imports
neither torch nor the rest of cltt, so ``cltt runs`` and ``cltt sweep`` (status, the skip of
finished runs) use them without loading torch.

    RUN_DIR/
      recipe.yaml                   RECIPE_FILE     the resolved recipe, rewritten at each start
      run.json                      RUN_FILE        versions, git commit, a segment per start (engine.provenance)
      run.lock                      LOCK_FILE       held by the one command writing the run dir (engine.run_lock)
      train.log                     TRAIN_LOG       the progress lines of cltt train and resume
      metrics.csv                   METRICS_FILE    epoch,loss,learning_rate,decay_rate
      metrics_steps.csv             STEPS_FILE      a row every log.step_every steps
      metrics_eval.csv              EVAL_FILE       the probe's rows, in the lab's header
      latest                        LATEST_FILE     the name of the newest whole checkpoint
      checkpoint_epoch_003.pth      epoch_checkpoint(3)
      checkpoint_step_0001234.pth   step_checkpoint(1234)    a run stopped inside an epoch
      checkpoint_final.pth          FINAL_CHECKPOINT
      features/                     FEATURES_DIR    cached probe features
      exports/                      EXPORTS_DIR     where cltt export writes by default
      tensorboard/                  TENSORBOARD_DIR
      wandb/                        W&B's own folder (log.wandb)

Probe reports (``probe.json``, ``probe_<task>.json``) are named by their task (:mod:`cltt.eval.tasks`).

Checkpoint names say what they hold: a checkpoint, of whichever method the recipe in it names.
cltt used to write the lab's names ``simclr_epoch_003.pth``, ``simclr_step_0001234.pth`` and
``simclr_final.pth`` for every method, which told a reader of a CARL or DINO run dir that it held
a SimCLR model. New checkpoints take the ``checkpoint_`` names; the ``simclr_`` ones
(:data:`LAB_PREFIX`) are recognised everywhere a checkpoint is looked for and never written, so
a run dir from before resumes, probes, exports and shows in ``cltt runs`` and ``cltt sweep
status`` as it did. A run of the old names that is resumed writes its next checkpoints under the
new names; ``latest`` and the step each checkpoint records say which is newest, and the
``simclr_epoch_*`` files are pruned with the new ones by ``train.keep_last``. The names are the
same for every method so that tools which read no recipe (the sweep's job script, ``cltt runs``)
find the final checkpoint by name alone.

Run states (:data:`RUN_STATES`) are one vocabulary for ``cltt runs`` and ``cltt sweep status``.
"""

from __future__ import annotations

import re
from pathlib import Path

RECIPE_FILE = "recipe.yaml"
RUN_FILE = "run.json"
LOCK_FILE = "run.lock"
TRAIN_LOG = "train.log"
METRICS_FILE = "metrics.csv"
STEPS_FILE = "metrics_steps.csv"
EVAL_FILE = "metrics_eval.csv"
LATEST_FILE = "latest"
FEATURES_DIR = "features"
EXPORTS_DIR = "exports"
TENSORBOARD_DIR = "tensorboard"

CHECKPOINT_PREFIX = "checkpoint"
LAB_PREFIX = "simclr"  # the lab's names, which cltt wrote before for every method: read, never written
FINAL_CHECKPOINT = f"{CHECKPOINT_PREFIX}_final.pth"
FINAL_CHECKPOINTS = (FINAL_CHECKPOINT, f"{LAB_PREFIX}_final.pth")
_NUMBERED = re.compile(rf"^(?:{CHECKPOINT_PREFIX}|{LAB_PREFIX})_(epoch|step)_(\d+)\.pth$")

# How a run stands: the same words in ``cltt runs`` and ``cltt sweep status``.
FINISHED = "finished"  # its final checkpoint exists
RUNNING = "running"  # started and not stopped (a note says when this is a guess: another host, a log)
FAILED = "failed"  # stopped with an error (the message is the note)
INTERRUPTED = "interrupted"  # stopped by Ctrl-C, with a checkpoint to resume from
STOPPED = "stopped"  # stopped by a scheduler's signal or a time limit, or killed without a word
NOT_STARTED = "not started"  # a run dir (or a sweep's run) with nothing trained yet
RUN_STATES = (FINISHED, RUNNING, FAILED, INTERRUPTED, STOPPED, NOT_STARTED)


def epoch_checkpoint(epoch: int) -> str:
    """The file name of the checkpoint written after epoch ``epoch``."""
    return f"{CHECKPOINT_PREFIX}_epoch_{epoch:03d}.pth"


def step_checkpoint(step: int) -> str:
    """The file name of the checkpoint written at optimizer step ``step``, inside an epoch."""
    return f"{CHECKPOINT_PREFIX}_step_{step:07d}.pth"


def is_final(name: str) -> bool:
    return name in FINAL_CHECKPOINTS


def epoch_of(name: str) -> int | None:
    """3 for ``checkpoint_epoch_003.pth`` (or the lab's ``simclr_epoch_003.pth``), else None."""
    match = _NUMBERED.match(name)
    return int(match.group(2)) if match and match.group(1) == "epoch" else None


def step_of(name: str) -> int | None:
    """1234 for ``checkpoint_step_0001234.pth`` (or the lab's name), else None."""
    match = _NUMBERED.match(name)
    return int(match.group(2)) if match and match.group(1) == "step" else None


def is_checkpoint(name: str) -> bool:
    """Whether a file name is a checkpoint's, in either naming (temporary files are not)."""
    return is_final(name) or _NUMBERED.match(name) is not None


def checkpoint_files(run_dir: Path) -> list[Path]:
    """Every finished checkpoint of a run dir, in either naming, by name."""
    run_dir = Path(run_dir)
    return sorted(p for p in run_dir.glob("*.pth") if is_checkpoint(p.name)) if run_dir.is_dir() else []


def final_checkpoint(run_dir: Path) -> Path | None:
    """The final checkpoint of a run dir (either naming), None while it is unfinished."""
    return next((Path(run_dir) / name for name in FINAL_CHECKPOINTS if (Path(run_dir) / name).is_file()), None)
