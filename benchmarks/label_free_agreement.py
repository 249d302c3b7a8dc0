"""Do the label-free measures move the way the logistic probe does? The quickstart over seeds.

    python benchmarks/label_free_agreement.py                   # recipes/quickstart.yaml, seeds 0 1 2
    python benchmarks/label_free_agreement.py --small           # a smoke test: 1 seed, 32 px, 3 steps
    python benchmarks/label_free_agreement.py train.epochs=5 --seeds 0   # key=value (first) for every run

For each seed s of ``--seeds``, trains ``recipes/quickstart.yaml`` (the built-in rotating
objects) with ``train.seed=s`` on its own data, ``extract.synthetic.seed=s`` written to
``OUT/objects_s<s>``, as ``benchmarks/positives_study.py`` does (training reads every clip,
as the quickstart does), or reuses the finished run (``train.resume=auto``; a run is named by a
digest of its overrides). Then, on the final checkpoint and for the three sources trained,
random init and pixels:

    logistic      ``cltt probe RUN`` with ``probe.probes=[logistic]``: test accuracy, 95% interval
                  from a bootstrap over test clips
    label-free    ``cltt probe RUN probe.task=label_free "probe.label_free.gaps=[0.2,0.5,1.0]"``:
                  every measure with its 95% interval over held-out clips (cltt/eval/label_free.py)

Both go through the API ``cltt probe`` calls and cache their features in ``RUN/features/``, so a
rerun encodes nothing; the label-free probe's report is also written to
``RUN/probe_label_free.json`` as ``cltt probe`` would.

Agreement. For a measure m with direction b (+1 when higher is better, -1 when lower is better,
:data:`BETTER`) and the logistic test accuracy a, per seed:

    agrees     sign(b * (m_trained - m_random_init)) == sign(a_trained - a_random_init)
    separated  the two sources' 95% intervals do not overlap (for m, and apart for a)

and the same against pixels. Nothing is tuned: the figures are the probes' defaults.

Writes ``OUT/agreement.md`` (a table per seed and a summary: agrees on k of n seeds) and
``OUT/results.json`` (every figure, interval and verdict).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from recipe_seeds import Figure, digest, figures, train_or_reuse, whole_number, writing

from cltt.engine import run_files
from cltt.errors import CLTTError
from cltt.eval.report import save_report
from cltt.eval.tasks import probe_task
from cltt.recipe import load_recipe

QUICKSTART = Path(__file__).resolve().parent.parent / "recipes" / "quickstart.yaml"
SOURCES = ("trained", "random_init", "pixels")
SHOWN = {"trained": "trained", "random_init": "random init", "pixels": "pixels"}
ACCURACY = "logistic test acc"
# (+1 higher is better, -1 lower is better, why)
BETTER: dict[str, tuple[int, str]] = {
    "rankme": (1, "higher: a higher effective rank predicts better downstream accuracy (Garrido et al. 2023)"),
    "alignment": (-1, "lower: positives (consecutive frames) closer together (Wang & Isola 2020)"),
    "uniformity": (-1, "lower: features spread more evenly over the sphere (Wang & Isola 2020)"),
    "spread": (1, "higher: less collapsed (1 evenly spread, 0 collapsed)"),
    "recall@": (1, "higher: the frame g seconds later is found more often among the top k"),
    "mAP_": (1, "higher: the frame g seconds later ranks higher"),
}
PROBE = ["probe.probes=[logistic]", "probe.baselines=[random_init,pixels]"]
LABEL_FREE = ["probe.task=label_free", "probe.label_free.gaps=[0.2,0.5,1.0]"]  # 16 frames 0.1 s apart a clip
DEFAULT = {"seeds": [0, 1, 2], "keys": [], "data": [], "label_free": []}
SMALL = {"seeds": [0], "keys": ["train.epochs=1", "train.max_batches_per_epoch=3", "train.batch_size=8",
                                "data.image_size=32", "data.num_workers=0", "probe.bootstrap_rounds=200"],
         "label_free": ["probe.label_free.rankme_rounds=5"],
         "data": ["extract.synthetic.clips=16", "extract.synthetic.max_objects=4", "extract.synthetic.size=32"]}


def better(measure: str) -> tuple[int, str]:
    """+1 when a higher ``measure`` is better, -1 when lower is, and why (:data:`BETTER`)."""
    for prefix, found in BETTER.items():
        if measure == prefix or (prefix.endswith(("@", "_")) and measure.startswith(prefix)):
            return found
    raise KeyError(f"no direction known for measure {measure!r}")


def separated(a: Figure, b: Figure) -> bool | None:
    """Whether the 95% intervals of two figures do not overlap (None when either has none)."""
    if a[1] is None or b[1] is None or a[0] is None or b[0] is None:
        return None
    return a[1][1] < b[1][0] or b[1][1] < a[1][0]


def agreement(accuracy: tuple[Figure, Figure], measure: tuple[Figure, Figure], direction: int) -> dict:
    """The verdict on one measure for one seed and one baseline.

    ``accuracy`` and ``measure`` are (trained, baseline) figures (value, [low, high] or None),
    ``direction`` +1 (higher better) or -1 (lower better). Returns the changes trained -
    baseline of accuracy and measure; ``verdict``: ``agrees`` when sign(direction * measure
    change) == sign(accuracy change), ``disagrees`` when the signs are opposite, ``no change``
    when either change is exactly 0, ``–`` when a value is missing; ``agrees`` the same as a
    bool (None for the last two); and whether the intervals are apart for the measure
    (``separated``) and the accuracy (``accuracy_separated``)."""
    (acc_t, acc_b), (m_t, m_b) = accuracy, measure
    if None in (acc_t[0], acc_b[0], m_t[0], m_b[0]):
        return {"accuracy_change": None, "measure_change": None, "verdict": "–", "agrees": None,
                "separated": None, "accuracy_separated": None}
    accuracy_change, measure_change = acc_t[0] - acc_b[0], m_t[0] - m_b[0]
    says, found = np.sign(direction * measure_change), np.sign(accuracy_change)
    agrees = None if says == 0 or found == 0 else bool(says == found)
    return {"accuracy_change": accuracy_change, "measure_change": measure_change,
            "verdict": {True: "agrees", False: "disagrees", None: "no change"}[agrees], "agrees": agrees,
            "separated": separated(m_t, m_b), "accuracy_separated": separated(acc_t, acc_b)}


def label_free_figures(report) -> dict[str, dict[str, Figure]]:
    """{source: {measure: (value, [low, high] or None)}} of a label-free TaskReport."""
    found: dict[str, dict[str, Figure]] = {}
    for source, values in report.metrics.items():
        names = [n for n in values if not n.endswith(("_low", "_high"))]
        found[source] = {n: (values[n], None if values.get(f"{n}_low") is None
                             else [values[f"{n}_low"], values[f"{n}_high"]]) for n in names}
    return found


def measure_seed(seed: int, args) -> tuple[dict[str, dict[str, Figure]], float | None]:
    """Train (or reuse) seed ``seed`` and probe it -> ({source: {figure: (value, interval)}}, with
    the logistic accuracy as :data:`ACCURACY`; training seconds or None for a run reused)."""
    folder = f"objects{'_small' if args.small else ''}_s{seed}"
    data = [f"data.root={args.out_dir / folder}",
            "data.synthetic=rotating-objects", f"extract.synthetic.seed={seed}", *args.size["data"]]
    keys = [*data, *args.size["keys"], *args.overrides, f"train.seed={seed}"]
    name = f"quickstart_s{seed}{digest(keys)}"
    run_dir, seconds, _ = train_or_reuse(QUICKSTART, [*keys, f"train.out_dir={args.out_dir / 'runs'}",
                                                      f"train.name={name}", "train.resume=auto"])
    checkpoint = run_dir / run_files.FINAL_CHECKPOINT
    probe_keys = [*PROBE, *keys]  # the run's keys last: an override of a probe key wins
    with writing(run_dir):  # features and the report are written in the run dir
        logistic = figures(load_recipe(QUICKSTART, probe_keys), checkpoint)
        recipe = load_recipe(QUICKSTART, [*PROBE, *LABEL_FREE, *args.size["label_free"], *keys])
        report = probe_task(recipe, checkpoint)
        save_report(report, run_dir / "probe_label_free.json")
    found = label_free_figures(report)
    for source in SOURCES:
        found.setdefault(source, {})[ACCURACY] = logistic.get(f"{source} logistic", (None, None))
    return found, seconds


def verdicts(found: dict[str, dict[str, Figure]], baseline: str) -> dict[str, dict]:
    """{measure: :func:`agreement` of trained against ``baseline``} for every label-free measure."""
    accuracy = (found["trained"][ACCURACY], found[baseline][ACCURACY])
    return {m: agreement(accuracy, (found["trained"][m], found[baseline][m]), better(m)[0])
            for m in found["trained"] if m != ACCURACY}


def cell(figure: Figure | None, name: str) -> str:
    """``86.2 [78–92]`` for the accuracy (%), ``11.46 [11.09–11.89]`` for rankme, 3 decimals otherwise."""
    if figure is None or figure[0] is None:
        return "–"
    scale, digits = (100, 1) if name == ACCURACY else (1, 2 if name == "rankme" else 3)
    value, interval = figure
    low_high = (f" [{scale * interval[0]:.0f}–{scale * interval[1]:.0f}]" if name == ACCURACY
                else f" [{interval[0]:.{digits}f}–{interval[1]:.{digits}f}]") if interval else ""
    return f"{scale * value:.{digits}f}{low_high}"


def word(flag: bool | None, yes: str = "yes", no: str = "no") -> str:
    return "–" if flag is None else (yes if flag else no)


def seed_table(seed: int, found: dict[str, dict[str, Figure]], judged: dict[str, dict[str, dict]]) -> str:
    """Markdown: a row per figure (logistic accuracy, then the measures), a column per source,
    then per baseline whether the measure agrees with the accuracy and whether its intervals are apart."""
    head = ("| measure | better | trained | random init | pixels | agrees vs random init | apart vs random init "
            "| agrees vs pixels | apart vs pixels |")
    lines = [f"Seed {seed}", "", head, "|---|---|---|---|---|---|---|---|---|"]
    for name in [ACCURACY, *(n for n in found["trained"] if n != ACCURACY)]:
        if name == ACCURACY:
            apart = [word(separated(found["trained"][name], found[b][name])) for b in ("random_init", "pixels")]
            lines.append(f"| {name} (%) | higher | " + " | ".join(cell(found[s][name], name) for s in SOURCES)
                         + f" | (reference) | {apart[0]} | (reference) | {apart[1]} |")
            continue
        direction = "higher" if better(name)[0] > 0 else "lower"
        marks = [x for b in ("random_init", "pixels")
                 for x in (judged[b][name]["verdict"].replace("disagrees", "DISAGREES"), word(judged[b][name]["separated"]))]
        lines.append(f"| `{name}` | {direction} | " + " | ".join(cell(found[s].get(name), name) for s in SOURCES)
                     + " | " + " | ".join(marks) + " |")
    return "\n".join(lines) + "\n"


def tally(judged: list[dict]) -> str:
    """``2 of 3 (2 apart); disagrees 1 (1 apart)``: seeds on which a measure agrees with the
    logistic probe, disagrees, or does not change, and on how many of them its intervals are apart."""
    def count(verdict: str) -> str:
        chosen = [j for j in judged if j["verdict"] == verdict]
        return f"{len(chosen)} ({sum(bool(j['separated']) for j in chosen)} apart)"

    text = f"{count('agrees').replace(' (', f' of {len(judged)} (', 1)}"
    if any(j["verdict"] == "disagrees" for j in judged):
        text += f"; disagrees {count('disagrees')}"
    ties = sum(j["verdict"] == "no change" for j in judged)
    return text + (f"; no change {ties}" if ties else "")


def summary(results: dict[int, dict], seeds: list[int]) -> str:
    """Markdown: per measure its direction and on how many seeds it agrees with the logistic
    probe (and with intervals apart), against random init and against pixels."""
    n = len(seeds)
    lines = ["| measure | better | agrees with logistic, trained vs random init | trained vs pixels |",
             "|---|---|---|---|"]
    first = results[seeds[0]]["verdicts"]["random_init"]
    for name in first:
        cells = [tally([results[s]["verdicts"][b][name] for s in seeds]) for b in ("random_init", "pixels")]
        lines.append(f"| `{name}` | {'higher' if better(name)[0] > 0 else 'lower'} | " + " | ".join(cells) + " |")
    some = next(iter(first))  # every measure's verdict carries the same accuracy_separated
    accuracy_apart = [sum(bool(results[s]["verdicts"][b][some]["accuracy_separated"]) for s in seeds)
                      for b in ("random_init", "pixels")]
    changes = [f"{100 * results[s]['verdicts'][b][some]['accuracy_change']:+.1f}" for b in ("random_init", "pixels")
               for s in seeds]
    lines += ["", f"The logistic accuracy's change, trained minus random init, seeds {seeds}: "
                  f"{', '.join(changes[:n])} points (intervals apart on {accuracy_apart[0]} of {n}); "
                  f"trained minus pixels: {', '.join(changes[n:])} (apart on {accuracy_apart[1]} of {n})."]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("overrides", nargs="*", help="recipe key=value overrides for every run")
    parser.add_argument("--seeds", type=whole_number(0), nargs="+", help="training and data seeds (default 0 1 2, --small 0)")
    parser.add_argument("--threads", type=whole_number(1), default=2, help="torch threads (default 2)")
    parser.add_argument("--small", action="store_true", help="a smoke test: 16 clips at 32 px, 3 steps, 1 seed")
    parser.add_argument("--out-dir", type=Path, default=Path("runs/label_free_agreement"))
    args = parser.parse_args()
    bad = [o for o in args.overrides if "=" not in o]
    if bad:
        parser.error(f"{bad[0]!r} is not a key=value override (options go after the overrides' keys, e.g. --seeds 0)")
    if args.threads < 1:
        parser.error(f"--threads must be at least 1, got {args.threads}")
    args.size = SMALL if args.small else DEFAULT
    seeds = list(dict.fromkeys(args.seeds or args.size["seeds"]))
    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    results: dict[int, dict] = {}
    try:
        for seed in seeds:
            begun = time.perf_counter()
            found, seconds = measure_seed(seed, args)
            how = f"trained in {seconds:.0f} s" if seconds is not None else "reused its finished run"
            print(f"seed {seed}: {how}; probed in {time.perf_counter() - begun - (seconds or 0):.0f} s", flush=True)
            results[seed] = {"figures": found, "train_seconds": seconds,
                             "verdicts": {b: verdicts(found, b) for b in ("random_init", "pixels")}}
    except CLTTError as err:  # one line, exit 2, as cltt's commands
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    header = (f"recipes/quickstart.yaml{' --small' if args.small else ''}"
              f"{' ' + ' '.join(args.overrides) if args.overrides else ''}, built-in rotating objects, each seed its "
              f"own data; seeds {seeds}; {time.perf_counter() - started:.0f} s in all on {args.threads} thread(s). "
              "Logistic test accuracy in % [95% interval over test clips]; label-free measures [95% interval "
              "over held-out clips]. agrees: the measure's change from the baseline to trained, in its better "
              "direction, has the sign of the accuracy's change; apart: the two sources' intervals do not overlap.")
    text = "\n".join([header, "", *(seed_table(s, results[s]["figures"], results[s]["verdicts"]) for s in seeds),
                      f"Agreement with the logistic probe over {len(seeds)} seed(s)", "", summary(results, seeds),
                      "Better direction of each measure:", "",
                      *(f"- `{prefix.rstrip('_')}`: {why}" for prefix, (_, why) in BETTER.items()), ""])
    print("\n" + text)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    (args.out_dir / "agreement.md").write_text(text)
    (args.out_dir / "results.json").write_text(json.dumps(
        {"seeds": seeds, "threads": args.threads, "overrides": args.overrides, "small": args.small,
         "better": {prefix: direction for prefix, (direction, _) in BETTER.items()},
         "runs": {str(s): {"train_seconds": r["train_seconds"],
                           "figures": {src: {n: {"value": v, "interval": i} for n, (v, i) in figs.items()}
                                       for src, figs in r["figures"].items()},
                           "verdicts": r["verdicts"]} for s, r in results.items()}}, indent=2))
    print(f"wrote {args.out_dir / 'agreement.md'} and {args.out_dir / 'results.json'}")


if __name__ == "__main__":
    main()
