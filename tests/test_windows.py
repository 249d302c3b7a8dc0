"""Window arithmetic against a direct enumeration of the contract."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from cltt.data.windows import WindowSpec, build_windows


def enumerate_windows(frame_counts, spec):
    """The contract written out: every start t = 0, r, 2r, ... whose views all fit in the clip."""
    samples = []
    for clip, n in enumerate(frame_counts):
        t = 0
        while t + spec.two_view_offset + (spec.window_size - 1) * spec.frame_step <= n - 1:
            samples.append((clip, t))
            t += spec.window_stride
    return samples


@pytest.mark.parametrize(
    "window_size, frame_step, window_stride, two_view_offset",
    list(itertools.product((1, 2, 5), (1, 2, 3), (1, 4, 10), (0, 1, 7))),
)
def test_windows_match_the_contract(window_size, frame_step, window_stride, two_view_offset):
    frame_counts = [0, 1, 5, 9, 10, 11, 23, 40]
    spec = WindowSpec(window_size, frame_step, window_stride, two_view_offset)
    table = build_windows(np.array(frame_counts), spec)
    expected = enumerate_windows(frame_counts, spec)
    assert list(zip(table.clip.tolist(), table.start.tolist())) == expected
    assert table.clips_skipped == sum(1 for c in range(len(frame_counts)) if all(e[0] != c for e in expected))


def test_lab_config_by_hand():
    # window 5, step 2 -> span 9 frames; stride 10; a clip of 30 frames gives starts 0, 10, 20? 20 + 8 = 28 <= 29 yes
    spec = WindowSpec(window_size=5, frame_step=2, window_stride=10)
    assert spec.span == 9
    table = build_windows(np.array([30, 8, 9]), spec)
    assert table.clip.tolist() == [0, 0, 0, 2]
    assert table.start.tolist() == [0, 10, 20, 0]
    assert table.clips_skipped == 1
    assert spec.frame_indices(10).tolist() == [10, 12, 14, 16, 18]


def test_two_view_offset_by_hand():
    spec = WindowSpec(window_size=3, frame_step=1, window_stride=2, two_view_offset=4)
    assert spec.reach == 7
    table = build_windows(np.array([8]), spec)
    assert table.start.tolist() == [0]  # start 2 would need frame 2 + 4 + 2 = 8 of a clip of 8 (0..7)
    assert spec.frame_indices(0, view=1).tolist() == [4, 5, 6]


def test_window_never_crosses_clips():
    spec = WindowSpec(window_size=4, frame_step=3, window_stride=1, two_view_offset=2)
    counts = np.array([12, 13, 30])
    table = build_windows(counts, spec)
    for clip, start in zip(table.clip, table.start):
        assert start + spec.two_view_offset + spec.frame_indices(0)[-1] < counts[clip]


def test_many_windows_stay_compact():
    table = build_windows(np.full(1000, 1000), WindowSpec(window_size=5, frame_step=2))
    assert len(table) == 1000 * (1000 - 8)
    assert table.clip.nbytes + table.start.nbytes == 8 * len(table)
