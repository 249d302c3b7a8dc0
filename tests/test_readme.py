"""The README stays a screenful or two, and what it says comes from the code: its method table
is the registry's, its commands parse against the CLI, its ``load_encoder`` example states the
quickstart's real shapes, and its links point at pages that exist. The rest lives in docs/
(tests/test_docs.py)."""

from __future__ import annotations

import re

import yaml

from cltt.methods import registered_methods
from tests.helpers.docs import REPO, SUBCOMMANDS, bash_blocks, check_invocation, cltt_invocations, hooks, shell_lines

README = (REPO / "README.md").read_text()
QUICKSTART = yaml.safe_load((REPO / "recipes" / "quickstart.yaml").read_text())


def test_the_readme_fits_a_screenful_or_two():
    assert len(README.splitlines()) <= 260, "move detail into a docs/ page and link it"


def test_the_method_table_is_the_registry():
    section = README.split("\n## Methods", 1)[1].split("\n## ", 1)[0]
    rows = dict(re.findall(r"^\| `(\w+)` \| (.+?) \|$", section, flags=re.MULTILINE))
    builtin = {name: entry.description for name, entry in registered_methods().items() if entry.origin == "cltt"}
    assert rows == builtin


def test_every_readme_command_parses_against_the_cli():
    problems, checked = [], 0
    for block in bash_blocks(README):
        for line in shell_lines(block):
            for words in cltt_invocations(line, SUBCOMMANDS):
                checked += 1
                problems += check_invocation(words, f"README.md: {line.strip()[:80]}")
    assert checked >= 6 and not problems, "\n".join(problems)


def test_the_load_encoder_example_states_the_quickstarts_shapes():
    from cltt.models.backbones import build_backbone

    example = README.split("load_encoder(", 1)[1].split("```", 1)[0]
    size = QUICKSTART["data"]["image_size"]
    width = build_backbone(QUICKSTART["model"]["backbone"], size).feature_dim
    assert f"[N, 3, {size}, {size}]" in example and f"-> [N, {width}]" in example, (size, width)
    assert f"{size} px gives {width}-d" in README


def test_the_readme_embeds_no_other_datas_features_in_the_quickstart_run():
    for line in README.splitlines():
        if "--embeddings" in line and "runs/quickstart" in line:
            assert QUICKSTART["data"]["root"] in line, line


def test_every_link_of_the_readme_exists():
    generated = {f"docs/{page}" for page in hooks().PAGES}
    links = re.findall(r"\]\(((?:docs/)[^)#]+)(?:#[^)]*)?\)", README)
    assert links
    for link in links:
        assert (REPO / link).exists() or link in generated, link
