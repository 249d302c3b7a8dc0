"""The README's claims that come from code stay true: its method table is the registry's, and
the "Add a method" walk-through is the plugin file the tests install and train."""

from __future__ import annotations

import re
from pathlib import Path

from cltt.methods import registered_methods

REPO = Path(__file__).parent.parent
README = (REPO / "README.md").read_text()


def test_the_method_table_is_the_registry():
    section = README.split("### Registered methods", 1)[1].split("\n### ", 1)[0]
    rows = dict(re.findall(r"^\| `(\w+)` \| (.+?) \|$", section, flags=re.MULTILINE))
    builtin = {name: entry.description for name, entry in registered_methods().items() if entry.origin == "cltt"}
    assert rows == builtin


def test_the_walk_through_is_the_plugin_file():
    block = README.split("## Add a method", 1)[1].split("```python\n", 1)[1].split("```", 1)[0]
    source = (REPO / "tests" / "plugins" / "cltt_simsiam" / "cltt_simsiam" / "method.py").read_text()
    code = source[source.index("from dataclasses"):]  # after the module docstring and __future__

    def lines(text: str) -> list[str]:  # the README adds comments; everything else must match
        return [re.sub(r"\s+#.*$", "", line).rstrip() for line in text.splitlines() if line.strip()]

    assert lines(block) == lines(code)
