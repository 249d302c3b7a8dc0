"""Small built-in datasets written for a test: real frames on disk from cltt's own generators."""

from __future__ import annotations

from pathlib import Path

from cltt.data.synthetic import write_synthetic
from cltt.recipe import SyntheticConfig


def synthetic(root: Path, name: str, **config) -> Path:
    """``root`` after writing generator ``name``'s data there: 12 clips of 8 frames at 32 px unless ``config`` says."""
    settings = {"clips": 12, "frames": 8, "size": 32, **config}
    for _ in write_synthetic(name, root, SyntheticConfig(**settings)):
        pass
    return root
