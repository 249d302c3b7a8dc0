"""cltt: contrastive learning through time.

Self-supervised visual representations learned from video, where frames close in time are
positives. Start with ``cltt --help``; the README has the two commands that matter.
"""

__version__ = "0.1.0"
