"""``cltt index`` checks the labels by time of the frames task (``ROOT/segments.csv``) with the
probe's own loader, as it checks ``labels.csv``."""

from __future__ import annotations

import pytest

from tests.conftest import invoke_in_process, write_clip


@pytest.fixture
def root(tmp_path):
    for clip in ("a", "b"):
        write_clip(tmp_path / "frames", clip, 8, size=(32, 32))
    return tmp_path / "frames"


def index(root, *overrides):
    from cltt.cli import main

    return invoke_in_process(main, ["index", root, f"data.cache_dir={root.parent / 'cache'}", *overrides],
                             cwd=root.parent)


@pytest.mark.parametrize("task", [[], ["probe.task=frames"]])
def test_index_refuses_overlapping_segments_in_the_probes_words(root, task):
    """Found by the hostile-user pass: segments.csv with overlapping segments in one clip passed
    cltt index (rc 0, nothing said) and only the probe refused it."""
    from cltt.data.stores import open_store
    from cltt.errors import CLTTError
    from cltt.eval.segments import load_segments

    (root / "segments.csv").write_text("clip,start,end,label\na,0,0.2,x\na,0.1,0.25,y\nb,0,0.2,x\n")
    result = index(root, *task)
    with pytest.raises(CLTTError) as probe_says:
        load_segments(open_store(root, root.parent / "cache"), root / "segments.csv")
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.exit_code == 2 and lines == [f"error: {probe_says.value}"], result.output
    assert "overlap" in lines[0]


def test_index_shows_good_segments_and_warns_when_the_frames_task_has_none(root):
    (root / "segments.csv").write_text("clip,start,end,label\na,0,0.2,x\nb,0,0.2,y\n")
    result = index(root)
    assert result.exit_code == 0, result.output
    assert "segments (frames task)" in result.stdout and "2 segments, 2 labels" in result.stdout
    (root / "segments.csv").unlink()
    assert "segments (frames task)" not in index(root).stdout
    result = index(root, "probe.task=frames")
    assert result.exit_code == 0 and "probe.task=frames needs labels by time in" in result.stderr, result.output


def test_index_leaves_a_foreign_segments_file_alone_unless_the_frames_task_reads_it(root):
    (root / "segments.csv").write_text("shot,begin\n1,2\n")
    assert index(root).exit_code == 0
    result = index(root, "probe.task=frames")
    assert result.exit_code == 2 and "must start with the header clip,start,end,label" in result.stderr
