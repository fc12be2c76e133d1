"""The fetcher's hardening against servers that misbehave: dead origins, redirect loops and
redirects out of HTTP, 500 for ever, garbage or empty media, bodies with no end.

Every server is an aiohttp app on 127.0.0.1:0 in this process serving a generated
presentation (`netem.package.SyntheticPresentation`) with some paths replaced; every session is
bounded (`run_bounded`, short content, time scale 10) and no test sleeps for timing.
"""
from __future__ import annotations

import asyncio
import re
import socket
import subprocess
import sys
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from aiohttp import web

from helpers import event_dicts, run_bounded

from netem.content import synthetic
from netem.package import SyntheticPresentation
from player.dash.errors import ManifestUnavailable, UnsupportedManifest
from player.http.config import HttpConfig
from player.http.manifests import load_url
from player.http.player import HttpPlayer, PlaybackError

REPO = Path(__file__).resolve().parent.parent
ABRLAB = [sys.executable, "-m", "player.cli"]
K = 10.0
LADDER = (300e3, 750e3, 1.2e6)


def movie(n: int = 4, seg: float = 2.0):
    return synthetic(LADDER, duration_s=n * seg, segment_duration_s=seg, seed=3)


def free_port() -> int:
    """A port nothing listens on (bound, then released)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


@asynccontextmanager
async def serve(pres: SyntheticPresentation | None = None, routes: dict | None = None, log: list | None = None):
    """An HTTP server on 127.0.0.1:0: `routes` (path → handler) first, then the files of
    `pres`. Yields its base URL; `log` gets (method, path, headers) of every request."""
    routes = dict(routes or {})

    async def handle(request: web.Request) -> web.StreamResponse:
        if log is not None:
            log.append((request.method, request.path, dict(request.headers)))
        handler = routes.get(request.path)
        if handler is not None:
            return await handler(request)
        if pres is None:
            raise web.HTTPNotFound()
        try:
            data = pres.read(request.path.lstrip("/"))
        except KeyError:
            raise web.HTTPNotFound() from None
        return web.Response(body=data)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


def requests_for(player: HttpPlayer, what: str) -> list[dict]:
    return [e for e in event_dicts(player) if e["event"] == "request" and e["what"] == what]


def redirect_to(target: str):
    async def handler(request):
        raise web.HTTPFound(target)
    return handler


# ---------------------------------------------------------------------------------------------
# permanent failures of the manifest fail fast: one attempt, a one-line "unavailable: ..."


def test_dead_origin_fails_at_once():
    async def go():
        player = HttpPlayer(f"http://127.0.0.1:{free_port()}/manifest.mpd", time_scale=K)
        with pytest.raises(ManifestUnavailable) as info:
            await player.run()
        return player, str(info.value)

    player, msg = run_bounded(go())
    assert msg.startswith("unavailable: ") and "connection refused" in msg and "\n" not in msg
    assert len(requests_for(player, "manifest")) == 1                 # no retry
    assert not [e for e in event_dicts(player) if e["event"] == "retry"]


def test_dead_origin_on_the_command_line_exits_2_with_one_line():
    out = subprocess.run(ABRLAB + ["play", f"http://127.0.0.1:{free_port()}/manifest.mpd", "--headless"],
                         capture_output=True, text=True, timeout=60, cwd=REPO)
    assert out.returncode == 2
    err = out.stderr.strip().splitlines()
    assert len(err) == 1 and "unavailable: " in err[0] and "connection refused" in err[0]
    assert "connection refused" not in out.stdout              # said once, on stderr


def test_a_playback_error_is_printed_once():
    out = subprocess.run(ABRLAB + ["play", "--headless", "--time-scale", "20", "--fault", "404:path=*/2.m4s"],
                         capture_output=True, text=True, timeout=120, cwd=REPO)
    assert out.returncode == 1
    said = (out.stdout + out.stderr).count("segment 2 is missing")
    assert said == 1 and "segment 2 is missing" in out.stderr and out.stderr.count("\n") == 1
    assert "segment    1 rung" in out.stdout                    # the progress lines are still there


def test_a_dead_first_origin_fails_over_to_the_next():
    pres = SyntheticPresentation(movie(), "number")

    async def go():
        async with serve(pres) as base:
            player = HttpPlayer(f"http://127.0.0.1:{free_port()}/manifest.mpd", time_scale=K, abr="bba",
                                extra_origins=[base])
            return await player.run(), player

    s, player = run_bounded(go())
    assert s["complete"]
    manifests = requests_for(player, "manifest")
    assert [m["ok"] for m in manifests] == [False, True] and manifests[1]["edge"] == 1


@pytest.mark.parametrize("path, routes, expect", [
    ("/loop/a", {"/loop/a": redirect_to("/loop/b"), "/loop/b": redirect_to("/loop/a")}, "redirect loop"),
    ("/file", {"/file": redirect_to("file:///etc/passwd")}, "non-HTTP URL 'file:///etc/passwd'"),
    ("/hop/0", {f"/hop/{i}": redirect_to(f"/hop/{i + 1}") for i in range(9)}, "too many redirects (more than 5)"),
])
def test_bad_redirects_of_the_manifest_are_final(path, routes, expect):
    log: list = []

    async def go():
        async with serve(routes=routes, log=log) as base:
            player = HttpPlayer(base + path, time_scale=K)
            with pytest.raises(ManifestUnavailable) as info:
                await player.run()
            return player, str(info.value)

    player, msg = run_bounded(go())
    assert msg.startswith("unavailable: ") and expect in msg
    assert len(requests_for(player, "manifest")) == 1                 # one attempt, not retried
    assert len(log) <= 6                                               # at most 1 + 5 hops were followed


def test_redirected_manifest_plays_with_urls_resolved_against_the_final_url():
    pres = SyntheticPresentation(movie(), "number")
    log: list = []
    routes = {"/start.mpd": redirect_to("/moved.mpd"), "/moved.mpd": redirect_to("/manifest.mpd")}

    async def go():
        async with serve(pres, routes, log) as base:
            player = HttpPlayer(base + "/start.mpd", time_scale=K, abr="bba")
            return await player.run(), player

    s, player = run_bounded(go())
    assert s["complete"]
    manifest = next(e for e in event_dicts(player) if e["event"] == "manifest")
    assert manifest["url"].endswith("/manifest.mpd")
    accept = [h.get("Accept", "") for m, p, h in log if p.endswith(".mpd")]
    assert len(accept) == 3 and all("application/dash+xml" in a for a in accept)


def test_mpd_info_uses_the_same_fetch():
    pres = SyntheticPresentation(movie(), "number")

    async def in_a_folder(request):
        return web.Response(body=pres.mpd(), content_type="application/dash+xml")

    routes = {"/a.mpd": redirect_to("/content/x.mpd"), "/content/x.mpd": in_a_folder,
              "/loop.mpd": redirect_to("/loop.mpd")}

    async def go():
        async with serve(pres, routes) as base:
            good = await load_url(base + "/a.mpd")
            # relative segment URLs resolve against the final URL, after the redirect
            (_, _, rep), *_ = list(good.representations())
            assert rep.segment_index[0].url == f"{base}/content/{rep.id}/1.m4s"
            with pytest.raises(ManifestUnavailable, match="redirect loop"):
                await load_url(base + "/loop.mpd")
            with pytest.raises(ManifestUnavailable, match="HTTP 404"):
                await load_url(base + "/nothere.mpd")
            return good

    pres_read = run_bounded(go())
    assert pres_read.source_url.endswith("/content/x.mpd") and len(pres_read.periods) == 1


def test_mpd_info_reads_local_files_and_refuses_other_schemes(tmp_path):
    from player.http.manifests import load

    SyntheticPresentation(movie(), "number").write(tmp_path)
    local = load(str(tmp_path / "manifest.mpd"))
    assert local.source_url.startswith("file://") and len(local.periods) == 1
    with pytest.raises(UnsupportedManifest, match="scheme 'ftp'"):
        load("ftp://127.0.0.1/x.mpd")
    out = subprocess.run(ABRLAB + ["mpd", "info", f"http://127.0.0.1:{free_port()}/x.mpd"], capture_output=True,
                         text=True, timeout=60, cwd=REPO)
    assert out.returncode == 2 and out.stderr.startswith("unavailable: ") and "connection refused" in out.stderr


def test_a_manifest_announcing_ten_gigabytes_is_refused_unread():
    async def huge(request):
        resp = web.StreamResponse(headers={"Content-Length": str(10 * 2**30)})
        await resp.prepare(request)
        await resp.write(b"<MPD>")
        return resp

    async def go():
        async with serve(routes={"/big.mpd": huge}) as base:
            with pytest.raises(UnsupportedManifest, match="larger than"):
                await load_url(base + "/big.mpd", HttpConfig(max_retry_s=2.0))

    run_bounded(go())


# ---------------------------------------------------------------------------------------------
# 500 for ever: retried inside a stated budget, then one clear error


def _gave_up(msg: str) -> tuple[int, float]:
    m = re.search(r"gave up after (\d+) attempts in ([0-9.]+) s on 1 edge\(s\) \(retry budget 4 s\)", msg)
    assert m, msg
    return int(m.group(1)), float(m.group(2))


def manifest_failure(handler, budget_s: float = 4.0) -> tuple[HttpPlayer, str]:
    """Play a manifest that `handler` serves; the player and its one-line error."""
    async def go():
        async with serve(routes={"/manifest.mpd": handler}) as base:
            player = HttpPlayer(base + "/manifest.mpd", time_scale=K, config=HttpConfig(max_retry_s=budget_s))
            with pytest.raises(ManifestUnavailable) as info:
                await player.run()
            return player, str(info.value)

    return run_bounded(go())


def test_500_for_ever_is_retried_inside_the_budget_then_unavailable():
    async def always_500(request):
        return web.Response(status=500, text="boom")

    player, msg = manifest_failure(always_500)
    assert msg.startswith("unavailable: ") and "HTTP 500: boom" in msg and "\n" not in msg
    attempts, elapsed = _gave_up(msg)
    # backoff 0.25 s doubling, jitter in [0.5, 1]: the shortest waits 0.125, 0.25, 0.5, 1, 2 s add up
    # to 3.875 s, so at most 5 retries fit in 4 s; the longest (0.25 .. 2 s) leave room for at least 3
    assert 3 <= attempts <= 6 and elapsed <= 4.0
    assert len(requests_for(player, "manifest")) == attempts
    retries = [e for e in event_dicts(player) if e["event"] == "retry"]
    assert len(retries) == attempts - 1 and sum(e["backoff_s"] for e in retries) < 4.0


def test_a_slow_500_does_not_outlast_the_budget():
    async def slow_500(request):
        await asyncio.sleep(0.3)          # 3 s of the player's clock at time scale 10
        return web.Response(status=500, text="slow boom")

    attempts, elapsed = _gave_up(manifest_failure(slow_500)[1])
    # the first answer takes 3 s; the retry must end with the budget at 4 s, not run to 6 s
    assert attempts == 2 and elapsed < 4.6


# ---------------------------------------------------------------------------------------------
# garbage, empty and truncated bodies are failed downloads, not video


def _random(n: int) -> bytes:
    return bytes((i * 2654435761 >> 13) & 0xFF for i in range(n))   # deterministic noise


def fixed(body: bytes):
    async def handler(request):
        return web.Response(body=body)
    return handler


def every_rung(pres: SyntheticPresentation, name: str, handler) -> dict:
    """`handler` for `name` (e.g. "2.m4s") under every video representation."""
    return {f"/{p}": handler for p in pres.files() if p.startswith("v") and p.endswith("/" + name)}


def play_against(pres: SyntheticPresentation, routes: dict, good_origin: bool = False, **kw):
    """One session against a server with `routes` replaced (and, with `good_origin`, a second
    origin serving the presentation as it is): (summary or error text, player, log of the first)."""
    log: list = []

    async def go():
        async with serve(pres, routes, log) as bad, serve(pres) as good:
            player = HttpPlayer(bad + "/manifest.mpd", time_scale=K, abr="fixed", abr_params={"rung": 1},
                                extra_origins=[good] if good_origin else [], **kw)
            try:
                return await player.run(), player
            except PlaybackError as exc:
                return str(exc), player

    out, player = run_bounded(go())
    return out, player, log


@pytest.mark.parametrize("what, body, reason", [
    ("2.m4s", _random(50_000), "media segment is not ISO-BMFF"),
    ("2.m4s", b"", "media segment is empty (0 bytes)"),
    ("2.m4s", b"\x00\x00\x10\x00moof" + bytes(100), "runs past the end"),      # a 4096-byte box in 108 bytes
    ("2.m4s", b"\x00\x00\x00\x10free" + bytes(8), "no moof followed by an mdat"),
    ("init.mp4", b"\x00\x00\x00\x10ftypiso6" + bytes(4), "init segment has no moov"),
    ("init.mp4", b"", "init segment is empty"),
])
def test_a_bad_body_is_retried_then_a_clear_error(what, body, reason):
    pres = SyntheticPresentation(movie(), "number")
    out, player, log = play_against(pres, every_rung(pres, what, fixed(body)))
    assert isinstance(out, str), "a bad body must not play"
    assert reason in out and "no good body after 3 attempts on 1 edge(s)" in out and "\n" not in out
    kind = "media" if what.endswith(".m4s") else "init"
    failed = [e for e in requests_for(player, kind) if not e["ok"]]
    assert len(failed) == 3 and all(reason in e["error"] for e in failed)
    assert player.summary["complete"] is False
    if kind == "media":
        assert player.summary["segments"] == 1                 # segment 1 played, segment 2 never did


def test_a_bad_body_from_one_edge_fails_over_to_a_good_one():
    pres = SyntheticPresentation(movie(), "number")
    s, player, log = play_against(pres, every_rung(pres, "2.m4s", fixed(_random(30_000))), good_origin=True)
    assert isinstance(s, dict) and s["complete"] and s["failovers"] >= 1
    seg2 = [e for e in requests_for(player, "media") if e["segment"] == 1]
    assert [e["edge"] for e in seg2] == [0, 0, 0, 1] and [e["ok"] for e in seg2] == [False] * 3 + [True]
    assert s["wasted_bytes"] == 3 * 30_000                       # the bad bodies count as wasted
    # the failed edge is avoided afterwards: segments 3 and 4 come from the good one
    assert {e["edge"] for e in requests_for(player, "media") if e["segment"] >= 2} == {1}


def test_a_bad_body_once_is_retried_and_plays():
    pres = SyntheticPresentation(movie(), "number")
    served = {"n": 0}

    async def once_garbage(request):
        served["n"] += 1
        if served["n"] == 1:
            return web.Response(body=_random(20_000))
        return web.Response(body=pres.read(request.path.lstrip("/")))

    s, player, _ = play_against(pres, every_rung(pres, "3.m4s", once_garbage))
    assert isinstance(s, dict) and s["complete"] and s["retries"] == 1 and served["n"] == 2


# ---------------------------------------------------------------------------------------------
# a body without end is cut off at what the manifest leads the player to expect


def test_an_endless_chunked_body_is_cut_at_the_expected_size():
    from player.http.parts import MIN_BODY_LIMIT_BYTES

    pres = SyntheticPresentation(movie(), "number")
    chunk = _random(64 * 1024)
    cap = 64 * 2**20                       # the server gives up by itself after 64 MiB per request
    sent: list[int] = []

    async def endless(request):
        resp = web.StreamResponse()         # no Content-Length: chunked transfer encoding
        await resp.prepare(request)
        n = 0
        try:
            while n < cap:
                await resp.write(chunk)
                n += len(chunk)
        except (ConnectionError, RuntimeError):
            pass                            # the player hung up
        sent.append(n)
        return resp

    out, player, _ = play_against(pres, every_rung(pres, "2.m4s", endless))
    assert isinstance(out, str) and "longer than the limit of" in out and "no good body after 3 attempts" in out
    # rung 1 is 750 kbit/s × 2 s = 187.5 kB: 8 × that is below the 4 MiB floor, so 4 MiB is the limit
    assert f"limit of {MIN_BODY_LIMIT_BYTES} bytes" in out
    got = [e["bytes"] for e in requests_for(player, "media") if e["segment"] == 1]
    # each attempt reads one byte past the limit, sees it is too long and hangs up
    assert got == [MIN_BODY_LIMIT_BYTES + 1] * 3
    assert len(sent) == 3 and all(n < cap for n in sent)     # every response was cut short, not read to the end


def test_body_limits():
    from player.http.parts import MEDIA_SIZE_FACTOR, MIN_BODY_LIMIT_BYTES, body_limit

    assert body_limit((100, 1099)) == 1000                                   # a known range: exactly
    assert body_limit(None, 750e3, 2.0) == MIN_BODY_LIMIT_BYTES              # small: the floor
    assert body_limit(None, 40e6, 4.0) == int(MEDIA_SIZE_FACTOR * 40e6 * 4.0 / 8)   # 160 MB at 8×
    assert body_limit(None) == MIN_BODY_LIMIT_BYTES


# ---------------------------------------------------------------------------------------------
# the small pieces, by hand


def test_retry_policy_backoff_budget_and_attempts():
    from player.http.config import RetryPolicy

    p = RetryPolicy(backoff_s=0.25, backoff_max_s=4.0, budget_s=10.0, seed=1)
    for n in range(8):
        base = min(4.0, 0.25 * 2 ** n)          # 0.25, 0.5, 1, 2, 4, 4, ...
        assert 0.5 * base <= p.delay(n) <= base
    assert p.gives_up(1, 10.0) and not p.gives_up(50, 9.9)
    three = RetryPolicy(attempts=3)
    assert three.gives_up(3, 0.0) and not three.gives_up(2, 0.0)
    lic = HttpConfig(license_attempts=3, license_timeout_s=10.0).license_retry()
    assert (lic.attempts, lic.attempt_timeout_s, lic.backoff_s) == (3, 10.0, 0.5)


def test_content_range_headers():
    from player.http.fetcher import content_range_rest, content_range_start

    assert content_range_rest("bytes 100-199/1000") == 100 and content_range_start("bytes 100-199/1000") == 100
    assert content_range_rest("bytes 0-0/*") == 1
    assert content_range_rest("bytes */1000") is None and content_range_start("bytes */1000") is None
    assert content_range_rest("items 1-2/3") is None and content_range_start("") is None


def test_media_structure_checks_on_real_and_broken_bodies():
    from netem import isobmff
    from netem.errors import BoxError
    from player.http.media import check_index, check_init, check_media, is_isobmff

    pres = SyntheticPresentation(movie(n=2), "number")
    init, seg = pres.read("v0/init.mp4"), pres.read("v0/1.m4s")
    check_init(init)
    check_media(seg)
    for fn, body in ((check_media, init), (check_init, seg), (check_media, seg[:-1]), (check_init, b"")):
        with pytest.raises(BoxError):
            fn(body)
    base = SyntheticPresentation(movie(n=2), "base").read("v0.mp4")
    boxes = {b.type: b for b in isobmff.parse(base)}            # ftyp, moov, sidx, then fragments
    check_index(base[:boxes["sidx"].end], boxes["moov"].end)     # init and sidx in one range
    check_index(base[boxes["sidx"].offset:boxes["sidx"].end])    # the sidx alone
    with pytest.raises(BoxError, match="no sidx"):
        check_index(init + seg, len(init))                      # fragments where the sidx should be
    with pytest.raises(BoxError, match="empty"):
        check_index(base[:boxes["moov"].end], boxes["moov"].end)
    assert is_isobmff("video/mp4") and is_isobmff(None) and not is_isobmff("video/webm")
