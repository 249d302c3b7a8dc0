"""Task ``image_set`` as the recipe sees it: its section ``probe.image_set.*``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from cltt.errors import RecipeError
from cltt.recipe.probes import TaskSection, declare_task


@dataclass
class ImageSetConfig:
    """``probe.image_set.*``: ``path`` is the labelled image set (issue 21's ``probe.eval_set``),
    relative to the working folder: a folder ``ROOT/<class>/*.jpg`` (splits from
    ``ROOT/{train,val,test}/<class>/`` where they exist, else drawn per image with
    ``probe.split_seed`` in ``probe.split_fractions``, stratified) or a CSV
    ``path,label[,split][,group]`` (paths relative to the CSV's folder; a group stays on one side
    of every split and is what the bootstrap resamples)."""

    path: Optional[str] = None

    def validate(self, at: str) -> None:
        if self.path is not None and not str(self.path).strip():
            raise RecipeError(f"recipe key '{at}.path' is empty; give a folder ROOT/<class>/*.jpg or a CSV "
                              "path,label[,split][,group]")


@declare_task("image_set", config=ImageSetConfig)
class ImageSet(TaskSection):
    """Labelled image sets: an ImageFolder or a CSV of images with splits and groups."""
