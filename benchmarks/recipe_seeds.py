"""A recipe's probe figures over training seeds and CPU thread counts, each with its 95% interval.

    python benchmarks/recipe_seeds.py recipes/quickstart.yaml --threads 1 2     # seeds 0 1 2 on 1 and 2 threads
    python benchmarks/recipe_seeds.py recipes/clip_simclr.yaml                  # clip-level probe
    python benchmarks/recipe_seeds.py recipes/carl.yaml                         # probe.task phases
    python benchmarks/recipe_seeds.py recipes/vicreg.yaml --probe data.root=data/digits300 \\
        --probe extract.synthetic.clips=300 --probe extract.synthetic.seed=1     # probed on other data
    python benchmarks/recipe_seeds.py recipes/byol.yaml train.epochs=10 --seeds 0   # key=value (before the options) trains every run

For every thread count t in ``--threads`` and seed s in ``--seeds``, trains ``RECIPE`` with
``train.seed=s`` under ``torch.set_num_threads(t)`` into ``--out-dir/<recipe>_s<s>_t<t>`` (with
a digest of the overrides after it when there are any; the data stay the recipe's, so only
training differs), then probes the final checkpoint the way
``cltt probe RUN`` does, after the ``--probe`` overrides (``probe.*``, ``data.root``, and
``extract.synthetic.*`` for built-in probe data, written first when missing, as
``cltt extract --synthetic`` would):

    probe.task classes   every (features, probe) test figure: logistic, linear, kNN, retrieval
                         (so too frames and image_set, per labelled frame or image)
    probe.task phases    phase accuracy (interval over test videos), progression R², Kendall's
                         tau and AP@K, for every source and order
    probe.task slots     video FG-ARI and mBO of the decoder's and slot attention's masks

Prints one row per figure: each run's value with its 95% clip-bootstrap interval where the probe
has one, then mean +- sample sd over the seeds for each thread count, and with two or more
thread counts each seed's change between the first two. Writes every figure to
``--out-dir/<recipe>[_<digest>].json``. Finished runs are reused (``train.resume=auto``), so a
rerun only probes, and a run stopped part-way resumes from its last checkpoint. Float sums
are ordered differently on another number of threads, so two thread counts part ways after a
few steps: compare their gap to the spread over seeds.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import time
from pathlib import Path

import numpy as np
import torch

from cltt.data.build import open_frames
from cltt.engine import run_dir as run_dirs
from cltt.engine import run_files
from cltt.engine.run_dir import prepare_training
from cltt.engine.run_lock import hold_run_dir
from cltt.engine.trainer import Trainer
from cltt.eval.report import ProbeReport
from cltt.eval.tasks import probe_task
from cltt.recipe import Recipe, load_recipe

Figure = tuple[float | None, list[float] | None]  # value, [low, high] 95% or None
PHASE_METRICS = ("phase_acc", "progress_r2", "kendall_tau")
SLOT_METRICS = ("fg_ari", "mbo", "attention_fg_ari", "attention_mbo")


def figures(recipe: Recipe, checkpoint: Path) -> dict[str, Figure]:
    """Every figure ``cltt probe`` reports for ``checkpoint``, by a readable name: for a task that
    scores readouts (a :class:`~cltt.eval.report.ProbeReport`: classes, frames, image_set)
    ``"<features> <readout>"``, else ``"<source> <metric>"`` from the task's metrics (label_free:
    every measure with its interval; phases and slots: their named metrics)."""
    report = probe_task(recipe, checkpoint)
    if isinstance(report, ProbeReport):
        return {f"{s.features} {s.probe}": (s.test, s.intervals.get("test")) for s in report.scores}
    metrics = report.metrics
    if recipe.probe.task == "label_free":  # every measure, with its interval over clips
        return {f"{source} {name}": (value, None if values.get(f"{name}_low") is None
                                     else [values[f"{name}_low"], values[f"{name}_high"]])
                for source, values in metrics.items() for name, value in values.items()
                if not name.endswith(("_low", "_high"))}
    if recipe.probe.task == "phases":
        found = {}
        for source, values in metrics.items():
            for name in (*PHASE_METRICS, *(key for key in values if key.startswith("ap@"))):
                interval = ([values["phase_acc_low"], values["phase_acc_high"]]
                            if name == "phase_acc" and values.get("phase_acc_low") is not None else None)
                found[f"{source} {name}"] = (values.get(name), interval)
        return found
    return {f"{source} {name}": (values.get(name), None) for source, values in metrics.items()
            for name in SLOT_METRICS if name in values}


def digest(overrides: list[str]) -> str:
    """``_<8 hex digits>`` naming a set of overrides ("" for none)."""
    return f"_{hashlib.sha1(chr(10).join(overrides).encode()).hexdigest()[:8]}" if overrides else ""


def run_name(recipe_path: Path, seed: int, threads: int, overrides: list[str]) -> str:
    """``<recipe>_s<seed>_t<threads>``, plus the overrides' digest, so that a run trained under
    other overrides is never taken for this one's finished run."""
    return f"{recipe_path.stem}_s{seed}_t{threads}{digest(overrides)}"


def writing(run_dir: Path):
    """The run dir's one-writer lock, as ``cltt train`` and ``cltt probe`` hold it: two benchmarks
    (or a benchmark and a cltt command) on one out dir would otherwise train or probe one run side
    by side. A second writer is refused in one line naming the holder."""
    return hold_run_dir(run_dir, "wait for it to finish, or give this benchmark another --out-dir")


def train_or_reuse(recipe_path: Path, overrides: list[str]) -> tuple[Path, float | None, int]:
    """Train ``recipe_path`` under ``overrides`` (which name the run and set ``train.resume=auto``)
    -> (run dir, training seconds or None for a finished run reused, optimizer steps of the run).
    A run stopped part-way resumes from its last checkpoint."""
    started = time.perf_counter()
    recipe = load_recipe(recipe_path, overrides)
    with writing(Path(recipe.train.out_dir) / run_dirs.run_name(recipe, recipe_path)):
        recipe, run_dir, resume, _ = prepare_training(recipe, recipe_path, False)
        reused = (run_dir / run_files.FINAL_CHECKPOINT).is_file()
        trainer = Trainer(recipe, run_dir, None, resume)
        trainer.run()
    return run_dir, None if reused else time.perf_counter() - started, trainer.total_steps


def run(recipe_path: Path, seed: int, threads: int, out_dir: Path, overrides: list[str],
        probe_overrides: list[str]) -> tuple[dict[str, Figure], float | None]:
    """Train (or reuse) one seed on ``threads`` threads and probe it -> (figures, training seconds,
    None for a finished run reused)."""
    torch.set_num_threads(threads)
    common = [*overrides, f"train.seed={seed}", f"train.out_dir={out_dir}",
              f"train.name={run_name(recipe_path, seed, threads, overrides)}", "train.resume=auto"]
    run_dir, seconds, _ = train_or_reuse(recipe_path, common)
    probe_recipe = load_recipe(recipe_path, [*common, *probe_overrides])
    open_frames(probe_recipe.data, synthetic=probe_recipe.extract.synthetic)  # built-in probe data, once
    with writing(run_dir):  # features are cached in the run dir
        return figures(probe_recipe, run_dir / run_files.FINAL_CHECKPOINT), seconds


def shown(figure: Figure | None, percent: bool) -> str:
    """``92.2 [84–98]`` for a fraction shown in %, ``0.587`` for any other metric, ``–`` for none."""
    value, interval = figure if figure is not None else (None, None)
    if value is None:
        return "–"
    if not percent:
        return f"{value:.3f}"
    return f"{100 * value:.1f}" + (f" [{100 * interval[0]:.0f}–{100 * interval[1]:.0f}]" if interval else "")


def spread(values: list[float], percent: bool) -> str:
    """Mean +- sample sd, in % for fractions; one value has no sd ("+- n/a (1 seed)"), where a
    0.0 would read as no spread over seeds."""
    if not values:
        return "–"
    v = np.array(values) * (100 if percent else 1)
    digits = 1 if percent else 3
    sd = f"{v.std(ddof=1):.{digits}f}" if len(v) > 1 else "n/a (1 seed)"
    return f"{v.mean():.{digits}f} +- {sd}"


def whole_number(least: int):
    """An argparse type: an int of at least ``least``, else argparse's one usage line (exit 2)."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < least:
            raise argparse.ArgumentTypeError(f"{value} is below {least}")
        return value
    return parse


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("recipe", type=Path)
    parser.add_argument("overrides", nargs="*", help="recipe key=value overrides for every run's training")
    parser.add_argument("--seeds", type=whole_number(0), nargs="+", default=[0, 1, 2])
    parser.add_argument("--threads", type=whole_number(1), nargs="+", default=[2])
    parser.add_argument("--probe", action="append", default=[], metavar="KEY=VALUE",
                        help="override for the probe only (probe.*, data.root, extract.synthetic.*); repeatable")
    parser.add_argument("--out-dir", type=Path, default=Path("runs/recipe_seeds"))
    args = parser.parse_args()
    runs = [(t, s) for t in args.threads for s in args.seeds]
    found: dict[tuple[int, int], dict[str, Figure]] = {}
    for threads, seed in runs:
        found[(threads, seed)], seconds = run(args.recipe, seed, threads, args.out_dir, args.overrides, args.probe)
        how = f"trained in {seconds:.0f} s" if seconds is not None else "reused its finished run"
        print(f"{args.recipe.stem} seed {seed} on {threads} thread(s): {how}", flush=True)
    names = list(dict.fromkeys(name for figures_ in found.values() for name in figures_))
    percent = {n: any(f.get(n, (None, None))[1] is not None for f in found.values()) for n in names}  # has an interval
    width = max(len(n) for n in names)
    print(f"\n{args.recipe} over seeds {args.seeds}: accuracies (and recall, mAP) in % with [95% interval], "
          "other metrics as measured")
    print(f"{'figure':{width}}  " + "  ".join(f"{f's{s} t{t}':>15}" for t, s in runs)
          + "  " + "  ".join(f"{f'mean +- sd t{t}':>15}" for t in args.threads))
    for name in names:
        cells = [shown(found[run_].get(name), percent[name]) for run_ in runs]
        means = [spread([v for s in args.seeds if (v := found[(t, s)].get(name, (None, None))[0]) is not None],
                        percent[name]) for t in args.threads]
        print(f"{name:{width}}  " + "  ".join(f"{c:>15}" for c in cells + means))
    if len(args.threads) > 1:
        a, b = args.threads[:2]
        print(f"\n|{a} threads - {b} threads| per seed {args.seeds}:")
        for name in names:
            gaps = [abs(x - y) * (100 if percent[name] else 1) for s in args.seeds
                    if (x := found[(a, s)].get(name, (None, None))[0]) is not None
                    and (y := found[(b, s)].get(name, (None, None))[0]) is not None]
            print(f"{name:{width}}  " + ", ".join(f"{g:.1f}" if percent[name] else f"{g:.3f}" for g in gaps))
    args.out_dir.mkdir(parents=True, exist_ok=True)
    (args.out_dir / f"{args.recipe.stem}{digest(args.overrides)}.json").write_text(json.dumps(
        {f"s{s}_t{t}": {name: {"value": v, "interval": i} for name, (v, i) in figs.items()}
         for (t, s), figs in found.items()}, indent=2))


if __name__ == "__main__":
    main()
