"""Start-up time of the commands run many times a day (often on a cluster's login node),
against a bare ``python -c pass``, in one run.

    python benchmarks/startup.py                        # 5 runs of each, about a minute on 2 cores
    python benchmarks/startup.py --repeats 11 --json startup.json

Each command runs in a fresh interpreter, as ``python -m cltt ...``, on tiny real data made in a
temporary folder: a frames root of 2 clips of 8 JPEGs, a runs folder with one run dir
(recipe.yaml and metrics.csv as training leaves them after an epoch), a sweep folder written by
``cltt sweep``, and a 12-frame MJPG video written with OpenCV. The time is the wall time of the
whole process, start to exit, median over the repeats; beside it the CPU seconds (user +
system) the process used, which other work on a shared machine does not inflate, and the load
average, which says how busy the machine was. The torch and cv2 columns say whether the command
imported them, read from ``sys.modules`` at its exit in one more run.
Target (issue 20): every command under 1 s on 2 cores, none importing torch.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parent.parent
# runs cltt's CLI as `python -m cltt` does, then writes what was imported to the file named first
MODULES_AT_EXIT = """
import json, runpy, sys
record = sys.argv.pop(1)
code = 0
try:
    runpy.run_module("cltt", run_name="__main__", alter_sys=True)
except SystemExit as stop:
    code = stop.code or 0
with open(record, "w") as handle:
    json.dump({"exit": code, "modules": sorted(sys.modules)}, handle)
sys.exit(code)
"""


def make_data(folder: Path) -> dict[str, Path]:
    """The tiny real inputs of the commands."""
    rng = np.random.default_rng(0)
    frames = folder / "frames"
    for clip in ("clip_a", "clip_b"):
        (frames / clip).mkdir(parents=True)
        for index in range(1, 9):
            cv2.imwrite(str(frames / clip / f"frame_{index:06d}.jpg"), rng.integers(0, 256, (48, 64, 3), dtype=np.uint8))
    video = folder / "walk.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 30, (64, 48))
    for index in range(12):
        writer.write(np.full((48, 64, 3), index * 20, np.uint8))
    writer.release()
    recipe = folder / "tiny.yaml"
    recipe.write_text(f"data:\n  root: {frames}\n  window_size: 2\nmodel:\n  backbone: tiny_cnn\n"
                      f"train:\n  epochs: 2\n  out_dir: {folder / 'runs'}\nsweep:\n  out_dir: {folder / 'sweeps'}\n")
    run_dir = folder / "runs" / "tiny"
    run_dir.mkdir(parents=True)
    shown = cltt(["train", str(recipe), "--show"], folder)
    run_dir.joinpath("recipe.yaml").write_text(shown.stdout)
    run_dir.joinpath("metrics.csv").write_text("epoch,loss,learning_rate,decay_rate\n1,4.1589,0.001,0.0\n")
    cltt(["sweep", str(recipe), "--grid", "train.lr=1e-3,3e-4"], folder)
    return {"frames": frames, "video": video, "recipe": recipe, "runs": folder / "runs",
            "sweep": folder / "sweeps" / "tiny"}


def cltt(args: list[str], cwd: Path, record: Path | None = None) -> subprocess.CompletedProcess:
    command = [sys.executable, "-c", MODULES_AT_EXIT, str(record)] if record else [sys.executable, "-m", "cltt"]
    result = subprocess.run(command + args, cwd=cwd, capture_output=True, text=True, env=environment(cwd))
    if result.returncode != 0:
        raise SystemExit(f"cltt {' '.join(args)} failed ({result.returncode}): {result.stderr.strip()[-500:]}")
    return result


def environment(folder: Path) -> dict[str, str]:
    return {**os.environ, "CLTT_CACHE": str(folder / "cache"), "PYTHONPATH": str(REPO), "COLUMNS": "120"}


def commands(data: dict[str, Path], folder: Path) -> dict[str, Callable[[object], list[str]]]:
    """Each command by the name the table shows: a function of the repeat's number giving its arguments."""
    return {
        "cltt --help": lambda n: ["--help"],
        "cltt index FRAMES": lambda n: ["index", str(data["frames"])],
        "cltt runs RUNS": lambda n: ["runs", str(data["runs"])],
        "cltt sweep status SWEEP": lambda n: ["sweep", "status", str(data["sweep"])],
        "cltt extract VIDEO --out NEW": lambda n: ["extract", str(data["video"]), "--out", str(folder / f"out{n}")],
        "cltt train RECIPE --show": lambda n: ["train", str(data["recipe"]), "--show"],
    }


def seconds(command: list[str], cwd: Path) -> tuple[float, float]:
    """Wall seconds of ``command`` from start to exit, and the CPU seconds it used (user + system,
    which other work on the machine does not inflate)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    result = subprocess.run(command, cwd=cwd, capture_output=True, env=environment(cwd))
    elapsed = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed: {result.stderr.decode()[-500:]}")
    return elapsed, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def medians(command: list[str] | Callable[[int], list[str]], cwd: Path, repeats: int) -> tuple[float, float]:
    runs = [seconds(command(n) if callable(command) else command, cwd) for n in range(repeats)]
    return statistics.median(wall for wall, _ in runs), statistics.median(cpu for _, cpu in runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5, help="runs of each command; the median is shown")
    parser.add_argument("--json", type=Path, help="also write the rows here")
    options = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="cltt-startup-") as temp:
        folder = Path(temp)
        data = make_data(folder)
        bare, bare_cpu = medians([sys.executable, "-c", "pass"], folder, options.repeats)
        rows = [{"command": "python -c pass", "seconds": bare, "cpu_seconds": bare_cpu, "ratio": 1.0, "torch": False,
                 "cv2": False}]
        for name, arguments in commands(data, folder).items():
            record = folder / "modules.json"
            cltt(arguments("modules"), folder, record)
            imported = set(json.loads(record.read_text())["modules"])
            wall, cpu = medians(lambda n: [sys.executable, "-m", "cltt", *arguments(n)], folder, options.repeats)
            rows.append({"command": name, "seconds": wall, "cpu_seconds": cpu, "ratio": wall / bare,
                         "torch": "torch" in imported, "cv2": "cv2" in imported})
    load = os.getloadavg()[0]
    print(f"start-up, median of {options.repeats} runs (python {sys.version.split()[0]}, {os.cpu_count()} CPUs, "
          f"load average {load:.1f} when done)")
    print(f"{'command':32} {'wall s':>7} {'x bare':>7} {'CPU s':>6}  torch  cv2")
    for row in rows:
        print(f"{row['command']:32} {row['seconds']:7.3f} {row['ratio']:7.1f} {row['cpu_seconds']:6.2f}  "
              f"{'yes' if row['torch'] else 'no':5}  {'yes' if row['cv2'] else 'no'}")
    if options.json:
        options.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
