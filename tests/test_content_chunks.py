"""A content description's own chunks (`chunks`: each segment's CMAF chunk bytes per rung),
which the simulator uses for low-latency sessions instead of its share model."""
from __future__ import annotations

import json

import numpy as np
import pytest

from netem import content as content_mod
from netem.content import Content, rungs_from_bitrates
from netem.errors import InputError


def described(chunks) -> dict:
    return {"name": "c", "segment_duration_s": 1.0, "rungs": [{"bitrate_bps": 3e5}, {"bitrate_bps": 8e5}],
            "segment_sizes_bytes": [[37_500, 100_000], [36_000, 98_000]], "chunks": chunks}


def test_chunks_are_read_kept_and_written_in_both_formats(tmp_path):
    layout = [[[20_000, 9_000, 8_600], [50_000, 26_000, 24_100]],
              [[19_000, 9_000, 8_100], [48_000, 26_000, 24_100]]]
    p = tmp_path / "c.json"
    p.write_text(json.dumps(described({"duration_s": 0.34, "sizes_bytes": layout})))
    c = content_mod.load(p)
    assert c.chunk_layout(0.34).tolist() == layout
    assert c.chunk_layout(0.5) is None and c.chunk_layout(None) is None     # other chunks: the model's
    for name in ("again.json", "again.toml"):
        content_mod.save(c, tmp_path / name)
        back = content_mod.load(tmp_path / name)
        assert back.chunk_layout(0.34).tolist() == layout and back.chunk_duration_s == 0.34


@pytest.mark.parametrize("chunks, message", [
    ({"duration_s": 0.5, "sizes_bytes": [[[1, 2], [3, 4]]]}, "2 segments × 2 rungs × chunks, got shape \\(1, 2, 2\\)"),
    ({"duration_s": 0.5, "sizes_bytes": [[[1, 2], [3, 4]], [[1, 0], [3, 4]]]}, "segment 1, rung 0, chunk 1: size 0"),
    ({"duration_s": 2.0, "sizes_bytes": [[[1, 2], [3, 4]], [[1, 2], [3, 4]]]}, "at most a segment"),
    ({"duration_s": 0.5, "sizes_bytes": [[[1, 2], [3]], [[1, 2], [3, 4]]]}, "all of one shape"),
    ({"duration_s": 0.5}, "'duration_s' and 'sizes_bytes'"),
    ([1, 2], "must be an object"),
])
def test_bad_chunks_say_what_and_where(tmp_path, chunks, message):
    p = tmp_path / "c.json"
    p.write_text(json.dumps(described(chunks)))
    with pytest.raises(InputError, match=message) as err:
        content_mod.load(p)
    assert str(p) in str(err.value)


def test_content_built_in_code_is_checked_too():
    with pytest.raises(InputError, match="chunk duration None"):
        Content(rungs_from_bitrates([3e5]), np.ones(2), np.ones((2, 1)), chunk_sizes_bytes=np.ones((2, 1, 2)))
