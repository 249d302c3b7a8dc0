"""The method registry as the one source of truth: recipe names and sections, --help, and the
one-line refusals of recipes a method cannot run with."""

from __future__ import annotations

import pytest
import yaml

from cltt.errors import CLTTError, RecipeError
from cltt.methods import build_method, method_class, registered_methods
from cltt.recipe import dump_recipe, load_recipe
from cltt.recipe.methods import method_sections
from tests.conftest import invoke_in_process


def one_line(message: str) -> str:
    assert "\n" not in message
    return message


def test_recipe_accepts_every_registered_name_and_only_those():
    for name in registered_methods():
        assert load_recipe(overrides=[f"method.name={name}"]).method.name == name
    with pytest.raises(RecipeError, match=r"'method.name'.*not a registered method; did you mean 'byol'\?") as info:
        load_recipe(overrides=["method.name=boyl"])
    one_line(str(info.value))


def test_each_method_section_comes_from_its_file_and_show_prints_only_the_chosen_one():
    recipe = load_recipe(overrides=["method.name=vicreg", "method.vicreg.variance_weight=10"])
    assert recipe.method.vicreg.variance_weight == 10.0
    shown = yaml.safe_load(dump_recipe(recipe))["method"]
    assert shown["vicreg"]["variance_weight"] == 10.0
    assert not set(shown) & (set(registered_methods()) - {"vicreg"})
    with pytest.raises(RecipeError, match=r"'method.vicreg.variance_weight' must be >= 0"):
        load_recipe(overrides=["method.name=vicreg", "method.vicreg.variance_weight=-1"])
    with pytest.raises(RecipeError, match=r"'method.vicreg.varience_weight' is not known; did you mean "
                                          r"'method.vicreg.variance_weight'"):
        load_recipe(overrides=["method.name=vicreg", "method.vicreg.varience_weight=1"])


def test_every_declared_section_has_its_method_and_every_method_its_section():
    """What the recipe knows of a built-in method (cltt/recipe/methods/, read without torch) and
    its class are one entry: a declaration whose class is missing is a gap, and the class takes
    its section, shared keys and positives from the declaration."""
    methods = registered_methods()
    declared = {name for name, section in method_sections().items() if section.origin == "cltt"}
    assert declared == {name for name, entry in methods.items() if entry.cls.__module__.startswith("cltt.")}
    for name, entry in methods.items():
        section = method_sections()[name]
        assert (entry.config, entry.cls.shared_keys, entry.cls.supported_positives) == \
            (section.config, section.shared_keys, section.supported_positives)


@pytest.mark.parametrize("overrides, fragment", [
    (["method.name=byol", "method.carl.frames=8"],
     "'method.carl' belongs to method carl, but method.name is byol"),
    (["method.name=byol", "method.temperature=0.5"], "'method.temperature' is not read by method byol"),
    (["method.name=simclr", "method.pairing=aligned"], "'method.pairing' is not read by method simclr (it is read by cltt)"),
    (["method.name=carl", "method.positives=time"], "'method.positives' is not read by method carl"),
    (["method.name=cltt", "method.positives=augment"], "does not apply to method cltt; it takes time, both"),
])
def test_keys_of_other_methods_are_refused_in_one_line(overrides, fragment):
    with pytest.raises(RecipeError) as info:
        load_recipe(overrides=overrides)
    assert fragment in one_line(str(info.value))


def test_a_section_left_at_its_defaults_is_no_error():
    """Recipes saved before sections moved to their methods hold every section at its defaults."""
    recipe = load_recipe(overrides=["method.name=byol", "method.carl.frames=16"])
    assert recipe.method.name == "byol"


TINY = ["model.backbone=tiny_cnn", "data.image_size=32"]


@pytest.mark.parametrize("overrides, fragment", [
    (["method.name=dino", "method.dino.local_crops=2", "model.backbone=vit_s16"],
     "local_crops needs a backbone that takes any image size"),
    (["method.name=byol", "method.positives=time", "data.window_size=1"],
     "method.positives=time pairs frames apart in time"),
    (["method.name=dino", "method.positives=time", "data.window_size=1", "method.dino.local_crops=2"],
     "method.positives=time pairs frames apart in time"),
    (["method.name=vicreg", "method.positives=augment", "data.two_view_offset=3"],
     "method.positives=augment takes two augmentations of one frame"),
    (["method.name=vicreg", "train.sub_batch_size=4", "train.accumulation=approximate"],
     "uses statistics of the whole batch"),
    (["method.name=barlow_twins", "train.sub_batch_size=4", "train.accumulation=approximate"],
     "uses statistics of the whole batch"),
    (["method.name=byol", "data.augment.consistent=false"], "keeps one augmentation draw for both frames"),
    (["method.name=simclr", "method.positives=time", "data.window_size=3", "data.two_view_offset=1"],
     "share frames"),
])
def test_methods_refuse_data_they_cannot_run_with(overrides, fragment):
    recipe = load_recipe(overrides=TINY + overrides)
    with pytest.raises(CLTTError) as info:
        method_class(recipe.method.name).check_recipe(recipe)
    assert fragment in one_line(str(info.value))
    with pytest.raises(CLTTError, match=fragment):
        build_method(recipe)


def test_train_help_lists_every_method_with_its_description(tmp_path):
    from cltt.cli import main

    result = invoke_in_process(main, ["train", "--help"], tmp_path)
    assert result.exit_code == 0
    text = " ".join(result.output.split())
    for name, entry in registered_methods().items():
        assert f"{name} {entry.description[:30]}" in text, name


def test_positives_decide_the_pairs():
    """time: frames apart under one draw; augment: two draws of one window; both: two draws, frames apart."""
    import torch

    def pairs(*overrides):
        recipe = load_recipe(overrides=TINY + ["method.name=byol", *overrides])
        views = method_class("byol").dataset_views(recipe)
        labels = torch.arange(views * 3, dtype=torch.float32).view(1, views, 3, 1, 1, 1).expand(1, views, 3, 3, 1, 1)
        return views, [x[0, :, 0, 0, 0].tolist() for x in build_method(recipe).pairs(labels)]

    assert pairs("data.window_size=3") == (1, [[0.0], [2.0]])  # frames 0 and 2 of one window
    assert pairs("data.window_size=3", "data.two_view_offset=4") == (2, [[0.0, 1.0, 2.0], [3.0, 4.0, 5.0]])
    assert pairs("data.window_size=3", "method.positives=augment") == (2, [[0.0, 1.0, 2.0], [3.0, 4.0, 5.0]])
    assert pairs("data.window_size=3", "method.positives=both") == (2, [[0.0], [5.0]])  # view 0 first, view 1 last


def test_a_run_dir_recipe_from_before_sections_moved_still_loads():
    """cltt 0.1 saved every method section, slotcontrast's as method.slots."""
    old = {"method": {"name": "slotcontrast", "slots": {"num_slots": 3}, "carl": {"frames": 16}}}
    from cltt.recipe import recipe_from_dict

    assert recipe_from_dict(old).method.slotcontrast.num_slots == 3
