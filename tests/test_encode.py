"""`--encode`: real H.264/AAC packaged as DASH decodes back, and every MPD URL exists."""
from __future__ import annotations

import io
import json

import numpy as np
import pytest

av = pytest.importorskip("av")

from netem import cenc  # noqa: E402
from netem import content as content_mod  # noqa: E402
from netem import encode  # noqa: E402
from netem import isobmff as bm  # noqa: E402
from player.cli.main import main  # noqa: E402
from mpd_urls import mpd_segment_urls  # noqa: E402

# 2 rungs × 4 s (2 s segments) at 256x144 and 426x240: a couple of seconds in all
LADDER = (200e3, 400e3)


@pytest.fixture(scope="module")
def small():
    return content_mod.synthetic(LADDER, duration_s=4.0, segment_duration_s=2.0)


@pytest.fixture(scope="module")
def clear_number(small, tmp_path_factory):
    p = encode.encode_presentation(small, "number", audio=True)
    d = tmp_path_factory.mktemp("enc")
    p.write(d)
    return p, d


def _decode(data: bytes, **opts):
    with av.open(io.BytesIO(data), options=opts) as f:
        s = f.streams[0]
        return [fr for fr in f.decode(s)]


def test_every_url_exists_and_sizes_are_described(clear_number):
    p, d = clear_number
    urls = mpd_segment_urls((d / "manifest.mpd").read_text(), p.read)
    for rid, lst in urls.items():
        for u, _ in lst:
            assert (d / u).is_file(), u
    on_disk = {str(f.relative_to(d)) for f in d.rglob("*") if f.is_file()}
    assert on_disk == set(p.files())
    # the content description of the result lists the real sizes
    for r in range(2):
        sizes = [(d / u).stat().st_size for u, _ in urls[f"v{r}"][1:]]
        assert sizes == p.content.segment_sizes_bytes[:, r].tolist()
    assert p.content.segment_durations_s.tolist() == [2.0, 2.0]


def test_video_decodes_at_each_rungs_size(clear_number, small):
    p, d = clear_number
    urls = mpd_segment_urls(p.mpd().decode(), p.read)
    for r, rung in enumerate(small.rungs):
        data = b"".join((d / u).read_bytes() for u, _ in urls[f"v{r}"])
        frames = _decode(data)
        assert len(frames) == 4 * 30
        assert (frames[0].width, frames[0].height) == (rung.width, rung.height)
        # key frames exactly at segment starts (tfdt of each segment)
        with av.open(io.BytesIO(data)) as f:
            keys = [pk.pts for pk in f.demux(f.streams[0]) if pk.size and pk.is_keyframe]
        assert keys == [0, 180000]
        # codec string in the MPD is the SPS's
        assert p.content.rungs[r].codec.startswith("avc1.64")
        # real bitrate is in the right neighbourhood of the target (CBR with filler)
        mean_bps = p.content.segment_sizes_bytes[:, r].sum() * 8 / 4.0
        assert 0.6 * rung.bitrate_bps < mean_bps < 1.6 * rung.bitrate_bps


def test_audio_decodes(clear_number):
    p, d = clear_number
    data = b"".join((d / u).read_bytes() for u, _ in p.segment_urls()["a0"])
    frames = _decode(data)
    samples = sum(f.samples for f in frames)
    assert samples >= 4 * 48000
    pcm = np.concatenate([f.to_ndarray()[0] for f in frames])
    assert np.abs(pcm).max() > 0.1  # the tone is there


def test_segments_parse_with_our_parser(clear_number):
    p, d = clear_number
    v = p.tracks[0]
    for i in range(v.n_segments):
        boxes = bm.parse((d / f"v0/{i + 1}.m4s").read_bytes())
        assert [b.type for b in boxes] == ["styp", "moof", "mdat"]
        assert bm.parse_mfhd(boxes[1].find("mfhd")) == i + 1
        assert bm.parse_tfdt(boxes[1].find("traf/tfdt")) == i * 180000


def test_encoded_protected_segment_base(small):
    prot = cenc.Protection.default()
    p = encode.encode_presentation(small, "base", audio=True, protection=prot)
    urls = mpd_segment_urls(p.mpd().decode(), p.read)
    for rid, lst in urls.items():
        path = lst[0][0]
        enc = p.read(path)
        assert len(enc) == p.files()[path]
        clear = prot.decrypt_segment(enc)
        assert clear == p.read_clear(path) != enc
        a = [f.to_ndarray() for f in _decode(clear)]
        b = [f.to_ndarray() for f in _decode(enc, decryption_key=prot.key_hex)]  # FFmpeg's own CENC
        assert len(a) == len(b) > 0 and all(np.array_equal(x, y) for x, y in zip(a, b))


def test_cli_encode(tmp_path, capsys):
    rc = main(["content", "make", str(tmp_path / "o"), "--ladder", "150k", "--duration", "2", "--segment", "1",
               "--encode", "--addressing", "timeline", "--save-content", str(tmp_path / "c.json")])
    cap = capsys.readouterr()
    assert rc == 0, cap.err
    assert json.loads(cap.out)["encoded"] is True
    c = content_mod.load(tmp_path / "c.json")
    assert c.n_segments == 2 and c.format == "abrlab-json"
    urls = mpd_segment_urls((tmp_path / "o" / "manifest.mpd").read_text())
    assert [u for u, _ in urls["v0"]] == ["v0/init.mp4", "v0/t0.m4s", "v0/t90000.m4s"]
    frames = _decode(b"".join((tmp_path / "o" / u).read_bytes() for u, _ in urls["v0"]))
    assert len(frames) == 60


def test_annexb_helpers():
    stream = b"\x00\x00\x00\x01\x67abc\x00\x00\x01\x68de\x00\x00\x00\x01\x65xyz"
    assert encode.split_annexb(stream) == [b"\x67abc", b"\x68de", b"\x65xyz"]
    assert encode.annexb_to_length_prefixed(stream) == b"\x00\x00\x00\x04\x65xyz"
