"""The pensieve preset plays the movie as Pensieve's test/fixed_env.py does, and its bba is
Pensieve's test/bb.py: sessions worked by hand.

The root causes of the disagreement with Pensieve's BB (measured per chunk against its own
code, see README) were, besides the cooked trace format (tests/test_trace_formats.py):
Pensieve credits every chunk with VIDEO_CHUNCK_LEN = 4 s although EnvivioDash3's segments
last 359408/90000 = 3.99342 s, and it plays TOTAL_VIDEO_CHUNCK = 48 of the 49 chunks.
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from netem.content import Content, rungs_from_bitrates
from netem.errors import InputError
from netem.trace import Trace
from player.core.presets import get as get_preset
from player.core.rules import SegmentPlan, played_plan
from player.core.simulator import SessionSpec, simulate

LADDER = np.array([300e3, 750e3, 1200e3, 1850e3, 2850e3, 4300e3])
ENVIVIO_SEGMENT_S = 359408 / 90000          # 3.99342 s, the MPD's SegmentTemplate duration
# rung q's segment is (q + 0.92) MB: on a link that carries 8 Mbit/s of payload it takes
# q + 0.92 s, plus Pensieve's 80 ms: rung q downloads in exactly q + 1 s
SIZES = np.array([920_000 + 1_000_000 * q for q in range(6)])


def movie(segments: int = 5) -> Content:
    return Content(rungs_from_bitrates(LADDER), np.full(segments, ENVIVIO_SEGMENT_S),
                   np.tile(SIZES, (segments, 1)), name="envivio-like")


def payload_8mbps() -> Trace:
    return Trace(np.array([0.0]), np.array([8e6 / 0.95]), 1000.0)   # × 0.95 efficiency = 8 Mbit/s


def test_pensieve_bb_session_by_hand():
    # chunk 1 at rung 1: 2 s, all stall; buffer 4 s (Pensieve's 4 s chunk, not 3.99342)
    # B = 4   < 5          -> rung 0: 1 s; buffer 4 - 1 + 4 = 7
    # B = 7   -> ⌊5·2/10⌋ = 1: 2 s;    buffer 7 - 2 + 4 = 9
    # B = 9   -> ⌊5·4/10⌋ = 2: 3 s;    buffer 9 - 3 + 4 = 10
    # and the 5th segment is not played (Pensieve: 48 of 49)
    r = simulate([SessionSpec(payload_8mbps(), movie(), "bba", preset="pensieve")])[0]
    assert r.chosen.tolist() == [1, 0, 1, 2]
    assert r.download_s == pytest.approx([2.0, 1.0, 2.0, 3.0])
    assert r.rebuffer_s == pytest.approx([2.0, 0.0, 0.0, 0.0])
    assert r.buffer_s == pytest.approx([4.0, 7.0, 9.0, 10.0])
    # linear QoE over chunks 2..4: 0.3 + 0.75 + 1.2 − (0.45 + 0.45 + 0.45)
    assert r.summary()["qoe"]["total"] == pytest.approx(0.9)


def test_with_the_true_durations_the_third_decision_differs():
    # the same session crediting 3.99342 s per chunk: B = 3.99342 - 1 + 3.99342 = 6.98684
    # -> ⌊5·1.98684/10⌋ = 0, where Pensieve (4 s chunks, B = 7) picks rung 1
    exact = replace(get_preset("pensieve"), duration_quantum_s=0.0)
    r = simulate([SessionSpec(payload_8mbps(), movie(), "bba", preset=exact)])[0]
    assert r.chosen[:3].tolist() == [1, 0, 0]
    assert r.buffer_s[1] == pytest.approx(2 * ENVIVIO_SEGMENT_S - 1.0)


def test_bba_is_pensieves_bb_under_the_preset():
    p = get_preset("pensieve")
    assert p.policy("bba").describe() == "bba(reservoir_s=5.0, cushion_s=10.0, variant=pensieve)"
    # the paper's BBA-0 (with hysteresis) stays available by its parameter
    assert "variant=bba0" in p.policy("bba", {"variant": "bba0"}).describe()


def test_played_plan_rounds_to_a_tenth_and_drops_the_last_segment():
    plan = SegmentPlan(np.array([3.99342, 3.99342, 2.04, 1.96]), LADDER[:2], np.ones((4, 2)))
    out = played_plan(plan, get_preset("pensieve"))
    assert out.durations_s == pytest.approx([4.0, 4.0, 2.0])
    assert out.sizes_bytes.shape == (3, 2)
    assert played_plan(plan, get_preset("default")) is plan
    # a segment shorter than half a quantum still counts one quantum
    tiny = SegmentPlan(np.array([0.02, 0.02]), LADDER[:1], np.ones((2, 1)))
    assert played_plan(tiny, get_preset("pensieve")).durations_s == pytest.approx([0.1])


def test_a_negative_quantum_is_refused():
    with pytest.raises(InputError, match="duration_quantum_s"):
        replace(get_preset("pensieve"), duration_quantum_s=-0.1)


def test_a_one_segment_movie_cannot_drop_its_last_segment():
    with pytest.raises(InputError, match="2 segments at least"):
        simulate([SessionSpec(payload_8mbps(), movie(segments=1), "bba", preset="pensieve")])
