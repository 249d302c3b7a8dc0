"""The documentation site as the tests see it: its generator (docs/hooks.py, loaded by path)
and the shell commands its pages show."""

from __future__ import annotations

import importlib.util
import re
import shlex
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DOCS = REPO / "docs"


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
