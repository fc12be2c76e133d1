"""Crowd metrics (`player.core.crowd_metrics`) on cases computed by hand."""
from __future__ import annotations

import math

import numpy as np
import pytest

from player.core.crowd_metrics import (ClientTimeline, CrowdOutcome, bitrate_series, group_metrics,
                                       instability_series, jain, jain_rows, rung_agreement, unfairness)


def test_jain_by_hand():
    assert jain([1.0, 1.0, 1.0]) == pytest.approx(1.0)
    assert jain([1.0, 0.0]) == pytest.approx(0.5)                 # one has everything: 1/n
    assert jain([1.0, 2.0, 3.0]) == pytest.approx(36.0 / 42.0)     # 6² / (3 · 14)
    assert jain([0.0, 0.0]) == 1.0
    assert math.isnan(jain([]))
    with pytest.raises(ValueError):
        jain([1.0, -1.0])


def test_jain_per_column_ignores_inactive_clients():
    b = np.array([[1.0, 1.0, np.nan], [1.0, 3.0, 2.0]])
    assert jain_rows(b).tolist() == pytest.approx([1.0, 16.0 / 20.0, 1.0])


def test_unfairness_is_festive_sqrt_one_minus_jain():
    assert unfairness(0.75) == pytest.approx(0.5)
    assert unfairness(1.0) == 0.0


def test_bitrate_series_holds_the_newest_request():
    c = ClientTimeline(0.0, 5.0, np.array([0.0, 2.0]), np.array([1e6, 2e6]), {})
    b = bitrate_series([c], np.arange(7.0))
    assert b[0, :5].tolist() == [1e6, 1e6, 2e6, 2e6, 2e6]
    assert math.isnan(b[0, 5])                                     # after the client's end


def test_instability_by_hand():
    """k = 2 one-second steps, w(d) = k − d: at t = 2 (switch 1 → 2 just made)
    num = |b2 − b1|·2 + |b1 − b0|·1 = 2, den = b1·1 + b0·0 = 1; at t = 3
    num = |b3 − b2|·2 + |b2 − b1|·1 = 1, den = b2·1 = 2."""
    b = np.array([[1.0, 1.0, 2.0, 2.0]])
    inst = instability_series(b, step_s=1.0, window_s=2.0)
    assert inst[0].tolist() == pytest.approx([0.0, 0.0, 2.0, 0.5])


def outcome(bulk_on: float = 0.0) -> CrowdOutcome:
    """Two clients at 1 Mbit/s for 4 s on 4 Mbit/s; 3 Mbit of each second delivered."""
    summary = {"avg_bitrate_bps": 1e6, "rebuffer_s": 0.0, "session_s": 4.0, "switches": 0, "rebuffer_count": 0,
               "qoe_all": {"linear": {"total": 4.0, "segments": 4}}}
    clients = [ClientTimeline(0.0, 4.0, np.arange(4.0), np.full(4, 1e6), dict(summary)) for _ in range(2)]
    clients[1].summary = {**summary, "avg_bitrate_bps": 3e6, "rebuffer_count": 2,
                          "qoe_all": {"linear": {"total": -8.0, "segments": 4}}}
    edges = np.arange(5.0)
    return CrowdOutcome(clients, edges, np.full(4, 4e6), np.full(4, 3e6), np.full(4, 2e6), np.full(4, bulk_on))


def test_group_metrics_by_hand():
    m = group_metrics(outcome())
    assert m["jain_bitrate"] == pytest.approx(16.0 / 20.0)         # (1 + 3)² / (2 · 10)
    assert m["unfairness"] == pytest.approx(math.sqrt(0.2))
    # QoE per segment 1 and −2: a negative QoE counts as 0
    assert m["jain_qoe"] == pytest.approx(0.5)
    # both fetch 1 Mbit/s: |2 − 4| / 4
    assert m["inefficiency_mean"] == pytest.approx(0.5)
    assert m["inefficiency_weighted"] == pytest.approx(8.0 / 16.0)     # Σ|2 − 4| / Σ4 over 4 s
    assert m["unfairness_time_mean"] == pytest.approx(0.0)
    assert m["instability_mean"] == pytest.approx(0.0)
    assert m["utilisation"] == pytest.approx(0.75)
    assert m["player_share"] == pytest.approx(0.5)
    assert m["series"]["utilisation"] == pytest.approx([0.75] * 4)
    assert m["stalls_per_viewer_hour"] == pytest.approx(3600.0 * 2 / 8.0)   # 2 stalls in 8 viewer-seconds


def test_inefficiency_counts_the_players_part_beside_bulk_flows():
    """One bulk flow on: the players' part of 4 Mbit/s is 2/3 of it; |2 − 8/3| / (8/3)."""
    m = group_metrics(outcome(bulk_on=1.0))
    assert m["inefficiency_mean"] == pytest.approx(0.25)


def test_rung_agreement_by_hand():
    same, per = rung_agreement([[0, 1, 2], [1, 1]], [[0, 1, 1], [1, 1, 2]])
    assert same == pytest.approx(4 / 5)
    assert per == pytest.approx([2 / 3, 1.0])
