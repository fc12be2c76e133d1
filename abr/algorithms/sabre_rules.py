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

Units: seconds, bits per second, bytes (Sabre's own ms, kbit/s and bits cancel in every
comparison it makes).
"""
from __future__ import annotations

import numpy as np

from abr.algorithms._common import masked_argmax

#: BolaEnh's constants (sabre.py `BolaEnh`): BOLA prefers the lowest rung below 10 s of
#: buffer, and its buffer time is at least 10 s + 2 s per rung.
MINIMUM_BUFFER_S = 10.0
MINIMUM_BUFFER_PER_LEVEL_S = 2.0
#: The insufficient-buffer rule's safety: 0.9 at first, ×0.9 per decision, never below 0.5.
IBR_SAFETY_INIT = 0.9
IBR_SAFETY_MIN = 0.5
#: ThroughputRule's safety factor and its abandonment thresholds.
THROUGHPUT_SAFETY = 0.9
ABANDON_MULTIPLIER = 1.8
ABANDON_GRACE_S = 0.5


def leading_true(ok: np.ndarray) -> np.ndarray:
    """How many leading entries of each row are True: Sabre's `while ... q += 1` scans."""
    if ok.shape[1] == 0:
        return np.zeros(ok.shape[0], dtype=np.int64)
    return np.cumprod(ok, axis=1).sum(axis=1).astype(np.int64)


def quality_from_throughput(tput_bps: np.ndarray, latency_s: np.ndarray, segment_s: float,
                            bitrates_bps: np.ndarray) -> np.ndarray:
    """sabre.py `Abr.quality_from_throughput`: step up from rung 0 while the next rung's
    segment, after the latency, downloads within one segment duration."""
    t = np.asarray(tput_bps, dtype=np.float64)[:, None]
    lat = np.asarray(latency_s, dtype=np.float64)[:, None]
    with np.errstate(divide="ignore", invalid="ignore"):
        ok = lat + segment_s * bitrates_bps[None, 1:] / t <= segment_s
    return leading_true(ok)


def fitting_rung(safe_bits: np.ndarray, segment_s: float, bitrates_bps: np.ndarray) -> np.ndarray:
    """The insufficient-buffer cap: step up while the next rung's whole segment fits in
    `safe_bits` (rung 0 when even rung 1 does not)."""
    ok = bitrates_bps[None, 1:] * segment_s <= np.asarray(safe_bits, dtype=np.float64)[:, None]
    return leading_true(ok)


def bola_scores(Vp: np.ndarray, gp: np.ndarray, utilities: np.ndarray, level_s: np.ndarray,
                bitrates_bps: np.ndarray) -> np.ndarray:
    """BOLA's objective per rung, (Vp · (υ_m + γp) − level) / bitrate_m, rows × rungs."""
    return (Vp[:, None] * (utilities[None, :] + gp[:, None]) - level_s[:, None]) / bitrates_bps[None, :]


def abandon_choice(score: np.ndarray, other_score: np.ndarray, candidate: np.ndarray) -> np.ndarray:
    """Sabre's abandonment scan: over the lower rungs in order, the first with the best
    score above the current download's; -1 when none beats it."""
    cs = np.where(candidate, other_score, -np.inf)
    j = np.argmax(cs, axis=1)
    best = cs[np.arange(cs.shape[0]), j]
    return np.where(best > score, j, -1).astype(np.int64)


class SabreEstimate:
    """sabre.py `Ewma`: per half-life h, throughput EWMA weighted by transfer time and
    latency EWMA weighted per sample (half-life h / segment duration samples); each read
    undoes the zero start; the estimate is the minimum throughput and maximum latency."""

    def __init__(self, n: int, half_lives_s: tuple[float, ...], segment_s: float) -> None:
        hl = np.asarray(half_lives_s, dtype=np.float64)
        if hl.size == 0 or np.any(hl <= 0):
            raise ValueError("Sabre EWMA half-lives must be positive seconds")
        self.hl = hl
        self.lat_hl = hl / float(segment_s)
        self.tput = np.zeros((n, hl.size))
        self.lat = np.zeros((n, hl.size))
        self.weight_s = np.zeros(n)
        self.samples = np.zeros(n)

    def push(self, s: np.ndarray, transfer_s: np.ndarray, tput_bps: np.ndarray, latency_s: np.ndarray) -> None:
        a = np.power(0.5, transfer_s[:, None] / self.hl[None, :])
        self.tput[s] = a * self.tput[s] + (1.0 - a) * tput_bps[:, None]
        al = np.power(0.5, 1.0 / self.lat_hl)[None, :]
        self.lat[s] = al * self.lat[s] + (1.0 - al) * latency_s[:, None]
        self.weight_s[s] += transfer_s
        self.samples[s] += 1

    def estimate(self, s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(throughput, latency) per row; NaN for a session without a sample."""
        with np.errstate(divide="ignore", invalid="ignore"):
            zt = 1.0 - np.power(0.5, self.weight_s[s][:, None] / self.hl[None, :])
            zl = 1.0 - np.power(0.5, self.samples[s][:, None] / self.lat_hl[None, :])
            t = (self.tput[s] / zt).min(axis=1)
            lat = (self.lat[s] / zl).max(axis=1)
        none = self.samples[s] == 0
        return np.where(none, np.nan, t), np.where(none, np.nan, lat)


class ThroughputRule:
    """sabre.py `ThroughputRule`, per session."""

    def __init__(self, n: int, bitrates_bps: np.ndarray, segment_s: float, ibr: bool) -> None:
        self.b = bitrates_bps
        self.p = float(segment_s)
        self.ibr = bool(ibr)
        self.ibr_safety = np.full(n, IBR_SAFETY_INIT)

    def decide(self, s: np.ndarray, level_s: np.ndarray, tput: np.ndarray, lat: np.ndarray) -> np.ndarray:
        q = quality_from_throughput(tput * THROUGHPUT_SAFETY, lat, self.p, self.b)
        if self.ibr:
            safe = self.ibr_safety[s] * (level_s - lat) * tput
            self.ibr_safety[s] = np.maximum(self.ibr_safety[s] * IBR_SAFETY_INIT, IBR_SAFETY_MIN)
            q = np.minimum(q, fitting_rung(safe, self.p, self.b))
        return q

    def check_abandon(self, rung: np.ndarray, done_b: np.ndarray, total_b: np.ndarray, elapsed_s: np.ndarray,
                      ttfb_s: np.ndarray, lat_est: np.ndarray) -> np.ndarray:
        """After 0.5 s, if the download's own rate projects past 1.8 segment durations: the
        throughput rung at 0.9 × that rate, when lower and its segment smaller than what is left."""
        dl = elapsed_s - ttfb_s
        left = total_b - done_b
        live = (elapsed_s >= ABANDON_GRACE_S) & (dl > 0) & (done_b > 0) & (left > 0)
        with np.errstate(divide="ignore", invalid="ignore"):
            rate = done_b / dl                   # bytes per second
            projected = elapsed_s + left / rate
        slow = live & (projected > ABANDON_MULTIPLIER * self.p)
        q = quality_from_throughput(np.where(slow, rate * 8.0 * THROUGHPUT_SAFETY, np.nan), lat_est, self.p, self.b)
        est_size = total_b * self.b[q] / self.b[rung]
        return np.where(slow & (q < rung) & (est_size < left), q, -1).astype(np.int64)


class BolaRule:
    """sabre.py `Bola` (BOLA-U by default; `osc`: BOLA-O; `basic`: the fixed buffer target),
    per session."""

    def __init__(self, n: int, bitrates_bps: np.ndarray, segment_s: float, gp: float,
                 basic: bool, osc: bool) -> None:
        self.b = bitrates_bps
        self.u = np.log(bitrates_bps / bitrates_bps[0])
        self.p = float(segment_s)
        self.gp = float(gp)
        self.basic = bool(basic)
        self.osc = bool(osc)
        self.last = np.zeros(n, dtype=np.int64)
        self.Vp = np.full(n, np.nan)
        self.target = np.full(n, np.nan)

    def target_s(self, buffer_size_s: np.ndarray, k: np.ndarray, n_segments: np.ndarray) -> np.ndarray:
        """The buffer target: the configured size, or (unless `basic`) max(min(k, N − k) / 2, 3)
        segments when that is smaller (Sabre counts k from the last seek, here 0)."""
        if self.basic:
            return buffer_size_s
        t = np.maximum(np.minimum(k, n_segments - k) / 2.0, 3.0) * self.p
        return np.minimum(buffer_size_s, t)

    def decide(self, s: np.ndarray, level_s: np.ndarray, target_s: np.ndarray, tput: np.ndarray,
               lat: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        Vp = (target_s - self.p) / (self.u[-1] + self.gp)
        self.Vp[s] = Vp
        self.target[s] = target_s
        gp = np.full(s.size, self.gp)
        q = masked_argmax(bola_scores(Vp, gp, self.u, level_s, self.b), mask)
        last = self.last[s]
        delay = np.zeros(s.size)
        qt = quality_from_throughput(tput, lat, self.p, self.b)
        up = (q > last) & (q > qt)
        hold = up & (last > qt)
        q = np.where(hold, last, q)
        cap = up & ~hold
        if self.osc:
            q = np.where(cap, qt, q)
            wanted = np.maximum(0.0, level_s - Vp * (self.gp + self.u[qt]))
            delay = np.where(cap & (qt < self.b.size - 1), wanted, 0.0)
        else:
            q = np.where(cap, qt + 1, q)
        self.last[s] = q
        return q, delay

    def check_abandon(self, s: np.ndarray, rung: np.ndarray, done_b: np.ndarray, total_b: np.ndarray,
                      level_s: np.ndarray) -> np.ndarray:
        if self.basic:
            return np.full(s.size, -1, dtype=np.int64)
        remain = total_b - done_b
        Vp = self.Vp[s]
        with np.errstate(divide="ignore", invalid="ignore"):
            score = (Vp * (self.gp + self.u[rung]) - level_s) / remain
            other = total_b[:, None] * self.b[None, :] / self.b[rung][:, None]
            other_score = (Vp[:, None] * (self.gp + self.u[None, :]) - level_s[:, None]) / other
        live = (done_b > 0) & (remain > 0) & (score >= 0) & np.isfinite(Vp)
        lower = np.arange(self.b.size)[None, :] < rung[:, None]
        out = abandon_choice(score, other_score, lower & (other < remain[:, None]) & live[:, None])
        hit = out >= 0
        self.last[s[hit]] = out[hit]
        return out


class BolaERule:
    """sabre.py `BolaEnh`, per session: utilities ln(b) − ln(b_0) + 1, the placeholder
    buffer, start-up by throughput, BOLA-U (or BOLA-O with `osc`), the delay when the
    buffer and placeholder exceed the rung's level, the insufficient-buffer rule (unless
    `no_ibr`, which also switches to BOLA-BASIC's parameters with γp − 1)."""

    def __init__(self, n: int, bitrates_bps: np.ndarray, segment_s: float, gp: float, osc: bool,
                 ibr: bool) -> None:
        b = bitrates_bps
        self.b = b
        self.u = np.log(b / b[0]) + 1.0
        self.p = float(segment_s)
        self.gp_basic = float(gp) - 1.0
        self.osc = bool(osc)
        self.ibr = bool(ibr)
        self.steady = np.zeros(n, dtype=bool)
        self.placeholder = np.zeros(n)
        self.last = np.zeros(n, dtype=np.int64)
        self.ibr_safety = np.full(n, IBR_SAFETY_INIT)
        self.Vp = np.full(n, np.nan)
        self.gpv = np.full(n, np.nan)
        # min_buffer_for_quality(q) = max(0, Vp · (γp + c_q)), c_q the largest crossing
        # (b_q·υ_i − b_i·υ_q) / (b_q − b_i) over the lower rungs i
        R = b.size
        self.cross = np.full(R, -np.inf)
        for q in range(1, R):
            i = np.arange(q)
            self.cross[q] = np.max((b[q] * self.u[i] - b[i] * self.u[q]) / (b[q] - b[i]))

    def set_params(self, s: np.ndarray, buffer_size_s: np.ndarray) -> None:
        """Vp and γp from the buffer size, as BolaEnh's constructor computes them."""
        if self.b.size < 2:  # one rung: nothing to choose (Sabre would divide by zero)
            self.Vp[s], self.gpv[s] = 0.0, 0.0
        elif not self.ibr:
            self.gpv[s] = self.gp_basic
            self.Vp[s] = (buffer_size_s - self.p) / (self.u[-1] + self.gp_basic)
        else:
            buf = np.maximum(MINIMUM_BUFFER_S + MINIMUM_BUFFER_PER_LEVEL_S * self.b.size, buffer_size_s)
            gp = (self.u[-1] - 1.0) / (buf / MINIMUM_BUFFER_S - 1.0)
            self.gpv[s] = gp
            self.Vp[s] = MINIMUM_BUFFER_S / gp

    def min_level(self, s: np.ndarray, q: np.ndarray) -> np.ndarray:
        with np.errstate(invalid="ignore"):
            lvl = self.Vp[s] * (self.gpv[s] + self.cross[q])
        return np.where(q > 0, np.maximum(lvl, 0.0), 0.0)

    def max_level(self, s: np.ndarray, q: np.ndarray) -> np.ndarray:
        return self.Vp[s] * (self.u[q] + self.gpv[s])

    def decide(self, s: np.ndarray, level_s: np.ndarray, tput: np.ndarray, lat: np.ndarray,
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
            self.placeholder[ss] = np.maximum(0.0, self.min_level(ss, qt[start]) - level_s[start])
        st = ~start
        if st.any():
            ss, lv, t, lt = s[st], level_s[st], tput[st], lat[st]
            ph = self.placeholder[ss]
            qq = masked_argmax(bola_scores(self.Vp[ss], self.gpv[ss], self.u, lv + ph, self.b), mask[st])
            last, qts = self.last[ss], qt[st]
            up = (qq > last) & (qq > qts)
            qq = np.where(up, np.maximum(last, qts) + (0 if self.osc else 1), qq)
            d = lv + ph - self.max_level(ss, qq)
            use = np.where(d > 0, np.minimum(d, ph), 0.0)   # the placeholder absorbs the excess first
            ph = ph - use
            d = np.where(d > 0, d - use, 0.0)
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

    def report_delay(self, s: np.ndarray, wait_s: np.ndarray) -> None:
        """The session waited for room in the buffer: the placeholder grows by that wait."""
        self.placeholder[s] += wait_s

    def report_download(self, s: np.ndarray, rung: np.ndarray, time_s: np.ndarray, level_s: np.ndarray) -> None:
        """A segment arrived (`level_s`: the buffer with it): the placeholder is kept between
        what the rung's minimum and maximum levels allow at the download's start."""
        self.last[s] = rung
        was = level_s + time_s
        ph = np.minimum(self.placeholder[s], np.maximum(0.0, self.max_level(s, rung) - was))
        ph = np.where(level_s > 0, np.maximum(ph, self.min_level(s, rung) - was), ph)
        self.placeholder[s] = ph

    def report_abandon(self, s: np.ndarray, rung: np.ndarray, to: np.ndarray, level_s: np.ndarray) -> None:
        """A download at `rung` was abandoned for `to`: the placeholder shrinks to what `to`
        needs (10 s for rung 0)."""
        self.last[s] = rung
        want = np.where(to > 0, self.min_level(s, to), MINIMUM_BUFFER_S)
        self.placeholder[s] = np.minimum(self.placeholder[s], np.maximum(0.0, want - level_s))

    def check_abandon(self, s: np.ndarray, rung: np.ndarray, done_b: np.ndarray, total_b: np.ndarray,
                      elapsed_s: np.ndarray, ttfb_s: np.ndarray, level_s: np.ndarray) -> np.ndarray:
        """BolaEnh.check_abandon: compare the rest of this download, less what a new request's
        latency would bring, with each lower rung's whole segment, after that latency."""
        remain = total_b - done_b
        bl = np.maximum(0.0, level_s + self.placeholder[s] - ttfb_s)
        Vp, gp = self.Vp[s], self.gpv[s]
        with np.errstate(divide="ignore", invalid="ignore"):
            tp = done_b / (elapsed_s - ttfb_s)
            sz = remain - ttfb_s * tp
            score = (Vp * (gp + self.u[rung]) - bl) / sz
            other = total_b[:, None] * self.b[None, :] / self.b[rung][:, None]
            other_score = (Vp[:, None] * (gp[:, None] + self.u[None, :]) - bl[:, None]) / other
        live = (done_b > 0) & (remain > 0) & (sz > 0) & np.isfinite(Vp)
        lower = np.arange(self.b.size)[None, :] < rung[:, None]
        return abandon_choice(score, other_score, lower & (other < sz[:, None]) & live[:, None])
