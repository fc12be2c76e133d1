"""The simulator's prediction of a played session (`player.lab.prediction`), by hand.

Every expected value below is worked out on paper from a constant or two-step trace:
transfer time = latency + overhead + bits / rate, the trace clock advancing meanwhile.
"""
from __future__ import annotations

import numpy as np
import pytest

from netem.content import Content, Rung
from netem.link import Link, LinkParams
from netem.trace import Trace, constant
from player.core.events import Abandon, Download, SessionStart, Wait, from_dict
from player.core.presets import get as get_preset
from player.core.simulator import SessionSpec, simulate
from player.lab import prediction as pr

MBIT = 1e6


def one_rung(sizes_bytes: list[int], duration_s: float = 4.0) -> Content:
    return Content((Rung(1e6),), np.full(len(sizes_bytes), duration_s), np.array(sizes_bytes)[:, None], name="one")


def two_rungs(n: int = 4) -> Content:
    return Content((Rung(1e6), Rung(2e6)), np.full(n, 4.0), np.tile([500_000, 1_000_000], (n, 1)), name="two")


def download(k: int, arrived_s: float, size: int, latency_s: float, transfer_s: float) -> Download:
    return Download(t_s=arrived_s + 0.5, segment=k, rung=0, bytes=size, latency_s=latency_s, transfer_s=transfer_s,
                    throughput_bps=8 * size / transfer_s, buffer_s=4.0, stall_s=0.0, session_t_s=arrived_s)


def start() -> SessionStart:
    return SessionStart(t_s=0.5, url="http://x/m.mpd", abr="bola", abr_params="bola()", preset="default",
                        time_scale=1.0, setup_s=0.5, plan={})


# 8 Mbit/s and 50 ms per request: 1,000,000 bytes take 0.05 + 1.0 s
TRACE = constant(8 * MBIT, 600.0, latency_s=0.05)


def test_request_overhead_by_hand():
    events = [
        start(),
        # segment 0: asked at 0, sent at 0.010, took 0.06 + 1.01 s (the model: 1.05 s) -> 0.010 + 0.020
        download(0, 1.080, 1_000_000, 0.06, 1.01),
        # segment 1: asked when 0 arrived (1.080), sent at 1.095, took 0.055 + 0.5 s (model 0.55 s) -> 0.015 + 0.005
        download(1, 1.650, 500_000, 0.055, 0.5),
        # segment 2: a wait until 3.0 for room in the buffer; sent at 3.004, 0.05 + 0.5 s -> 0.004 + 0
        Wait(t_s=2.15, seconds=1.35, buffer_s=30.0, session_t_s=1.650),
        download(2, 3.554, 500_000, 0.05, 0.5),
    ]
    t = pr.request_timings(events, TRACE, trace_offset_s=0.0)
    assert [x.segment for x in t] == [0, 1, 2]
    assert [x.wanted_s for x in t] == pytest.approx([0.0, 1.080, 3.0])
    assert [x.sent_s for x in t] == pytest.approx([0.010, 1.095, 3.004])
    assert [x.model_s for x in t] == pytest.approx([1.05, 0.55, 0.55])
    assert [x.overhead_s for x in t] == pytest.approx([0.030, 0.020, 0.004])
    o = pr.measured_overhead(t)
    assert o.mean_s == pytest.approx(0.054 / 3) and o.median_s == pytest.approx(0.020) and o.samples == 3


def test_abandoned_segments_and_earlier_sessions_are_not_measured():
    events = [
        start(), download(0, 5.0, 1_000_000, 0.5, 4.0),          # a licence fallback restarts the session:
        start(),                                                 # what came before does not count
        download(0, 1.06, 1_000_000, 0.05, 1.0),
        Abandon(t_s=2.0, segment=1, from_rung=1, to_rung=0, wasted_bytes=1000, reason="policy", session_t_s=1.5),
        download(1, 2.2, 500_000, 0.05, 0.5),
    ]
    t = pr.request_timings(events, TRACE, 0.0)
    assert [x.segment for x in t] == [0]
    assert t[0].overhead_s == pytest.approx(0.01)      # sent at 0.01, as long as the model
    assert pr.measured_overhead([]) is None


def test_trace_offset_moves_the_model_along_the_trace():
    # 1 Mbit/s for 10 s, then 4 Mbit/s: 500,000 bytes sent at session time 0 take 4 s from
    # trace time 0, but 1 s from trace time 10
    steps = Trace(np.array([0.0, 10.0]), np.array([1 * MBIT, 4 * MBIT]), 20.0)
    ev = [start(), download(0, 1.0, 500_000, 0.0, 1.0)]
    assert pr.request_timings(ev, steps, 0.0)[0].model_s == pytest.approx(4.0)
    assert pr.request_timings(ev, steps, 10.0)[0].model_s == pytest.approx(1.0)
    movie = one_rung([500_000])
    bare = pr.with_overhead("default", 0.0)
    assert simulate([SessionSpec(steps, movie, "fixed", {"rung": 0}, preset=bare)])[0].download_s[0] == \
        pytest.approx(4.0)
    assert simulate([SessionSpec(steps, movie, "fixed", {"rung": 0}, preset=bare, trace_start_s=10.0)])[0] \
        .download_s[0] == pytest.approx(1.0)
    # an offset past the end wraps (the trace repeats)
    assert pr.predict(steps, movie, "fixed", {"rung": 0}, trace_offset_s=30.0, overhead_s=0.0).download_s[0] == \
        pytest.approx(1.0)
    with pytest.raises(Exception, match="trace_start_s"):
        SessionSpec(steps, movie, trace_start_s=-1.0)


def test_overhead_is_time_before_the_first_byte_and_scales_with_the_time_scale():
    # the default preset's overhead, at time scale 5, on the 1 -> 4 Mbit/s trace: a request sent
    # at 9.9 s has 0.05 + 5 x overhead before its first byte, then its bytes at the rates from there
    p = pr.with_overhead("default", 0.004)
    assert p.at_time_scale(5).link.overhead_s == pytest.approx(0.02)
    assert p.at_time_scale(5).link.latency == "trace" and p.at_time_scale(5).buffer_cap_s == p.buffer_cap_s
    assert p.at_time_scale(1) is p
    assert get_preset("sabre").at_time_scale(5) is get_preset("sabre")      # no overhead to scale
    with pytest.raises(Exception, match="time scale"):
        p.at_time_scale(0)
    steps = Trace(np.array([0.0, 10.0]), np.array([1 * MBIT, 4 * MBIT]), 20.0, latency_s=np.array([0.05, 0.05]))
    over = 0.02
    link = Link([steps], LinkParams(latency="trace", overhead_s=over))
    tr = link.transfer(np.array([0]), np.array([9.9]), np.array([250_000.0]))
    first = 9.9 + 0.05 + over                                 # 9.97: 0.03 s left at 1 Mbit/s = 3,750 bytes
    rest = (250_000 * 8 - 0.03 * MBIT) / (4 * MBIT)           # the rest at 4 Mbit/s
    assert float(tr.latency_s[0]) == pytest.approx(0.05 + over)
    assert float(tr.transfer_s[0]) == pytest.approx(0.03 + rest)
    assert float(tr.trace_advance_s[0]) == pytest.approx(first - 9.9 + 0.03 + rest)
    # a request's own overhead replaces the link's
    own = link.transfer(np.array([0]), np.array([0.0]), np.array([125_000.0]), np.array([0.5]))
    assert float(own.latency_s[0]) == pytest.approx(0.55) and float(own.transfer_s[0]) == pytest.approx(1.0)


def test_agreement_by_hand():
    played = {"chosen": [0, 1, 1, 2, 2], "qoe": {"total": 9.8}, "rebuffer_s": 1.5}
    predicted = {"chosen": [0, 1, 2, 2, 2], "qoe": {"total": 10.0}, "rebuffer_s": 1.0}
    a = pr.agreement(played, predicted)
    assert a.segments == 5 and a.same_rung == pytest.approx(0.8) and a.first_divergence == 2
    assert a.qoe_rel_diff == pytest.approx(-0.02) and a.stall_diff_s == pytest.approx(0.5)
    assert not a.meets_goal()                                 # 80% < 90%
    same = pr.agreement(played, {**played, "qoe": {"total": 10.0}})
    assert same.first_divergence == -1 and same.same_rung == 1.0 and same.meets_goal()  # QoE 2.0% apart
    assert not pr.agreement(played, {**played, "qoe": {"total": 9.5}}).meets_goal()    # 3.2% apart
    d = a.as_dict()
    assert d["same_rung"] == 0.8 and d["qoe_diff"] == pytest.approx(-0.2) and d["meets_goal"] is False


def test_prediction_record_of_a_played_session_and_a_partial_one():
    content = two_rungs(4)
    # 4 Mbit/s constant, no latency: the fixed policy at rung 1 (1,000,000 bytes) takes 2 s + overhead per
    # 4 s segment, so the buffer grows and never runs dry
    trace = constant(4 * MBIT, 600.0)
    events = [start()]
    t = 0.0
    for k in range(4):
        t += 2.03           # sent 0.01 after the previous arrival, 0.02 of latency: 0.03 per request
        events.append(Download(t_s=t, segment=k, rung=1, bytes=1_000_000, latency_s=0.02, transfer_s=2.0,
                               throughput_bps=4e6, buffer_s=4.0, stall_s=0.0, session_t_s=t))
    played = {"chosen": [1, 1, 1, 1], "qoe": {"total": 8.0}, "rebuffer_s": 0.0}
    rec = pr.predict_played(events, played, trace, content, abr="fixed", abr_params={"rung": 1})
    assert rec["available"] and rec["overhead_s"] == pytest.approx(0.03)
    assert rec["overhead"]["samples"] == 4 and rec["trace_offset_s"] == 0.0
    assert rec["predicted"]["chosen"] == [1, 1, 1, 1] and rec["same_rung"] == 1.0
    # linear QoE: 4 segments of 2 Mbit/s, no stall, no switch
    assert rec["qoe_predicted"] == pytest.approx(8.0) and rec["stall_predicted_s"] == 0.0 and rec["meets_goal"]
    assert rec["predicted"]["startup_s"] == pytest.approx(2.03)
    part = pr.predict_played(events[:3], {"chosen": [1, 1], "qoe": {"total": 4.0}, "rebuffer_s": 0.0}, trace, content,
                             abr="fixed", abr_params={"rung": 1})
    assert part["segments"] == 2 and part["qoe_predicted"] == pytest.approx(4.0)
    assert any("stopped after 2 of 4" in n for n in part["notes"])
    assert pr.predict_played([start()], {"chosen": []}, trace, content, abr="fixed")["available"] is False
    lines = pr.describe(rec)
    assert lines[0].startswith("prediction: abrlab simulate --preset default, the trace from 0.000 s, 30.0 ms")
    assert "same rung 4/4 (100%)" in lines[1] and lines[4].endswith("met")
    # replayed with each request's own delay (0.03 s each): the same session
    assert rec["replayed"] == {"same_rung": 1.0, "first_divergence": -1, "qoe_rel_diff": 0.0, "stall_diff_s": 0.0,
                               "meets_goal": True}
    assert lines[5] == "  replayed with each request's own delay: same rung 100%, QoE +0.0%"
    assert part["replayed"] is None                    # not for a session that stopped early
    assert pr.describe(pr.unavailable("no trace")) == ["no prediction: no trace"]


def test_replay_uses_each_requests_own_overhead():
    # one rung, 500,000 bytes per segment at 2 Mbit/s: 2 s each; overheads 0.1 and 0.3 s measured
    content = one_rung([500_000, 500_000, 500_000])
    trace = constant(2 * MBIT, 600.0)
    timings = [pr.RequestTiming(0, 0.0, 0.0, 0.1, 2.0, 500_000, 2.0, delay_s=0.1),
               pr.RequestTiming(2, 0.0, 0.0, 0.3, 2.0, 500_000, 2.0, delay_s=0.3)]
    s = pr.replay(trace, content, "fixed", {"rung": 0}, timings)
    # segment 1 was not measured: it gets the mean, 0.2 s; the session lasts 2.1 + 2.2 + 2.3 s of
    # downloads, then plays out its 12 s of media from the first arrival at 2.1 s
    assert s["startup_s"] == pytest.approx(2.1)
    assert s["session_s"] == pytest.approx(2.1 + 12.0)
    assert s["rebuffer_s"] == pytest.approx(0.0)


def test_start_delay_is_the_overhead_that_gives_the_arrival_seen():
    # the two-step trace of the overhead test: 250,000 bytes sent at 9.9 s with 0.02 s of overhead
    # arrive 0.07 + 0.03 + 0.4925 s later; a request that arrived sooner than the trace's own latency
    # allows gets minus that latency (its first byte at once)
    steps = Trace(np.array([0.0, 10.0]), np.array([1 * MBIT, 4 * MBIT]), 20.0, latency_s=np.array([0.05, 0.05]))
    link = Link([steps], LinkParams(latency="trace"))
    d = pr.start_delays(link, np.array([9.9, 0.0, 0.0]), np.array([250_000.0, 125_000.0, 125_000.0]),
                        np.array([0.5925, 1.05 + 0.25, 0.5]))
    assert d == pytest.approx([0.02, 0.25, -0.05], abs=1e-9)
    # from the events: segment 0 of the first test, wanted at 0, arrived at 1.080 -> 0.030
    ev = [start(), download(0, 1.080, 1_000_000, 0.06, 1.01)]
    assert pr.request_timings(ev, TRACE, 0.0)[0].delay_s == pytest.approx(0.030)


def test_content_of_plan_keeps_what_the_session_knew():
    from player.core.rules import SegmentPlan
    plan = SegmentPlan(np.array([2.0, 2.0]), np.array([1e6, 3e6]), np.array([[250_000.4, 750_000.0]] * 2),
                       np.array([360.0, 720.0]))
    c = pr.content_of_plan(plan)
    assert c.n_segments == 2 and c.bitrates_bps.tolist() == [1e6, 3e6]
    assert c.segment_sizes_bytes.tolist() == [[250_000, 750_000]] * 2 and c.rungs[1].height == 720


def test_events_round_trip_through_json_lines():
    evs = [start(), download(3, 2.0, 1000, 0.1, 0.2),
           Wait(t_s=1.0, seconds=0.5, buffer_s=20.0, session_t_s=0.5)]
    for e in evs:
        assert from_dict(e.as_dict()) == e
    s = start()
    back = from_dict({**s.as_dict(), "custom": 7})           # a key the kind does not have goes to extra
    assert back.extra == {"custom": 7}
    with pytest.raises(KeyError):
        from_dict({"event": "no-such-kind", "t_s": 0.0})


def test_what_the_simulator_does_not_model_is_noted():
    from player.core.events import Failure, Retry
    events = [start(), Retry(t_s=3.0, what="media", url="u", attempt=1, reason="no data for 10 s", backoff_s=0.2,
                             segment=1),
              Retry(t_s=3.5, what="media", url="u", attempt=2, reason="reset", backoff_s=0.4, segment=1),
              Retry(t_s=0.2, what="manifest", url="m", attempt=1, reason="503", backoff_s=0.2),
              Failure(t_s=9.0, segment=4, reason="decrypt", wasted_bytes=10)]
    notes = pr.unmodelled(events)
    assert notes[0].startswith("segment(s) 2 were retried") and "1 segment download(s) failed" in notes[1]
    assert pr.unmodelled([start()]) == []
