"""Evaluation of frozen representations: probe tasks and the readouts they fit.

What is measured is a task of the registry :mod:`cltt.eval.tasks` (``probe.task``: classes,
phases, slots, one file each); the readouts of task classes are the registry
:mod:`cltt.eval.readouts` (``probe.probes``: linear, logistic, knn, retrieval). ``cltt probe``
runs the recipe's task; ``cltt train`` hands the trainer the task's callback for
``probe.every``. :mod:`cltt.eval.probe` ties the class probe's steps together (see there).
"""
