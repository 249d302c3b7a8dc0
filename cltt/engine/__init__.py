"""The training engine: loop, schedule, sampler, precision, distributed, checkpoints, signals.

Modules are imported where they are used: :mod:`cltt.engine.preemption` in particular must
stay importable without torch, so the CLI can install signal handlers before heavy imports.
"""
