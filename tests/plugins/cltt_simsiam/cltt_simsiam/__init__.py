"""SimSiam as a cltt plugin: ``pip install .`` and ``cltt train recipe.yaml method.name=simsiam``."""
