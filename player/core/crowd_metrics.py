"""Metrics of players sharing a bottleneck: fairness, efficiency, stability, utilisation.

Written once for both worlds: the simulated crowd (`player.core.crowd`) and the emulated one
(`abrlab crowd`) turn their outcome into a `CrowdOutcome` — per client the bottleneck times
of its requests and their bitrates, its summary; per time bin the capacity and what was
delivered — and `group_metrics` computes the same figures from it.

Definitions (FESTIVE, Jiang, Sekar and Zhang, CoNEXT 2012, §2; Jain, Chiu and Hawe 1984):

- **Jain's index** of x₁..xₙ ≥ 0: (Σx)² / (n·Σx²); 1 when all are equal, 1/n when one
  has everything. On the clients' average bitrates (`jain_bitrate`) and on their QoE
  per segment (`jain_qoe`; a negative QoE counts as 0: the viewer got nothing of value).
- **Unfairness** √(1 − Jain): on the average bitrates, and per second on the bitrates
  the clients are fetching at that second (`unfairness_t`), averaged over the seconds at
  least two clients are active.
- **Inefficiency** per second |Σₓ bₓ,ₜ − Wₜ| / Wₜ, where bₓ,ₜ is the bitrate client x is
  fetching at second t and Wₜ the players' part of the capacity: the capacity, times
  players / (players + bulk flows on) when bulk flows compete. FESTIVE averages it over the
  seconds (`inefficiency_mean`); on a trace with seconds of almost no capacity those
  seconds dominate that mean, so `inefficiency_weighted` = Σₜ|Σₓ bₓ,ₜ − Wₜ| / ΣₜWₜ is
  reported too (the miss as a share of all the players' capacity).
- **Instability** per client and second (FESTIVE's weighted switches over the last
  k = 20 s): Σ_{d=0}^{k−1} |bₜ₋d − bₜ₋d₋₁|·(k − d) / Σ_{d=1}^{k} bₜ₋d·(k − d), over the
  seconds the client was active; averaged over clients and seconds.
- **Link utilisation** per second: bits delivered (players and bulk flows) over the
  capacity; the players' share: bits the players received over the capacity.
- Per viewer: the rebuffer ratio (all stall time over all session time), stall events per
  viewer-hour, the mean startup delay (viewers who left before their first segment left
  out), and each client's own summary and QoE.

A client is active from its first request until its last segment arrived (or it left); its
bitrate at time t is the nominal bitrate of the newest request at or before t. Seconds are
bins of `step_s` (1 s) from the first arrival to the last client's end (the last bin ends
there).

Units: seconds, bits per second, bits.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

INSTABILITY_WINDOW_S = 20.0


@dataclass
class ClientTimeline:
    """One client on the bottleneck's clock."""

    start_s: float
    end_s: float
    request_s: np.ndarray          # bottleneck time of each segment's request (arrived segments)
    bitrate_bps: np.ndarray        # nominal bitrate of each of those segments
    summary: dict[str, Any]        # the session summary (`player.core.summary`)


@dataclass
class CrowdOutcome:
    """What a crowd on one bottleneck did, as both worlds can say it."""

    clients: list[ClientTimeline]
    edges_s: np.ndarray            # (T + 1,) bin edges
    capacity_bits: np.ndarray      # (T,) capacity per bin
    delivered_bits: np.ndarray     # (T,) delivered per bin, players and bulk flows
    player_bits: np.ndarray        # (T,) delivered to the players per bin
    bulk_on: np.ndarray            # (T,) bulk flows on at each bin's middle
    extra: dict[str, Any] = field(default_factory=dict)


def jain(x: Sequence[float] | np.ndarray) -> float:
    """Jain's fairness index of non-negative values (NaN for none; 1 when all are 0)."""
    v = np.asarray(x, dtype=np.float64)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return math.nan
    if np.any(v < 0):
        raise ValueError("Jain's index needs non-negative values")
    sq = float(np.sum(v * v))
    return 1.0 if sq == 0 else float(np.sum(v) ** 2 / (v.size * sq))


def jain_rows(b: np.ndarray) -> np.ndarray:
    """Jain's index down each column of (clients, T), ignoring NaN (inactive clients)."""
    n = np.sum(np.isfinite(b), axis=0)
    s = np.nansum(b, axis=0)
    sq = np.nansum(b * b, axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n == 0, np.nan, np.where(sq == 0, 1.0, s * s / (n * np.where(sq == 0, 1.0, sq))))


def unfairness(j: float | np.ndarray) -> float | np.ndarray:
    """FESTIVE's unfairness √(1 − Jain)."""
    return np.sqrt(np.maximum(1.0 - np.asarray(j, dtype=np.float64), 0.0))


def time_edges(clients: Sequence[ClientTimeline], step_s: float = 1.0) -> np.ndarray:
    """Bins of `step_s` from the first arrival to the last client's end (at least one; the
    last bin ends at that end, so it may be shorter)."""
    t0 = min(c.start_s for c in clients)
    t1 = max(c.end_s for c in clients)
    n = max(1, int(math.ceil((t1 - t0) / step_s - 1e-9)))
    edges = t0 + step_s * np.arange(n + 1)
    if t1 > edges[-2]:
        edges[-1] = t1
    return edges


def bitrate_series(clients: Sequence[ClientTimeline], edges_s: np.ndarray) -> np.ndarray:
    """(clients, T): the bitrate each client is fetching at each bin's middle; NaN while inactive."""
    mid = 0.5 * (edges_s[:-1] + edges_s[1:])
    out = np.full((len(clients), mid.size), np.nan)
    for i, c in enumerate(clients):
        req = np.asarray(c.request_s, dtype=np.float64)
        if req.size == 0:
            continue
        j = np.searchsorted(req, mid, side="right") - 1
        active = (mid >= c.start_s) & (mid < c.end_s) & (j >= 0)
        out[i, active] = np.asarray(c.bitrate_bps, dtype=np.float64)[j[active]]
    return out


def instability_series(b: np.ndarray, step_s: float = 1.0, window_s: float = INSTABILITY_WINDOW_S) -> np.ndarray:
    """FESTIVE's instability per client and bin over the last `window_s` (NaN while inactive)."""
    k = max(1, int(round(window_s / step_s)))
    n, T = b.shape

    def shifted(d: int) -> np.ndarray:
        out = np.full((n, T), np.nan)
        if d < T:
            out[:, d:] = b[:, :T - d]
        return out

    num = np.zeros((n, T))
    den = np.zeros((n, T))
    for d in range(k):
        step = np.abs(shifted(d) - shifted(d + 1))
        num += np.nan_to_num(step) * (k - d)
    for d in range(1, k + 1):
        den += np.nan_to_num(shifted(d)) * (k - d)
    with np.errstate(invalid="ignore", divide="ignore"):
        inst = np.where(den > 0, num / np.where(den > 0, den, 1.0), 0.0)
    return np.where(np.isfinite(b), inst, np.nan)


def group_metrics(outcome: CrowdOutcome, qoe_model: str = "linear", step_s: float | None = None
                  ) -> dict[str, Any]:
    """Every figure of one crowd, with its time series (lists, one value per bin)."""
    clients = outcome.clients
    edges = np.asarray(outcome.edges_s, dtype=np.float64)
    step = float(edges[1] - edges[0]) if step_s is None else step_s
    b = bitrate_series(clients, edges)
    active = np.isfinite(b)
    n_active = active.sum(axis=0)
    cap_bps = outcome.capacity_bits / np.diff(edges)
    players = n_active
    share = np.where(players > 0, players / np.maximum(players + outcome.bulk_on, 1), 0.0)
    w = cap_bps * share
    total_b = np.nansum(b, axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        ineff = np.where((players > 0) & (w > 0), np.abs(total_b - w) / np.where(w > 0, w, 1.0), np.nan)
        util = np.where(outcome.capacity_bits > 0, outcome.delivered_bits / outcome.capacity_bits, np.nan)
        pshare = np.where(outcome.capacity_bits > 0, outcome.player_bits / outcome.capacity_bits, np.nan)
    jt = jain_rows(b)
    unf_t = np.where(n_active >= 2, unfairness(np.nan_to_num(jt, nan=1.0)), np.nan)
    inst = instability_series(b, step)
    summaries = [c.summary for c in clients]
    avg = np.array([s["avg_bitrate_bps"] for s in summaries], dtype=np.float64)
    qoe_total = np.array([s["qoe_all"][qoe_model]["total"] for s in summaries], dtype=np.float64)
    qoe_segs = np.array([max(s["qoe_all"][qoe_model]["segments"], 1) for s in summaries], dtype=np.float64)
    qoe_per_seg = qoe_total / qoe_segs
    rebuf = np.array([s["rebuffer_s"] for s in summaries], dtype=np.float64)
    sess = np.array([s["session_s"] for s in summaries], dtype=np.float64)
    j_b = jain(avg)
    busy_cap = float(np.sum(outcome.capacity_bits))
    out: dict[str, Any] = {
        "clients": len(clients),
        "jain_bitrate": j_b,
        "unfairness": float(unfairness(j_b)) if math.isfinite(j_b) else math.nan,
        "jain_qoe": jain(np.maximum(qoe_per_seg, 0.0)),
        "unfairness_time_mean": _nanmean(unf_t),
        "inefficiency_mean": _nanmean(ineff),
        "inefficiency_weighted": _weighted_miss(total_b, w, players),
        "instability_mean": _nanmean(inst),
        "utilisation": float(np.sum(outcome.delivered_bits) / busy_cap) if busy_cap > 0 else math.nan,
        "player_share": float(np.sum(outcome.player_bits) / busy_cap) if busy_cap > 0 else math.nan,
        "avg_bitrate_bps_mean": float(np.mean(avg)),
        "qoe_mean": float(np.mean(qoe_total)),
        "qoe_per_segment_mean": float(np.mean(qoe_per_seg)),
        "rebuffer_s_mean": float(np.mean(rebuf)),
        "rebuffer_ratio": float(rebuf.sum() / sess.sum()) if sess.sum() > 0 else 0.0,
        "stalls_per_viewer_hour": float(3600.0 * sum(s["rebuffer_count"] for s in summaries) / sess.sum())
        if sess.sum() > 0 else 0.0,
        "startup_s_mean": _nanmean(np.array([np.nan if s.get("startup_s") is None else s["startup_s"]
                                             for s in summaries], dtype=np.float64)),
        "switches_mean": float(np.mean([s["switches"] for s in summaries])),
        "complete": int(sum(bool(s.get("complete", True)) for s in summaries)),
        "series": {
            "t_s": edges[:-1].tolist(), "step_s": step,
            "bitrate_bps": [_plain(row) for row in b],
            "active": n_active.tolist(), "capacity_bps": cap_bps.tolist(),
            "jain": _plain(jt), "unfairness": _plain(unf_t), "inefficiency": _plain(ineff),
            "instability": _plain(_column_mean(inst)),
            "utilisation": _plain(util), "player_share": _plain(pshare),
        },
    }
    out.update(outcome.extra)
    return out


def _weighted_miss(total_bps: np.ndarray, w_bps: np.ndarray, players: np.ndarray) -> float:
    on = (players > 0) & (w_bps > 0)
    return float(np.abs(total_bps[on] - w_bps[on]).sum() / w_bps[on].sum()) if on.any() else math.nan


def _column_mean(a: np.ndarray) -> np.ndarray:
    """Mean down each column ignoring NaN; NaN for a column with none."""
    ok = np.isfinite(a)
    n = ok.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, np.where(ok, a, 0.0).sum(axis=0) / np.maximum(n, 1), np.nan)


def _nanmean(v: np.ndarray) -> float:
    v = np.asarray(v, dtype=np.float64)
    v = v[np.isfinite(v)]
    return float(v.mean()) if v.size else math.nan


def _plain(v: np.ndarray) -> list:
    return [None if not math.isfinite(x) else float(x) for x in np.asarray(v, dtype=np.float64).tolist()]


def rung_agreement(a: Sequence[Sequence[int]], b: Sequence[Sequence[int]]) -> tuple[float, list[float]]:
    """How often two runs of the same clients chose the same rung: over all segments both
    have (client by client, the shorter run's length), and per client."""
    same = total = 0
    per = []
    for x, y in zip(a, b):
        n = min(len(x), len(y))
        hit = int(np.sum(np.asarray(x[:n]) == np.asarray(y[:n]))) if n else 0
        same += hit
        total += n
        per.append(hit / n if n else math.nan)
    return (same / total if total else math.nan), per
