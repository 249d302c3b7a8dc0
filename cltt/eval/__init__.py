"""Evaluation of frozen representations: linear readout, logistic and kNN probes.

:mod:`cltt.eval.probe` ties the pieces together for ``cltt probe`` and for the trainer's
``probe.every``; each protocol and each data step is its own module (see there).
"""
