"""DASH packaging: MPDs parse (mpegdash), files are the described sizes exactly, boxes
parse back, SegmentBase indexes add up, ranges are consistent, ClearKey decrypts."""
from __future__ import annotations

import base64
import json
import uuid

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from mpegdash.parser import MPEGDASHParser

from netem import cenc
from netem import content as content_mod
from netem import isobmff as bm
from netem import package
from netem.content import Content, Rung
from netem.errors import InputError
from helpers import shared_path
from mpd_urls import mpd_segment_urls, xs_seconds

MODES = package.ADDRESSING


def small_content(n_rungs: int = 2, duration: float = 10.0, seg: float = 4.0, seed: int = 0) -> Content:
    return content_mod.synthetic([300e3 * (i + 1) ** 1.5 for i in range(n_rungs)], duration_s=duration,
                                 segment_duration_s=seg, seed=seed)


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    """Every addressing mode × (clear, ClearKey), with audio, written to disk once."""
    c = small_content()
    out = {}
    for mode in MODES:
        for prot in (None, cenc.Protection.default()):
            p = package.SyntheticPresentation(c, mode, audio=True, protection=prot)
            d = tmp_path_factory.mktemp(f"{mode}-{'enc' if prot else 'clear'}")
            p.write(d)
            out[(mode, prot is not None)] = (p, d)
    return c, out


# ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("protected", [False, True])
def test_mpd_parses_and_describes_the_ladder(written, mode, protected):
    c, out = written
    p, d = out[(mode, protected)]
    xml = (d / "manifest.mpd").read_text()
    mpd = MPEGDASHParser.parse(xml)
    assert mpd.type == "static"
    assert mpd.profiles == (package.PROFILE_ON_DEMAND if mode == "base" else
                            package.PROFILE_FULL if mode == "list" else package.PROFILE_LIVE)
    assert xs_seconds(mpd.media_presentation_duration) == pytest.approx(c.duration_s, abs=1e-6)
    assert mpd.min_buffer_time.startswith("PT")
    video, audio = mpd.periods[0].adaptation_sets
    assert (video.content_type, video.mime_type, audio.content_type) == ("video", "video/mp4", "audio")
    for rung, rep in zip(c.rungs, video.representations):
        assert rep.bandwidth == int(rung.bitrate_bps)
        assert rep.codecs == rung.codec and rep.width == rung.width and rep.height == rung.height
        assert str(rep.frame_rate) == "30"
    (arep,) = audio.representations
    assert arep.codecs == "mp4a.40.2" and arep.bandwidth == 128000 and arep.audio_sampling_rate == "48000"
    cps = video.content_protections or []
    assert bool(cps) == protected
    if protected:
        kid = cenc.Protection.default().kid_uuid
        schemes = {cp.scheme_id_uri: cp for cp in cps}
        assert schemes["urn:mpeg:dash:mp4protection:2011"].cenc_default_kid == kid
        assert schemes["urn:mpeg:dash:mp4protection:2011"].value == "cenc"
        for sid in (cenc.CLEARKEY_SYSTEM_ID, cenc.WIDEVINE_SYSTEM_ID, cenc.PLAYREADY_SYSTEM_ID):
            cp = schemes[f"urn:uuid:{sid}"]
            (box,) = bm.parse(base64.b64decode(cp.pssh[0].pssh))
            assert bm.parse_pssh(box)["system_id"] == sid.bytes
        ck = bm.parse_pssh(bm.parse(base64.b64decode(
            schemes[f"urn:uuid:{cenc.CLEARKEY_SYSTEM_ID}"].pssh[0].pssh))[0])
        assert ck["version"] == 1 and ck["kids"] == [cenc.Protection.default().kid]
        assert "<dashif:Laurl>/license/clearkey</dashif:Laurl>" in xml
        assert 'Lic_type="EME-1.0">/license/clearkey</clearkey:Laurl>' in xml


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("protected", [False, True])
def test_every_url_the_mpd_implies_exists_and_nothing_else(written, mode, protected):
    _, out = written
    p, d = out[(mode, protected)]
    urls = mpd_segment_urls(p.mpd().decode(), p.read)
    paths = {u for lst in urls.values() for u, _ in lst}
    on_disk = {str(f.relative_to(d)) for f in d.rglob("*") if f.is_file()}
    assert on_disk == paths | {"manifest.mpd"} == set(p.files())
    assert urls == p.segment_urls()


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("protected", [False, True])
def test_sizes_on_disk_match_the_description_exactly(written, mode, protected):
    c, out = written
    p, d = out[(mode, protected)]
    for path, size in p.files().items():
        assert (d / path).stat().st_size == size
        assert (d / path).read_bytes() == p.read(path)  # write() == read()
    urls = mpd_segment_urls(p.mpd().decode(), p.read)

    def sizes(rid):  # a separate file's size, or a SegmentBase byte range's length
        return [(rng[1] - rng[0] + 1) if rng else (d / u).stat().st_size for u, rng in urls[rid][1:]]

    for r in range(c.n_rungs):
        assert sizes(f"v{r}") == c.segment_sizes_bytes[:, r].tolist()
    # audio: bitrate × duration / 8, per segment
    a = p.tracks[-1]
    assert a.kind == "audio"
    assert sizes("a0") == np.rint(128000 * a.durations / 48000 / 8).astype(int).tolist()


@pytest.mark.parametrize("mode", ["number", "timeline", "list"])
def test_media_segment_boxes(written, mode):
    c, out = written
    p, d = out[(mode, False)]
    ends = np.rint(np.cumsum(c.segment_durations_s) * 90000).astype(int)
    starts = np.concatenate(([0], ends[:-1]))
    for r in range(c.n_rungs):
        init = bm.parse((d / f"v{r}/init.mp4").read_bytes())
        assert [b.type for b in init] == ["ftyp", "moov"]
        assert bm.find(init, "moov/trak/mdia/minf/stbl/stsd/avc1/avcC") is not None
        assert bm.find(init, "moov/mvex/trex") is not None
        for i, (url, _) in enumerate(p.segment_urls()[f"v{r}"][1:]):
            data = (d / url).read_bytes()
            boxes = bm.parse(data)
            assert [b.type for b in boxes] == ["styp", "moof", "mdat"]
            moof, mdat = boxes[1], boxes[2]
            assert [b.type for b in moof.children] == ["mfhd", "traf"]
            assert [b.type for b in moof.find("traf").children] == ["tfhd", "tfdt", "trun"]
            assert bm.parse_mfhd(moof.find("mfhd")) == i + 1
            assert bm.parse_tfdt(moof.find("traf/tfdt")) == starts[i]
            tfhd = bm.parse_tfhd(moof.find("traf/tfhd"))
            trun = bm.parse_trun(moof.find("traf/trun"), tfhd)
            assert sum(trun["durations"]) == ends[i] - starts[i]
            assert trun["sample_count"] == round(c.segment_durations_s[i] * 30)
            assert moof.offset + trun["data_offset"] == mdat.offset + 8
            assert sum(trun["sizes"]) == mdat.size - 8
            assert trun["flags"][0] == bm.SAMPLE_SYNC


@pytest.mark.parametrize("protected", [False, True])
def test_segment_base_sidx_adds_up(written, protected):
    c, out = written
    p, d = out[("base", protected)]
    mpd = MPEGDASHParser.parse(p.mpd().decode())
    for aset in mpd.periods[0].adaptation_sets:
        for rep in aset.representations:
            data = (d / rep.base_urls[0].base_url_value).read_bytes()
            sb = rep.segment_bases[0]
            ia, ib = (int(x) for x in sb.index_range.split("-"))
            assert sb.index_range_exact
            boxes = bm.parse(data)
            types = [b.type for b in boxes]
            assert types[:3] == ["ftyp", "moov", "sidx"]
            assert types[3:] == ["moof", "mdat"] * ((len(types) - 3) // 2)
            assert (boxes[2].offset, boxes[2].end - 1) == (ia, ib)
            assert sb.initializations[0].range == f"0-{boxes[1].end - 1}"
            sidx = bm.parse_sidx(boxes[2])
            refs = sidx.references
            assert ib + 1 + sidx.first_offset + sum(r.referenced_size for r in refs) == len(data)
            assert sidx.timescale == sb.timescale
            pos = ib + 1
            t = sidx.earliest_presentation_time
            for k, ref in enumerate(refs):
                moof = bm.parse(data, pos, pos + ref.referenced_size)[0]
                assert moof.type == "moof" and bm.parse_mfhd(moof.find("mfhd")) == k + 1
                assert bm.parse_tfdt(moof.find("traf/tfdt")) == t
                pos += ref.referenced_size
                t += ref.subsegment_duration
            if rep.id.startswith("v"):
                assert [r.referenced_size for r in refs] == c.segment_sizes_bytes[:, int(rep.id[1:])].tolist()
                assert t == round(c.duration_s * 90000)


@pytest.mark.parametrize("protected", [False, True])
def test_clearkey_decrypts_back_to_the_clear_payload(written, protected):
    _, out = written
    p, _ = out[("number", protected)]
    prot = cenc.Protection.default()
    for path in p.files():
        if not path.endswith(".m4s"):
            continue
        enc, clear = p.read(path), p.read_clear(path)
        assert len(enc) == len(clear) == p.files()[path]
        if protected:
            assert enc != clear
            assert prot.decrypt_segment(enc) == clear
            assert cenc.Protection(bytes(16), prot.kid).decrypt_segment(enc) != clear  # wrong key
        else:
            assert enc == clear


def test_protected_init_and_fragments(written):
    _, out = written
    p, d = out[("number", True)]
    prot = cenc.Protection.default()
    for rid, entry in (("v0", "encv"), ("a0", "enca")):
        init = bm.parse((d / f"{rid}/init.mp4").read_bytes())
        se = bm.find(init, f"moov/trak/mdia/minf/stbl/stsd/{entry}")
        assert se is not None
        assert bytes(se.find("sinf/frma").data) == (b"avc1" if rid == "v0" else b"mp4a")
        assert bm.parse_tenc(se.find("sinf/schi/tenc"))["kid"] == prot.kid
        systems = {bm.parse_pssh(b)["system_id"] for b in bm.find_all(init, "moov/pssh")}
        assert systems == {cenc.CLEARKEY_SYSTEM_ID.bytes, cenc.WIDEVINE_SYSTEM_ID.bytes,
                           cenc.PLAYREADY_SYSTEM_ID.bytes}
        seg = bm.parse((d / f"{rid}/1.m4s").read_bytes())
        traf = seg[1].find("traf")
        assert [b.type for b in traf.children] == ["tfhd", "tfdt", "trun", "saiz", "saio", "senc"]
        senc = bm.parse_senc(traf.find("senc"))
        trun = bm.parse_trun(traf.find("trun"), bm.parse_tfhd(traf.find("tfhd")))
        assert len(senc) == trun["sample_count"]
        assert len({iv for iv, _ in senc}) == len(senc)
        if rid == "v0":  # NAL length + header clear, protected part a multiple of 16
            for (iv, subs), size in zip(senc, trun["sizes"]):
                ((clr, enc),) = subs
                assert clr + enc == size and enc % 16 == 0 and clr >= 5


def test_ffmpeg_decrypts_our_cenc():
    """FFmpeg's own CENC support (mov demuxer `decryption_key`) reads our saiz/saio/senc."""
    av = pytest.importorskip("av")
    import io

    prot = cenc.Protection.from_hex("00112233445566778899aabbccddeeff", "0f0e0d0c0b0a09080706050403020100")
    p = package.SyntheticPresentation(small_content(1, 8.0), "number", audio=True, protection=prot)
    for rid in ("v0", "a0"):
        urls = p.segment_urls()[rid]
        enc = b"".join(p.read(u) for u, _ in urls)
        clear = b"".join(p.read_clear(u) for u, _ in urls)
        with av.open(io.BytesIO(enc), options={"decryption_key": prot.key_hex}) as f:
            a = [bytes(x) for x in f.demux(f.streams[0]) if x.size]
        with av.open(io.BytesIO(clear)) as f:
            b = [bytes(x) for x in f.demux(f.streams[0]) if x.size]
        assert a == b and len(a) > 10


def test_ffmpeg_demuxes_synthetic_segments():
    """The init's avcC carries an SPS of the rung's size; key frames sit at segment starts."""
    av = pytest.importorskip("av")
    import io

    c = small_content(2, 12.0)
    p = package.SyntheticPresentation(c, "number")
    for r, rung in enumerate(c.rungs):
        data = b"".join(p.read(u) for u, _ in p.segment_urls()[f"v{r}"])
        with av.open(io.BytesIO(data)) as f:
            s = f.streams.video[0]
            assert (s.codec_context.width, s.codec_context.height) == (rung.width, rung.height)
            pk = [x for x in f.demux(s) if x.size]
        assert len(pk) == 12 * 30
        assert [x.pts for x in pk if x.is_keyframe] == [0, 360000, 720000]


@settings(max_examples=40)
@given(data=st.data(), mode=st.sampled_from(MODES), protected=st.booleans())
def test_read_ranges_match_whole_files(data, mode, protected):
    p = _range_pres(mode, protected)
    files = p.files()
    path = data.draw(st.sampled_from(sorted(files)))
    size = files[path]
    whole = _whole(mode, protected, path)
    a = data.draw(st.integers(0, size + 10))
    b = data.draw(st.one_of(st.none(), st.integers(a, size + 10)))
    assert p.read(path, a, b) == whole[a:b]


_RANGE_CACHE: dict = {}


def _range_pres(mode, protected):
    key = (mode, protected)
    if key not in _RANGE_CACHE:
        c = content_mod.synthetic((150e3, 400e3), duration_s=9.0, segment_duration_s=2.0, seed=3)
        _RANGE_CACHE[key] = (package.SyntheticPresentation(c, mode, audio=True,
                                                  protection=cenc.Protection.default() if protected else None,
                                                  seed=5), {})
    return _RANGE_CACHE[key][0]


def _whole(mode, protected, path):
    p, cache = _RANGE_CACHE[(mode, protected)]
    if path not in cache:
        cache[path] = package.SyntheticPresentation(p.content, mode, audio=True, protection=p.protection, seed=5).read(path)
    return cache[path]


def test_read_errors_and_lookup():
    p = package.SyntheticPresentation(small_content(), "timeline")
    for bad in ("v0/1.m4s", "v9/init.mp4", "v0/t1.m4s", "v0/t00.m4s", "../etc/passwd", "v0/init.mp4/x", "x.mpd"):
        with pytest.raises(KeyError):
            p.read(bad)
    assert p.read("/manifest.mpd") == p.mpd()
    with pytest.raises(ValueError):
        p.read("manifest.mpd", -1)
    assert p.read("v0/init.mp4", 10**9) == b""
    assert package.content_type("manifest.mpd") == "application/dash+xml"
    assert package.content_type("a0/1.m4s") == "audio/mp4" and package.content_type("v0.mp4") == "video/mp4"
    q = package.SyntheticPresentation(small_content(), "number")
    with pytest.raises(KeyError):
        q.read("v0/0.m4s")
    with pytest.raises(KeyError):
        q.read("v0/4.m4s")
    with pytest.raises(KeyError):
        q.read("v0/01.m4s")


def test_deterministic_and_seeded():
    c = small_content()
    a = package.SyntheticPresentation(c, "number", seed=1).read("v1/2.m4s")
    assert a == package.SyntheticPresentation(c, "number", seed=1).read("v1/2.m4s")
    b = package.SyntheticPresentation(c, "number", seed=2).read("v1/2.m4s")
    assert len(a) == len(b) and a != b


def test_variable_durations_use_a_timeline_even_with_number():
    c = Content((Rung(300e3, 256, 144),), np.array([2.0, 4.0, 3.0]), np.array([[80000], [150000], [100000]]))
    p = package.SyntheticPresentation(c, "number")
    xml = p.mpd().decode()
    assert "<SegmentTimeline>" in xml and "$Number$" in xml
    assert [u for u, _ in mpd_segment_urls(xml)["v0"]] == ["v0/init.mp4", "v0/1.m4s", "v0/2.m4s", "v0/3.m4s"]
    # a shorter last segment keeps @duration
    c2 = small_content(1, 10.0)
    assert "<SegmentTimeline>" not in package.SyntheticPresentation(c2, "number", audio=True).mpd().decode()
    assert "<SegmentTimeline>" not in package.SyntheticPresentation(c2, "list", audio=True).mpd().decode()


def test_long_content_audio_count_matches_template():
    """@duration for audio must count the segments right even after many segments."""
    c = content_mod.synthetic((300e3,), duration_s=4000.0, segment_duration_s=4.0)
    p = package.SyntheticPresentation(c, "number", audio=True)
    urls = mpd_segment_urls(p.mpd().decode())
    assert len(urls["a0"]) - 1 == len(urls["v0"]) - 1 == 1000
    assert "<SegmentTimeline>" not in p.mpd().decode()
    a = p.tracks[-1]
    assert np.all(np.abs(a.starts - np.arange(1000) * 192000) <= 512)


def test_tiny_segments_are_refused():
    c = Content((Rung(300e3, 256, 144),), np.array([4.0, 4.0]), np.array([[100000], [50]]))
    with pytest.raises(InputError, match="segment 1 of v0 is 50 bytes"):
        package.SyntheticPresentation(c)


def test_small_segments_shed_samples_but_keep_exact_size():
    c = Content((Rung(300e3, 256, 144),), np.array([4.0]), np.array([[900]]))
    p = package.SyntheticPresentation(c, "number", protection=cenc.Protection.default())
    data = p.read("v0/1.m4s")
    assert len(data) == 900
    boxes = bm.parse(data)
    assert bm.parse_trun(boxes[1].find("traf/trun"))["sample_count"] < 120
    assert cenc.Protection.default().decrypt_segment(data) == p.read_clear("v0/1.m4s")


def test_bad_inputs_name_the_field():
    c = Content((Rung(300e3, 256, 144, codec="avc1.xyz"),), np.array([4.0]), np.array([[100000]]))
    with pytest.raises(InputError, match=r"rungs\[0\]\.codec"):
        package.SyntheticPresentation(c)
    with pytest.raises(InputError, match="addressing"):
        package.SyntheticPresentation(small_content(), "template")
    wide = Content((Rung(300e3, 100000, 144),), np.array([4.0]), np.array([[100000]]))
    with pytest.raises(InputError, match=r"rungs\[0\]\.width"):
        package.SyntheticPresentation(wide)
    long = Content((Rung(300e3, 256, 144),), np.array([1e5]), np.array([[10 ** 9]]))
    with pytest.raises(InputError, match="frames"):
        package.SyntheticPresentation(long)
    with pytest.raises(InputError, match="audio_bitrate_bps"):
        package.SyntheticPresentation(small_content(), audio=True, audio_bitrate_bps=10.0)
    big = Content((Rung(300e3, 256, 144),), np.full(70000, 0.1), np.full((70000, 1), 5000))
    with pytest.raises(InputError, match="SegmentBase"):
        package.SyntheticPresentation(big, "base")
    for bad in ("", "300k,,1M", "fast", "300k,300k", "1e20"):
        with pytest.raises(InputError, match="--ladder"):
            package.parse_ladder(bad)
    assert package.parse_ladder("1.2M, 300k,750kbps") == [300e3, 750e3, 1.2e6]
    with pytest.raises(InputError, match="--kid"):
        cenc.Protection.from_hex(None, "abcd")
    with pytest.raises(InputError, match="--key"):
        cenc.Protection.from_hex("zz" * 16, None)


def test_non_avc_codec_gets_a_plain_sample_entry():
    c = Content((Rung(300e3, 640, 360, codec="hvc1.1.6.L93.B0"),), np.array([4.0]), np.array([[100000]]))
    p = package.SyntheticPresentation(c)
    init = bm.parse(p.read("v0/init.mp4"))
    assert bm.find(init, "moov/trak/mdia/minf/stbl/stsd/hvc1") is not None
    assert 'codecs="hvc1.1.6.L93.B0"' in p.mpd().decode()


def test_license_response():
    prot = cenc.Protection.default()
    kid64 = base64.urlsafe_b64encode(prot.kid).rstrip(b"=").decode()
    doc = json.loads(prot.license_response(json.dumps({"kids": [kid64], "type": "temporary"})))
    (key,) = doc["keys"]
    assert key["kty"] == "oct" and key["kid"] == kid64
    assert base64.urlsafe_b64decode(key["k"] + "==") == prot.key
    assert json.loads(prot.license_response(json.dumps({"kids": ["AAAAAAAAAAAAAAAAAAAAAA"]})))["keys"] == []
    with pytest.raises(InputError):
        prot.license_response(b"not json")
    assert uuid.UUID(prot.kid_uuid).bytes == prot.kid


def test_avc_subsamples():
    nal_idr = (21).to_bytes(4, "big") + b"\x65" + bytes(20)
    sei = (3).to_bytes(4, "big") + b"\x06\x01\x02"
    subs = cenc.avc_subsamples(sei + nal_idr)
    assert subs == [(7 + 9, 16)]  # the SEI is clear; 21-byte NAL: 5 clear (+4 to align) + 16
    assert sum(c + p for c, p in subs) == len(sei + nal_idr)
    assert cenc.avc_subsamples(sei) == [(7, 0)]


def test_frame_rate_and_duration_attributes():
    assert package.frame_rate_attr(30.0) == "30"
    assert package.frame_rate_attr(29.97) == "30000/1001"
    assert package.frame_rate_attr(12.5) == "25/2"
    assert package.xs_duration(195.6776889) == "PT195.677689S"
    assert package.xs_duration(4.0) == "PT4S"


# ------------------------------------------------------------------------------------------
# real content descriptions from ../shared
# ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("movie", ["envivio.json", "bbb.json"])
@pytest.mark.parametrize("mode", ["number", "base"])
def test_shared_movies_package_exactly(movie, mode):
    c = content_mod.load(shared_path("movies", movie))
    p = package.SyntheticPresentation(c, mode, audio=True)
    files = p.files()
    if mode == "number":
        for r in range(c.n_rungs):
            assert [files[f"v{r}/{i + 1}.m4s"] for i in range(c.n_segments)] == c.segment_sizes_bytes[:, r].tolist()
    urls = mpd_segment_urls(p.mpd().decode(), p.read)
    assert len(urls["v0"]) - 1 == c.n_segments
    # spot-check one fragment from the middle of the biggest rung
    rid = f"v{c.n_rungs - 1}"
    path, rng = urls[rid][c.n_segments // 2]
    data = p.read(path, rng[0], rng[1] + 1) if rng else p.read(path)
    assert len(data) == c.segment_sizes_bytes[c.n_segments // 2 - 1, -1]
    boxes = bm.parse(data)
    assert boxes[-1].type == "mdat" and boxes[-2].type == "moof"
