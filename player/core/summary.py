"""The one session summary: metrics of many sessions at once, as arrays.

`simulate`, `play` and `interop` all summarise a session with `session_metrics` (n rows, or
one), so every report computes switches, time-average bitrate and QoE the same way. The
sweep writes these arrays as CSV columns without a per-session dict.

Metrics, per session (only the segments that arrived count; a session ended early says so
with `complete` False and is measured over what was played):

- `avg_bitrate_bps`: the mean nominal bitrate of the segments;
- `time_avg_bitrate_bps`: played bitrate × duration over the time from startup to the end,
  stalls included (as Sabre reports it); for an incomplete session only the media played;
- `utility`: the mean ln(R/R_min);
- `rebuffer_s`, `rebuffer_count`, `rebuffer_ratio` (stall time over session time),
  `startup_s`;
- `switches` and their mean magnitude `switch_magnitude_bps`;
- `bytes` (media delivered, abandoned attempts excluded), `wasted_bytes`, `abandons`;
- QoE under every model (`player.core.qoe`), each with its components;
- live sessions (`player.core.live`): `latency_mean_s` (time-weighted while playing),
  `latency_max_s`, `latency_end_s`, `target_latency_s`, `playback_rate_mean` (over the time
  media played), `rate_changes`, `seeks`, `skipped_s` (`LIVE_METRICS`; the twitch QoE reads
  each segment's latency and rate).

Units: seconds, bits per second, bytes.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from player.core import qoe as qoe_mod

#: the per-session metric columns, in the order reports show them
METRICS = ("segments", "avg_bitrate_bps", "time_avg_bitrate_bps", "utility", "rebuffer_s", "rebuffer_count",
           "rebuffer_ratio", "startup_s", "switches", "switch_magnitude_bps", "bytes", "wasted_bytes", "abandons",
           "session_s")
QOE_PARTS = ("total", "utility", "rebuffer_penalty", "smoothness_penalty", "latency_penalty", "speed_penalty")
#: the live metrics a live session's summary adds (`player.core.live.LiveRows.metrics`)
LIVE_METRICS = ("latency_mean_s", "latency_max_s", "latency_end_s", "target_latency_s", "playback_rate_mean",
                "rate_changes", "seeks", "skipped_s")


#: VoD rows summarised at a time: every metric is a row's own, so blocks give the same numbers,
#: and a block's temporaries (1,024 × 199 segments: 1.6 MB each) stay in cache and are reused
#: instead of page-faulting a fresh 8 MB array per temporary at 5,000 rows
METRIC_BLOCK_ROWS = 1024


def session_metrics(chosen: np.ndarray, rebuffer_s: np.ndarray, durations_s: np.ndarray, bitrates_bps: np.ndarray,
                    *, startup_s: np.ndarray, session_s: np.ndarray, stall_count: np.ndarray,
                    bytes_: np.ndarray, wasted_bytes: np.ndarray | None = None, abandons: np.ndarray | None = None,
                    heights: np.ndarray | None = None, qoe_skip_first: bool = False,
                    segments: np.ndarray | None = None, played_s: np.ndarray | None = None,
                    live_latency_s: np.ndarray | None = None, playback_rate: np.ndarray | None = None,
                    live: dict[str, np.ndarray] | None = None) -> dict[str, np.ndarray]:
    """Metrics of n sessions over the same content (see `_session_metrics`); VoD rows in
    blocks of `METRIC_BLOCK_ROWS`."""
    n = np.shape(chosen)[0] if np.ndim(chosen) == 2 else 1
    if (n <= METRIC_BLOCK_ROWS or segments is not None or played_s is not None or live_latency_s is not None
            or playback_rate is not None or live is not None):
        return _session_metrics(chosen, rebuffer_s, durations_s, bitrates_bps, startup_s=startup_s,
                                session_s=session_s, stall_count=stall_count, bytes_=bytes_,
                                wasted_bytes=wasted_bytes, abandons=abandons, heights=heights,
                                qoe_skip_first=qoe_skip_first, segments=segments, played_s=played_s,
                                live_latency_s=live_latency_s, playback_rate=playback_rate, live=live)

    def rows(x, a: int, b: int):
        return None if x is None else np.broadcast_to(np.asarray(x), (n,))[a:b]

    parts = [_session_metrics(chosen[a:a + METRIC_BLOCK_ROWS], rebuffer_s[a:a + METRIC_BLOCK_ROWS], durations_s,
                              bitrates_bps, startup_s=rows(startup_s, a, a + METRIC_BLOCK_ROWS),
                              session_s=rows(session_s, a, a + METRIC_BLOCK_ROWS),
                              stall_count=rows(stall_count, a, a + METRIC_BLOCK_ROWS),
                              bytes_=rows(bytes_, a, a + METRIC_BLOCK_ROWS),
                              wasted_bytes=rows(wasted_bytes, a, a + METRIC_BLOCK_ROWS),
                              abandons=rows(abandons, a, a + METRIC_BLOCK_ROWS), heights=heights,
                              qoe_skip_first=qoe_skip_first)
             for a in range(0, n, METRIC_BLOCK_ROWS)]
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def _session_metrics(chosen: np.ndarray, rebuffer_s: np.ndarray, durations_s: np.ndarray, bitrates_bps: np.ndarray,
                     *, startup_s: np.ndarray, session_s: np.ndarray, stall_count: np.ndarray,
                     bytes_: np.ndarray, wasted_bytes: np.ndarray | None = None, abandons: np.ndarray | None = None,
                     heights: np.ndarray | None = None, qoe_skip_first: bool = False,
                     segments: np.ndarray | None = None, played_s: np.ndarray | None = None,
                     live_latency_s: np.ndarray | None = None, playback_rate: np.ndarray | None = None,
                     live: dict[str, np.ndarray] | None = None) -> dict[str, np.ndarray]:
    """Metrics of n sessions over the same content.

    `chosen` and `rebuffer_s` are (n, K): rung and stall time per segment. `segments` (n,)
    says how many of the K segments each session got (default: all); columns past it are
    ignored. `played_s` (n,) is the media each session played; given (for sessions that
    ended early), the time-average bitrate weighs only the media played. Live sessions give
    `live_latency_s` and `playback_rate` (n, K: each segment's, for the twitch QoE) and `live`
    (their `LIVE_METRICS`, copied in). Returns arrays of length n under
    the names of `METRICS`, and per QoE model `qoe_<model>` and `qoe_<model>_<part>`
    (plus `qoe_segments`, the segments each QoE sums over).
    """
    chosen = np.atleast_2d(np.asarray(chosen, dtype=np.int64))
    rebuffer_s = np.atleast_2d(np.asarray(rebuffer_s, dtype=np.float64))
    n, K = chosen.shape
    bitrates_bps = np.asarray(bitrates_bps, dtype=np.float64)
    durs = np.asarray(durations_s, dtype=np.float64)[:K]
    session_s = np.asarray(session_s, dtype=np.float64)
    startup_s = np.asarray(startup_s, dtype=np.float64)
    full = segments is None or bool(np.all(np.asarray(segments) >= K))
    if full:
        count = np.full(n, K, dtype=np.int64)
        valid = None
    else:
        count = np.minimum(np.asarray(segments, dtype=np.int64), K)
        valid = np.arange(K)[None, :] < count[:, None]
        chosen = np.where(valid, chosen, 0)
        rebuffer_s = np.where(valid, rebuffer_s, 0.0)
    br = bitrates_bps[chosen]
    log_u = np.log(br / bitrates_bps[0])
    jumps = np.abs(np.diff(br, axis=1))
    changed = np.diff(chosen, axis=1) != 0
    if valid is not None:
        br = br * valid
        log_u = log_u * valid
        jumps = jumps * valid[:, 1:]
        changed = changed & valid[:, 1:]
    safe = np.maximum(count, 1)
    avg = br.sum(axis=1) / safe if valid is not None else br.mean(axis=1)
    utility = log_u.sum(axis=1) / safe if valid is not None else log_u.mean(axis=1)
    weights = np.broadcast_to(durs, (n, K))
    if played_s is not None:
        starts = np.concatenate([[0.0], np.cumsum(durs)[:-1]])
        weights = np.clip(np.asarray(played_s, dtype=np.float64)[:, None] - starts[None, :], 0.0, durs[None, :])
    play_time = session_s - np.where(np.isfinite(startup_s), startup_s, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        time_avg = np.where(play_time > 0, (br * weights).sum(axis=1) / np.where(play_time > 0, play_time, 1.0), avg)
        stall_total = rebuffer_s.sum(axis=1)
        switches = np.count_nonzero(changed, axis=1)
        magnitude = np.where(switches > 0, jumps.sum(axis=1) / np.maximum(switches, 1), 0.0)
        ratio = np.where(session_s > 0, stall_total / np.where(session_s > 0, session_s, 1.0), 0.0)
    empty = count == 0
    out: dict[str, np.ndarray] = {
        "segments": count,
        "avg_bitrate_bps": np.where(empty, 0.0, avg),
        "time_avg_bitrate_bps": np.where(empty, 0.0, time_avg),
        "utility": np.where(empty, 0.0, utility),
        "rebuffer_s": stall_total,
        "rebuffer_count": np.asarray(stall_count, dtype=np.int64),
        "rebuffer_ratio": ratio,
        "startup_s": startup_s,
        "switches": switches.astype(np.int64),
        "switch_magnitude_bps": magnitude,
        "bytes": np.asarray(bytes_, dtype=np.int64),
        "wasted_bytes": np.zeros(n, dtype=np.int64) if wasted_bytes is None else np.asarray(wasted_bytes, np.int64),
        "abandons": np.zeros(n, dtype=np.int64) if abandons is None else np.asarray(abandons, dtype=np.int64),
        "session_s": session_s,
    }
    scored = valid
    if qoe_skip_first:
        scored = np.ones((n, K), dtype=bool) if valid is None else valid.copy()
        scored[:, 0] = False
    out["qoe_segments"] = np.maximum(count - 1, 0) if qoe_skip_first else count
    if live is not None:
        out.update({k: np.asarray(live[k]) for k in LIVE_METRICS})
    for model in qoe_mod.MODELS:
        parts = qoe_mod.score(model, chosen, rebuffer_s, bitrates_bps, heights, qoe_skip_first, valid=valid,
                              durations_s=durs, latency_s=live_latency_s, playback_rate=playback_rate)
        out[f"qoe_{model}"] = parts[:, 0]
        for j, name in enumerate(QOE_PARTS[1:], start=1):
            out[f"qoe_{model}_{name}"] = parts[:, j]
    return out


def row_summary(metrics: dict[str, np.ndarray], i: int, qoe_model: str = "linear") -> dict[str, Any]:
    """Session `i` of `session_metrics`'s arrays as the summary dict reports print: the
    metrics as Python numbers, `qoe` (the chosen model with its components) and `qoe_all`."""
    out: dict[str, Any] = {k: metrics[k][i].item() for k in METRICS}
    out.update({k: metrics[k][i].item() for k in LIVE_METRICS if k in metrics})
    n_scored = int(metrics["qoe_segments"][i])
    qoe_all = {m: qoe_mod.QoE(m, segments=n_scored, **{p: float(metrics[f"qoe_{m}" + ("" if p == "total" else f"_{p}")][i])
                                                      for p in QOE_PARTS}).as_dict() for m in qoe_mod.MODELS}
    out["qoe"] = qoe_all[qoe_model]
    out["qoe_all"] = qoe_all
    return out


def session_summary(chosen: np.ndarray, rebuffer_s: np.ndarray, durations_s: np.ndarray, bitrates_bps: np.ndarray,
                    *, startup_s: float, session_s: float, stall_count: int, bytes_: int, wasted_bytes: int = 0,
                    abandons: int = 0, heights: np.ndarray | None = None, qoe_skip_first: bool = False,
                    qoe_model: str = "linear", played_s: float | None = None, n_segments: int | None = None,
                    labels: dict[str, Any] | None = None, live_latency_s: np.ndarray | None = None,
                    playback_rate: np.ndarray | None = None, live: dict[str, Any] | None = None) -> dict[str, Any]:
    """One session's summary (a real player's, or dash.js's), by the same rules as the
    simulator's. `chosen`/`rebuffer_s` are the segments that arrived, in order;
    `n_segments` is how many the presentation has (fewer arrived: `complete` is False and
    the metrics cover what was played). `labels` (abr, trace, movie...) come first. A live
    session gives its segments' latency and rate and its `LIVE_METRICS` (`live`); its
    time-average bitrate weighs the media played."""
    ch = np.asarray(chosen, dtype=np.int64)
    got = int(ch.size)
    total = got if n_segments is None else int(n_segments)
    width = max(got, 1)
    rows_ch = np.zeros((1, width), dtype=np.int64)
    rows_rb = np.zeros((1, width))
    rows_ch[0, :got] = ch
    rows_rb[0, :got] = np.asarray(rebuffer_s, dtype=np.float64)[:got]
    durs = np.asarray(durations_s, dtype=np.float64)
    if durs.size < width:
        durs = np.concatenate([durs, np.zeros(width - durs.size)])
    per_segment = {}
    for name, values in (("live_latency_s", live_latency_s), ("playback_rate", playback_rate)):
        if values is not None:
            row = np.full((1, width), np.nan)
            row[0, :got] = np.asarray(values, dtype=np.float64)[:got]
            per_segment[name] = row
    played = None if played_s is None or (got >= total and live is None) else np.array([played_s])
    m = session_metrics(rows_ch, rows_rb, durs[:width], bitrates_bps, startup_s=np.array([startup_s]),
                        session_s=np.array([session_s]), stall_count=np.array([stall_count]),
                        bytes_=np.array([bytes_]), wasted_bytes=np.array([wasted_bytes]),
                        abandons=np.array([abandons]), heights=heights, qoe_skip_first=qoe_skip_first,
                        segments=np.array([got]) if got < width or got < total else None,
                        played_s=played, live=None if live is None else {k: np.array([v]) for k, v in live.items()},
                        **per_segment)
    out: dict[str, Any] = dict(labels or {})
    out.update(row_summary(m, 0, qoe_model))
    out["complete"] = got >= total
    out["chosen"] = ch.tolist()
    return out
