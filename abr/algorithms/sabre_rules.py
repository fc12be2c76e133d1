"""Sabre's ABR rules as Sabre runs them, vectorised over sessions (numpy only).

Sabre (Spiteri, Sitaraman and Sparacio, "From Theory to Practice: Improving Bitrate
Adaptation in the DASH Reference Player", MMSys 2018 / ACM TOMM 2019; the simulator
github.com/UMass-LIDS/sabre, `src/sabre.py`) ships its own versions of BOLA, BOLA-E, the
throughput rule and two hybrids. They differ from the papers' pseudo-code and from
dash.js in details that move results by tens of percent, so they live here as Sabre
writes them, each piece a small class whose per-session state is an array indexed by
session id:

* `SabreEstimate`: Sabre's `Ewma` — throughput and latency each averaged over several
  half-lives (3 s and 8 s by default); throughput samples are weighted by their transfer
  time, latency samples by one sample each with the half-life counted in segments;
  the zero-start correction; the smallest throughput and the largest latency win.
* `quality_from_throughput`: the highest rung whose segment, after the estimated
  latency, downloads within one segment duration at the given throughput.
* `BolaRule`: Sabre's `Bola`. Unless `basic`, the buffer target shrinks near both ends
  of the video to max(min(k, N − k) / 2, 3) segments; a buffer-based step up beyond the
  throughput rung is held to the previous rung, or to the throughput rung + 1 (BOLA-U)
  or to the throughput rung with a delay (BOLA-O, `osc`). Its abandonment rule.
* `BolaERule`: Sabre's `BolaEnh`: the placeholder buffer, its start-up by throughput,
  its own insufficient-buffer rule and abandonment rule.
* `ThroughputRule`: Sabre's `ThroughputRule`: safety 0.9, the insufficient-buffer rule
  (safety 0.9 shrinking ×0.9 per decision to 0.5), abandonment after 0.5 s when the
  projected download exceeds 1.8 segment durations.

Units: inside these classes, Sabre's own — milliseconds, kbit/s (= bits per ms) and bits —
and Sabre's order of operations, because BOLA-E sets its placeholder to exactly the level
where two rungs tie, and which of them wins then depends on the last bit of the arithmetic.
The policies (abr/algorithms/sabre.py) convert from seconds, bits per second and bytes at
their edges (`to_ms`, `to_kbps`).
"""
from __future__ import annotations

import math

import numpy as np

from abr.algorithms._common import masked_argmax

#: BolaEnh's constants (sabre.py `BolaEnh`): BOLA prefers the lowest rung below 10 s of
#: buffer, and its buffer time is at least 10 s + 2 s per rung (in ms, as Sabre).
MINIMUM_BUFFER_MS = 10000.0
MINIMUM_BUFFER_PER_LEVEL_MS = 2000.0
#: The insufficient-buffer rule's safety: 0.9 at first, ×0.9 per decision, never below 0.5.
IBR_SAFETY_INIT = 0.9
IBR_SAFETY_MIN = 0.5
#: ThroughputRule's safety factor and its abandonment thresholds.
THROUGHPUT_SAFETY = 0.9
ABANDON_MULTIPLIER = 1.8
ABANDON_GRACE_MS = 500.0
#: Sabre's progress checks fall on sums of latency and whole check steps, which land exactly
#: on the grace time when the numbers are round (100 ms + 7 × 12000 bits / 210 kbit/s); our
#: times, summed in other units and order, may come out a rounding error short of it.
GRACE_TOLERANCE_MS = 1e-6


def to_ms(seconds):
    """Seconds → Sabre's milliseconds."""
    return np.asarray(seconds, dtype=np.float64) * 1000.0


def to_kbps(bps):
    """Bits per second → Sabre's kbit/s (bits per ms)."""
    return np.asarray(bps, dtype=np.float64) / 1000.0


def utilities(bitrates_kbps: np.ndarray, plus: float) -> np.ndarray:
    """ln(b) − ln(b_0) + `plus`, computed as Sabre does: ln(b) + (plus − ln(b_0))."""
    offset = plus - math.log(float(bitrates_kbps[0]))
    return np.array([math.log(float(b)) + offset for b in bitrates_kbps])


def leading_true(ok: np.ndarray, axis: int = 1) -> np.ndarray:
    """How many leading entries of each row (`axis` 1) or column (`axis` 0) are True:
    Sabre's `while ... q += 1` scans. The rules lay rungs along axis 0 (rungs × sessions),
    so that numpy's loops run over the sessions rather than over a few rungs."""
    if ok.shape[axis] == 0:
        return np.zeros(ok.shape[1 - axis], dtype=np.int64)
    return np.cumprod(ok, axis=axis).sum(axis=axis).astype(np.int64)


def quality_from_throughput(tput_kbps: np.ndarray, latency_ms: np.ndarray, segment_ms: float,
                            bitrates_kbps: np.ndarray) -> np.ndarray:
    """sabre.py `Abr.quality_from_throughput`: step up from rung 0 while the next rung's
    segment, after the latency, downloads within one segment duration."""
    t = np.asarray(tput_kbps, dtype=np.float64)[None, :]
    lat = np.asarray(latency_ms, dtype=np.float64)[None, :]
    with np.errstate(divide="ignore", invalid="ignore"):    # rungs × sessions
        ok = lat + segment_ms * bitrates_kbps[1:, None] / t <= segment_ms
    return leading_true(ok, axis=0)


def fitting_rung(safe_bits: np.ndarray, segment_ms: float, bitrates_kbps: np.ndarray) -> np.ndarray:
    """The insufficient-buffer cap: step up while the next rung's whole segment fits in
    `safe_bits` (rung 0 when even rung 1 does not)."""
    ok = ~(bitrates_kbps[1:, None] * segment_ms > np.asarray(safe_bits, dtype=np.float64)[None, :])
    return leading_true(ok, axis=0)


def bola_scores(Vp: np.ndarray, gp: np.ndarray, utilities: np.ndarray, level_ms: np.ndarray,
                bitrates_kbps: np.ndarray) -> np.ndarray:
    """BOLA's objective per rung, (Vp · (υ_m + γp) − level) / bitrate_m, rows × rungs."""
    return (Vp[:, None] * (utilities[None, :] + gp[:, None]) - level_ms[:, None]) / bitrates_kbps[None, :]


def bola_choice(Vp: np.ndarray, gp: float, utilities: np.ndarray, level_ms: np.ndarray, bitrates_kbps: np.ndarray,
                mask: np.ndarray) -> np.ndarray:
    """`masked_argmax(bola_scores(...), mask)` for one γp, computed rungs × sessions: each
    rung's scores in one pass over the sessions, the first best kept (ties to the lowest
    rung, as argmax); NaN scores go to `masked_argmax` itself."""
    R = bitrates_kbps.size
    score = (Vp[None, :] * (utilities[:, None] + gp) - level_ms[None, :]) / bitrates_kbps[:, None]
    if not mask.all():
        score = np.where(mask.T, score, -np.inf)
    if np.isnan(score).any():
        return masked_argmax(score.T, np.ones((score.shape[1], R), dtype=bool))
    best = score[0].copy()
    q = np.zeros(score.shape[1], dtype=np.int64)
    for j in range(1, R):
        better = score[j] > best
        q[better] = j
        np.maximum(best, score[j], out=best)
    return q


def abandon_choice(score: np.ndarray, other_score: np.ndarray, candidate: np.ndarray) -> np.ndarray:
    """Sabre's abandonment scan: over the lower rungs in order, the first with the best
    score above the current download's; -1 when none beats it."""
    cs = np.where(candidate, other_score, -np.inf)
    j = np.argmax(cs, axis=1)
    best = cs[np.arange(cs.shape[0]), j]
    return np.where(best > score, j, -1).astype(np.int64)


def _column_extreme(ufunc: np.ufunc, x: np.ndarray) -> np.ndarray:
    """`ufunc.reduce(x, axis=0)` over the half-lives: for the usual two one elementwise call
    (the same pairs, the same answer)."""
    if x.shape[0] == 2:
        return ufunc(x[0], x[1])
    return ufunc.reduce(x, axis=0)


class SabreEstimate:
    """sabre.py `Ewma`: per half-life h, throughput EWMA weighted by transfer time and
    latency EWMA weighted per sample (half-life h / segment duration samples); each read
    undoes the zero start; the estimate is the minimum throughput and maximum latency.
    Transfer times and latencies in ms, throughput in kbit/s."""

    def __init__(self, n: int, half_lives_ms: tuple[float, ...], segment_ms: float) -> None:
        hl = np.asarray(half_lives_ms, dtype=np.float64)
        if hl.size == 0 or np.any(hl <= 0):
            raise ValueError("Sabre EWMA half-lives must be positive")
        self.hl = hl
        self.lat_hl = hl / float(segment_ms)
        # half-life × session: numpy's loops run over the sessions
        self.tput = np.zeros((hl.size, n))
        self.lat = np.zeros((hl.size, n))
        self.lat_keep = np.power(0.5, 1.0 / self.lat_hl)[:, None]
        self.weight_ms = np.zeros(n)
        self.samples = np.zeros(n)

    def push(self, s: np.ndarray, transfer_ms: np.ndarray, tput_kbps: np.ndarray, latency_ms: np.ndarray) -> None:
        a = np.power(0.5, transfer_ms[None, :] / self.hl[:, None])
        self.tput[:, s] = a * self.tput[:, s] + (1.0 - a) * tput_kbps[None, :]
        al = self.lat_keep
        self.lat[:, s] = al * self.lat[:, s] + (1.0 - al) * latency_ms[None, :]
        self.weight_ms[s] += transfer_ms
        self.samples[s] += 1

    def estimate(self, s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(throughput kbit/s, latency ms) per row; NaN for a session without a sample."""
        with np.errstate(divide="ignore", invalid="ignore"):
            zt = 1.0 - np.power(0.5, self.weight_ms[s][None, :] / self.hl[:, None])
            zl = 1.0 - np.power(0.5, self.samples[s][None, :] / self.lat_hl[:, None])
            t = _column_extreme(np.minimum, self.tput[:, s] / zt)
            lat = _column_extreme(np.maximum, self.lat[:, s] / zl)
        none = self.samples[s] == 0
        return np.where(none, np.nan, t), np.where(none, np.nan, lat)


class ThroughputRule:
    """sabre.py `ThroughputRule`, per session (ms, kbit/s, bits)."""

    def __init__(self, n: int, bitrates_kbps: np.ndarray, segment_ms: float, ibr: bool) -> None:
        self.b = bitrates_kbps
        self.p = float(segment_ms)
        self.ibr = bool(ibr)
        self.ibr_safety = np.full(n, IBR_SAFETY_INIT)

    def decide(self, s: np.ndarray, level: np.ndarray, tput: np.ndarray, lat: np.ndarray) -> np.ndarray:
        q = quality_from_throughput(tput * THROUGHPUT_SAFETY, lat, self.p, self.b)
        if self.ibr:
            safe = self.ibr_safety[s] * (level - lat) * tput
            self.ibr_safety[s] = np.maximum(self.ibr_safety[s] * IBR_SAFETY_INIT, IBR_SAFETY_MIN)
            q = np.minimum(q, fitting_rung(safe, self.p, self.b))
        return q

    def check_abandon(self, rung: np.ndarray, done: np.ndarray, size: np.ndarray, elapsed: np.ndarray,
                      ttfb: np.ndarray, lat_est: np.ndarray) -> np.ndarray:
        """After 0.5 s, if the download's own rate projects past 1.8 segment durations: the
        throughput rung at 0.9 × that rate, when lower and its segment smaller than what is
        left (bits done and in all, ms elapsed and to the first byte)."""
        out = np.full(rung.size, -1, dtype=np.int64)
        live = elapsed >= ABANDON_GRACE_MS - GRACE_TOLERANCE_MS
        if not live.any():
            return out
        dl = elapsed - ttfb
        left = size - done
        live &= (dl > 0) & (done > 0) & (left > 0)
        with np.errstate(divide="ignore", invalid="ignore"):
            rate = done / dl
            projected = elapsed + left / rate
        r = np.flatnonzero(live & (projected > ABANDON_MULTIPLIER * self.p))   # the slow downloads
        if r.size == 0:
            return out
        q = quality_from_throughput(rate[r] * THROUGHPUT_SAFETY, lat_est[r], self.p, self.b)
        est_size = size[r] * self.b[q] / self.b[rung[r]]
        out[r] = np.where((q < rung[r]) & (est_size < left[r]), q, -1)
        return out


class BolaRule:
    """sabre.py `Bola` (BOLA-U by default; `osc`: BOLA-O; `basic`: the fixed buffer target),
    per session (ms, kbit/s, bits)."""

    def __init__(self, n: int, bitrates_kbps: np.ndarray, segment_ms: float, gp: float,
                 basic: bool, osc: bool) -> None:
        self.b = bitrates_kbps
        self.u = utilities(bitrates_kbps, 0.0)
        self.p = float(segment_ms)
        self.gp = float(gp)
        self.basic = bool(basic)
        self.osc = bool(osc)
        self.last = np.zeros(n, dtype=np.int64)
        self.Vp = np.full(n, np.nan)
        self.target = np.full(n, np.nan)

    def target_ms(self, buffer_size: np.ndarray, k: np.ndarray, n_segments: np.ndarray) -> np.ndarray:
        """The buffer target: the configured size, or (unless `basic`) max(min(k, N − k) / 2, 3)
        segments when that is smaller (Sabre counts k from the last seek, here 0)."""
        if self.basic:
            return buffer_size
        t = np.maximum(np.minimum(k, n_segments - k) / 2.0, 3.0) * self.p
        return np.minimum(buffer_size, t)

    def decide(self, s: np.ndarray, level: np.ndarray, target: np.ndarray, tput: np.ndarray,
               lat: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        Vp = (target - self.p) / (self.u[-1] + self.gp)
        self.Vp[s] = Vp
        self.target[s] = target
        q = bola_choice(Vp, self.gp, self.u, level, self.b, mask)
        last = self.last[s]
        delay = np.zeros(level.size)
        qt = quality_from_throughput(tput, lat, self.p, self.b)
        up = (q > last) & (q > qt)
        hold = up & (last > qt)
        q = np.where(hold, last, q)
        cap = up & ~hold
        if self.osc:
            q = np.where(cap, qt, q)
            wanted = np.maximum(0.0, level - Vp * (self.gp + self.u[qt]))
            delay = np.where(cap & (qt < self.b.size - 1), wanted, 0.0)
        else:
            q = np.where(cap, qt + 1, q)
        self.last[s] = q
        return q, delay

    def check_abandon(self, s: np.ndarray, rung: np.ndarray, done: np.ndarray, size: np.ndarray,
                      level: np.ndarray) -> np.ndarray:
        out = np.full(s.size, -1, dtype=np.int64)
        if self.basic:
            return out
        remain = size - done
        Vp = self.Vp[s]
        # only a download above rung 0 with something left can be abandoned: the rest answer -1
        # without their (offers × rungs) arithmetic (each offer's values are the same either way)
        r = np.flatnonzero((done > 0) & (remain > 0) & np.isfinite(Vp) & (rung > 0))
        if r.size == 0:
            return out
        Vp, rung, remain, level = Vp[r], rung[r], remain[r], level[r]
        with np.errstate(divide="ignore", invalid="ignore"):
            score = (Vp * (self.gp + self.u[rung]) - level) / remain
            other = size[r, None] * self.b[None, :] / self.b[rung][:, None]
            other_score = (Vp[:, None] * (self.gp + self.u[None, :]) - level[:, None]) / other
        lower = np.arange(self.b.size)[None, :] < rung[:, None]
        out[r] = abandon_choice(score, other_score, lower & (other < remain[:, None]) & (score >= 0)[:, None])
        return out

    def report_abandon(self, s: np.ndarray, to: np.ndarray) -> None:
        """Sabre's Bola remembers the rung it abandoned to as its last quality."""
        self.last[s] = to


class BolaERule:
    """sabre.py `BolaEnh`, per session (ms, kbit/s, bits): utilities ln(b) − ln(b_0) + 1, the
    placeholder buffer, start-up by throughput, BOLA-U (or BOLA-O with `osc`), the delay when
    the buffer and placeholder exceed the rung's level, the insufficient-buffer rule (unless
    `ibr` is off, which also switches to BOLA-BASIC's parameters with γp − 1)."""

    def __init__(self, n: int, bitrates_kbps: np.ndarray, segment_ms: float, gp: float, osc: bool,
                 ibr: bool) -> None:
        b = bitrates_kbps
        self.b = b
        self.u = utilities(b, 1.0)
        self.p = float(segment_ms)
        self.gp_basic = float(gp) - 1.0
        self.osc = bool(osc)
        self.ibr = bool(ibr)
        self.steady = np.zeros(n, dtype=bool)
        self.placeholder = np.zeros(n)
        self.last = np.zeros(n, dtype=np.int64)
        self.ibr_safety = np.full(n, IBR_SAFETY_INIT)
        self.Vp = np.full(n, np.nan)
        self.gpv = np.full(n, np.nan)

    def set_params(self, s: np.ndarray, buffer_size: np.ndarray) -> None:
        """Vp and γp from the buffer size (ms), as BolaEnh's constructor computes them."""
        if self.b.size < 2:  # one rung: nothing to choose (Sabre would divide by zero)
            self.Vp[s], self.gpv[s] = 0.0, 0.0
        elif not self.ibr:
            self.gpv[s] = self.gp_basic
            self.Vp[s] = (buffer_size - self.p) / (self.u[-1] + self.gp_basic)
        else:
            buf = np.maximum(MINIMUM_BUFFER_MS + MINIMUM_BUFFER_PER_LEVEL_MS * self.b.size, buffer_size)
            gp = (self.u[-1] - 1.0) / (buf / MINIMUM_BUFFER_MS - 1.0)
            self.gpv[s] = gp
            self.Vp[s] = MINIMUM_BUFFER_MS / gp

    def min_level(self, s: np.ndarray, q: np.ndarray) -> np.ndarray:
        """BolaEnh.min_buffer_for_quality: the largest level at which a lower rung still ties
        with `q`, over the lower rungs (0 for rung 0)."""
        b, u = self.b, self.u
        Vp, gp = self.Vp[s], self.gpv[s]
        level = np.zeros(s.size)
        for i in range(int(np.max(q, initial=0))):
            act = i < q
            bq, uq = b[q], u[q]
            with np.errstate(divide="ignore", invalid="ignore"):
                lv = Vp * (gp + (bq * u[i] - b[i] * uq) / (bq - b[i]))
            level = np.where(act & (u[i] < uq), np.maximum(level, lv), level)
        return level

    def max_level(self, s: np.ndarray, q: np.ndarray) -> np.ndarray:
        return self.Vp[s] * (self.u[q] + self.gpv[s])

    def decide(self, s: np.ndarray, level: np.ndarray, tput: np.ndarray, lat: np.ndarray,
               mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        q = np.zeros(s.size, dtype=np.int64)
        delay = np.zeros(s.size)
        qt = quality_from_throughput(tput, lat, self.p, self.b)
        start = ~self.steady[s]
        if start.any():  # the first decision: by throughput, with a placeholder BOLA agrees with
            ss = s[start]
            self.steady[ss] = True
            self.ibr_safety[ss] = IBR_SAFETY_INIT
            q[start] = qt[start]
            self.placeholder[ss] = np.maximum(0.0, self.min_level(ss, qt[start]) - level[start])
        st = ~start
        if st.any():
            ss, lv, t, lt = s[st], level[st], tput[st], lat[st]
            ph = self.placeholder[ss]
            qq = masked_argmax(bola_scores(self.Vp[ss], self.gpv[ss], self.u, lv + ph, self.b), mask[st])
            last, qts = self.last[ss], qt[st]
            up = (qq > last) & (qq > qts)
            qq = np.where(up, np.maximum(last, qts) + (0 if self.osc else 1), qq)
            d = lv + ph - self.max_level(ss, qq)
            within = (d > 0) & (d <= ph)             # the placeholder absorbs the excess
            over = (d > 0) & ~within                 # ... and the rest is a delay
            ph, d = np.where(within, ph - d, np.where(over, 0.0, ph)), np.where(over, d - ph, 0.0)
            d = np.where(qq == self.b.size - 1, 0.0, d)
            if self.ibr:
                safe = self.ibr_safety[ss] * (lv - lt) * t
                self.ibr_safety[ss] = np.maximum(self.ibr_safety[ss] * IBR_SAFETY_INIT, IBR_SAFETY_MIN)
                cap = fitting_rung(safe, self.p, self.b)
                low = cap < qq
                qq = np.where(low, cap, qq)
                d = np.where(low, 0.0, d)
                ph = np.where(low, np.minimum(ph, np.maximum(0.0, self.min_level(ss, cap) - lv)), ph)
            self.placeholder[ss] = ph
            q[st] = qq
            delay[st] = d
        return q, delay

    def report_delay(self, s: np.ndarray, wait: np.ndarray) -> None:
        """The session waited for room in the buffer: the placeholder grows by that wait."""
        self.placeholder[s] += wait

    def report_download(self, s: np.ndarray, rung: np.ndarray, time: np.ndarray, level: np.ndarray) -> None:
        """A segment arrived (`level`: the buffer with it): the placeholder is kept between
        what the rung's minimum and maximum levels allow at the download's start."""
        self.last[s] = rung
        was = level + time
        ph = np.minimum(self.placeholder[s], np.maximum(0.0, self.max_level(s, rung) - was))
        ph = np.where(level > 0, np.maximum(ph, self.min_level(s, rung) - was), ph)
        self.placeholder[s] = ph

    def report_abandon(self, s: np.ndarray, rung: np.ndarray, to: np.ndarray, level: np.ndarray) -> None:
        """A download at `rung` was abandoned for `to`: the placeholder shrinks to what `to`
        needs (10 s for rung 0)."""
        self.last[s] = rung
        want = np.where(to > 0, self.min_level(s, to), MINIMUM_BUFFER_MS)
        self.placeholder[s] = np.minimum(self.placeholder[s], np.maximum(0.0, want - level))

    def check_abandon(self, s: np.ndarray, rung: np.ndarray, done: np.ndarray, size: np.ndarray,
                      elapsed: np.ndarray, ttfb: np.ndarray, level: np.ndarray) -> np.ndarray:
        """BolaEnh.check_abandon: compare the rest of this download, less what a new request's
        latency would bring, with each lower rung's whole segment, after that latency."""
        out = np.full(s.size, -1, dtype=np.int64)
        remain = size - done
        Vp = self.Vp[s]
        with np.errstate(divide="ignore", invalid="ignore"):
            sz = remain - ttfb * (done / (elapsed - ttfb))
        # as in BolaRule.check_abandon: the (offers × rungs) arithmetic only where it can abandon
        r = np.flatnonzero((done > 0) & (remain > 0) & (sz > 0) & np.isfinite(Vp) & (rung > 0))
        if r.size == 0:
            return out
        s, rung, Vp, sz = s[r], rung[r], Vp[r], sz[r]
        bl = np.maximum(0.0, level[r] + self.placeholder[s] - ttfb[r])
        gp = self.gpv[s]
        with np.errstate(divide="ignore", invalid="ignore"):
            score = (Vp * (gp + self.u[rung]) - bl) / sz
            other = size[r, None] * self.b[None, :] / self.b[rung][:, None]
            other_score = (Vp[:, None] * (gp[:, None] + self.u[None, :]) - bl[:, None]) / other
        lower = np.arange(self.b.size)[None, :] < rung[:, None]
        out[r] = abandon_choice(score, other_score, lower & (other < sz[:, None]))
        return out
