"""License endpoints: ClearKey answers and refusals, policies by robustness/HDCP, stubs, over HTTP."""
from __future__ import annotations

import asyncio
import json
from pathlib import Path

import aiohttp
import pytest

from netem.edge import EdgeServer
from netem.errors import InputError
from netem.license_server import LicenseServer, b64url, b64url_decode, load_policy

KID = bytes(range(16))
KEY = bytes(range(100, 116))
OTHER = bytes(16)


def ck(kids, **extra) -> bytes:
    return json.dumps({"kids": [b64url(k) for k in kids], "type": "temporary", **extra}).encode()


def test_clearkey_answers_known_kids():
    srv = LicenseServer({KID: KEY})
    status, doc = srv.handle("clearkey", ck([KID]), {})
    assert status == 200 and doc["type"] == "temporary"
    assert doc["keys"] == [{"kty": "oct", "kid": b64url(KID), "k": b64url(KEY)}]
    assert "=" not in doc["keys"][0]["k"] and b64url_decode(doc["keys"][0]["k"]) == KEY
    assert doc["policy"]["max_height"] is None and doc["policy"]["license_duration_s"] is None
    status, doc = srv.handle("clearkey", ck([KID, OTHER]), {})  # partly known: the known keys
    assert status == 200 and len(doc["keys"]) == 1


def test_clearkey_refuses_unknown_and_malformed():
    srv = LicenseServer({KID: KEY})
    assert srv.handle("clearkey", ck([OTHER]), {})[0] == 403
    assert "error" in srv.handle("clearkey", ck([OTHER]), {})[1]
    for body in (b"not json", b"[]", b'{"kids": []}', b'{"kids": ["!!"]}', b'{"kids": ["AAAA"]}',
                 json.dumps({"kids": [b64url(KID)], "type": "forever"}).encode(), b"{" * 70000):
        status, doc = srv.handle("clearkey", body, {})
        assert status in (400, 413) and "error" in doc, body[:30]
    assert srv.handle("fairplay", b"x", {})[0] == 404


def test_policy_caps_by_robustness_and_hdcp():
    srv = LicenseServer({KID: KEY}, policy=load_policy("studio"))

    def height(headers=None, **extra):
        status, doc = srv.handle("clearkey", ck([KID], **extra), headers or {})
        assert status == 200
        return doc["policy"]["max_height"]

    assert height() == 480  # nothing declared: the lowest
    assert height({"X-Robustness": "HW_SECURE_ALL", "X-HDCP": "2.2"}) is None
    assert height({"X-Robustness": "HW_SECURE_ALL", "X-HDCP": "1.4"}) == 1080
    assert height({"X-Robustness": "SW_SECURE_DECODE", "X-HDCP": "2.2"}) == 720
    assert height({"X-Robustness": "HW_SECURE_CRYPTO", "X-HDCP": "none"}) == 480
    assert height(robustness="HW_SECURE_DECODE", hdcp="2.2") is None  # JSON fields work too
    assert height({"X-Robustness": "3000", "X-HDCP": "2.3"}) is None  # PlayReady SL3000
    assert srv.handle("clearkey", ck([KID]), {"X-Robustness": "PLATINUM"})[0] == 400
    assert srv.handle("clearkey", ck([KID]), {"X-HDCP": "maybe"})[0] == 400
    assert srv.handle("clearkey", ck([KID]), {})[1]["policy"]["license_duration_s"] == 3600


def test_policy_from_file_and_duration(tmp_path: Path):
    f = tmp_path / "p.json"
    f.write_text(json.dumps({"license_duration_s": 60, "max_height_by_robustness": {"SW_SECURE_CRYPTO": 360}}))
    pol = load_policy(str(f), license_duration_s=30)
    assert pol.license_duration_s == 30
    assert pol.evaluate("SW_SECURE_CRYPTO", None)["max_height"] == 360
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"max_height_by_hdcp": {"9000": 1}}))
    with pytest.raises(InputError):
        load_policy(str(bad))
    with pytest.raises(InputError):
        load_policy("no-such-policy")


def test_stub_systems_answer_a_policy():
    srv = LicenseServer({KID: KEY}, policy=load_policy("studio"))
    status, doc = srv.handle("widevine", b"\x08\x04opaque", {"X-Robustness": "SW_SECURE_CRYPTO"})
    assert status == 200 and doc["type"] == "widevine" and doc["policy"]["max_height"] == 480
    assert doc["kids"] == [b64url(KID)]
    assert srv.handle("playready", b"<soap/>", {})[0] == 200
    assert srv.handle("playready", b"", {})[0] == 400


def test_license_endpoints_over_http(tmp_path: Path):
    (tmp_path / "manifest.mpd").write_text("<MPD/>")

    async def main():
        async with EdgeServer(tmp_path, protection={KID: KEY}, license_policy="studio") as edge, \
                aiohttp.ClientSession() as s:
            out = {}
            async with s.post(edge.base_url + "/license/clearkey", data=ck([KID]),
                              headers={"X-Robustness": "HW_SECURE_ALL", "X-HDCP": "2.2"}) as r:
                out["ok"] = (r.status, await r.json(), r.headers["Access-Control-Allow-Origin"])
            async with s.post(edge.base_url + "/license/clearkey", data=ck([OTHER])) as r:
                out["unknown"] = (r.status, await r.json())
            async with s.post(edge.base_url + "/license/widevine", data=b"\x01\x02") as r:
                out["wv"] = r.status
            async with s.options(edge.base_url + "/license/clearkey",
                                 headers={"Access-Control-Request-Method": "POST"}) as r:
                out["preflight"] = (r.status, r.headers["Access-Control-Allow-Methods"])
            async with s.post(edge.base_url + "/manifest.mpd", data=b"x") as r:
                out["post_content"] = r.status
            return out

    out = asyncio.run(asyncio.wait_for(main(), 20))
    status, doc, cors = out["ok"]
    assert status == 200 and cors == "*" and doc["keys"][0]["k"] == b64url(KEY) and doc["policy"]["max_height"] is None
    assert out["unknown"][0] == 403 and "error" in out["unknown"][1]
    assert out["wv"] == 200 and out["preflight"][0] == 204 and "POST" in out["preflight"][1]
    assert out["post_content"] == 405


def test_protected_presentation_keys_are_served():
    pytest.importorskip("cryptography")
    pytest.importorskip("netem.package")
    from netem.cenc import Protection
    from netem.content import synthetic
    from netem.package import SyntheticPresentation

    prot = Protection.default()
    pres = SyntheticPresentation(synthetic(duration_s=4.0), protection=prot)

    async def main():
        async with EdgeServer(pres, license_failure_p=0.0) as edge, aiohttp.ClientSession() as s:
            async with s.post(edge.base_url + "/license/clearkey", data=ck([prot.kid])) as r:
                return r.status, await r.json()

    status, doc = asyncio.run(asyncio.wait_for(main(), 20))
    assert status == 200 and b64url_decode(doc["keys"][0]["k"]) == prot.key


def test_configured_failure_probability_is_seeded():
    a = LicenseServer({KID: KEY}, failure_p=0.5, seed=1)
    b = LicenseServer({KID: KEY}, failure_p=0.5, seed=1)
    sa = [a.should_fail() for _ in range(50)]
    assert sa == [b.should_fail() for _ in range(50)] and any(sa) and not all(sa)
    with pytest.raises(InputError):
        LicenseServer({}, failure_p=1.5)
