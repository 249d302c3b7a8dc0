"""Redraw the documentation's pictures with cltt itself: ``python docs/make_pictures.py``.

Runs the quickstart (``cltt train recipes/quickstart.yaml`` then ``cltt probe runs/quickstart``)
in a scratch folder, then draws with ``cltt visualize``:

* ``docs/img/window.png``: one window of the quickstart, unaugmented (``--mode sample``);
* ``docs/img/batch.png``: a training-like batch, augmented (``--mode batch --batch-sampling random``);
* ``docs/img/curves.png``: the run's loss and learning rate (``--mode curves``);
* ``docs/img/probe.png``: trained vs random init vs pixels, test accuracy of each readout with its
  95% interval over clips as an error bar (``--mode probe``);
* ``docs/img/slots.png`` (``--slots``): slot masks of a short ``recipes/slotcontrast.yaml`` run
  (``--mode slots``; a few CPU minutes more).

About 2 to 4 minutes on 2 CPU cores without ``--slots``. The commands and their output are
printed as they run, so the pictures' provenance is the log.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
IMAGES = REPO / "docs" / "img"


def cltt(*args: str, cwd: Path) -> None:
    command = [sys.executable, "-m", "cltt", *args]
    print("$ cltt " + " ".join(args), flush=True)
    subprocess.run(command, cwd=cwd, check=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", type=Path, help="scratch folder (default: a new temporary one, removed at the end)")
    parser.add_argument("--slots", action="store_true", help="also train a short slotcontrast run and draw its masks")
    options = parser.parse_args()
    work = options.work or Path(tempfile.mkdtemp(prefix="cltt-pictures-"))
    work.mkdir(parents=True, exist_ok=True)
    IMAGES.mkdir(parents=True, exist_ok=True)
    quickstart = str(REPO / "recipes" / "quickstart.yaml")
    try:
        if not (work / "runs" / "quickstart" / "checkpoint_final.pth").exists():
            cltt("train", quickstart, cwd=work)
        if not (work / "runs" / "quickstart" / "probe.json").exists():
            cltt("probe", "runs/quickstart", cwd=work)
        cltt("visualize", quickstart, "--mode", "sample", "--index", "40", "--no-augment",
             "--out", str(IMAGES / "window.png"), cwd=work)
        cltt("visualize", quickstart, "--mode", "batch", "--batch-sampling", "random", "--batch-size", "6",
             "--out", str(IMAGES / "batch.png"), cwd=work)
        cltt("visualize", "runs/quickstart", "--mode", "curves", "--out", str(IMAGES / "curves.png"), cwd=work)
        cltt("visualize", "runs/quickstart", "--mode", "probe", "--out", str(IMAGES / "probe.png"), cwd=work)
        if options.slots:
            cltt("train", str(REPO / "recipes" / "slotcontrast.yaml"), "train.epochs=2", cwd=work)
            cltt("visualize", "runs/slotcontrast", "--mode", "slots", "--masks", "attention",
                 "--out", str(IMAGES / "slots.png"), cwd=work)
    finally:
        if options.work is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
