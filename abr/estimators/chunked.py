"""A throughput sample from one chunked download (CMAF low-latency, HTTP chunked transfer).

A segment requested at the live edge arrives chunk by chunk as the encoder produces it:
its transfer lasts about a segment duration whatever the link, so bytes / transfer time
measures the encoder, not the network. dash.js (github.com/Dash-Industry-Forum/dash.js,
`src/streaming/net/FetchLoader.js`, `streaming.abr.throughput.
lowLatencyDownloadTimeCalculationMode`) estimates the download time three ways, here
vectorised over rows:

* `moof` (dash.js's default, MOOF_PARSING, `_calculateThroughputByMoofMdatTimes`): each
  chunk's rate over its own transfer, from its moof's arrival to its mdat's end, so the
  idle gaps between chunks are left out; the last chunk is dropped (it often waits for
  the encoder) and chunks shorter than 1 ms are pooled until they span more than 1 ms
  (a long chunk after pending short ones discards them, as dash.js does). The throughput
  is the mean of the chunks' rates; at least two chunks besides the last are needed.
* `data` (DOWNLOADED_DATA, `calculateDownloadedTime`): over the reads carrying more than a
  quarter of the average read's bytes, the sum of the gaps between consecutive reads that
  are shorter than (last − first) / count — the reads that came back to back.
* `aast` (AAST, `AastLowLatencyThroughputModel`, dash.js 4's FetchLoader): an estimated
  download duration from the chunks that were already available when the request went
  out (fetched at link speed, before the "bleeding live edge"), made optimistic (×0.6
  when the buffer was stable over the last three segments, ×0.8 otherwise) so that a
  switch up stays possible; with a stable buffer it also asks to delay the next request
  by min(buffer / 4, 250 ms) so that a few chunks accumulate to be measured.

Where a method cannot answer (too few chunks, a zero time), dash.js falls back to the whole
request: from the request to the last byte, gaps included. The sample is then bytes × 8 /
download time, and the download time is the sample's weight in dash.js's EWMA.

Inputs (see `abr.Observation`): per row, the newest download's chunks, left-aligned and
NaN-padded: `chunk_bytes`, `chunk_start_s` and `chunk_end_s` (when the chunk's first and
last byte arrived, seconds since that request was sent — for `data` each chunk is one
read, at its end), `chunk_buffer_s` (the buffer level at each chunk's end, for `aast`) and
`segment_available_s` (how long the segment had been available when the request was sent,
for `aast`; NaN: unknown, the whole segment counts as available).

dash.js 4 compared `performance.now()` with the segment's wall-clock availability time in
AAST, so its "chunks available" test never passed; here both are on one clock.
"""
from __future__ import annotations

import numpy as np

from abr.base import Observation

#: The methods a policy's `chunk_estimator` parameter may name.
CHUNK_ESTIMATORS = ("moof", "data", "aast")

#: dash.js's 1 ms floor on a chunk's (or a pool of chunks') transfer time, in seconds.
MIN_CHUNK_TIME_S = 0.001


def _chunks(chunk_bytes: np.ndarray, *times: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(bytes as float, which chunks are real: positive bytes and finite times)."""
    b = np.asarray(chunk_bytes, dtype=np.float64)
    valid = np.isfinite(b) & (b > 0)
    for t in times:
        valid &= np.isfinite(np.asarray(t, dtype=np.float64))
    return b, valid


def _row_sum(x: np.ndarray) -> np.ndarray:
    """Sum along each row, left to right (batch-independent)."""
    return np.add.accumulate(x, axis=1)[:, -1] if x.shape[1] else np.zeros(x.shape[0])


def whole_request_time_s(chunk_bytes: np.ndarray, chunk_end_s: np.ndarray) -> np.ndarray:
    """From the request to the last byte (dash.js's fallback); NaN without chunks."""
    b, valid = _chunks(chunk_bytes, chunk_end_s)
    end = np.where(valid, np.asarray(chunk_end_s, dtype=np.float64), -np.inf)
    last = end.max(axis=1) if end.shape[1] else np.full(b.shape[0], -np.inf)
    return np.where(np.isfinite(last), last, np.nan)


def moof_throughput_bps(chunk_bytes: np.ndarray, chunk_start_s: np.ndarray,
                        chunk_end_s: np.ndarray) -> np.ndarray:
    """The mean of the chunks' own rates (the last chunk left out), bit/s; NaN where fewer
    than two chunks besides the last, or no chunk rate could be measured."""
    b, valid = _chunks(chunk_bytes, chunk_start_s, chunk_end_s)
    s = np.asarray(chunk_start_s, dtype=np.float64)
    e = np.asarray(chunk_end_s, dtype=np.float64)
    n, C = b.shape
    col = np.arange(C)
    last = np.where(valid, col, -1).max(axis=1) if C else np.full(n, -1)
    use = valid & (col[None, :] < last[:, None])
    total = np.zeros(n)            # Σ chunk rates, bit/ms
    count = np.zeros(n)
    short_start = np.full(n, np.nan)
    short_bytes = np.zeros(n)
    with np.errstate(divide="ignore", invalid="ignore"):
        for i in range(C):
            u = use[:, i]
            dt_ms = (e[:, i] - s[:, i]) * 1000.0
            long_ = u & (dt_ms > MIN_CHUNK_TIME_S * 1000.0)
            total = np.where(long_, total + 8 * b[:, i] / dt_ms, total)
            count += long_
            short_start = np.where(long_, np.nan, short_start)
            short = u & ~long_
            new = short & np.isnan(short_start)
            short_start = np.where(new, s[:, i], short_start)
            short_bytes = np.where(new, 0.0, short_bytes)
            cum_ms = (e[:, i] - short_start) * 1000.0
            short_bytes = np.where(short, short_bytes + b[:, i], short_bytes)
            done = short & (cum_ms > MIN_CHUNK_TIME_S * 1000.0)
            total = np.where(done, total + 8 * short_bytes / cum_ms, total)
            count += done
            short_start = np.where(done, np.nan, short_start)
        mean = total / count
    return np.where((use.sum(axis=1) >= 2) & (count > 0), mean * 1000.0, np.nan)


def downloaded_data_time_s(chunk_bytes: np.ndarray, chunk_end_s: np.ndarray) -> np.ndarray:
    """dash.js's downloaded-data download time: the short gaps between the substantial
    reads; NaN where fewer than two such reads or the time comes to 0."""
    b, valid = _chunks(chunk_bytes, chunk_end_s)
    n, C = b.shape
    ts = np.asarray(chunk_end_s, dtype=np.float64) * 1000.0
    k = valid.sum(axis=1)
    total = _row_sum(np.where(valid, b, 0.0))
    with np.errstate(divide="ignore", invalid="ignore"):
        kept = valid & (b > ((total / 4) / k)[:, None])
    m = kept.sum(axis=1)
    col = np.arange(C)
    pos = np.where(kept, col, -1)
    prev = np.concatenate([np.full((n, 1), -1), np.maximum.accumulate(pos, axis=1)[:, :-1]], axis=1)
    first = np.argmax(kept, axis=1)
    last = pos.max(axis=1) if C else np.full(n, -1)
    rows = np.arange(n)
    with np.errstate(divide="ignore", invalid="ignore"):
        avg = (ts[rows, np.maximum(last, 0)] - ts[rows, first]) / m
        dist = ts - np.take_along_axis(ts, np.maximum(prev, 0), axis=1)
    pair = kept & (prev >= 0)
    time_ms = _row_sum(np.where(pair & (dist < avg[:, None]), dist, 0.0))
    return np.where((m > 1) & (time_ms != 0), time_ms / 1000.0, np.nan)


class AastModel:
    """dash.js's AastLowLatencyThroughputModel per session: the last three downloads'
    representation bitrate and buffer trend (at the segment's middle and end), for the
    buffer-stability test, and the download-duration estimate for the newest one.

    dash.js's first test (a stable buffer but a fetch longer than 1.05 segment durations:
    the fetch time as it is) reads `isBufferStable` of the measurement, which nothing sets,
    so it never applies and is left out."""

    SEMI_OPTIMISTIC = 0.8
    OPTIMISTIC = 0.6
    MAX_DELAY_S = 0.25
    WINDOW = 3

    def __init__(self, n: int) -> None:
        self.bitrate = np.full((n, self.WINDOW), np.nan)
        self.buffer_start = np.full((n, self.WINDOW), np.nan)
        self.buffer_end = np.full((n, self.WINDOW), np.nan)
        self.count = np.zeros(n, dtype=np.int64)

    def stable(self, sessions: np.ndarray) -> np.ndarray:
        """isBufferSafeAndStable over each session's last three (or fewer) downloads: the
        buffer fell by less than 5 % within each, none ended below 80 % of their mean end
        level, and no bitrate was lower than the first one's."""
        present = np.arange(self.WINDOW)[None, :] >= self.WINDOW - np.minimum(self.count[sessions], self.WINDOW)[:, None]
        start, end, rate = self.buffer_start[sessions], self.buffer_end[sessions], self.bitrate[sessions]
        with np.errstate(divide="ignore", invalid="ignore"):
            mean_end = _row_sum(np.where(present, end, 0.0)) / present.sum(axis=1)
            inner = np.abs(end / start) < 0.95
            inter = end / mean_end[:, None] < 0.8
        first = np.argmax(present, axis=1)
        first_rate = rate[np.arange(sessions.size), first]
        lower = rate < first_rate[:, None]
        return ~(present & (inner | inter | lower)).any(axis=1)

    def capacity_delay_s(self, sessions: np.ndarray, buffer_s: np.ndarray) -> np.ndarray:
        """getThroughputCapacityDelayMS: min(buffer / 4, 250 ms) once three downloads showed
        a stable buffer, else 0."""
        ok = (self.count[sessions] >= self.WINDOW) & self.stable(sessions)
        quarter = np.asarray(buffer_s, dtype=np.float64) / 4
        return np.where(ok, np.where(quarter > self.MAX_DELAY_S, self.MAX_DELAY_S, quarter), 0.0)

    def download_time_s(self, sessions: np.ndarray, chunk_bytes: np.ndarray, chunk_end_s: np.ndarray,
                        chunk_buffer_s: np.ndarray, available_s: np.ndarray, segment_duration_s: float,
                        bitrate_bps: np.ndarray, ladder_bps: np.ndarray) -> np.ndarray:
        """addMeasurement then getEstimatedDownloadDurationMS for one download per row (rows
        without chunks are left alone and get NaN)."""
        b, valid = _chunks(chunk_bytes, chunk_end_s)
        n, C = b.shape
        out = np.full(n, np.nan)
        has = valid.any(axis=1)
        if not has.any():
            return out
        r = np.flatnonzero(has)
        s = np.asarray(sessions)[r]
        b, valid = b[r], valid[r]
        e = np.asarray(chunk_end_s, dtype=np.float64)[r]
        y = np.asarray(chunk_buffer_s, dtype=np.float64)[r]
        col = np.arange(C)
        k = valid.sum(axis=1)
        last_col = np.where(valid, col, -1).max(axis=1)
        fetch = np.where(valid, e, -np.inf).max(axis=1)
        seg_bytes = _row_sum(np.where(valid, b, 0.0))
        # the buffer trend: a least-squares line through (chunk end, buffer) without the first chunk
        first_col = np.argmax(valid, axis=1)
        pts = valid & (col[None, :] > first_col[:, None])
        N = pts.sum(axis=1)
        x0, y0 = np.where(pts, e, 0.0), np.where(pts, y, 0.0)
        sx, sy, sxy, sxx = _row_sum(x0), _row_sum(y0), _row_sum(x0 * y0), _row_sum(x0 * x0)
        last_rel = e[np.arange(r.size), last_col]
        with np.errstate(divide="ignore", invalid="ignore"):
            slope = (sxy - sx * sy / N) / (sxx - sx * sx / N)
            icpt = sy / N - slope * sx / N
        self.bitrate[s] = np.concatenate([self.bitrate[s][:, 1:], bitrate_bps[r][:, None]], axis=1)
        self.buffer_start[s] = np.concatenate([self.buffer_start[s][:, 1:], (slope * (last_rel / 2) + icpt)[:, None]], axis=1)
        self.buffer_end[s] = np.concatenate([self.buffer_end[s][:, 1:], (slope * last_rel + icpt)[:, None]], axis=1)
        self.count[s] += 1
        stable = self.stable(s)
        factor = np.where(stable, self.OPTIMISTIC, self.SEMI_OPTIMISTIC)
        L = float(segment_duration_s)
        avail = np.asarray(available_s, dtype=np.float64)[r]
        # the chunks fetched before the bleeding live edge: their transfer times (read to read)
        # add up within the time the segment had been available
        dur = np.diff(np.where(valid, e, np.nan), axis=1, prepend=0.0)
        cum = np.zeros(r.size)
        got = np.zeros(r.size)
        cnt = np.zeros(r.size)
        broken = np.zeros(r.size, dtype=bool)
        for i in range(C):
            u = valid[:, i] & ~broken
            brk = u & (avail < cum + dur[:, i])
            broken |= brk
            take = u & ~brk
            cum = np.where(take, cum + dur[:, i], cum)
            got = np.where(take, got + b[:, i], got)
            cnt += take
        with np.errstate(divide="ignore", invalid="ignore"):
            est = seg_bytes / (got / cum)
            i_up = np.searchsorted(ladder_bps, bitrate_bps[r], side="right")
            higher = ladder_bps[np.minimum(i_up, ladder_bps.size - 1)]
            optimistic = np.where(i_up < ladder_bps.size, factor * seg_bytes * 8 / higher, fetch * factor)
        semi = fetch * self.SEMI_OPTIMISTIC
        before_edge = (got > 0) & (cum > 0) & (cnt > k * 0.2)
        t = np.where(~stable | (L < fetch), semi,
            np.where(~(avail < L), semi,                    # the whole segment was there (or unknown)
            np.where(before_edge, np.where(fetch < est, fetch, est) * factor, optimistic)))
        out[r] = t
        return out


class ChunkedSampler:
    """What a policy's `chunk_estimator` parameter makes: the newest download's throughput
    sample from its chunk timing, by the chosen method (`sample`), and AAST's request delay
    (`delay_s`). Rows without chunk timing report `has=False` and keep the session's own
    whole-download sample."""

    def __init__(self, n: int, method: str) -> None:
        method = str(method).lower()
        if method not in CHUNK_ESTIMATORS:
            raise ValueError(f"chunk_estimator must be one of {', '.join(CHUNK_ESTIMATORS)}, got {method!r}")
        self.method = method
        self.aast = AastModel(n) if method == "aast" else None

    def sample(self, obs: Observation, ladder_bps: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(rate bit/s, download time s, has chunk timing) per row."""
        b, valid = _chunks(obs.chunk_bytes, obs.chunk_end_s)
        has = valid.any(axis=1) & (np.asarray(obs.last_rung) >= 0)
        n = obs.n
        if not has.any():
            return np.full(n, np.nan), np.full(n, np.nan), has
        total = _row_sum(np.where(valid, b, 0.0))
        whole = whole_request_time_s(obs.chunk_bytes, obs.chunk_end_s)
        with np.errstate(divide="ignore", invalid="ignore"):
            if self.method == "moof":
                thr = moof_throughput_bps(obs.chunk_bytes, obs.chunk_start_s, obs.chunk_end_s)
                t = total * 8 / thr
            elif self.method == "data":
                t = downloaded_data_time_s(obs.chunk_bytes, obs.chunk_end_s)
            else:
                s = np.asarray(obs.sessions)
                last = np.clip(np.asarray(obs.last_rung), 0, ladder_bps.size - 1)
                t = np.full(n, np.nan)
                t[has] = self.aast.download_time_s(
                    s[has], obs.chunk_bytes[has], obs.chunk_end_s[has], obs.chunk_buffer_s[has],
                    obs.segment_available_s[has], obs.segment_duration_s, ladder_bps[last[has]], ladder_bps)
            t = np.where(np.isfinite(t) & (t > 0), t, whole)   # dash.js: a falsy time -> the whole request
            rate = total * 8 / t
        return np.where(has, rate, np.nan), np.where(has, t, np.nan), has

    def delay_s(self, sessions: np.ndarray, buffer_s: np.ndarray) -> np.ndarray | None:
        """AAST's wait before the next request (None for the other methods)."""
        return None if self.aast is None else self.aast.capacity_delay_s(np.asarray(sessions), buffer_s)
