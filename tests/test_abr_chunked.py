"""Throughput from chunked (low-latency) downloads: dash.js's moof-parsing, downloaded-data
and AAST methods (src/streaming/net/FetchLoader.js; AastLowLatencyThroughputModel.js), on
cases worked out by hand, and the policies that take their sample from them."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

import abr
from abr import Ladder, Observation
from abr.estimators import (AastModel, ChunkedSampler, downloaded_data_time_s, moof_throughput_bps,
                            whole_request_time_s)
from abr_support import dashjs_obs as vod_obs

NAN = np.nan

# Four 100 kB chunks, each 0.1 s on the wire (8 Mbit/s), the encoder making one a second: the
# request at 0, first bytes at 0.2 s, 0.9 s idle between chunks.
GAPPY = dict(chunk_bytes=np.array([[1e5, 1e5, 1e5, 1e5]]),
             chunk_start_s=np.array([[0.2, 1.2, 2.2, 3.2]]),
             chunk_end_s=np.array([[0.3, 1.3, 2.3, 3.3]]))


def test_moof_leaves_the_gaps_out():
    # _calculateThroughputByMoofMdatTimes: the last chunk dropped, chunks 0-2 each 800 000 bits
    # in 100 ms = 8000 bit/ms; the mean, 8 Mbit/s
    assert moof_throughput_bps(**GAPPY)[0] == pytest.approx(8e6)


def test_downloaded_data_with_even_gaps_falls_back_to_the_whole_request():
    # calculateDownloadedTime: all reads above (400 kB / 4) / 4; average distance (3300 − 300) / 4
    # = 750 ms; every distance is 1000 ms, none below: time 0, which dash.js treats as "none"
    assert np.isnan(downloaded_data_time_s(GAPPY["chunk_bytes"], GAPPY["chunk_end_s"])[0])
    # ... so the sample is the whole request, gaps included: 3.2 Mbit over 3.3 s
    assert whole_request_time_s(GAPPY["chunk_bytes"], GAPPY["chunk_end_s"])[0] == 3.3
    o = dataclasses.replace(vod_obs(1.0, 2), **GAPPY)
    rate, t, has = ChunkedSampler(1, "data").sample(o, np.array([1e6, 2e6, 4e6]))
    assert has[0] and t[0] == 3.3 and rate[0] == pytest.approx(3.2e6 / 3.3)
    rate, t, _ = ChunkedSampler(1, "moof").sample(o, np.array([1e6, 2e6, 4e6]))
    assert rate[0] == pytest.approx(8e6) and t[0] == pytest.approx(0.4)   # 3.2 Mbit at 8 Mbit/s


def test_downloaded_data_counts_the_back_to_back_reads():
    # reads at 300, 400, 500 and 2000 ms: average distance (2000 − 300) / 4 = 425 ms; the two
    # 100 ms distances count, the 1500 ms one does not: 200 ms
    t = downloaded_data_time_s(np.array([[1e5, 1e5, 1e5, 1e5]]), np.array([[0.3, 0.4, 0.5, 2.0]]))
    assert t[0] == pytest.approx(0.2)
    # a small read (under (total / 4) / reads) is left out before the distances are taken:
    # 1000 B < (301 000 / 4) / 4; reads at 300, 1300 and 1400 ms remain: average 1100 / 3 = 367 ms,
    # so only the 100 ms distance counts
    t = downloaded_data_time_s(np.array([[1e5, 1000.0, 1e5, 1e5]]), np.array([[0.3, 0.35, 1.3, 1.4]]))
    assert t[0] == pytest.approx(0.1)


def test_moof_pools_chunks_under_a_millisecond():
    # 0.5 ms chunks are pooled until the pool spans more than 1 ms: chunks 0+1, 2000 B over
    # 1.5 ms = 10 666.7 bit/ms; chunk 2, 10 000 B in 10 ms = 8000; mean 9333.3 bit/ms
    b = np.array([[1000.0, 1000.0, 10_000.0, 10_000.0]])
    s = np.array([[0.1000, 0.1010, 0.2000, 0.3]])
    e = np.array([[0.1005, 0.1015, 0.2100, 0.31]])
    assert moof_throughput_bps(b, s, e)[0] == pytest.approx((16_000 / 1.5 + 8000) / 2 * 1000, rel=1e-6)
    # a long chunk after a pending short one discards the pool (shortDurationStartTime = 0)
    b = np.array([[1000.0, 10_000.0, 10_000.0, 10_000.0]])
    s = np.array([[0.1000, 0.2, 0.3, 0.4]])
    e = np.array([[0.1005, 0.21, 0.31, 0.41]])
    assert moof_throughput_bps(b, s, e)[0] == pytest.approx(8e6)


def test_moof_needs_two_chunks_besides_the_last():
    e = np.array([[0.3, 1.3, NAN, NAN]])
    assert np.isnan(moof_throughput_bps(np.array([[1e5, 1e5, NAN, NAN]]), e - 0.1, e)[0])
    # rows are independent: a padded row beside a full one
    b = np.array([[1e5, 1e5, 1e5, 1e5], [1e5, 1e5, NAN, NAN]])
    s = np.array([[0.2, 1.2, 2.2, 3.2], [0.2, 1.2, NAN, NAN]])
    got = moof_throughput_bps(b, s, s + 0.1)
    assert got[0] == pytest.approx(8e6) and np.isnan(got[1])


LADDER = np.array([200e3, 600e3, 1000e3])
SIX = np.full((1, 6), 10_000.0)                                 # six 10 kB chunks
ENDS = np.array([[0.05, 0.10, 0.15, 0.50, 0.75, 1.00]])        # three back to back, then paced


def _aast(available_s, buffer=None, model=None, rung=1, ends=ENDS):
    model = model or AastModel(1)
    level = np.full(ends.shape, 2.0) if buffer is None else buffer
    t = model.download_time_s(np.array([0]), SIX, ends, level, np.array([available_s]), 1.0,
                              LADDER[[rung]], LADDER)
    return t[0], model


def test_aast_a_fully_available_segment_is_semi_optimistic():
    # available 5 s >= the 1 s segment: fetch duration × 0.8
    assert _aast(5.0)[0] == pytest.approx(1.0 * 0.8)
    assert _aast(NAN)[0] == pytest.approx(1.0 * 0.8)             # availability unknown: as if all there


def test_aast_uses_the_chunks_fetched_before_the_live_edge():
    # 0.25 s available at the request: chunks 0-2 (0.05 s each) fit, the fourth (0.35 s more) not;
    # 3 > 6 × 0.2 chunks: 30 kB in 0.15 s = 200 kB/s, so the 60 kB segment would take 0.3 s; the
    # buffer was flat (stable): × 0.6 = 0.18 s
    assert _aast(0.25)[0] == pytest.approx(0.3 * 0.6)


def test_aast_at_the_bleeding_edge_assumes_the_next_rung_up():
    # nothing was available: 0.6 × 60 kB × 8 / 1000 kbit/s (the rung above 600) = 0.288 s
    assert _aast(0.01)[0] == pytest.approx(0.6 * 60_000 * 8 / 1e6)
    assert _aast(0.01, rung=2)[0] == pytest.approx(1.0 * 0.6)    # top rung: the fetch time × 0.6


def test_aast_a_draining_buffer_is_not_stable():
    # the buffer falls from 2 s to 1 s over the download: the trend line (chunks 1-5) at 0.5 s and
    # 1 s gives end / start < 0.95: fetch × 0.8
    drain = 2.0 - ENDS
    assert _aast(0.25, buffer=drain)[0] == pytest.approx(0.8)


def test_aast_delays_requests_after_three_stable_segments():
    m = AastModel(1)
    s = np.array([0])
    for k in range(3):
        assert m.capacity_delay_s(s, np.array([0.6]))[0] == 0.0   # fewer than three measurements
        _aast(0.25, model=m)
    assert m.capacity_delay_s(s, np.array([0.6]))[0] == pytest.approx(0.15)   # buffer / 4
    assert m.capacity_delay_s(s, np.array([2.0]))[0] == 0.25                  # at most 250 ms
    _aast(0.25, model=m, rung=0)        # the bitrate fell below the window's first: not stable
    assert m.capacity_delay_s(s, np.array([2.0]))[0] == 0.0


def test_policies_take_their_sample_from_the_chunks():
    ladder = Ladder(LADDER, 1.0)
    o1 = vod_obs(0.0, -1, playing=False, ladder=ladder)
    # the session's own sample says 3.2 Mbit over 3.3 s; the chunks say 8 Mbit/s (moof)
    o2 = dataclasses.replace(vod_obs(1.0, 2, [3.2e6 / 3.3], [3.3], ladder=ladder), **GAPPY)
    for name in ("dashjs", "l2a", "lolp"):
        p = abr.get(name)
        p.reset(1, ladder)
        p.select(o1)
        p.select(o2)
        assert p.last_info["throughput_bps"][0] == 8e6, name    # one sample: the EWMA is the sample
        q = abr.get(name, chunk_estimator="data")
        q.reset(1, ladder)
        q.select(o1)
        q.select(o2)
        assert q.last_info["throughput_bps"][0] == 970e3, name  # round(3200 / 3.3) kbit/s
    t = abr.get("throughput")
    t.reset(1, ladder)
    t.select(o1)
    t.select(o2)
    assert t.last_info["throughput_bps"][0] == pytest.approx(8e6)
    with pytest.raises(ValueError, match="chunk_estimator"):
        abr.get("l2a", chunk_estimator="guess").reset(1, ladder)


def test_aast_policy_asks_the_session_to_wait():
    ladder = Ladder(LADDER, 1.0)
    p = abr.get("l2a", chunk_estimator="aast")
    p.reset(1, ladder)
    p.select(vod_obs(0.0, -1, playing=False, ladder=ladder))
    assert p.last_delay_s is not None and p.last_delay_s.tolist() == [0.0]
    live = dict(chunk_bytes=SIX, chunk_start_s=ENDS - 0.01, chunk_end_s=ENDS,
                chunk_buffer_s=np.full((1, 6), 2.0), segment_available_s=np.array([0.25]))
    for k in range(3):
        p.select(dataclasses.replace(vod_obs(0.6, 1, [5e5] * (k + 1), [1.0] * (k + 1), ladder=ladder), **live))
    assert p.last_delay_s.tolist() == [pytest.approx(0.15)]
    assert abr.get("l2a").last_delay_s is None


def test_observation_chunk_fields():
    o = vod_obs(1.0, 2)
    assert o.chunk_bytes.shape == (1, 0) and o.chunk_end_s.shape == (1, 0) and np.isnan(o.segment_available_s[0])
    o = dataclasses.replace(o, chunk_bytes=np.array([[1e4, NAN]]))
    assert np.isnan(o.chunk_start_s).all() and o.chunk_start_s.shape == (1, 2)
    with pytest.raises(ValueError, match="chunk_end_s"):
        dataclasses.replace(o, chunk_end_s=np.zeros((1, 3)))
    assert isinstance(o, Observation)
