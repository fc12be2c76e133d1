"""The edge announces its time scale and the player follows it (issue 18, item 6).

`abrlab serve --time-scale 4` with `abrlab play URL` (no --time-scale) used to measure four
times the trace's rate and play four times too slow. Every response of the edge now carries
``X-Abrlab-Time-Scale``; a player given no time scale adopts it, a player given another one
keeps its own and says so in one ``note`` event. Edges bind 127.0.0.1:0; every session is
bounded (short content, a fast constant trace, `asyncio.wait_for`).
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import aiohttp
import numpy as np
import pytest

from helpers import first_line, run_bounded, stop_process

from netem.content import synthetic
from netem.edge import TIME_SCALE_HEADER, EdgeServer, parse_time_scale
from netem.package import SyntheticPresentation
from netem.trace import constant
from player.core import events
from player.http.player import HttpPlayer

REPO = Path(__file__).resolve().parent.parent
ABRLAB = [sys.executable, "-m", "player.cli"]
K = 4.0
RATE_BPS = 6e6
LINK = constant(RATE_BPS, 600.0, latency_s=0.01)


def movie():
    return synthetic((300e3, 750e3, 1.2e6), duration_s=8.0, segment_duration_s=2.0, seed=3)


def presentation():
    return SyntheticPresentation(movie(), "number")


async def play_against_edge(edge_scale: float, player_scale: float | None):
    async with EdgeServer(presentation(), trace=LINK, time_scale=edge_scale) as edge:
        player = HttpPlayer(edge.url, abr="fixed", abr_params={"rung": 2}, time_scale=player_scale)
        summary = await player.run()
        return summary, player


def download_rates(player) -> np.ndarray:
    return np.array([ev.throughput_bps for ev in player.events_log if isinstance(ev, events.Download)])


def test_every_response_announces_the_time_scale():
    async def go():
        async with EdgeServer(presentation(), trace=LINK, time_scale=K) as edge:
            async with aiohttp.ClientSession() as client:
                out = {}
                for name, method, url in (("mpd", "GET", edge.url), ("missing", "GET", edge.base_url + "/nope"),
                                          ("preflight", "OPTIONS", edge.url),
                                          ("license", "GET", edge.base_url + "/license/clearkey")):
                    async with client.request(method, url) as resp:
                        await resp.read()
                        out[name] = (resp.status, resp.headers.get(TIME_SCALE_HEADER),
                                     resp.headers.get("Access-Control-Expose-Headers", ""))
                return out

    seen = run_bounded(go())
    assert seen["mpd"][0] == 200 and seen["missing"][0] == 404 and seen["license"][0] == 405
    for name, (_, value, exposed) in seen.items():
        assert value is not None and float(value) == K, name
        assert TIME_SCALE_HEADER in exposed, name   # a browser player may read it


def test_a_player_given_no_time_scale_follows_the_edge():
    summary, player = run_bounded(play_against_edge(K, None), timeout=60.0)
    assert summary["complete"] and summary["time_scale"] == K
    # each download's throughput is the trace's rate (not K times it): the transfer is paced at
    # RATE_BPS/K bytes per wall second and the player's clock runs K times the wall's
    rates = download_rates(player)
    assert len(rates) == 4
    assert np.median(rates) == pytest.approx(RATE_BPS, rel=0.25)
    starts = [ev for ev in player.events_log if isinstance(ev, events.SessionStart)]
    assert starts[0].time_scale == K


def test_an_explicit_other_time_scale_is_kept_with_one_note():
    summary, player = run_bounded(play_against_edge(K, 1.0), timeout=60.0)
    assert summary["time_scale"] == 1.0
    notes = [ev.message for ev in player.events_log if isinstance(ev, events.Note) and "time scale" in ev.message]
    assert len(notes) == 1 and "4" in notes[0] and "\n" not in notes[0]
    # and the measurement is as wrong as the note warns: K times the trace's rate
    assert np.median(download_rates(player)) == pytest.approx(K * RATE_BPS, rel=0.3)


def test_a_matching_time_scale_says_nothing():
    summary, player = run_bounded(play_against_edge(K, K), timeout=60.0)
    assert summary["time_scale"] == K
    assert not [ev for ev in player.events_log if isinstance(ev, events.Note) and "time scale" in ev.message]


@pytest.mark.parametrize("value, expected", [("4", 4.0), (" 2.5 ", 2.5), (None, None), ("", None), ("x", None),
                                             ("0", None), ("-1", None), ("nan", None), ("inf", None)])
def test_parse_time_scale(value, expected):
    assert parse_time_scale(value) == expected


def test_abrlab_play_follows_abrlab_serve(tmp_path):
    """The README's example: `abrlab serve --time-scale 4` then `abrlab play URL`."""
    from netem import content as content_mod

    content_mod.save(movie(), tmp_path / "movie.json")
    serve = subprocess.Popen(ABRLAB + ["serve", "--movie", str(tmp_path / "movie.json"), "--rate", str(RATE_BPS),
                                       "--latency", "0.01", "--time-scale", str(K)],
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=REPO)
    try:
        url = first_line(serve)
        assert url.startswith("http://127.0.0.1:"), url
        play = [*ABRLAB, "play", url, "--headless", "--json", "--abr", "fixed", "--abr-param", "rung=2"]
        followed = subprocess.run(play, capture_output=True, text=True, timeout=60, cwd=REPO)
        told = subprocess.run(play + ["--time-scale", "1"], capture_output=True, text=True, timeout=60, cwd=REPO)
    finally:
        stop_process(serve)
    assert followed.returncode == 0, followed.stderr
    lines = [json.loads(x) for x in followed.stdout.splitlines()]
    assert lines[-1]["time_scale"] == K and lines[-1]["complete"]
    rates = [e["throughput_bps"] for e in lines if e.get("event") == "download"]
    assert np.median(rates) == pytest.approx(RATE_BPS, rel=0.25)
    assert told.returncode == 0, told.stderr
    notes = [e["message"] for e in map(json.loads, told.stdout.splitlines()) if e.get("event") == "note"]
    assert any("time scale 4" in n for n in notes), notes
