"""The documentation site (docs/, mkdocs.yml) stays true to the code.

The reference pages are generated at build time by docs/hooks.py; these tests check that what
they generate covers every recipe key (each with a description), command, method, backbone,
store, data set, probe task and readout, enumerated here from the registries themselves, and
that every ``cltt`` command the tutorials and how-to guides show parses against the current CLI.
Two slow tests run the own-videos tutorial end to end and open the built site in Chromium.
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from cltt.cli import main
from tests.conftest import invoke_in_process
from tests.helpers.docs import (
    DOCS,
    REPO,
    SUBCOMMANDS,
    bash_blocks,
    check_invocation,
    cltt_invocations,
    hooks,
    shell_lines,
    tutorial_and_howto_pages,
)

HOOKS = hooks()

def test_every_recipe_key_has_a_description():
    missing = [key.key for key in HOOKS.recipe_keys() if not key.description]
    assert not missing, f"give these schema fields a '# meaning' comment: {missing}"


def test_the_recipe_reference_lists_every_key_with_type_and_default():
    from cltt.recipe.schema import all_keys

    page = HOOKS.recipe_page()
    for key in all_keys():
        assert f"`{key}`" in page, key
    row = next(line for line in page.splitlines() if line.startswith("| `train.accumulation` |"))
    assert "one of exact, approximate" in row and "`exact`" in row and "GradCache" in row


def test_the_command_reference_has_every_commands_help():
    page = HOOKS.commands_page()
    for name, command in main.commands.items():
        assert f"## `cltt {name}`" in page
        assert command.get_short_help_str(limit=60).split()[0] in page
    assert "## `cltt`\n" in page and "Start here" in page


def test_the_registry_reference_has_every_entry():
    from cltt.data.stores import store_kinds
    from cltt.data.synthetic.registry import registered_generators
    from cltt.methods import registered_methods
    from cltt.models.backbones import BACKBONES
    from cltt.recipe.probes import READOUT_SECTIONS, TASK_SECTIONS

    page = HOOKS.registries_page()
    registries = {"methods": registered_methods(), "backbones": BACKBONES, "stores": store_kinds(),
                  "synthetic data sets": registered_generators(), "probe tasks": TASK_SECTIONS.entries(),
                  "readouts": READOUT_SECTIONS.entries()}
    for kind, entries in registries.items():
        section = page.split(f"## {kind.capitalize()}\n", 1)[1].split("\n## ", 1)[0]
        assert entries, kind
        for name in entries:
            assert f"| `{name}` |" in section, (kind, name)
    for name, entry in registered_methods().items():
        assert f"| `{name}` | {entry.description} |" in page


def test_formats_run_dir_and_math_pages_come_from_the_code():
    from cltt.data.formats import FRAME_EXTENSIONS, VIDEO_EXTENSIONS
    from cltt.engine import run_files
    from cltt.methods import registered_methods

    formats = HOOKS.formats_page()
    assert all(f"`{ext}`" in formats for ext in FRAME_EXTENSIONS | VIDEO_EXTENSIONS)
    run_dir = HOOKS.run_dir_page()
    for name in (run_files.RECIPE_FILE, run_files.METRICS_FILE, run_files.EVAL_FILE, run_files.STEPS_FILE,
                 run_files.RUN_FILE, run_files.LATEST_FILE, run_files.FINAL_CHECKPOINT):
        assert f"`{name}`" in run_dir, name
    assert "`epoch,loss,learning_rate,decay_rate`" in run_dir
    math = HOOKS.methods_math_page()
    assert all(f"## `{name}`" in math for name in registered_methods())


def test_help_texts_list_the_choices_of_the_registries():
    from cltt.data.formats import VIDEO_EXTENSIONS
    from cltt.data.synthetic.registry import registered_generators
    from cltt.methods import registered_methods
    from cltt.recipe.probes import READOUT_SECTIONS, TASK_SECTIONS

    extract = HOOKS.help_text("cltt extract")
    assert all(name in extract for name in registered_generators()) and "rotating-objects" in extract
    assert all(ext.lstrip(".") in extract for ext in VIDEO_EXTENSIONS)
    train = HOOKS.help_text("cltt train")
    assert all(name in train for name in registered_methods())
    probe = HOOKS.help_text("cltt probe")
    assert all(name in probe for name in TASK_SECTIONS.entries()) and all(name in probe for name in READOUT_SECTIONS.entries())


def test_start_here_uses_the_quickstarts_data():
    import yaml

    start = HOOKS.help_text("cltt").split("Start here", 1)[1]
    recipe = yaml.safe_load((REPO / "recipes" / "quickstart.yaml").read_text())
    assert "recipes/quickstart.yaml" in start and recipe["data"]["root"] in start and recipe["data"]["synthetic"] in start
    for line in start.splitlines():  # a data folder it names is the quickstart's, with its generator
        if "--synthetic" in line:
            assert f"--synthetic {recipe['data']['synthetic']}" in line and f"--out {recipe['data']['root']}" in line


def test_every_command_in_the_tutorials_and_how_to_guides_parses():
    problems, checked = [], 0
    for page in tutorial_and_howto_pages():
        for block in bash_blocks(page.read_text()):
            for line in shell_lines(block):
                for words in cltt_invocations(line, SUBCOMMANDS):
                    checked += 1
                    problems += check_invocation(words, f"{page.relative_to(REPO)}: {line.strip()[:80]}")
    assert checked > 40
    assert not problems, "\n".join(problems)


def test_the_command_check_fails_on_a_wrong_command():
    assert check_invocation(["train", "recipes/quickstart.yaml", "--shw"], "x")
    assert check_invocation(["train", "recipes/quickstart.yaml", "data.windw_size=3"], "x")
    assert check_invocation(["train", "recipes/quickstart.yaml", "data.window_size=three"], "x")
    assert check_invocation(["visualize", "recipes/quickstart.yaml", "--mode", "movie"], "x")
    assert check_invocation(["trian", "recipes/quickstart.yaml"], "x")
    assert not check_invocation(["train", "recipes/quickstart.yaml", "data.window_size=3"], "x")


def test_the_walk_through_is_the_plugin_file():
    page = (DOCS / "how-to" / "add-a-method.md").read_text()
    block = page.split("```python\n", 1)[1].split("```", 1)[0]
    source = (REPO / "tests" / "plugins" / "cltt_simsiam" / "cltt_simsiam" / "method.py").read_text()
    code = source[source.index("from dataclasses"):]  # after the module docstring and __future__

    def lines(text: str) -> list[str]:  # the page adds comments; everything else must match
        return [re.sub(r"\s+#.*$", "", line).rstrip() for line in text.splitlines() if line.strip()]

    assert lines(block) == lines(code)


def test_every_page_is_in_the_nav_and_every_nav_entry_exists():
    import yaml

    config = yaml.safe_load((REPO / "mkdocs.yml").read_text().replace("!!python", "#"))

    def entries(nav) -> list[str]:
        out = []
        for item in nav:
            for value in (item.values() if isinstance(item, dict) else [item]):
                out += entries(value) if isinstance(value, list) else [value]
        return out

    listed = set(entries(config["nav"]))
    written = {str(p.relative_to(DOCS)) for p in DOCS.rglob("*.md")}
    assert written - listed == set()
    assert listed - written == set(HOOKS.PAGES)


# ----------------------------------------------------------------------------- slow: end to end


@pytest.mark.slow
def test_the_own_videos_tutorial_runs_as_written(tmp_path):
    """Every command of docs/tutorials/your-own-videos.md, in order, on ten short test videos,
    with the labels file the page shows how to write."""
    from tests.helpers.videos import write_video

    page = (DOCS / "tutorials" / "your-own-videos.md").read_text()
    commands = [line for block in bash_blocks(page) for line in shell_lines(block)]
    assert [shlex.split(c)[:2] for c in commands] == [["cltt", s] for s in ("extract", "index", "visualize", "train", "probe")]
    shutil.copytree(REPO / "recipes", tmp_path / "recipes")
    names = [f"{kind}_{n:02d}" for kind in ("kitchen", "garden") for n in range(1, 6)]
    for name in names:
        write_video(tmp_path / "recordings" / f"{name}.mp4", frames=60)
    cltt = Path(sys.executable).with_name("cltt")
    for command in commands:
        if command.startswith("cltt probe"):
            (tmp_path / "data" / "my_frames" / "labels.csv").write_text(
                "clip,label\n" + "".join(f"{name},{name.split('_')[0]}\n" for name in names))
        words = shlex.split(command)
        result = subprocess.run([str(cltt), *words[1:]], cwd=tmp_path, capture_output=True, text=True, timeout=900)
        assert result.returncode == 0, f"{command}\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}"
    assert (tmp_path / "my_window.png").stat().st_size > 0
    assert (tmp_path / "runs" / "my_videos" / "probe.json").is_file()


@pytest.mark.slow
def test_the_site_in_a_browser(tmp_path):
    """Build the site, serve it on 127.0.0.1 and open the home page, a tutorial and the recipe
    reference in headless Chromium: each has content and no console error. The screenshots are
    kept in build/screenshots/ for a person to look at."""
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.skip("no chromium (Debian: apt-get install -y chromium)")
    pytest.importorskip("aiohttp", reason="the DevTools client is aiohttp's websocket")
    from tests.helpers.site import build_site, open_page, serve

    site = build_site(tmp_path / "site")
    shots = REPO / "build" / "screenshots"
    shots.mkdir(parents=True, exist_ok=True)
    with serve(site) as base:
        for page, expected in (("", "contrastive learning through time"),
                               ("tutorials/your-own-videos/", "Videos to frames"),
                               ("reference/recipe/", "train.accumulation")):
            text, console, shot = open_page(browser, base + page, shots / f"{page.strip('/').replace('/', '_') or 'home'}.png",
                                           tmp_path)
            assert expected in text, page
            assert len(text.split()) > 100, f"{page}: a page without content"
            assert not console, f"{page}: console errors {console}"
            assert shot.stat().st_size > 10_000


def test_the_probe_plot_draws_every_source_with_its_interval(tmp_path):
    import json

    import cv2

    from cltt.errors import CLTTError
    from cltt.visualize import plot_probe, read_probe_scores

    scores = [{"features": source, "probe": probe, "train": 1.0, "val": None, "test": test,
               "intervals": {"test": [test - 0.1, test + 0.05]}}
              for source, test in (("trained", 0.9), ("random_init", 0.6), ("pixels", 0.5))
              for probe in ("linear", "logistic")]
    (tmp_path / "probe.json").write_text(json.dumps({"format": "cltt-probe/1", "checkpoint": "runs/x/checkpoint_final.pth",
                                                     "counts": {"test": {"clips": 40}}, "scores": scores}))
    sources, probes, table, title = read_probe_scores(tmp_path)
    assert sources == ["trained", "random_init", "pixels"] and probes == ["linear", "logistic"]
    assert table["trained", "logistic"] == pytest.approx((90.0, 80.0, 95.0)) and "40 clips" in title
    image = cv2.imread(str(plot_probe(tmp_path, tmp_path / "probe.png")))
    assert image.shape[0] > 300 and (image[:, :, 0] > 150).any()  # drawn, with the trained bars' blue
    result = invoke_in_process(main, ["visualize", str(tmp_path), "--mode", "probe", "--out", "cli.png"], tmp_path)
    assert result.exit_code == 0 and cv2.imread(str(tmp_path / "cli.png")).shape == image.shape
    (tmp_path / "phases.json").write_text(json.dumps({"format": "cltt-probe-phases/1"}))
    with pytest.raises(CLTTError, match="not a class probe"):
        read_probe_scores(tmp_path / "phases.json")
