"""A plugin that needs a package nobody installed."""

import cltt_missing_dependency  # noqa: F401
