"""The fetcher's hardening against servers that misbehave: dead origins, redirect loops and
redirects out of HTTP, 500 for ever, garbage or empty media, bodies with no end.

Every server is an aiohttp app on 127.0.0.1:0 in this process serving a generated
presentation (`netem.package.Presentation`) with some paths replaced; every session is
bounded (`run_bounded`, short content, time scale 10) and no test sleeps for timing.
"""
from __future__ import annotations

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
