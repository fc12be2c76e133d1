"""The session rules Sabre's default run needs (player/core/rules.py), by hand-computed cases:
the latency of each download in the observation, the abandonment offers that also wait for
`abandon_min_bytes`, and a new decision after an abandonment (`abandon_reselect`) — on both
clocks."""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from abr.base import Policy, Progress
from netem.content import synthetic
from netem.link import Link, preset as link_preset
from netem.trace import constant
from player.core.presets import get as get_preset
from player.core.rules import SegmentPlan, SessionRows, next_offer_s, payload_link
from player.core.session import SessionCore, drive_with_link
from player.core.simulator import SessionSpec, simulate


def test_observation_carries_each_downloads_latency():
    c = synthetic(bitrates_bps=(1e6,), duration_s=8.0, segment_duration_s=2.0)
    rows = SessionRows(SegmentPlan.from_content(c), get_preset("sabre"), 1)
    rows.downloaded(0, np.array([0]), np.array([250_000.0]), np.array([0.08]), np.array([0.25]))
    lat = rows.observation(1).request_latency_s
    assert lat[0, -1] == 0.08 and np.isnan(lat[0, :-1]).all()


@pytest.mark.parametrize("min_bytes, expected", [
    # every 50 ms from the request
    (0.0, [0.05, 0.10, 0.15]),
    # 1 Mbit/s after 100 ms of latency: 1500 bytes take 12 ms; offers at max(prev + 50 ms,
    # when 1500 more bytes are in): 112 ms, 162 ms, 212 ms
    (1500.0, [0.112, 0.162, 0.212]),
    # 12,500 bytes take 100 ms: the bytes rule the pace
    (12_500.0, [0.2, 0.3, 0.4]),
])
def test_offer_schedule(min_bytes, expected):
    p = replace(get_preset("sabre-abandon"), abandon_min_bytes=min_bytes)
    link = Link([constant(1e6, 100.0, latency_s=0.1)], link_preset("sabre"))
    idx, start = np.array([0]), np.array([0.0])
    size = np.array([1e6])
    tr = link.transfer(idx, start, size)
    e, got, out = np.zeros(1), np.zeros(1), []
    for j in range(1, 4):
        e = next_offer_s(p, payload_link(link), idx, start + tr.latency_s, j, e, got, tr.latency_s, size, tr.transfer_s)
        got = (e - 0.1) * 1e6 / 8
        out.append(float(e[0]))
    assert out == pytest.approx(expected)


def test_no_offer_when_the_rest_arrives_first():
    p = get_preset("sabre-abandon")
    link = Link([constant(1e6, 100.0, latency_s=0.1)], link_preset("sabre"))
    e = next_offer_s(p, payload_link(link), np.array([0]), np.array([0.1]), 1, np.zeros(1), np.zeros(1), np.array([0.1]),
                     np.array([1000.0]), np.array([0.008]))
    assert e[0] == np.inf


class AbandonOnce(Policy):
    """Fetches rung 2, abandons the first offer of segment 1 for rung 1; records decisions."""

    def _reset(self, n, ladder):
        self.decisions = []
        self.done = np.zeros(n, dtype=bool)

    def _select(self, obs):
        self.decisions.append((int(obs.segment_index[0]), round(float(obs.time_s[0]), 6)))
        return np.full(obs.n, 2 if int(obs.segment_index[0]) == 1 and not self.done[0] else 0, dtype=np.int64)

    def abandon(self, progress: Progress):
        out = np.where(self.done[progress.sessions], -1, 1)
        self.done[progress.sessions] = True
        return out


@pytest.mark.parametrize("reselect", [False, True])
def test_abandonment_refetches_or_decides_again_on_both_clocks(reselect):
    """1 Mbit/s, 0.1 s latency, 2 s segments at 1, 2, 4 Mbit/s (sizes 250 kB, 500 kB, 1 MB).
    Segment 1 at rung 2 is abandoned at the first offer, 0.112 s after its request (1500 bytes
    in). Without reselection it is fetched at rung 1; with it, the policy decides again at that
    moment and asks rung 0 (its second decision for segment 1)."""
    p = replace(get_preset("sabre-abandon"), abandon_reselect=reselect)
    c = synthetic(bitrates_bps=(1e6, 2e6, 4e6), duration_s=6.0, segment_duration_s=2.0, seed=0)
    c = replace(c, segment_sizes_bytes=np.tile([250_000, 500_000, 1_000_000], (3, 1)))
    tr = constant(1e6, 1000.0, latency_s=0.1)
    pol = AbandonOnce()
    core = SessionCore(SegmentPlan.from_content(c), pol, p)
    drive_with_link(core, Link([tr], p.link))
    seg0_end = 0.1 + 2.0                      # 250 kB at 1 Mbit/s after 0.1 s
    abandoned_at = seg0_end + 0.112
    if reselect:
        assert core.chosen == [0, 0, 0]
        assert pol.decisions[:2] == [(1, pytest.approx(seg0_end)), (1, pytest.approx(abandoned_at))]
    else:
        assert core.chosen == [0, 1, 0]
        assert [d[0] for d in pol.decisions] == [1, 2]
    assert core.abandons == 1 and core.wasted_bytes == pytest.approx(1500, abs=1)
    sim = simulate([SessionSpec(tr, c, f"{Path(__file__)}:AbandonOnce", preset=p)])[0]
    assert sim.chosen.tolist() == core.chosen
    assert sim.abandons == 1 and sim.session_s == pytest.approx(core.now)
