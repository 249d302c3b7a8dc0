"""The recipe format: defaults, overrides, and one-line errors for bad keys and types."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from cltt.errors import RecipeError
from cltt.recipe import Recipe, all_keys, dump_recipe, load_recipe, recipe_from_dict
from cltt.recipe.load import RecipeLoader

RECIPES = sorted((Path(__file__).parent.parent / "recipes").glob("*.yaml"))


def test_defaults_without_a_file():
    recipe = load_recipe()
    assert isinstance(recipe, Recipe)
    assert recipe.data.window_size == 5
    assert recipe.data.augment.consistent is True


def test_file_then_overrides(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text("data:\n  window_size: 3\n  augment:\n    flip_p: 0.0\n")
    recipe = load_recipe(path, ["data.frame_step=2", "data.augment.consistent=false", "extract.fps=2.5"])
    assert recipe.data.window_size == 3
    assert recipe.data.frame_step == 2
    assert recipe.data.augment.flip_p == 0.0
    assert recipe.data.augment.consistent is False
    assert recipe.extract.fps == 2.5


def test_override_wins_over_file_and_parses_yaml_scalars(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text("data:\n  window_size: 3\n")
    recipe = load_recipe(path, ["data.window_size=7", "data.augment.crop_scale=[0.5, 1]", "data.cache_dir=null"])
    assert recipe.data.window_size == 7
    assert recipe.data.augment.crop_scale == [0.5, 1.0]
    assert recipe.data.cache_dir is None


def test_yaml_1_1_exponent_strings_are_numbers():
    recipe = load_recipe(overrides=["extract.fps=1e1"])
    assert recipe.extract.fps == 10.0


def test_unknown_key_names_the_closest():
    with pytest.raises(RecipeError, match=r"'data.windw_size' is not known; did you mean 'data.window_size'"):
        load_recipe(overrides=["data.windw_size=3"])


def test_unknown_section_names_the_closest():
    with pytest.raises(RecipeError, match=r"'dta' is not known; did you mean 'data'"):
        recipe_from_dict({"dta": {}})


def test_unknown_nested_key():
    with pytest.raises(RecipeError, match=r"'data.augment.flip' is not known; did you mean 'data.augment.flip_p'"):
        load_recipe(overrides=["data.augment.flip=0.5"])


@pytest.mark.parametrize(
    "override, expected",
    [
        ("data.window_size=three", r"'data.window_size' must be an int, got 'three' \(str\)"),
        ("data.window_size=2.5", r"'data.window_size' must be an int"),
        ("data.augment.consistent=maybe", r"'data.augment.consistent' must be true or false"),
        ("data.augment.crop_scale=0.5", r"'data.augment.crop_scale' must be a list of a number"),
        ("data.object_focus=box", r"must be one of none, boxes, boxes_or_center, got 'box'; did you mean 'boxes'"),
        ("data.window_size=0", r"'data.window_size' must be >= 1, got 0"),
        ("data.augment.flip_p=1.5", r"'data.augment.flip_p' is a probability"),
        ("data.augment.crop_scale=[0.9, 0.2]", r"'data.augment.crop_scale' must be \[low, high\]"),
        ("data=3", r"'data' must be a mapping"),
    ],
)
def test_wrong_values_fail_with_one_line(override, expected):
    with pytest.raises(RecipeError, match=expected) as info:
        load_recipe(overrides=[override])
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("text", ["train: [1, 2]\n", "train: 3\n", "data:\n  augment: yes\n"])
def test_a_section_that_is_not_a_mapping_is_refused_whatever_overrides_follow(tmp_path, text):
    """It used to become all defaults when an override was aimed inside it, and the run exited 0."""
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    section = "data.augment" if "augment" in text else "train"
    for overrides in ([], [f"{section}.epochs=1" if section == "train" else "data.augment.flip_p=0.1"]):
        with pytest.raises(RecipeError, match=rf"recipe key '{section}' must be a mapping of keys") as info:
            load_recipe(path, overrides)
        assert "\n" not in str(info.value)
    empty = tmp_path / "empty_section.yaml"
    empty.write_text("train:\n")  # an empty section is an empty mapping
    assert load_recipe(empty, ["train.epochs=1"]).train.epochs == 1


def test_malformed_override():
    with pytest.raises(RecipeError, match="must look like section.key=value"):
        load_recipe(overrides=["=3"])


def test_missing_and_invalid_files(tmp_path):
    with pytest.raises(RecipeError, match="does not exist"):
        load_recipe(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("data: [unclosed\n")
    with pytest.raises(RecipeError, match="is not valid YAML at line"):
        load_recipe(bad)
    scalar = tmp_path / "scalar.yaml"
    scalar.write_text("3\n")
    with pytest.raises(RecipeError, match="must hold a mapping"):
        load_recipe(scalar)


def test_a_string_key_keeps_the_text_of_a_number(tmp_path):
    """YAML reads 010 as 8, 1.10 as 1.1, 1:30 as 90 and 2024-05-01 as a date: a string key took
    str() of the number, so data.root=010 was the folder '8' and train.name=1.10 the run '1.1'.
    A number key still takes the number."""
    overrides = ["data.root=010", "train.name=1.10", "probe.labels=1:30", "export.format=safetensors",
                 "train.epochs=1_0", "train.lr=1.0e-3", "model.timm={drop_rate: 0.10}"]
    recipe = load_recipe(None, overrides)
    assert (recipe.data.root, recipe.train.name, recipe.probe.labels) == ("010", "1.10", "1:30")
    assert (recipe.train.epochs, recipe.train.lr, recipe.model.timm) == (10, 1e-3, {"drop_rate": 0.1})
    assert type(recipe.train.epochs) is int and type(recipe.model.timm["drop_rate"]) is float
    assert yaml.safe_load(dump_recipe(recipe))["train"]["name"] == "1.10"
    path = tmp_path / "r.yaml"
    path.write_text("data:\n  root: 2024-05-01\n  window_size: 0x3\ntrain:\n  name: 0.50\n  lr: .5\n")
    recipe = load_recipe(path)
    assert (recipe.data.root, recipe.data.window_size, recipe.train.name, recipe.train.lr) == ("2024-05-01", 3, "0.50", 0.5)


@pytest.mark.parametrize("override", ["method.name=[simclr]", "method.name={a: 1}", "probe.task=[classes]",
                                      "probe.task={a: 1}"])
def test_a_list_or_mapping_for_a_name_is_one_line(override):
    """A list or mapping looked up in the registries was a TypeError (unhashable) traceback."""
    key = override.split("=")[0]
    with pytest.raises(RecipeError, match=f"recipe key '{re.escape(key)}': .* is not a registered"):
        load_recipe(None, [override])


@pytest.mark.parametrize("override", ["model.timm=&a {x: *a}", "sweep.grid=&a {train.lr: [*a]}"])
def test_a_value_that_contains_itself_is_one_line(override):
    """A YAML alias inside its own anchor validated, then the recipe's copy for the run dir was a
    RecursionError traceback."""
    with pytest.raises(RecipeError, match=f"recipe key '{override.split('=')[0]}' holds a value that contains itself"):
        load_recipe(None, [override])


def test_a_key_given_twice_is_one_line_and_merge_keys_still_override(tmp_path):
    """PyYAML keeps the last of two equal keys: a second train: section silently dropped the first
    one's lr and epochs. A Python tag is refused as by yaml.safe_load, never run."""
    twice = tmp_path / "twice.yaml"
    twice.write_text("train:\n  lr: 0.1\n  epochs: 3\ntrain:\n  batch_size: 4\n")
    with pytest.raises(RecipeError, match=r"at line 4: key 'train' is given twice in one mapping \(first at line 1\)") as info:
        load_recipe(twice)
    assert "\n" not in str(info.value)
    inner = tmp_path / "inner.yaml"
    inner.write_text("data:\n  window_size: 3\n  window_size: 7\n")
    with pytest.raises(RecipeError, match="key 'window_size' is given twice"):
        load_recipe(inner)
    merged = tmp_path / "merged.yaml"
    merged.write_text("base: &b {lr: 0.1, epochs: 3}\ntrain:\n  <<: *b\n  lr: 0.2\n")
    tree = yaml.load(merged.read_text(), Loader=RecipeLoader)
    assert tree["train"] == {"lr": 0.2, "epochs": 3}
    tagged = tmp_path / "tagged.yaml"
    tagged.write_text(f"train:\n  name: !!python/object/apply:os.mkdir [{str(tmp_path / 'ran')!r}]\n")
    with pytest.raises(RecipeError, match="is not valid YAML"):
        load_recipe(tagged)
    assert not (tmp_path / "ran").exists()


def test_dump_round_trips():
    recipe = load_recipe(overrides=["data.window_size=9", "data.augment.jitter=[0.1, 0.2, 0.3, 0.05]"])
    again = recipe_from_dict(yaml.safe_load(dump_recipe(recipe)))
    assert again == recipe


def test_every_key_listed():
    keys = all_keys()
    assert "data.augment.crop_scale" in keys and "extract.synthetic.seed" in keys


@pytest.mark.parametrize("path", RECIPES, ids=[p.name for p in RECIPES])
def test_checked_in_recipes_load(path):
    load_recipe(path)


def test_egocentric_recipe_matches_the_lab_config():
    recipe = load_recipe(Path(__file__).parent.parent / "recipes" / "egocentric.yaml")
    assert (recipe.data.window_size, recipe.data.frame_step, recipe.data.window_stride) == (5, 2, 10)


@pytest.mark.parametrize("override", ["train.weight_decay=nan", "train.lr=inf", "train.lr=nan", "train.warmup_epochs=nan",
                                      "train.checkpoint_minutes=nan", "extract.fps=nan", "extract.fps=inf",
                                      "method.temperature=-inf"])
def test_nan_and_infinity_are_refused_where_a_range_is_checked(override):
    """NaN compares false with every bound, so a range check alone let it through (a NaN weight
    decay trained until the loss was NaN and the error then blamed the learning rate)."""
    key = override.split("=")[0]
    with pytest.raises(RecipeError, match=f"recipe key '{re.escape(key)}' must be"):
        load_recipe(None, [override])


@pytest.mark.parametrize("overrides", [
    ["data.focus_blur_sigma=nan"], ["data.focus_blur_sigma=-1"], ["data.augment.jitter=[nan, 0.4, 0.4, 0.1]"],
    ["data.augment.jitter=[inf, 0.4, 0.4, 0.1]"], ["data.augment.crop_ratio=[0.75, inf]"],
    ["data.augment.blur_sigma=[0.1, inf]"], ["data.augment.crop_ratio=[0, 1.33]"], ["train.grad_clip=inf"],
    ["probe.split_fractions=[0.6, 0.2, nan]"],
    ["probe.logistic_c=[-1]"], ["probe.logistic_c=[0]"], ["probe.logistic_c=[nan]"], ["probe.logistic_c=[]"],
    ["probe.ridge=[nan]"], ["probe.ridge=[inf]"], ["extract.start=nan"], ["extract.end=inf"], ["extract.end=-1"],
    ["probe.task=label_free", "probe.label_free.gaps=[nan, 5.0]"], ["probe.task=label_free", "probe.label_free.gaps=[inf]"],
    ["probe.probes=[knn, knn]"], ["probe.baselines=[pixels, pixels]"], ["probe.task=label_free", "probe.label_free.gaps=[1, 1.0]"],
    ["probe.task=label_free", "probe.label_free.recall_at=[5, 5]"], ["probe.task=phases", "probe.phases.ap_k=[5, 5]"],
])
def test_unchecked_numbers_are_refused(overrides):
    """Keys that had no range check, or one NaN passes: a NaN data.focus_blur_sigma or a negative
    probe.logistic_c was a traceback in a worker or in scikit-learn, an empty logistic_c an
    IndexError, a NaN ridge or gap ran and reported nothing useful; a readout or baseline listed
    twice was probed and reported twice (a gap or k twice wrote one column twice)."""
    key = overrides[-1].split("=")[0]
    with pytest.raises(RecipeError, match=f"recipe key '{re.escape(key)}' must") as info:
        load_recipe(None, overrides)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(("overrides", "limit", "why"), [
    (["probe.bootstrap_rounds=1000000000"], "20,000", "rounds x clips weight matrix"),
    (["probe.task=label_free", "probe.label_free.pairs=10000000000"], "1,000,000", "features of every pair"),
])
def test_values_that_size_an_allocation_have_an_upper_bound(overrides, limit, why):
    """probe.bootstrap_rounds=10^9 was a MemoryError traceback (a rounds x clips weight matrix per
    interval); a huge probe.label_free.pairs gathered two [pairs, D] feature arrays. Each is one
    line with the limit and what it costs; the limit itself loads."""
    key, _, value = overrides[-1].partition("=")
    with pytest.raises(RecipeError, match=f"recipe key '{re.escape(key)}' must be <= {limit}, got [0-9,]+: ") as info:
        load_recipe(None, overrides)
    assert why in str(info.value) and "\n" not in str(info.value)
    assert load_recipe(None, [*overrides[:-1], f"{key}={limit.replace(',', '')}"])


@pytest.mark.parametrize("name", [".", "..", "../elsewhere", "group/run", "/tmp/run", "a\\b"])
def test_a_run_name_is_one_folder_inside_out_dir(name):
    """train.name=. made the run dir train.out_dir itself, .. or a path put it outside."""
    with pytest.raises(RecipeError, match="recipe key 'train.name' names the run dir inside train.out_dir, so it must "
                                          "be one folder name") as info:
        load_recipe(None, [f"train.name={name}"])
    assert repr(name) in str(info.value) and "\n" not in str(info.value)
    assert load_recipe(None, ["train.name=..v2.run"]).train.name == "..v2.run"  # dots inside a name are fine
