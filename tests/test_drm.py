"""License acquisition and decryption: the ClearKey flow against the edge's license server,
policies as masks, renewal, failures (retry, fall back to clear representations, or a clear
error), and decryption checked against the packager's plaintext."""
from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from helpers import event_dicts, run_bounded, stop_process

from netem.content import synthetic
from netem.edge import EdgeServer
from netem.license_server import LicensePolicy
from netem.package import SyntheticPresentation
from netem.trace import constant
from netem.errors import DecryptError, LicenseError
from player.core.device import BUILTIN, DeviceProfile
from player.dash import drm
from player.http import decryption, licences
from player.http.player import HttpPlayer, PlaybackError

pytest.importorskip("cryptography")
from netem.cenc import Protection  # noqa: E402

LADDER = (300e3, 750e3, 1.2e6, 2.85e6, 4.3e6)
K = 10.0
FAST = constant(20e6, 600.0, latency_s=0.02)


def run(coro, timeout: float = 30.0):
    return run_bounded(coro, timeout)


def movie(n: int = 5, seg: float = 2.0):
    return synthetic(LADDER, duration_s=n * seg, segment_duration_s=seg, seed=2)


async def session(source, *, faults=(), edge_kw=None, **kw):
    async with EdgeServer(source, trace=FAST, time_scale=K, faults=faults, **(edge_kw or {})) as edge:
        player = HttpPlayer(edge.url, time_scale=K, **kw)
        return await player.run(), player, edge


def events(player, kind):
    return [e for e in event_dicts(player) if e["event"] == kind]


# ---------------------------------------------------------------------------------------------
# end to end


@pytest.mark.parametrize("addressing", ["number", "base"])
def test_clearkey_license_and_decryption_match_the_plaintext(addressing):
    pres = SyntheticPresentation(movie(), addressing, audio=True, protection=Protection.default())
    checked = []

    def hook(info, data):
        path = info["url"].split("/", 3)[3]
        rng = info["range"]
        clear = pres.read_clear(path) if rng is None else pres.read_clear(path, rng[0], rng[1] + 1)
        checked.append((info["track"], info["decrypted"], data == clear, data == (
            pres.read(path) if rng is None else pres.read(path, rng[0], rng[1] + 1))))

    s, player, edge = run(session(pres, abr="bba", on_segment=hook))
    assert s["complete"] and s["license"]["system"] == "clearkey"
    assert s["license"]["kids"] == [drm.b64url(Protection.default().kid)]
    assert s["decrypted_segments"] == 2 * s["segments"]
    assert len(checked) == 2 * s["segments"]
    assert all(dec and same_as_clear and not same_as_encrypted for _, dec, same_as_clear, same_as_encrypted in checked)
    req = events(player, "license_request")
    assert req[0]["url"].endswith("/license/clearkey") and req[0]["attempt"] == 1
    lic = [r for r in edge.records if r["path"] == "/license/clearkey"]
    assert len(lic) == 1 and lic[0]["status"] == 200
    # requested in parallel with the first segment: before its media request completed
    first_media = next(e for e in event_dicts(player) if e["event"] == "request" and e["what"] == "media")
    assert req[0]["t_s"] <= first_media["t_s"]


def test_license_policy_caps_resolution_by_device():
    pres = SyntheticPresentation(movie(), "number", protection=Protection.default())
    s, player, edge = run(session(pres, abr="highest", device=BUILTIN["mobile"], edge_kw={"license_policy": "studio"}))
    assert s["complete"] and s["license"]["max_height"] == 480
    heights = player.plan.heights
    assert all(heights[r] <= 480 for r in s["chosen"])
    mask = events(player, "mask")
    assert mask and mask[0]["allowed"] == [bool(h <= 480) for h in heights]
    lic = [r for r in edge.records if r["path"] == "/license/clearkey"]
    assert lic  # the device declared itself: SW_SECURE_CRYPTO, no HDCP
    tv = run(session(pres, abr="highest", device=BUILTIN["tv"], edge_kw={"license_policy": "studio"}))[0]
    assert tv["license"]["max_height"] is None and max(tv["chosen"]) == len(LADDER) - 1


def test_license_is_renewed_before_expiry():
    pres = SyntheticPresentation(movie(n=6), "number", protection=Protection.default())
    dev = DeviceProfile("short-buffer", buffer_target_s=4.0)
    policy = LicensePolicy(name="short", license_duration_s=5.0)
    s, player, _ = run(session(pres, abr="bba", device=dev, edge_kw={"license_policy": policy}))
    assert s["complete"]
    lic = events(player, "license")
    assert len(lic) >= 2 and lic[0]["renewal"] is False and lic[1]["renewal"] is True
    assert lic[1]["t_s"] - lic[0]["t_s"] == pytest.approx(0.8 * 5.0, abs=0.6)


def test_license_failure_without_clear_representations_is_a_clear_error():
    pres = SyntheticPresentation(movie(), "number", protection=Protection.default())

    async def go():
        async with EdgeServer(pres, trace=FAST, time_scale=K, faults=["license:p=1,status=500"]) as e:
            player = HttpPlayer(e.url, time_scale=K, abr="bba")
            with pytest.raises(PlaybackError) as info:
                await player.run()
            return player, str(info.value)

    player, msg = run(go())
    assert msg.startswith("license:") and "no unprotected representations" in msg and "\n" not in msg
    assert len(events(player, "license_request")) == 3          # retried
    assert events(player, "retry") and events(player, "license_failed")
    assert event_dicts(player)[-1]["event"] == "error"


def test_license_refused_is_not_retried():
    pres = SyntheticPresentation(movie(), "number", protection=Protection.default())

    async def go():
        async with EdgeServer(pres, trace=FAST, time_scale=K, protection={b"\x01" * 16: b"\x02" * 16}) as e:
            player = HttpPlayer(e.url, time_scale=K, abr="bba")
            with pytest.raises(PlaybackError, match="refused"):
                await player.run()
            return player

    player = run(go())
    assert len(events(player, "license_request")) == 1
    assert events(player, "license_failed")[0]["final"] is True


def _mixed_mpd(root: Path) -> None:
    """enc/ (protected) and clear/ (not) presentations, one MPD with both video sets."""
    c = movie()
    SyntheticPresentation(c, "number", protection=Protection.default()).write(root / "enc")
    SyntheticPresentation(c, "number").write(root / "clear")
    enc = (root / "enc" / "manifest.mpd").read_text()
    clear = (root / "clear" / "manifest.mpd").read_text()
    enc = enc.replace("<SegmentTemplate", "<BaseURL>enc/</BaseURL>\n      <SegmentTemplate", 1)
    start = clear.index("    <AdaptationSet")
    end = clear.index("</AdaptationSet>") + len("</AdaptationSet>")
    clear_set = clear[start:end].replace('id="0"', 'id="1"', 1)
    clear_set = clear_set.replace("<SegmentTemplate", "<BaseURL>clear/</BaseURL>\n      <SegmentTemplate", 1)
    (root / "manifest.mpd").write_text(enc.replace("  </Period>", clear_set + "\n  </Period>"))


def test_license_failure_falls_back_to_clear_representations(tmp_path):
    _mixed_mpd(tmp_path)
    s, player, edge = run(session(tmp_path, abr="bba", faults=["license:p=1,status=503"]))
    assert s["complete"] and s["license"] is None and s["decrypted_segments"] == 0
    fb = events(player, "license_fallback")
    assert len(fb) == 1 and fb[0]["adaptation_set"] == "1"
    starts = events(player, "session_start")
    assert len(starts) == 2 and starts[1]["restart"] is True and starts[1]["plan"]["protected"] is False
    served = [r["path"] for r in edge.records if r["path"].endswith(".m4s") and r["status"] == 200]
    assert any(p.startswith("/clear/") for p in served)
    # with a working license the protected set plays
    ok, player2, _ = run(session(tmp_path, abr="bba", edge_kw={"protection": Protection.default()}))
    assert ok["complete"] and ok["license"] is not None and ok["decrypted_segments"] == ok["segments"]


def test_cli_reports_license_failure(tmp_path):
    import subprocess
    import sys
    import threading

    from netem import content as content_mod

    content_mod.save(movie(n=3), tmp_path / "movie.json")
    repo = Path(__file__).resolve().parent.parent
    serve = subprocess.Popen([sys.executable, "-m", "player.cli", "serve", "--movie", str(tmp_path / "movie.json"),
                              "--protect", "clearkey", "--license-failure", "1"],
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=repo)
    try:
        line: list[str] = []
        t = threading.Thread(target=lambda: line.append(serve.stdout.readline()), daemon=True)
        t.start()
        t.join(20)
        assert line and line[0].startswith("http://")
        out = subprocess.run([sys.executable, "-m", "player.cli", "play", line[0].strip(), "--headless", "--json"],
                             capture_output=True, text=True, timeout=60, cwd=repo)
        assert out.returncode == 1 and "license" in out.stderr and "Traceback" not in out.stderr
        lines = [json.loads(x) for x in out.stdout.splitlines()]
        assert any(e.get("event") == "license_failed" for e in lines)
        assert lines[-1]["complete"] is False and "license" in lines[-1]["error"]
    finally:
        stop_process(serve)


# ---------------------------------------------------------------------------------------------
# units


class _CP:
    def __init__(self, scheme, system_id=None, default_kid=None, pssh=None, license_url=None):
        self.scheme_id_uri, self.system_id, self.default_kid = scheme, system_id, default_kid
        self.pssh, self.license_url = pssh, license_url


def test_drm_info_from_content_protection():
    p = Protection.default()
    cps = [_CP(drm.MP4PROTECTION, default_kid=p.kid_uuid),
           _CP("urn:uuid:edef8ba9-79d6-4ace-a3c8-27dcd51d21ed", system_id="edef8ba9-79d6-4ace-a3c8-27dcd51d21ed"),
           _CP("urn:uuid:1077efec-c0b2-4d02-ace3-3c1e52e2fb4b", system_id="1077efec-c0b2-4d02-ace3-3c1e52e2fb4b",
               pssh=base64.b64encode(p.clearkey_pssh()).decode(), license_url="/license/clearkey")]
    info = drm.drm_info(cps, "http://h:1/a/manifest.mpd")
    assert info.system == "clearkey" and info.kids == (p.kid,)
    assert info.license_url == "http://h:1/license/clearkey" and info.systems == ("clearkey", "widevine")
    # the KID from the ClearKey pssh alone
    only_pssh = drm.drm_info(cps[2:], "http://h/m.mpd")
    assert only_pssh.kids == (p.kid,)
    wv = drm.drm_info(cps, "http://h/m.mpd", system="widevine")
    assert wv.system == "widevine" and wv.license_url == "http://h/license/widevine"
    assert drm.drm_info([], "http://h/m.mpd") is None
    assert drm.drm_info(cps, "http://h/m.mpd", license_url="https://lic/x").license_url == "https://lic/x"


def test_parse_license_checks_untrusted_answers():
    kid, key = b"\x01" * 16, b"\x02" * 16
    good = json.dumps({"keys": [{"kty": "oct", "kid": drm.b64url(kid), "k": drm.b64url(key)}],
                       "policy": {"max_height": 720, "license_duration_s": 60}}).encode()
    lic = licences.parse_license("clearkey", good, [kid], 5.0)
    assert lic.keys == {kid: key} and lic.max_height == 720 and lic.expires_s == 65.0
    assert lic.allows(720) and not lic.allows(1080) and lic.allows(None)
    bad = [b"not json", b"[]", b'{"keys": []}', json.dumps({"keys": [{"kid": "!!", "k": "x"}]}).encode(),
           json.dumps({"keys": [{"kid": drm.b64url(b"\x03" * 16), "k": drm.b64url(key)}]}).encode(),
           json.dumps({"keys": [{"kid": drm.b64url(kid), "k": drm.b64url(key)}],
                       "policy": {"max_height": -1}}).encode(),
           json.dumps({"keys": [{"kid": drm.b64url(kid), "k": drm.b64url(key)}],
                       "policy": {"license_duration_s": "soon"}}).encode(),
           b"{" + b" " * 70000 + b"}"]
    for body in bad:
        with pytest.raises(LicenseError):
            licences.parse_license("clearkey", body, [kid], 0.0)
    stub = licences.parse_license("widevine", json.dumps({"status": "OK", "policy": {}}).encode(), [kid], 0.0)
    assert stub.keys == {} and stub.max_height is None and stub.expires_s == float("inf")


def test_track_crypto_decrypt_and_verify():
    p = Protection.default()
    pres = SyntheticPresentation(movie(n=2), "number", audio=True, protection=p)
    tc = decryption.track_crypto(pres.read("v1/init.mp4"))
    assert tc.protected and tc.kid == p.kid and tc.iv_size == 8 and tc.kind == "video"
    enc = pres.read("v1/1.m4s")
    d = decryption.Decryptor({p.kid: p.key})
    clear = d.decrypt(tc, enc)
    assert clear == pres.read_clear("v1/1.m4s") and clear != enc
    assert decryption.verify_media(clear, "video") > 0
    atc = decryption.track_crypto(pres.read("a0/init.mp4"))
    assert atc.kind == "audio" and d.decrypt(atc, pres.read("a0/2.m4s")) == pres.read_clear("a0/2.m4s")
    with pytest.raises(DecryptError):
        decryption.Decryptor({b"\x09" * 16: p.key}).decrypt(tc, enc)
    broken = bytearray(clear)
    i = broken.index(b"mdat") + 4
    broken[i:i + 4] = b"\xff\xff\xff\xff"      # a NAL length that runs past its sample
    with pytest.raises(DecryptError):
        decryption.verify_media(bytes(broken), "video")
    with pytest.raises(DecryptError):
        decryption.verify_media(b"\x00\x00\x00\x08free", "video")
    clear_pres = SyntheticPresentation(movie(n=2), "number")
    assert decryption.track_crypto(clear_pres.read("v0/init.mp4")).protected is False


def test_widevine_stub_round_trip_plays_without_decryption():
    pres = SyntheticPresentation(movie(n=3), "number", protection=Protection.default())
    s, player, edge = run(session(pres, abr="bba", drm_system="widevine"))
    assert s["complete"] and s["license"]["system"] == "widevine" and s["license"]["kids"] == []
    assert s["decrypted_segments"] == 0
    lic = [r for r in edge.records if r["path"].startswith("/license/")]
    assert [r["path"] for r in lic] == ["/license/widevine"] and lic[0]["status"] == 200
