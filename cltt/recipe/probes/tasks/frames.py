"""Task ``frames`` as the recipe sees it: its section ``probe.frames.*``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from cltt.errors import RecipeError
from cltt.recipe.probes import TaskSection, declare_task


@dataclass
class FramesConfig:
    """``probe.frames.*``: ``segments`` is the file of labels by time ``clip,start,end,label``
    that labels the frames (default ``ROOT/segments.csv``, as ``cltt extract --synthetic
    playroom`` writes); the clips' splits come from ``probe.labels`` as task ``classes`` reads them."""

    segments: Optional[str] = None

    def validate(self, at: str) -> None:
        if self.segments is not None and not str(self.segments).strip():
            raise RecipeError(f"recipe key '{at}.segments' is empty; give a CSV clip,start,end,label or leave it "
                              "unset for ROOT/segments.csv")


@declare_task("frames", config=FramesConfig)
class Frames(TaskSection):
    """Per-frame labels by time, read by the readouts of probe.probes; splits and bootstrap by clip."""
