"""The documentation site as the tests see it: its generator (docs/hooks.py, loaded by path)
and the shell commands its pages show."""

from __future__ import annotations

import functools
import importlib.util
import re
import shlex
import sys
from pathlib import Path

import click

from cltt.cli import main
from tests.conftest import invoke_in_process

REPO = Path(__file__).resolve().parents[2]
DOCS = REPO / "docs"
SUBCOMMANDS = set(main.commands)


@functools.lru_cache(maxsize=1)
def hooks():
    """docs/hooks.py as a module (it is not a package: MkDocs loads it by path, as this does)."""
    spec = importlib.util.spec_from_file_location("cltt_docs_hooks", DOCS / "hooks.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the file runs
    spec.loader.exec_module(module)
    return module


def bash_blocks(text: str) -> list[str]:
    """The contents of the ```bash fenced blocks of a Markdown text (indented ones included)."""
    return [re.sub(r"^ {0,4}", "", block, flags=re.M) for block in re.findall(r"^ *```bash\n(.*?)^ *```", text, re.M | re.S)]


def shell_lines(block: str) -> list[str]:
    """The commands of a shell block: continuation lines joined, comments dropped."""
    joined = re.sub(r"\\\n\s*", " ", block)
    lines = []
    for line in joined.splitlines():
        words = shlex.split(line, comments=True) if line.strip() else []
        if words:
            lines.append(line)
    return lines


def cltt_invocations(line: str, subcommands: set[str]) -> list[list[str]]:
    """Each ``cltt SUBCOMMAND ...`` a shell line runs (after ``&&``, ``;``, inside ``docker run IMAGE``
    or ``apptainer exec IMAGE``), as its words after ``cltt``."""
    lexer = shlex.shlex(line, posix=True, punctuation_chars=";&|")
    lexer.whitespace_split, lexer.commenters = True, "#"
    segments, words = [], []
    for token in lexer:
        if token and set(token) <= set(";&|"):
            segments.append(words)
            words = []
        else:
            words.append(token)
    found = []
    for words in [*segments, words]:
        for i, word in enumerate(words):
            if word == "cltt" and (i == 0 or (i + 1 < len(words) and words[i + 1] in subcommands)):
                found.append(words[i + 1:])
                break
    return found


def tutorial_and_howto_pages() -> list[Path]:
    return sorted((DOCS / "tutorials").glob("*.md")) + sorted((DOCS / "how-to").glob("*.md"))


# Keys a page shows that the installed cltt does not have, each with why: a plugin's section
# exists once the plugin is installed (tests/test_method_plugins.py installs and trains it).
EXAMPLE_ONLY_KEYS = {"method.simsiam.predictor_hidden": "the plugin tests/plugins/cltt_simsiam declares it"}
EXAMPLE_ONLY_VALUES = {"method.name=simsiam": "the plugin tests/plugins/cltt_simsiam registers it"}


def _option(command: click.Command, name: str) -> click.Option | None:
    return next((p for p in command.params if isinstance(p, click.Option) and name in p.opts + p.secondary_opts), None)


def _override_key(token: str) -> str | None:
    match = re.match(r"^([a-z_][\w]*(?:\.[\w]+)+)=", token)
    return match.group(1) if match else None


def check_invocation(words: list[str], where: str) -> list[str]:
    """What is wrong with ``cltt WORDS`` against the CLI (options, choices, recipe keys); runs
    ``--show`` on a checked-in recipe with the overrides, which validates every value."""
    from cltt.recipe.schema import all_keys

    if not words or words[0] in ("--help", "-h", "--version", "-V"):
        return []
    if words[0] not in SUBCOMMANDS:
        return [f"{where}: cltt {words[0]} is not a subcommand"]
    command, index = main.commands[words[0]], 1
    if isinstance(command, click.Group):  # cltt sweep status DIR, or cltt sweep RECIPE (its default command)
        sub = words[1] if len(words) > 1 and words[1] in command.commands else getattr(command, "default_command", None)
        index += sub == (words[1] if len(words) > 1 else None)
        command = command.commands[sub]
    keys, problems, overrides, recipe = set(all_keys()), [], [], None
    free = tuple(k.key + "." for k in hooks().recipe_keys() if k.type.startswith("dict"))  # model.timm.ANY
    first = index
    while index < len(words):
        token = words[index]
        if token.startswith("-") and not re.match(r"^-\d", token):
            option = _option(command, token.split("=", 1)[0])
            if option is None and token in ("-h", "--help"):
                pass
            elif option is None:
                problems.append(f"{where}: cltt {words[0]} has no option {token}")
            elif not option.is_flag and not option.count:
                value = token.split("=", 1)[1] if "=" in token else (words[index + 1] if index + 1 < len(words) else "")
                index += 0 if "=" in token else 1
                if isinstance(option.type, click.Choice) and value not in option.type.choices:
                    problems.append(f"{where}: {token} {value} is not one of {option.type.choices}")
                if option.name == "grid" and _override_key(value) not in keys:
                    problems.append(f"{where}: --grid {value} names no recipe key")
        elif _override_key(token):
            key = _override_key(token)
            if key not in keys and key not in EXAMPLE_ONLY_KEYS and not key.startswith(free):
                problems.append(f"{where}: {token} names no recipe key")
            if key not in EXAMPLE_ONLY_KEYS and token not in EXAMPLE_ONLY_VALUES:
                overrides.append(token)
        elif index == first and token.endswith((".yaml", ".yml")) and (REPO / token).is_file():
            recipe = token
        index += 1
    if recipe and not problems and not any(t in EXAMPLE_ONLY_VALUES for t in words):
        result = invoke_in_process(main, ["train", recipe, *overrides, "--show"], REPO)
        if result.exit_code != 0:
            problems.append(f"{where}: cltt train {recipe} {' '.join(overrides)} --show: {result.output.strip()[-300:]}")
    return problems
