"""Segments by time (``clip,start,end,label``, :mod:`cltt.eval.segments`): every bad cell is one
line that says what to do, read on a real folder store of nominal times."""

from __future__ import annotations

import pytest

from cltt.data.stores import open_store
from cltt.errors import CLTTError
from cltt.eval.labels import load_labels
from cltt.eval.segments import load_segments


def segments_file(tmp_path, *rows: str, encoding: str = "utf-8"):
    path = tmp_path / "segments.csv"
    path.write_text("\n".join(["clip,start,end,label", *rows]) + "\n", encoding=encoding)
    return path


@pytest.mark.parametrize("start, said", [
    ("-1", "time '-1' is negative; times are seconds from the start of the video"),
    ("1_0", "time '1_0' is not seconds, m:ss or h:mm:ss"),  # float('1_0') is 10.0
    ("soon", "time 'soon' is not seconds, m:ss or h:mm:ss (such as 75.5"),
])
def test_a_bad_time_says_what_is_wrong(frames_root, tmp_path, start, said):
    """'-1' was told 'must be seconds, m:ss or h:mm:ss' (it is seconds: negative); '1_0' was read as 10 s."""
    with pytest.raises(CLTTError, match="line 2: " + said.replace("(", r"\(")):
        load_segments(open_store(frames_root), segments_file(tmp_path, f"clip0,{start},20,ball"))


def test_a_latin1_file_is_told_to_be_saved_as_utf8(frames_root, tmp_path):
    """A spreadsheet's Latin-1 export gave only the codec's error; both readers say what to do."""
    path = segments_file(tmp_path, "clip0,0,1,balle rouge é", encoding="latin-1")
    for read in (load_segments, load_labels):
        with pytest.raises(CLTTError, match="is not UTF-8 .*; save it as UTF-8"):
            read(open_store(frames_root), path)
