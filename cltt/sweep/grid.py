"""A recipe plus a grid of dotted keys becomes one resolved recipe per run, in a sweep folder.

    sweeps/<name>/sweep.yaml              manifest: the grid, and each run's name and overrides
    sweeps/<name>/base.yaml               the base recipe (with its overrides) the runs came from
    sweeps/<name>/recipes/<run>.yaml      the resolved recipe of each run (what `cltt train` reads)
    sweeps/<name>/runs/<run>/             each run's run dir (train.out_dir = sweeps/<name>/runs)
    sweeps/<name>/logs/                   one log per run (local) or per array task (Slurm)

The grid is the cartesian product of the recipe's ``sweep.grid`` and the ``--grid`` options, in
a fixed order (keys as given, the last key varying fastest), so run ``i`` is the same run every
time the sweep is rendered. Run names are short and readable (``ws5_fs2_lr1e-3``): an alias for
common keys, the key's last part otherwise, and the value written compactly.

Relative paths (the sweep folder, ``data.root``) are relative to the folder ``cltt sweep`` runs
in; the Slurm script is submitted from there too.
"""

from __future__ import annotations

import copy
import hashlib
import itertools
import re
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Sequence

import yaml

from cltt.errors import CLTTError, RecipeError
from cltt.recipe import Recipe, all_keys, dump_recipe, load_recipe, recipe_from_dict, recipe_to_dict, set_dotted
from cltt.recipe.load import RecipeLoader
from cltt.recipe.overrides import plain

MANIFEST = "sweep.yaml"
BASE = "base.yaml"
RECIPES = "recipes"
RUNS = "runs"
LOGS = "logs"

# Short names for the keys people sweep most; `None` means "the value alone" (resnet18, simclr).
ALIASES: dict[str, str | None] = {
    "data.window_size": "ws",
    "data.frame_step": "fs",
    "data.window_stride": "st",
    "data.two_view_offset": "off",
    "data.image_size": "px",
    "data.object_focus": "focus",
    "data.augment.consistent": "consistent",
    "model.backbone": None,
    "model.projection_dim": "pd",
    "method.name": None,
    "method.temperature": "tau",
    "method.reduction": None,
    "method.pairing": None,
    "method.decoupled": "dcl",
    "train.lr": "lr",
    "train.batch_size": "bs",
    "train.epochs": "ep",
    "train.seed": "seed",
    "train.weight_decay": "wd",
    "train.optimizer": None,
    "train.warmup_epochs": "warm",
}

# Keys the sweep itself sets for every run; a grid over them would break the folder layout.
RESERVED = ("train.out_dir", "train.name", "train.resume")

_UNSAFE = re.compile(r"[^A-Za-z0-9.+=-]+")
# A sweep.name the user gives is the folder and the Slurm job name as written, or refused.
_SWEEP_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+=-]*")
_MAX_NAME = 100


@dataclass
class SweepRun:
    """One point of the grid: its index (the Slurm array task id), name and resolved recipe."""

    index: int
    name: str
    overrides: dict[str, Any]  # grid key -> value, as resolved in the recipe
    recipe: Recipe


@dataclass
class SweepPlan:
    """Everything ``cltt sweep`` writes: the base recipe, the grid and the runs."""

    name: str
    dir: Path
    base: Recipe  # the recipe and command-line overrides, before the grid
    grid: dict[str, list[Any]]
    runs: list[SweepRun]
    source: Path | None = None
    base_overrides: list[str] = field(default_factory=list)

    def recipe_path(self, run: SweepRun) -> Path:
        return self.dir / RECIPES / f"{run.name}.yaml"

    def run_dir(self, run: SweepRun) -> Path:
        return self.dir / RUNS / run.name


# --------------------------------------------------------------------------- the grid


def parse_grid_option(text: str) -> tuple[str, list[Any]]:
    """``key=v1,v2,...`` (each value a YAML scalar, or a ``[...]`` list) -> (key, values)."""
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key or not raw.strip():
        raise CLTTError(f"--grid '{text}' must look like key.sub=v1,v2, e.g. --grid train.lr=1e-3,3e-4")
    try:
        values = yaml.safe_load(f"[{raw}]")
    except yaml.YAMLError:
        values = [yaml.safe_load(v) if v.strip() else None for v in raw.split(",")]
    return key, list(values)


def flatten_grid(grid: Any, prefix: str = "") -> dict[str, list[Any]]:
    """``sweep.grid`` as {dotted key: values}: nested mappings are joined with dots, a scalar is one value."""
    if grid is None:
        return {}
    if not isinstance(grid, dict):
        raise RecipeError(f"recipe key 'sweep.grid' must map dotted keys to lists of values, got {grid!r}")
    flat: dict[str, list[Any]] = {}
    for key, values in grid.items():
        dotted = f"{prefix}{key}"
        if isinstance(values, dict):
            flat.update(flatten_grid(values, dotted + "."))
        else:
            flat[dotted] = list(values) if isinstance(values, (list, tuple)) else [values]
    return flat


def expand_grid(grid: dict[str, list[Any]]) -> list[dict[str, Any]]:
    """The cartesian product of the grid, in order: the first key slowest, the last fastest."""
    keys = list(grid)
    return [dict(zip(keys, combo)) for combo in itertools.product(*(grid[k] for k in keys))]


def check_grid_keys(grid: dict[str, list[Any]]) -> None:
    """Every grid key is a recipe key (else one line naming the closest), not reserved, has values."""
    if not grid:
        raise CLTTError("the sweep grid is empty; give sweep.grid in the recipe or --grid key=v1,v2 "
                        "(for a single run use cltt train or slurm/train.sh)")
    known = set(all_keys())
    for key, values in grid.items():
        if key not in known:
            tree: dict[str, Any] = {}
            _set(tree, key, values[0] if values else None)
            try:
                recipe_from_dict(tree)
            except RecipeError as err:
                raise RecipeError(f"sweep grid: {err}") from None
            raise RecipeError(f"sweep grid: '{key}' is not a recipe key")  # pragma: no cover
        if key in RESERVED or key == "sweep" or key.startswith("sweep."):
            raise RecipeError(f"sweep grid: '{key}' cannot vary, the sweep sets it for every run "
                              "(run dirs go to sweeps/NAME/runs/RUN)")
        if not values:
            raise RecipeError(f"sweep grid: '{key}' has no values; give a list such as [1e-3, 3e-4]")


# --------------------------------------------------------------------------- names


def format_value(value: Any) -> str:
    """A value as a short, filesystem-safe word: 0.001 -> 1e-3, 2.0 -> 2, [0.2, 1.0] -> 0.2-1."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "none"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if value == 0 or value.is_integer() and abs(value) < 1e5:
            return str(int(value))
        if abs(value) < 0.01 or abs(value) >= 1e5:
            mantissa, exponent = f"{value:.6e}".split("e")
            mantissa = mantissa.rstrip("0").rstrip(".")
            return f"{mantissa}e{int(exponent)}"
        return f"{value:.6g}"
    if isinstance(value, (list, tuple)):
        return "-".join(format_value(v) for v in value)
    if isinstance(value, dict):
        return "-".join(f"{k}{format_value(v)}" for k, v in value.items())
    text = str(value)
    if text.startswith("timm/"):  # a backbone name, not a path: timm/resnet18 -> timm-resnet18
        text = text.replace("/", "-")
    elif "/" in text:  # a path: its last part says enough
        text = Path(text.rstrip("/")).name or text
    return _UNSAFE.sub("-", text).strip("-.") or "x"


def name_part(key: str, value: Any) -> str:
    """One ``_``-separated part of a run name: ``ws5``, ``lr1e-3``, ``resnet18``, ``nodcl``."""
    alias = ALIASES.get(key, key.rpartition(".")[2])
    if isinstance(value, bool) and alias is not None:
        return alias if value else f"no{alias}"
    text = format_value(value)
    if alias is None:
        return text
    return f"{alias}{text}" if text[:1].isdigit() or text[:1] in ".-" else f"{alias}-{text}"


def run_names(points: Sequence[dict[str, Any]]) -> list[str]:
    """Unique, readable names: the keys that vary across runs (all grid keys if none varies)."""
    if not points:
        return []
    keys = list(points[0])
    varying = [k for k in keys if len({repr(p[k]) for p in points}) > 1] or keys
    names = []
    for point in points:
        name = "_".join(name_part(k, point[k]) for k in varying) or "run"
        if len(name) > _MAX_NAME:
            digest = hashlib.sha1(name.encode()).hexdigest()[:8]
            name = f"{name[:_MAX_NAME - 9]}-{digest}"
        names.append(name)
    repeated = {n for n in names if names.count(n) > 1}
    taken = set(names) - repeated
    unique = []
    for name in names:
        if name in repeated:
            k = 1
            while f"{name}-{k}" in taken:
                k += 1
            name = f"{name}-{k}"
            taken.add(name)
        unique.append(name)
    return unique


def safe_name(text: str) -> str:
    """A sweep or job name that is a safe folder name and Slurm job name."""
    return _UNSAFE.sub("-", text).strip("-.") or "sweep"


# --------------------------------------------------------------------------- the plan


def sweep_name(given: str | None, recipe_path: Path, out_dir: Path) -> str:
    """The sweep's folder and job name: ``sweep.name`` exactly as given (or one line saying why
    not), else the recipe file's name made safe."""
    if given is None:
        return safe_name(recipe_path.stem)
    if not _SWEEP_NAME.fullmatch(given) or len(given) > _MAX_NAME:
        raise RecipeError(f"recipe key 'sweep.name' must be a folder and Slurm job name: letters, digits and . _ + = - "
                          f"(at most {_MAX_NAME}, not starting with . or -), got {given!r}")
    legacy = safe_name(given)  # what earlier versions made of it (qs_slurm -> qs-slurm)
    if legacy != given and (out_dir / legacy / MANIFEST).is_file() and not (out_dir / given).exists():
        raise CLTTError(f"{out_dir / legacy} holds this sweep, written by an earlier cltt that renamed sweep.name={given}; "
                        f"rename the folder to continue it: mv {out_dir / legacy} {out_dir / given}")
    return given


def plan_sweep(recipe_path: str | Path, overrides: Sequence[str] = (), grid_options: Sequence[str] = ()) -> SweepPlan:
    """Read a recipe, apply ``key=value`` overrides, and expand its grid (and ``--grid`` options)."""
    recipe_path = Path(recipe_path)
    base = load_recipe(recipe_path, list(overrides))
    grid = flatten_grid(base.sweep.grid)
    for option in grid_options:
        key, values = parse_grid_option(option)
        grid[key] = values
    check_grid_keys(grid)

    name = sweep_name(base.sweep.name, recipe_path, Path(base.sweep.out_dir))
    sweep_dir = Path(base.sweep.out_dir) / name
    tree = recipe_to_dict(base)
    tree["sweep"] = {}  # the runs' recipes leave the sweep out: changing it must not block resuming
    tree["train"].update(out_dir=str(sweep_dir / RUNS), resume="auto")

    points = expand_grid(grid)
    resolved: list[tuple[dict[str, Any], Recipe]] = []
    for point in points:
        run_tree = copy.deepcopy(tree)
        for key, value in point.items():
            _set(run_tree, key, value)
        try:
            recipe = recipe_from_dict(run_tree)
        except RecipeError as err:
            shown = ", ".join(f"{k}={v}" for k, v in point.items())
            raise RecipeError(f"sweep run {shown}: {err}") from None
        as_dict = recipe_to_dict(recipe)
        resolved.append(({k: _get(as_dict, k) for k in point}, recipe))

    runs = []
    for index, (name_, (values, recipe)) in enumerate(zip(run_names([v for v, _ in resolved]), resolved)):
        recipe.train.name = name_
        runs.append(SweepRun(index, name_, values, recipe))
    return SweepPlan(name=name, dir=sweep_dir, base=base, grid=grid, runs=runs, source=recipe_path,
                     base_overrides=list(overrides))


def check_same_grid(plan: SweepPlan) -> None:
    """Refuse to rewrite a sweep folder whose earlier grid had runs this plan drops or changes:
    they would vanish from ``cltt sweep status``. A grid that only adds runs is fine."""
    if not (plan.dir / MANIFEST).is_file():
        return
    try:
        previous = read_manifest(plan.dir)
    except CLTTError:
        return  # a broken manifest: rewritten
    now = {run.name: run.overrides for run in plan.runs}
    lost = [str(entry.get("name")) for entry in previous["runs"]
            if isinstance(entry, dict) and now.get(str(entry.get("name"))) != entry.get("overrides")]
    if lost:
        shown = ", ".join(lost[:4]) + (" ..." if len(lost) > 4 else "")
        raise CLTTError(f"{plan.dir} was written with another grid: its runs {shown} are not in this one; "
                        f"write this grid as a new sweep with sweep.name=NEW_NAME (the earlier runs stay)")


def check_same_recipes(plan: SweepPlan) -> None:
    """Refuse to rewrite a run's recipe with another one: its run dir (finished, or to be resumed)
    was trained with the recipe on disk. A rerun with another base recipe, or other overrides for
    every run, would report those runs finished, or resume them under other settings, and
    leave recipes that describe training they never had."""
    changed: list[tuple[str, list[str]]] = []
    for run in plan.runs:
        path = plan.recipe_path(run)
        if not path.is_file():
            continue
        try:  # through the loader, so keys added to cltt since then compare at their defaults
            before = _flat(recipe_to_dict(recipe_from_dict(read_yaml(path))))
        except (CLTTError, yaml.YAMLError, OSError):
            before = None
        now = _flat(recipe_to_dict(run.recipe))
        if before is None:
            changed.append((run.name, ["(its recipe no longer reads)"]))
        elif before != now:
            keys = sorted(k for k in before.keys() | now.keys() if before.get(k) != now.get(k))
            changed.append((run.name, [f"{k}: {before.get(k)!r} -> {now.get(k)!r}" for k in keys]))
    if changed:
        run, keys = changed[0]
        more = f" ({len(keys) - 3} more keys)" if len(keys) > 3 else ""
        others = f"; {len(changed) - 1} more runs too" if len(changed) > 1 else ""
        raise CLTTError(f"{plan.dir} was written from another recipe: run {run} has {', '.join(keys[:3])}{more}{others}; "
                        f"write this one as a new sweep with sweep.name=NEW_NAME (the earlier runs stay)")


def _flat(tree: Any, prefix: str = "") -> dict[str, Any]:
    if not isinstance(tree, dict):
        return {prefix[:-1]: tree}
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        flat.update(_flat(value, f"{prefix}{key}."))
    return flat


def write_sweep(plan: SweepPlan) -> Path:
    """Write each run's recipe, the base recipe (``base.yaml``) and the manifest, after
    :func:`check_same_grid` and :func:`check_same_recipes`; create the logs folder. Returns the
    manifest path."""
    check_same_grid(plan)
    check_same_recipes(plan)
    (plan.dir / RECIPES).mkdir(parents=True, exist_ok=True)
    (plan.dir / LOGS).mkdir(exist_ok=True)  # Slurm fails a job whose log folder is missing
    for run in plan.runs:
        plan.recipe_path(run).write_text(dump_recipe(run.recipe))
    (plan.dir / BASE).write_text(dump_recipe(plan.base))  # the base recipe as resolved, for the record
    manifest = plan.dir / MANIFEST
    try:
        previous = read_manifest(plan.dir) if manifest.is_file() else {}
    except CLTTError:  # a broken manifest is rewritten below
        previous = {}
    content = {
        "name": plan.name,
        "recipe": str(plan.source) if plan.source else None,
        "overrides": plan.base_overrides,
        "written": datetime.now().isoformat(timespec="seconds"),
        "grid": plan.grid,
        "runs": [{"index": r.index, "name": r.name, "recipe": f"{RECIPES}/{r.name}.yaml", "run_dir": f"{RUNS}/{r.name}",
                  "overrides": r.overrides} for r in plan.runs],
        "jobs": previous.get("jobs", []),
    }
    manifest.write_text(yaml.safe_dump(content, sort_keys=False, default_flow_style=None))
    return manifest


def read_manifest(sweep_dir: str | Path) -> dict[str, Any]:
    """The manifest of a sweep folder; one clear line when the folder is not one."""
    path = Path(sweep_dir) / MANIFEST
    if not path.is_file():
        raise CLTTError(f"{sweep_dir} is not a sweep folder (no {MANIFEST}); give sweeps/NAME as written by cltt sweep")
    try:
        content = read_yaml(path) or {}
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise CLTTError(f"{path} is not valid YAML{where} ({getattr(err, 'problem', err)})") from None
    if not isinstance(content, dict) or not isinstance(content.get("runs"), list):
        raise CLTTError(f"{path} has no list of runs; rewrite it with cltt sweep RECIPE")
    for position, entry in enumerate(content["runs"], 1):
        problem = run_entry_problem(entry)
        if problem is not None:
            shown = yaml.safe_dump(entry, default_flow_style=True, width=10**6).strip().removesuffix("...").strip()
            shown = shown if len(shown) <= 60 else shown[:57] + "..."
            raise CLTTError(f"{path}: run entry {position} ({shown}) {problem}; rewrite it with cltt sweep RECIPE")
    return content


def run_entry_problem(entry: Any) -> str | None:
    """What is wrong with one entry of a manifest's ``runs`` (a mapping with a ``name``, an
    optional integer ``index``, string ``run_dir`` and ``recipe``, and mapping ``overrides``), or None."""
    if not isinstance(entry, dict):
        kind = {bool: "true/false", int: "a number", float: "a number", str: "text", list: "a list"}.get(type(entry), "empty")
        return f"is {kind}, not a mapping with a name"
    if not isinstance(entry.get("name"), str) or not entry["name"]:
        return "has no name" if entry.get("name") is None else "has a name that is not text"
    if "index" in entry and (not isinstance(entry["index"], int) or isinstance(entry["index"], bool)
                             or entry["index"] < 0):
        return "has an index that is not a whole number >= 0"
    for key in ("run_dir", "recipe"):
        if key in entry and entry[key] is not None and not isinstance(entry[key], str):
            return f"has a {key} that is not a path"
    if entry.get("overrides") is not None and not isinstance(entry["overrides"], dict):
        return "has overrides that are not a mapping"
    return None


def read_yaml(path: Path) -> Any:
    """A sweep file (manifest or run recipe) read as recipe files are (:class:`RecipeLoader`: a
    safe loader that refuses a key given twice in one mapping, where ``yaml.safe_load`` kept the
    last silently), with plain numbers; a YAMLError otherwise."""
    return plain(yaml.load(path.read_text(), Loader=RecipeLoader), str(path))


def record_job(sweep_dir: Path, job_id: str) -> None:
    """Remember a submitted Slurm job array in the manifest."""
    path = Path(sweep_dir) / MANIFEST
    content = read_manifest(sweep_dir)
    content.setdefault("jobs", []).append({"id": job_id, "submitted": datetime.now().isoformat(timespec="seconds")})
    path.write_text(yaml.safe_dump(content, sort_keys=False, default_flow_style=None))


def _set(tree: dict[str, Any], key: str, value: Any) -> None:
    set_dotted(tree, key, copy.deepcopy(value))


def _get(tree: dict[str, Any], key: str) -> Any:
    node: Any = tree
    for part in key.split("."):
        node = node[part]
    return node
