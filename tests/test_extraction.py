"""The extract -> pack pipeline called from Python (:mod:`cltt.data.extraction`), on real
videos written with OpenCV: what ``cltt extract`` renders is this report."""

from __future__ import annotations

import pytest

from cltt.data.extraction import extract_frames, plan_extraction
from cltt.data.stores import open_store
from cltt.errors import CLTTError
from cltt.recipe import ExtractConfig, SyntheticConfig
from tests.helpers.videos import frame_index, write_video


def test_videos_to_a_frames_root_and_a_rerun_skips_them(tmp_path):
    videos = tmp_path / "videos"
    write_video(videos / "a.avi", frames=20)
    write_video(videos / "b.avi", frames=12)
    plan = plan_extraction(tmp_path / "frames", ExtractConfig(every_nth=2), source=videos)
    assert (plan.total, plan.label) == (2, "extracting 2 videos")
    seen = []
    report = plan.run(on_clip=seen.append)
    assert sorted(clip.clip for clip in report.done) == ["a", "b"] and seen == report.clips
    assert report.frames_written == 10 + 6 and not report.failed and report.pack is None
    kept = sorted((tmp_path / "frames" / "a").glob("*.jpg"))
    assert [frame_index(path) for path in kept] == list(range(0, 20, 2))

    again = extract_frames(tmp_path / "frames", ExtractConfig(every_nth=2), source=videos)
    assert [clip.status for clip in again.clips] == ["skipped", "skipped"] and again.frames_written == 0


def test_videos_straight_into_a_store_are_not_decoded_again(tmp_path):
    videos = tmp_path / "videos"
    write_video(videos / "a.avi", frames=15)
    report = extract_frames(tmp_path / "frames.store", ExtractConfig(), source=videos, pack=True, shard_size="1M")
    assert [clip.clip for clip in report.done] == ["a"] and report.pack.clips_packed == 1
    store = open_store(tmp_path / "frames.store")
    assert store.clips == ["a"] and store.num_frames == 15
    assert not (tmp_path / "frames.store" / ".staging" / "a").exists()

    plan = plan_extraction(tmp_path / "frames.store", ExtractConfig(), source=videos, pack=True)
    assert plan.total == 0 and [clip.status for clip in plan.already_packed] == ["skipped"]


def test_a_synthetic_dataset_and_the_refusals(tmp_path):
    config = ExtractConfig(synthetic=SyntheticConfig(clips=3, frames=4, size=32))
    report = extract_frames(tmp_path / "balls", config, synthetic="bouncing-balls")
    assert len(report.done) == 3 and report.frames_written == 12
    with pytest.raises(CLTTError, match="not both"):
        plan_extraction(tmp_path / "x", config, source=tmp_path, synthetic="bouncing-balls")
    with pytest.raises(CLTTError, match="no synthetic dataset 'bouncing-ball'"):
        plan_extraction(tmp_path / "x", config, synthetic="bouncing-ball")
    assert not (tmp_path / "x").exists()
