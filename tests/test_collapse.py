"""The collapse monitor: the spread measure, and its line in the training output."""

from __future__ import annotations

import math

import pytest
import torch

from cltt.engine.collapse import embedding_spread
from tests.helpers.training import Recorder, train_in_process, write_recipe


def test_spread_is_one_when_even_and_zero_when_collapsed():
    generator = torch.Generator().manual_seed(0)
    even = torch.randn(4096, 64, generator=generator)
    assert embedding_spread(even) == pytest.approx(1.0, abs=0.02)
    assert embedding_spread(torch.ones(100, 64) * 3) == pytest.approx(0.0, abs=1e-6)
    two_points = torch.cat([torch.eye(64)[:1].expand(50, -1), torch.eye(64)[1:2].expand(50, -1)])
    # two of 64 dimensions vary, each with std sqrt(25 / 99) (50 ones, 50 zeros): sqrt(64) * 2 * 0.5025 / 64
    assert embedding_spread(two_points) == pytest.approx(math.sqrt(64) * 2 * math.sqrt(25 / 99) / 64, rel=1e-5)
    assert embedding_spread(torch.randn(1, 8)) is None
    assert embedding_spread(even.view(64, 64, 64)) == pytest.approx(embedding_spread(even.view(-1, 64)))


class Notes(Recorder):
    def __init__(self):
        super().__init__()
        self.notes, self.spreads = [], []

    def note(self, text):
        self.notes.append(text)

    def epoch(self, event):
        self.spreads.append(event.spread)


@pytest.mark.parametrize("threshold, warned", [(0.0, False), (0.999, True)])
def test_each_epoch_reports_the_spread_and_warns_below_the_threshold(tmp_path, frames_root, threshold, warned):
    recipe = write_recipe(tmp_path, frames_root, method={"name": "byol"}, train={"epochs": 2},
                          log={"collapse_warning": threshold})
    reporter = Notes()
    train_in_process(recipe, reporter=reporter)
    assert len(reporter.spreads) == 2 and all(0 < s < 1.5 for s in reporter.spreads)
    collapse_lines = [n for n in reporter.notes if "collapsing" in n]
    assert bool(collapse_lines) == warned
    if warned:
        assert "spread" in collapse_lines[0] and "epoch 1" in collapse_lines[0] and "\n" not in collapse_lines[0]
