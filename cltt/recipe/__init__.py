"""The one YAML recipe format every subcommand reads (moved here from ``cltt/recipe.py``)."""

from cltt.recipe.schema import *  # noqa: F401,F403
from cltt.recipe.schema import _build, _coerce, _validate  # noqa: F401
