"""The fetcher's hardening against servers that misbehave: dead origins, redirect loops and
redirects out of HTTP, 500 for ever, garbage or empty media, bodies with no end.

Every server is an aiohttp app on 127.0.0.1:0 in this process serving a generated
presentation (`netem.package.Presentation`) with some paths replaced; every session is
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

from conftest import event_dicts, run_bounded

from netem.content import synthetic
from netem.package import Presentation
from player.dash.manifest import ManifestUnavailable, UnsupportedManifest
from player.http.config import HttpConfig
from player.http.manifests import load_url
from player.http.player import HttpPlayer

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
async def serve(pres: Presentation | None = None, routes: dict | None = None, log: list | None = None):
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


def test_a_dead_first_origin_fails_over_to_the_next():
    pres = Presentation(movie(), "number")

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
    pres = Presentation(movie(), "number")
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
    pres = Presentation(movie(), "number")
    routes = {"/a.mpd": redirect_to("/manifest.mpd"), "/loop.mpd": redirect_to("/loop.mpd")}

    async def go():
        async with serve(pres, routes) as base:
            good = await load_url(base + "/a.mpd")
            with pytest.raises(ManifestUnavailable, match="redirect loop"):
                await load_url(base + "/loop.mpd")
            with pytest.raises(ManifestUnavailable, match="HTTP 404"):
                await load_url(base + "/nothere.mpd")
            return good

    pres_read = run_bounded(go())
    assert pres_read.source_url.endswith("/manifest.mpd") and len(pres_read.periods) == 1


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


def test_500_for_ever_is_retried_inside_the_budget_then_unavailable():
    async def always_500(request):
        return web.Response(status=500, text="boom")

    async def go():
        async with serve(routes={"/manifest.mpd": always_500}) as base:
            player = HttpPlayer(base + "/manifest.mpd", time_scale=K, config=HttpConfig(max_retry_s=4.0))
            with pytest.raises(ManifestUnavailable) as info:
                await player.run()
            return player, str(info.value)

    player, msg = run_bounded(go())
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

    async def go():
        async with serve(routes={"/manifest.mpd": slow_500}) as base:
            player = HttpPlayer(base + "/manifest.mpd", time_scale=K, config=HttpConfig(max_retry_s=4.0))
            with pytest.raises(ManifestUnavailable) as info:
                await player.run()
            return str(info.value)

    attempts, elapsed = _gave_up(run_bounded(go()))
    # the first answer takes 3 s; the retry must end with the budget at 4 s, not run to 6 s
    assert attempts == 2 and elapsed < 4.6
