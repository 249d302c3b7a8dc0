"""Optional Weights & Biases logging that survives resumes.

The run id is created once and stored in every checkpoint; a resumed run reopens the same
W&B run (``resume="allow"``). ``mode: offline`` writes under ``RUN_DIR/wandb`` without any
network (upload later with ``wandb sync``). wandb is imported only when enabled.
"""

from __future__ import annotations

import os
import secrets
import string
from pathlib import Path

from cltt.errors import CLTTError
from cltt.recipe import WandbConfig


class WandbRun:
    def __init__(self, config: WandbConfig, run_dir: Path, run_name: str, run_id: str, recipe: dict):
        try:
            import wandb
        except ImportError:
            raise CLTTError("log.wandb.enabled=true but wandb is not installed; pip install wandb") from None
        os.environ.setdefault("WANDB_SILENT", "true")
        self._wandb = wandb
        self.run = wandb.init(
            project=config.project,
            entity=config.entity,
            name=config.name or run_name,
            tags=list(config.tags),
            mode=config.mode,
            id=run_id,
            resume="allow",
            dir=str(run_dir),
            config=recipe,
        )

    @staticmethod
    def new_id() -> str:
        """A fresh run id in W&B's style: 8 lowercase letters and digits."""
        alphabet = string.ascii_lowercase + string.digits
        return "".join(secrets.choice(alphabet) for _ in range(8))

    def log(self, values: dict, step: int) -> None:
        self.run.log(values, step=step)

    def log_images(self, images: dict, step: int) -> None:
        """RGB uint8 ``[H, W, 3]`` arrays by name."""
        self.run.log({name: self._wandb.Image(image) for name, image in images.items()}, step=step)

    def finish(self) -> None:
        self.run.finish()
