"""Which positives teach what, method by method: augment, time and both, at equal compute, over seeds.

    python benchmarks/positives_study.py                       # built-in rotating objects, seeds 0 1 2
    python benchmarks/positives_study.py --small               # a smoke test: 1 seed, 2 methods, 32 px
    python benchmarks/positives_study.py --methods simclr byol --seeds 0
    python benchmarks/positives_study.py --synthetic playroom  # the harder built-in playroom, per-frame labels
    python benchmarks/positives_study.py --root data/mine --labels data/mine/labels.csv \\
        data.image_size=64                                     # your labelled clips; key=value for every run

Rows: ``simclr``, ``byol``, ``vicreg`` and ``moco`` each with ``method.positives`` ``augment``
(two augmentations of one frame), ``time`` (a frame and the one ``data.two_view_offset`` = 2
frames later, one augmentation draw) and ``both`` (the same two frames, a draw each); then
``tc`` (temporal classification of time segments) and ``mae`` (a masked autoencoder, on a ViT),
with its ``time`` row (``method.mae.target=later``: the hidden patches of the frame 2 frames
later are the target), and the architecture of the first row untrained (random init) and 16 x 16
pixels; a row on another encoder (mae's ViT) also gets its own encoder untrained (``mae random
init``). A method the registry does not have (yet) is skipped with one line; one that is
registered later is included on the next run. Every trained row starts from recipes/quickstart.yaml (tiny_cnn, Adam
1e-3, its augmentation) with its method's settings from its own recipe in recipes/ (``METHODS``
below); tc and mae also take their recipes' augmentation and optimiser (with the quickstart's,
tc did not beat its random init: docs/results/self-supervised-family.md).

Equal compute: every run puts the same number of frames through its trained encoder, 128 a
step (32 with ``--small``) for ``--steps`` steps: a sample of a pair method encodes 2 frames,
one of ``tc`` or ``mae`` 1 (``Method.encoded_frames``; mae's time row encodes the first frame of
its two), so their batches hold half as many or twice as many samples. A momentum encoder's
extra forward pass (byol, moco) is not counted. The budget is printed per row.

Data: each seed s writes its own rotating objects (``extract.synthetic.seed=s``: 8 objects x 25
clips of 16 frames at 48 px, with train/val/test clips) and trains with ``train.seed=s``. With
``--root``, every seed reads ROOT and only ``train.seed`` changes. Training reads only the
probe's train clips (their names go to ``OUT/<data>_train_clips.txt``, read through
``data.clips``); the logistic probe (C chosen on val) scores the held-out test clips, with a 95%
interval from a bootstrap over test clips.

``--synthetic playroom``: the same study on the built-in playroom (toys on a floor, a head camera
walking among them; ``playroom_s<s>`` data of the same size: 200 clips of 16 frames at 48 px,
8 kinds of toy), whose labels are per frame: the toy nearest the image centre
(``segments.csv``), read by ``probe.task=frames``. Samples are the labelled frames of the
test clips; the splits stay those of its ``labels.csv`` (by clip, so training still reads
train clips only) and the interval still resamples test clips. Its table, picture and JSON
are ``OUT/positives_playroom.md``, ``.png`` and ``OUT/results_playroom.json``.

Writes ``OUT/positives.md`` (the table: every run's test accuracy with its interval, and mean
+- sample sd over seeds), ``OUT/positives.png`` (methods x positives; a bar is the mean over
seeds, a dot each seed with its interval) and ``OUT/results.json``. Finished runs are reused and
stopped runs resume (``train.resume=auto``; a run is named by a digest of its overrides), so a
rerun only probes. ``benchmarks/cltt_vs_simclr.py`` is the InfoNCE-only comparison (the
``cltt`` method's multi-frame windows), ``benchmarks/recipe_seeds.py`` one recipe over seeds.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from recipe_seeds import Figure, digest, figures, spread, train_or_reuse, whole_number, writing

from cltt.data.build import open_frames
from cltt.engine import run_files
from cltt.errors import CLTTError
from cltt.eval.probe import prepare_probe
from cltt.methods import method_class
from cltt.methods.registry import registered_methods
from cltt.recipe import load_recipe

QUICKSTART = Path(__file__).resolve().parent.parent / "recipes" / "quickstart.yaml"
POSITIVES = ("augment", "time", "both")
TIME_OFFSET = 2  # frames between the two frames of a time pair (recipes/byol.yaml's and vicreg.yaml's)
# each method's settings from its recipe in recipes/, on the quickstart's encoder and optimiser
METHODS: dict[str, list[str]] = {
    "simclr": ["method.name=simclr"],
    "byol": ["method.name=byol", "method.byol.momentum_start=0.99"],  # recipes/byol.yaml: 0.99 for short runs
    "vicreg": ["method.name=vicreg", "model.projection_hidden=512", "model.projection_dim=512"],
    "moco": ["method.name=moco", "method.temperature=0.2", "method.moco.queue_size=4096"],
    # recipes/tc.yaml: 0.8 s segments with TC-S's strong colour augmentation and lr 3e-3; with the
    # quickstart's augmentation and 0.4 s segments TC did not beat random init (docs, self-supervised family)
    "tc": ["method.name=tc", "method.tc.segment_seconds=0.8", "data.augment.jitter_p=0.8",
           "data.augment.jitter=[0.8,0.8,0.8,0.2]", "data.augment.grayscale_p=0.5", "train.lr=3e-3"],
    "mae": ["method.name=mae", "model.backbone=timm/vit_tiny_patch16_224", "model.timm.patch_size=8",
            "model.timm.depth=4", "model.pool=avg", "data.augment.jitter_p=0", "data.augment.grayscale_p=0",
            "train.optimizer=adamw", "train.weight_decay=0.05"],
}
PAIR_METHODS = ("simclr", "byol", "vicreg", "moco")  # the ones that take method.positives
# a method without positives whose own key puts time in: its "time" row beside its own objective
# (mae: the hidden patches of the frame TIME_OFFSET frames later, not the frame's own)
TIME_VARIANTS = {"mae": ["method.mae.target=later", "data.window_size=2", f"data.frame_step={TIME_OFFSET}",
                         "data.augment.consistent=true"]}
ROW_DATA = {  # a pair (x_t, x_t+k) or two draws of x_t; tc and mae read single frames
    "augment": ["data.two_view_offset=0"],
    "time": [f"data.two_view_offset={TIME_OFFSET}", "data.augment.consistent=true"],
    "both": [f"data.two_view_offset={TIME_OFFSET}", "data.augment.consistent=false"],
    None: ["data.two_view_offset=0"],
}
# what makes one row differ from another: set by the study, refused as an override
ROW_KEYS = {"method.name", "method.positives", "method.mae.target", "data.window_size", "data.window_stride",
            "data.frame_step", "data.two_view_offset", "data.augment.consistent", "data.clips"}
COMMON = ["data.window_size=1", "data.window_stride=1", "probe.probes=[logistic]", "train.warmup_epochs=0.5"]
# at most 16 steps an epoch: 128 train clips x 16 frames give tc's and mae's 128-frame batches 16 a
# pass, the pairs' batches of 64 pairs 28; mae's time row (14 two-frame windows a clip) fills 14, so
# its epochs are 10 steps (budget(): the largest divisor of the steps that fits)
DEFAULT = {"steps": 400, "frames_per_step": 128, "steps_per_epoch": 16, "seeds": [0, 1, 2],
           "methods": list(METHODS), "synthetic": ["extract.synthetic.clips=200"]}
SMALL = {"steps": 3, "frames_per_step": 32, "steps_per_epoch": 3, "seeds": [0], "methods": ["simclr", "tc"],
         "synthetic": ["extract.synthetic.clips=16", "extract.synthetic.max_objects=4", "extract.synthetic.size=32",
                       "data.image_size=32", "probe.bootstrap_rounds=200"]}
BASELINES = {"random init": "random_init logistic", "pixels": "pixels logistic"}
OWN_RANDOM_INIT = "random init"  # the table's positives column of a row's own architecture untrained ("mae random init")
# each built-in set by its generator's name: its data's short name, the probe key that reads its labels,
# the suffix of its output files and how the table describes it
SYNTHETIC = {
    "rotating-objects": ("objects", [], "", "built-in rotating objects, each seed its own data"),
    "playroom": ("playroom", ["probe.task=frames"], "_playroom",
                 "built-in playroom, labels per frame (the toy nearest the image centre), each seed its own data"),
}

Row = tuple[str, str | None]  # method, positives (None for a method without them)


def rows(methods: list[str]) -> list[Row]:
    """The trained rows of ``methods`` that the registry has, in the study's order; one line per missing method."""
    present = registered_methods()
    found: list[Row] = []
    for method in methods:
        if method not in present:
            print(f"skipped {method}: not a registered method here (it joins the study once it is)")
            continue
        found += [(method, p) for p in POSITIVES] if method in PAIR_METHODS else [(method, None)]
        found += [(method, "time")] if method in TIME_VARIANTS else []
    return found


def row_name(row: Row) -> str:
    return row[0] if row[1] is None else f"{row[0]} {row[1]}"


def own_encoders(study: list[Row], base: list[str], overrides: list[str]) -> set[Row]:
    """The rows whose probed encoder (the backbone and its readout, not the head) is not the first
    row's, as mae's ViT is not the tiny_cnn, one for each other encoder: its architecture's random-init
    figure. Keys in the runs' order: ``base``, the method's, then the user's ``overrides``."""
    def encoder(row: Row) -> str:
        m = load_recipe(QUICKSTART, [*base, *METHODS[row[0]], *overrides]).model
        return repr((m.backbone, m.weights, m.timm, m.pool, m.patch_block, m.vivit))  # m.timm is a dict

    first_with: dict[str, Row] = {}
    for row in study:
        first_with.setdefault(encoder(row), row)
    return set(list(first_with.values())[1:])  # the first row's encoder is the baselines' own


def data_overrides(args, seed: int) -> tuple[list[str], str]:
    """The data keys of one seed's runs and a short name of those data."""
    if args.root:
        labels = [f"probe.labels={args.labels}"] if args.labels else []
        return [f"data.root={args.root}", "data.synthetic=null", *labels], Path(args.root).name
    short, probe, _, _ = SYNTHETIC[args.synthetic]
    name = f"{short}{'_small' if args.small else ''}_s{seed}"
    return [f"data.root={args.out_dir / name}", f"data.synthetic={args.synthetic}", f"extract.synthetic.seed={seed}",
            *args.size["synthetic"], *probe], name


def write_train_clips(overrides: list[str], path: Path) -> int:
    """The probe's train clips (its labels file's split, or drawn with probe.split_seed) to ``path``, one a line."""
    setup = prepare_probe(load_recipe(QUICKSTART, overrides))
    names = [clip for clip, split in zip(setup.table.clips, setup.splits) if split == "train"]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{name}\n" for name in names))
    return len(names)


def budget(row: Row, overrides: list[str], args) -> tuple[list[str], str, int]:
    """Batch and schedule keys that give ``row`` the study's frames a step for ``--steps`` steps, a
    line saying so, and the steps planned. An epoch is the largest divisor of the steps that is at
    most ``--steps-per-epoch`` and the batches the row's samples fill (mae's two-frame windows fill
    fewer than single frames do), so every row runs the same steps."""
    recipe = load_recipe(QUICKSTART, overrides)
    chosen = method_class(row[0])
    per_sample = chosen.encoded_frames(recipe)
    batch = max(1, args.size["frames_per_step"] // per_sample)
    available = len(chosen.training_dataset(recipe, open_frames(recipe.data), seed=0)) // batch
    bound = max(1, min(args.size["steps_per_epoch"], available))
    steps = args.size["steps"]
    per_epoch = max(d for d in range(1, bound + 1) if steps % d == 0)
    epochs = steps // per_epoch
    line = (f"{row_name(row):15} {per_sample} frame(s) a sample x batch {batch} = {per_sample * batch} frames a step, "
            f"{epochs * per_epoch} steps: {epochs * per_epoch * per_sample * batch:,} frames "
            f"({epochs} epochs of {per_epoch})")
    keys = [f"train.batch_size={batch}", f"train.epochs={epochs}", f"train.max_batches_per_epoch={per_epoch}"]
    return keys, line, epochs * per_epoch


def run_row(row: Row, seed: int, data: list[str], clips_file: Path, first: bool, args,
            own_random_init: bool = False) -> dict[str, Figure]:
    """Train (or reuse) one row for one seed and probe it -> {figure name: (test accuracy, interval)}.
    The first row is probed against random init and pixels; a row with ``own_random_init`` (an
    encoder other than the first row's) against its own architecture at random init."""
    method, positives = row
    if method in TIME_VARIANTS:  # its own objective (None) or its time variant
        row_keys = [*ROW_DATA[None], *METHODS[method], *(TIME_VARIANTS[method] if positives else [])]
    else:
        row_keys = [*ROW_DATA[positives], *METHODS[method], *([f"method.positives={positives}"] if positives else [])]
    keys = [*COMMON, *data, f"data.clips={clips_file}", *row_keys, *args.overrides]
    schedule, line, planned = budget(row, keys, args)
    keys = [*keys, *schedule, f"train.seed={seed}",
            f"probe.baselines={'[random_init,pixels]' if first else '[]'}"]
    name = f"{method}_{positives or 'own'}_s{seed}{digest(keys)}"
    run_dir, seconds, steps = train_or_reuse(QUICKSTART, [*keys, f"train.out_dir={args.out_dir / 'runs'}",
                                                         f"train.name={name}", "train.resume=auto"])
    how = f"trained in {seconds:.0f} s" if seconds is not None else "reused its finished run"
    print(f"seed {seed} {line}; {how}", flush=True)
    if steps != planned:
        print(f"warning: {row_name(row)} ran {steps} steps, not {planned}: its data give fewer than "
              f"{args.size['steps_per_epoch']} batches an epoch, so its budget is smaller; lower --steps-per-epoch")
    # the baselines are a probe setting: the run's name (above) keeps the one it was trained under
    probe_keys = [*keys, "probe.baselines=[random_init]"] if own_random_init and not first else keys
    with writing(run_dir):  # features are cached in the run dir
        return figures(load_recipe(QUICKSTART, probe_keys), run_dir / run_files.FINAL_CHECKPOINT)


def cell(figure: Figure | None) -> str:
    if figure is None or figure[0] is None:
        return "–"
    value, interval = figure
    return f"{100 * value:.1f} [{100 * interval[0]:.0f}–{100 * interval[1]:.0f}]" if interval else f"{100 * value:.1f}"


def table(results: dict[str, dict[int, Figure]], seeds: list[int], header: str) -> str:
    """Markdown: a row per method and positives, a column per seed (test accuracy % [95% interval]), mean +- sd."""
    lines = [header, "", "| method | positives | " + " | ".join(f"seed {s}" for s in seeds) + " | mean ± sd |",
             "|---|---|" + "---|" * len(seeds) + "---|"]
    for name, by_seed in results.items():
        method, _, positives = ("", "", "") if name in BASELINES else name.partition(" ")
        method = method or name
        values = [by_seed[s][0] for s in seeds if s in by_seed]
        lines.append(f"| {method} | {positives or '–'} | " + " | ".join(cell(by_seed.get(s)) for s in seeds)
                     + f" | {spread(values, True).replace('+-', '±')} |")
    return "\n".join(lines) + "\n"


def picture(results: dict[str, dict[int, Figure]], seeds: list[int], path: Path, title: str) -> None:
    """Methods x positives: a bar per mean over seeds, a dot per seed with its 95% interval as error bar."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    own = {name.partition(" ")[0]: by_seed for name, by_seed in results.items()
           if name not in BASELINES and name.partition(" ")[2] == OWN_RANDOM_INIT}
    methods = list(dict.fromkeys(name.partition(" ")[0] for name in results if name not in BASELINES))
    kinds = [*POSITIVES, "own"]
    colours = {"augment": "tab:blue", "time": "tab:orange", "both": "tab:green", "own": "tab:purple"}
    width = 0.8 / 3
    fig, ax = plt.subplots(figsize=(max(5.0, 1.6 + 1.3 * len(methods)), 4.8))
    labelled = set()
    for m, method in enumerate(methods):
        order = kinds if method in PAIR_METHODS else ["own", *POSITIVES]  # its own objective first
        present = [k for k in order if (f"{method} {k}" if k != "own" else method) in results]
        for j, kind in enumerate(present):
            by_seed = results[f"{method} {kind}" if kind != "own" else method]
            x = m + (j - (len(present) - 1) / 2) * width
            values = np.array([by_seed[s][0] for s in seeds if s in by_seed]) * 100
            ax.bar(x, values.mean(), width * 0.9, color=colours[kind], alpha=0.45,
                   label=None if kind in labelled else ("no positives (own objective)" if kind == "own" else kind))
            labelled.add(kind)
            offsets = np.linspace(-width * 0.25, width * 0.25, len(values)) if len(values) > 1 else [0.0]
            for dx, s in zip(offsets, [s for s in seeds if s in by_seed]):
                value, interval = by_seed[s]
                low, high = (interval if interval else (value, value))
                ax.errorbar(x + dx, 100 * value, yerr=[[100 * (value - low)], [100 * (high - value)]],
                            fmt="o", color=colours[kind], markersize=3, capsize=2, linewidth=1)
    for m, method in enumerate(methods):  # a row's own architecture untrained: a black bar across its group
        if method in own and own[method]:
            mean = 100 * np.mean([value for value, _ in own[method].values()])
            ax.hlines(mean, m - 0.45, m + 0.45, color="black", linewidth=1.5,
                      label=f"{method}'s own encoder at random init ({mean:.1f})")
    for (name, style) in zip(BASELINES, ("--", ":")):
        if name in results:
            mean = 100 * np.mean([results[name][s][0] for s in seeds if s in results[name]])
            what = f"{name}, {methods[0]}'s encoder" if name == "random init" and own else name
            ax.axhline(mean, color="grey", linestyle=style, linewidth=1, label=f"{what} ({mean:.1f})")
    ax.set_xticks(range(len(methods)), methods)
    ax.set_ylabel("logistic test accuracy (%)")
    ax.set_ylim(0, 100)
    ax.set_title(title, fontsize=8, wrap=True)
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.09), ncol=3, frameon=False)
    fig.tight_layout()
    fig.savefig(path, dpi=120, bbox_inches="tight")  # the legend below the axes stays whole
    plt.close(fig)


def unwritable(err: OSError, out_dir: Path) -> None:
    """One line and exit 2 for a file the study cannot write (a full disk, a read-only out dir):
    every run finished before it stays, and a rerun reuses them."""
    where = err.filename or out_dir
    print(f"error: cannot write {where} ({err.strerror or err}); free space or make {out_dir} writable and rerun, "
          "which reuses every finished run", file=sys.stderr)
    sys.exit(2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("overrides", nargs="*", help="recipe key=value overrides for every run (data keys too)")
    parser.add_argument("--root", type=Path, help="a labelled frames root instead of the built-in rotating objects")
    parser.add_argument("--labels", type=Path, help="its labels file clip,label[,split] (default ROOT/labels.csv)")
    parser.add_argument("--synthetic", choices=list(SYNTHETIC), default="rotating-objects",
                        help="the built-in set (playroom: labels per frame, probe.task=frames)")
    parser.add_argument("--methods", nargs="+", help=f"a subset of {', '.join(METHODS)}")
    parser.add_argument("--seeds", type=whole_number(0), nargs="+")
    parser.add_argument("--steps", type=whole_number(1), help="optimizer steps of every run (default 400, --small 3)")
    parser.add_argument("--steps-per-epoch", type=whole_number(1), help="at most this many batches an epoch (default 16, "
                        "--small 3); a row whose samples fill fewer takes the largest divisor of --steps they fill")
    parser.add_argument("--small", action="store_true", help="a smoke test: 16 clips at 32 px, 3 steps, simclr and tc")
    parser.add_argument("--threads", type=whole_number(1), default=2)
    parser.add_argument("--out-dir", type=Path, default=Path("runs/positives_study"))
    args = parser.parse_args()
    if args.labels and not args.root:
        parser.error("--labels goes with --root (the built-in data carry their own labels)")
    if args.root and args.synthetic != "rotating-objects":
        parser.error("--synthetic picks a built-in set; with --root the study reads your clips")
    args.size = dict(SMALL if args.small else DEFAULT)
    if args.steps is not None:
        args.size["steps"] = args.steps
    if args.steps_per_epoch is not None:
        args.size["steps_per_epoch"] = args.steps_per_epoch
    seeds = args.seeds or args.size["seeds"]
    unknown = [m for m in args.methods or [] if m not in METHODS]
    if unknown:
        parser.error(f"--methods {' '.join(unknown)}: the study knows {', '.join(METHODS)}")
    for override in args.overrides:
        if override.partition("=")[0] in ROW_KEYS:
            parser.error(f"{override.partition('=')[0]} is set per row by the study (a row's positives, windows "
                         f"and method); remove {override}")
    for option, given in (("--methods", args.methods or []), ("--seeds", seeds)):
        twice = sorted({str(v) for v in given if given.count(v) > 1})
        if twice:
            parser.error(f"{option} names {', '.join(twice)} more than once; give each once")
    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    study = rows(args.methods or args.size["methods"])
    try:
        own = own_encoders(study, [*COMMON, *data_overrides(args, seeds[0])[0]], args.overrides)
        names, own_methods = [], {row[0] for row in own}
        for i, row in enumerate(study):  # a method's own random init follows its last row
            names.append(row_name(row))
            if row[0] in own_methods and (i + 1 == len(study) or study[i + 1][0] != row[0]):
                names.append(f"{row[0]} {OWN_RANDOM_INIT}")
        results: dict[str, dict[int, Figure]] = {name: {} for name in [*names, *BASELINES]}
        for seed in seeds:
            data, data_name = data_overrides(args, seed)
            clips_file = args.out_dir / f"{data_name}_train_clips.txt"
            count = write_train_clips([*COMMON, *data, *args.overrides], clips_file)
            print(f"seed {seed}: training reads the {count} train clips listed in {clips_file}", flush=True)
            for i, row in enumerate(study):
                found = run_row(row, seed, data, clips_file, i == 0, args, row in own)
                results[row_name(row)][seed] = found["trained logistic"]
                if i == 0:
                    for name, key in BASELINES.items():
                        results[name][seed] = found[key]
                elif row in own:
                    results[f"{row[0]} {OWN_RANDOM_INIT}"][seed] = found["random_init logistic"]
    except CLTTError as err:  # one line, exit 2, as cltt's commands
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    except OSError as err:  # a full disk or an unwritable out dir, while writing data, runs or features
        unwritable(err, args.out_dir)
    _, _, suffix, described = SYNTHETIC[args.synthetic]
    what = f"{args.root}" if args.root else described
    header = (f"Logistic test accuracy (%) [95% interval over test clips], seeds {seeds}, {what}; "
              f"{args.size['steps']} steps x {args.size['frames_per_step']} frames through the encoder a run; "
              f"{time.perf_counter() - started:.0f} s in all on {args.threads} thread(s)")
    text = table(results, seeds, header)
    print("\n" + text)
    table_file, picture_file = args.out_dir / f"positives{suffix}.md", args.out_dir / f"positives{suffix}.png"
    try:  # a full disk or a read-only out dir: one line, as cltt's commands (every run is kept; a rerun only probes)
        args.out_dir.mkdir(parents=True, exist_ok=True)
        table_file.write_text(text)
        picture(results, seeds, picture_file,
                f"{what}\nseeds {seeds}, {args.size['steps']} steps x {args.size['frames_per_step']} frames a run")
        (args.out_dir / f"results{suffix}.json").write_text(json.dumps(
            {name: {str(s): {"test_acc": v, "interval": i} for s, (v, i) in by_seed.items()}
             for name, by_seed in results.items()}, indent=2))
    except OSError as err:
        unwritable(err, args.out_dir)
    print(f"wrote {table_file}, {picture_file} and results{suffix}.json")


if __name__ == "__main__":
    main()
