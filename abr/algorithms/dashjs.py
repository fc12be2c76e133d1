"""dash.js 5's default adaptation, rule for rule: the `dashjs` policy.

Read from dash.js 5.2 (github.com/Dash-Industry-Forum/dash.js, `src/core/Settings.js`,
`src/streaming/controllers/AbrController.js`, `ThroughputController.js`,
`src/streaming/models/ThroughputModel.js`, `src/streaming/rules/abr/*.js`,
`src/streaming/rules/SwitchRequestHistory.js`, `ScheduleController.js`) and written
again here in numpy, vectorised over sessions. What it does, with dash.js's defaults:

* Throughput estimate (`ThroughputModel`): each media segment gives a sample of
  round(8 · bytes / transfer ms) kbit/s (transfer = responseEnd − responseStart of the
  Resource Timing API, so the request latency is excluded), folded into a fast and a slow
  EWMA whose weight is 0.0015 × transfer ms (`weightDownloadTimeMultiplicationFactor`): the
  "half-lives" 3 and 8 are in those units, i.e. 2 s and 5.33 s of transfer time. The
  estimate is min(fast, slow) after the zero-start correction, rounded to whole kbit/s;
  the *safe* estimate is 0.9 × that (`bandwidthSafetyFactor`).
* First segment: the rung at or below 1000 kbit/s (`DEFAULT_VIDEO_BITRATE`); nothing is
  measured yet. (A saved bitrate in localStorage would replace it; the harness runs an
  empty browser profile, so there is none.)
* Every later segment (`AbrController.checkPlaybackQuality`, once per media segment, right
  after the previous one was appended): the active rules each may ask for a rung and the
  lowest request wins (`ABRRulesCollection.getMinSwitchRequest`, all rules at DEFAULT
  priority); no request at all keeps the current rung.
  - DYNAMIC strategy (both BOLA and the throughput rule active, the default): the BOLA rule
    replaces the throughput rule once the buffer reaches `hybridSwitchBufferTime` (12 s)
    and hands back when it falls below half of that (6 s), checked at every buffer-level
    metric — here at the buffer's low point (just before the previous segment was
    appended) and its high point (just after).
  - ThroughputRule: the highest rung at or below the safe estimate (while the buffer is
    above the 0.3 s stall threshold, i.e. in state BUFFER_LOADED).
  - BolaRule (BOLA-E as dash.js 5 writes it): utilities ln(b) − ln(b_0) + 1, buffer time
    max(bufferTimeDefault 18 s, 10 s + 2 s × rungs), γp and Vp from it; in its startup state
    it picks like the throughput rule and sets the placeholder buffer so BOLA agrees, and it
    leaves that state once a media segment has loaded since BOLA's state was created (its
    `lastSegmentDurationS`; so never on its first call) and the buffer holds that segment's
    duration; then (steady) it picks argmax (Vp·(u_i − 1 + γp) − (buffer + placeholder)) / b_i (ties to the
    higher rung), never up past both the current and the throughput rung (BOLA-O); the
    placeholder grows by the idle time since the last download finished, decays ×0.99 per
    segment and is capped by the last rung's top level, is cleared when the buffer runs
    empty, and pays for any excess before BOLA would ask to delay (the delay itself is
    not modelled by the simulator; `last_info["delay_s"]` reports it).
  - InsufficientBufferRule (from the third media segment on): lowest rung when the buffer
    is empty, else the rung at or below 0.7 × estimate × buffer / segment duration.
  - SwitchHistoryRule: over the last 8 decisions (current → new), once there are 8 and
    more than 7.5 % of them were drops, cap at the highest "current" rung in that window
    (one below it if the drops were from it).
  - DroppedFramesRule is off by default in dash.js 5; L2A and LoL+ too.
* AbandonRequestsRule (`abandon`, offered in-flight downloads by the simulator and the
  HTTP player): when the buffer is at most bufferTimeDefault, the request has had at
  least 6 progress events and more than 500 ms have passed since the first, with the rate
  measured from that first event on (dash.js leaves its bytes out: they hold the latency
  and any wait for the first bytes), if the projected download time exceeds 1.8 segment
  durations, refetch at the
  rung at or below the measured rate if the whole new segment is smaller than what is
  left of the current one; a segment is abandoned at most once (`abandonDict`, keyed by the
  segment index: its refetch runs to the end); it resets the switch history, deflates
  BOLA's placeholder and, for `abandonLoadTimeout` (10 s), silences the throughput rule and
  refuses switches up. A progress event needs new data: bytes arrive in packets (1500
  bytes at least, the emulator's shaping quantum), so on a link slower than a packet per
  check the events, and with them the rule, wait; the first event then comes when the
  link picks up, and a slow start is not held against the rest of the download. The rule
  runs on progress events only: during an outage it is not asked at all. The aborted
  request is a throughput sample all the same (dash.js records its HTTP request metric
  before it ignores the abort): the rate measured, over the time since the first event.

The buffer target (18 s, 30 s at the top rung, 60 s at the top for content of 600 s or
more) and the 500 ms re-check of a full buffer are session semantics: the `dashjs` preset.
The idle time BOLA absorbs is the time between a decision and the previous download's end
beyond the download itself, taken in whole 500 ms schedule ticks (the rest is latency,
per-request overhead and any init-segment request, which dash.js also makes between a
decision and its media request).

Units: seconds, bits per second, bytes (dash.js's kbit/s and ms converted at the edges).
"""
from __future__ import annotations

import numpy as np

from abr.base import Ladder, Observation, Param, Policy, Progress
from abr.registry import register

#: dash.js DEFAULT_VIDEO_BITRATE (kbit/s) as bit/s.
DEFAULT_VIDEO_BPS = 1_000_000.0
#: BolaRule constants.
MINIMUM_BUFFER_S = 10.0
MINIMUM_BUFFER_PER_BITRATE_LEVEL_S = 2.0
PLACEHOLDER_BUFFER_DECAY = 0.99

#: Names for the `rule` info (index into this tuple).
RULES = ("none", "ThroughputRule", "BolaRule", "InsufficientBufferRule", "SwitchHistoryRule", "initial")

_NONE = -1  # "no request" in the per-rule request arrays


def js_round(x: np.ndarray) -> np.ndarray:
    """JavaScript's Math.round: halves go up (not to even)."""
    return np.floor(np.asarray(x, dtype=np.float64) + 0.5)


def optimal_rung(rate_bps: np.ndarray, bitrates_bps: np.ndarray) -> np.ndarray:
    """`AbrController.getOptimalRepresentationForBitrate`: the highest rung whose bitrate is at
    or below the rate; the lowest rung when none is, or when the rate is ≤ 0 or NaN."""
    r = np.asarray(rate_bps, dtype=np.float64)
    ok = np.isfinite(r) & (r > 0)
    idx = np.searchsorted(bitrates_bps, np.where(ok, r, 0.0), side="right") - 1
    return np.where(ok, np.clip(idx, 0, bitrates_bps.size - 1), 0).astype(np.int64)


@register("dashjs")
class DashJs(Policy):
    """dash.js 5 default ABR: DYNAMIC (throughput rule ↔ BOLA), insufficient-buffer,
    switch-history and abandonment rules, with dash.js's shipped settings."""

    PARAMS = (
        Param("strategy", "dynamic", "-", "dynamic (dash.js default: BOLA and throughput rule both "
              "active), bola (only BolaRule) or throughput (only ThroughputRule)"),
        Param("fast_half_life", 3.0, "weight", "fast EWMA half-life (throughputFastHalfLifeSeconds), in "
              "units of weight = weight_per_ms × transfer ms"),
        Param("slow_half_life", 8.0, "weight", "slow EWMA half-life (throughputSlowHalfLifeSeconds)"),
        Param("weight_per_ms", 0.0015, "1/ms", "EWMA weight per millisecond of transfer "
              "(weightDownloadTimeMultiplicationFactor)"),
        Param("safety", 0.9, "ratio", "bandwidthSafetyFactor applied to the estimate"),
        Param("initial_bps", DEFAULT_VIDEO_BPS, "bit/s", "bitrate the first segment is chosen by "
              "(dash.js DEFAULT_VIDEO_BITRATE 1000 kbit/s)"),
        Param("hybrid_switch_buffer_s", 12.0, "s", "DYNAMIC: BOLA from this buffer level, the "
              "throughput rule again below half of it (hybridSwitchBufferTime)"),
        Param("buffer_time_default_s", 18.0, "s", "bufferTimeDefault: sets BOLA's buffer time and "
              "the level above which no download is abandoned"),
        Param("stall_threshold_s", 0.3, "s", "buffer at or below this is BUFFER_EMPTY (stallThreshold)"),
        Param("insufficient_buffer_rule", True, "bool", "InsufficientBufferRule active"),
        Param("ibr_safety", 0.7, "ratio", "InsufficientBufferRule throughputSafetyFactor"),
        Param("ibr_ignore_segments", 2, "segments", "InsufficientBufferRule segmentIgnoreCount"),
        Param("switch_history_rule", True, "bool", "SwitchHistoryRule active"),
        Param("switch_history_samples", 8, "decisions", "SwitchHistoryRule sampleSize"),
        Param("switch_history_threshold", 0.075, "ratio", "SwitchHistoryRule switchPercentageThreshold "
              "(drops / no-drops)"),
        Param("abandonment", True, "bool", "AbandonRequestsRule active (used by streaming drivers)"),
        Param("abandon_multiplier", 1.8, "x segment duration", "abandonDurationMultiplier"),
        Param("abandon_min_time_s", 0.5, "s", "minSegmentDownloadTimeThresholdInMs as seconds"),
        Param("abandon_min_samples", 6, "progress events", "minThroughputSamplesThreshold: progress traces "
              "of the request (the first one included) before the rule may act"),
        Param("progress_unit_bytes", 1500, "bytes", "what must arrive for a progress event: bytes are "
              "delivered in packets (the emulator's shaping quantum is at least one 1500-byte packet), so "
              "on a link slower than one packet per check no event fires"),
        Param("abandon_lock_s", 10.0, "s", "after an abandonment, no switch up for this long "
              "(streaming.abandonLoadTimeout: the throughput rule is silent and only drops apply)"),
        Param("schedule_interval_s", 0.5, "s", "dash.js re-checks a full buffer every 500 ms "
              "(scheduling.defaultTimeout); idle time is counted in whole ticks of this (0: all of "
              "the time beyond the transfer is idle)"),
    )

    # -- state ---------------------------------------------------------------------------
    def _reset(self, n_sessions: int, ladder: Ladder) -> None:
        strategy = str(self.strategy).lower()
        if strategy not in ("dynamic", "bola", "throughput"):
            raise ValueError(f"dashjs: strategy must be dynamic, bola or throughput, got {self.strategy!r}")
        self._strategy = strategy
        n, R = n_sessions, ladder.n
        b = ladder.bitrates_bps
        # throughput model
        self.fast = np.zeros(n)
        self.slow = np.zeros(n)
        self.weight = np.zeros(n)
        # DYNAMIC mode (AbrController.registerStreamType: BOLA first only when it is the only rule)
        self.bola_mode = np.full(n, strategy == "bola")
        # InsufficientBufferRule: media segments appended so far
        self.appended = np.zeros(n, dtype=np.int64)
        # BOLA: utilities, γp and Vp (BolaRule._calculateBolaParameters)
        u = np.log(b)
        self.u = u - u[0] + 1.0
        self.one_bitrate = bool(R < 2 or np.argmax(self.u) == 0)
        buffer_time = max(float(self.buffer_time_default_s), MINIMUM_BUFFER_S + MINIMUM_BUFFER_PER_BITRATE_LEVEL_S * R)
        if not self.one_bitrate:
            self.gp = (self.u[-1] - 1.0) / (buffer_time / MINIMUM_BUFFER_S - 1.0)
            self.Vp = MINIMUM_BUFFER_S / self.gp
        else:
            self.gp = self.Vp = float("nan")
        # minimum buffer level per rung (BolaRule._minBufferLevelForRepresentation)
        self.min_level = np.zeros(R)
        for q in range(1, R):
            i = np.arange(q)
            lv = self.Vp * (self.gp + (b[q] * self.u[i] - b[i] * self.u[q]) / (b[q] - b[i]))
            self.min_level[q] = max(0.0, float(np.max(lv))) if not self.one_bitrate else 0.0
        self.max_level = self.Vp * (self.u + self.gp)
        self.bola_state = np.zeros(n, dtype=np.int8)  # 0 not created, 1 startup, 2 steady
        self.bola_loaded = np.zeros(n, dtype=bool)    # a segment loaded since the state exists (lastSegmentDurationS)
        self.placeholder = np.zeros(n)
        self.finish_known = np.zeros(n, dtype=bool)   # lastSegmentFinishTimeMs is set
        self.last_call = np.full(n, np.nan)           # lastCallTimeMs
        # per-session clock and buffer of the previous decision
        self.t_prev = np.full(n, np.nan)
        self.playing_prev = np.zeros(n, dtype=bool)
        # SwitchHistoryRule: ring of (current rung, drop) over the last `samples` decisions
        k = max(1, int(self.switch_history_samples))
        self.h_cur = np.full((n, k), -1, dtype=np.int64)
        self.h_drop = np.zeros((n, k), dtype=bool)
        self.h_seen = np.zeros((n, R), dtype=bool)    # rungs with an entry (never removed)
        # AbandonRequestsRule: ABANDON_LOAD state until this session time; per in-flight download,
        # when bytes were first seen flowing and how many (dash.js measures the rate after its
        # first progress event, which holds the latency and any wait for the first bytes)
        self.lock_until = np.full(n, -np.inf)
        self.first_t = np.full(n, np.nan)
        self.first_b = np.zeros(n)
        self.traces = np.zeros(n, dtype=np.int64)       # progress events of the current request
        self.units = np.zeros(n)                        # whole packets received at the last event
        self.last_e = np.full(n, np.inf)
        self.abandoned = np.zeros(n, dtype=bool)      # this segment was abandoned once already

    # -- throughput model ----------------------------------------------------------------
    def _fold(self, s: np.ndarray, tput_bps: np.ndarray, dl_s: np.ndarray) -> None:
        """ThroughputModel.addEntry for a media segment: sample in whole kbit/s, EWMA weight
        = weight_per_ms × transfer ms."""
        ok = np.isfinite(tput_bps) & (tput_bps > 0) & np.isfinite(dl_s) & (dl_s > 0)
        if not ok.any():
            return
        s, v, dl = s[ok], js_round(tput_bps[ok] / 1000.0), dl_s[ok]
        w = float(self.weight_per_ms) * dl * 1000.0
        af = np.power(0.5, w / float(self.fast_half_life))
        as_ = np.power(0.5, w / float(self.slow_half_life))
        self.fast[s] = (1.0 - af) * v + af * self.fast[s]
        self.slow[s] = (1.0 - as_) * v + as_ * self.slow[s]
        self.weight[s] += w

    def estimate_bps(self, s: np.ndarray) -> np.ndarray:
        """ThroughputController.getAverageThroughput (EWMA mode), bit/s; NaN before a sample."""
        W = self.weight[s]
        with np.errstate(divide="ignore", invalid="ignore"):
            f = self.fast[s] / (1.0 - np.power(0.5, W / float(self.fast_half_life)))
            sl = self.slow[s] / (1.0 - np.power(0.5, W / float(self.slow_half_life)))
            est = js_round(np.minimum(f, sl)) * 1000.0
        return np.where(W > 0, est, np.nan)

    # -- the decision -----------------------------------------------------------------------
    def _select(self, obs: Observation) -> np.ndarray:
        s = np.asarray(obs.sessions, dtype=np.int64)
        n = s.size
        b = self.ladder.bitrates_bps
        R = b.size
        L = float(obs.segment_duration_s)
        buf = np.asarray(obs.buffer_s, dtype=np.float64)
        now = np.asarray(obs.time_s, dtype=np.float64)
        last = np.asarray(obs.last_rung, dtype=np.int64)
        playing = np.asarray(obs.playing, dtype=bool)
        first = last < 0
        later = ~first

        # the previous media segment: its throughput sample and the events it caused
        tput = obs.throughput_bps[:, -1] if obs.throughput_bps.shape[1] else np.full(n, np.nan)
        dl = obs.download_time_s[:, -1] if obs.download_time_s.shape[1] else np.full(n, np.nan)
        tput = np.where(later, tput, np.nan)
        dl = np.where(later, dl, np.nan)
        self._fold(s, tput, dl)
        est = self.estimate_bps(s)
        safe = est * float(self.safety)

        elapsed = np.where(later, now - self.t_prev[s], 0.0)
        elapsed = np.where(np.isfinite(elapsed), np.maximum(elapsed, 0.0), 0.0)
        beyond = np.maximum(elapsed - np.nan_to_num(dl), 0.0)
        tick = float(self.schedule_interval_s)
        idle = np.floor(beyond / tick + 1e-9) * tick if tick > 0 else beyond
        idle = np.where(later & playing, idle, 0.0)
        self.first_t[s] = np.nan  # a new download follows this decision
        self.traces[s] = 0
        self.units[s] = 0.0
        self.abandoned[s] = False
        self.last_e[s] = np.inf
        # buffer just before the previous segment was appended, and just after
        pre = np.maximum(buf + idle - L, 0.0)
        after = buf + idle

        self.appended[s] += later
        # BUFFER_EMPTY during the download (never at playback time 0): BOLA clears its placeholder
        empty_event = later & self.playing_prev[s] & (pre <= float(self.stall_threshold_s))
        steady = self.bola_state[s] == 2
        ph = self.placeholder[s]
        ph = np.where(empty_event & steady, 0.0, ph)
        # DYNAMIC hysteresis: the low point can switch BOLA off, the high point on
        if self._strategy == "dynamic":
            on = float(self.hybrid_switch_buffer_s)
            mode = self.bola_mode[s]
            mode = np.where(later & mode & (pre < 0.5 * on), False, mode)
            mode = np.where(later & ~mode & (after >= on), True, mode)
            self.bola_mode[s] = mode
        # BolaRule._checkNewSegment (only once BOLA's state exists)
        exists = (self.bola_state[s] > 0) & later & (not self.one_bitrate)
        self.bola_loaded[s] |= exists   # BolaRule._onMediaFragmentLoaded for the previous segment
        if exists.any():
            buf_at_request = pre + np.maximum(elapsed - idle, 0.0)
            cap = np.maximum(0.0, self.max_level[np.clip(last, 0, R - 1)] - buf_at_request)
            ph = np.where(exists, np.minimum(ph * PLACEHOLDER_BUFFER_DECAY, cap), ph)
        self.finish_known[s] |= later

        # the rules' requests (rung or _NONE)
        req_tput = np.full(n, _NONE, dtype=np.int64)
        req_bola = np.full(n, _NONE, dtype=np.int64)
        req_ibr = np.full(n, _NONE, dtype=np.int64)
        req_hist = np.full(n, _NONE, dtype=np.int64)
        delay = np.zeros(n)
        use_bola = self.bola_mode[s] & later & (not self.one_bitrate)
        use_tput = ~self.bola_mode[s] & later
        if self._strategy == "bola":
            use_tput[:] = False
        loaded = buf > float(self.stall_threshold_s)
        locked = later & (now < self.lock_until[s])       # ABANDON_LOAD after an abandonment
        ok_tput = use_tput & np.isfinite(safe) & loaded & ~locked
        req_tput = np.where(ok_tput, optimal_rung(safe, b), req_tput)

        if use_bola.any():
            rows = np.flatnonzero(use_bola)
            new = self.bola_state[s[rows]] == 0
            self.bola_state[s[rows[new]]] = 1
            st = self.bola_state[s[rows]]
            # startup: choose by throughput, set the placeholder so BOLA agrees
            r1 = rows[(st == 1) & np.isfinite(safe[rows])]
            if r1.size:
                q = optimal_rung(safe[r1], b)
                req_bola[r1] = q
                ph[r1] = np.maximum(0.0, self.min_level[q] - buf[r1])
                go = self.bola_loaded[s[r1]] & (buf[r1] >= L)
                self.bola_state[s[r1[go]]] = 2
            # steady
            r2 = rows[st == 2]
            if r2.size:
                ph2 = ph[r2]
                known = self.finish_known[s[r2]]
                since_call = np.nan_to_num(now[r2] - self.last_call[s[r2]])
                ph2 = ph2 + np.where(known, idle[r2], np.maximum(since_call, 0.0))
                self.finish_known[s[r2]] = False
                self.last_call[s[r2]] = now[r2]
                level = buf[r2] + ph2
                score = (self.Vp * (self.u[None, :] - 1.0 + self.gp) - level[:, None]) / b[None, :]
                q = (R - 1 - np.argmax(score[:, ::-1], axis=1)).astype(np.int64)  # ties to the higher rung
                cur = np.clip(last[r2], 0, R - 1)
                qt = optimal_rung(safe[r2], b)
                up = (q > cur) & (q > qt)
                q = np.where(up, np.where(qt > cur, qt, cur), q)
                d = np.maximum(0.0, level - self.max_level[q])
                pay = d <= ph2  # first reduce the placeholder, then ask the scheduler to wait
                d, ph2 = np.where(pay, 0.0, d - ph2), np.where(pay, ph2 - d, 0.0)
                d = np.where(q == R - 1, 0.0, d)  # at the top rung the buffer target decides
                ph[r2] = ph2
                req_bola[r2] = q
                delay[r2] = d
        self.placeholder[s] = ph

        if self.insufficient_buffer_rule:
            active = later & (self.appended[s] >= int(self.ibr_ignore_segments))
            empty_now = active & playing & ~loaded
            bound = float(self.ibr_safety) * est * buf / L
            ok = active & ~empty_now & np.isfinite(bound) & (bound > 0)
            req_ibr = np.where(empty_now, 0, np.where(ok, optimal_rung(bound, b), _NONE))
        else:
            bound = np.full(n, np.nan)

        if self.switch_history_rule:
            req_hist = np.where(later, self._history_request(s, R), _NONE)

        reqs = np.stack([req_tput, req_bola, req_ibr, req_hist])
        has = reqs >= 0
        any_req = has.any(axis=0)
        lowest = np.where(has, reqs, R).min(axis=0)
        # which rule won (the first in dash.js's order among equal requests)
        winner = np.argmax(has & (reqs == lowest[None, :]), axis=0)
        q = np.where(any_req, lowest, np.clip(last, 0, R - 1))
        rule = np.where(any_req, np.array([1, 2, 3, 4])[winner], 0)
        # while ABANDON_LOAD holds, a request to go up is not applied (checkPlaybackQuality)
        up_blocked = locked & (q > last)
        q = np.where(up_blocked, last, q)
        rule = np.where(up_blocked, 0, rule)

        # the first segment: the initial bitrate
        q = np.where(first, optimal_rung(np.full(n, float(self.initial_bps)), b), q)
        rule = np.where(first, 5, rule)

        # SwitchRequestHistory.push(current, new) whenever a rule asked for something
        pushed = later & any_req
        if pushed.any():
            self._history_push(s[pushed], last[pushed], q[pushed])

        self.t_prev[s] = now
        self.playing_prev[s] = playing
        self.last_info = {
            "throughput_bps": est, "safe_throughput_bps": safe, "bola": self.bola_mode[s].copy(),
            "placeholder_s": self.placeholder[s].copy(), "delay_s": delay, "ibr_bound_bps": bound,
            "rule": rule, "req_throughput": req_tput, "req_bola": req_bola, "req_ibr": req_ibr,
            "req_history": req_hist,
        }
        return q

    # -- SwitchHistoryRule -------------------------------------------------------------------
    def _counts(self, s: np.ndarray, R: int) -> tuple[np.ndarray, np.ndarray]:
        cur = self.h_cur[s]
        drop = self.h_drop[s]
        valid = cur >= 0
        onehot = (cur[:, :, None] == np.arange(R)[None, None, :]) & valid[:, :, None]
        drops = (onehot & drop[:, :, None]).sum(axis=1)
        nodrops = (onehot & ~drop[:, :, None]).sum(axis=1)
        return drops, nodrops

    def _history_request(self, s: np.ndarray, R: int) -> np.ndarray:
        """SwitchHistoryRule.getSwitchRequest: running totals from the lowest rung up; the
        first rung (with an entry) where they reach the sample size and drops / no-drops
        exceeds the threshold is the request (one below it if it has drops)."""
        drops, nodrops = self._counts(s, R)
        cd = np.cumsum(drops, axis=1)
        cn = np.cumsum(nodrops, axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = cd / cn  # inf when no no-drops, NaN when neither
        enough = cd + cn >= int(self.switch_history_samples)
        hit = self.h_seen[s] & enough & (ratio > float(self.switch_history_threshold))
        anyhit = hit.any(axis=1)
        r = np.argmax(hit, axis=1)
        rows = np.arange(s.size)
        q = np.where((r > 0) & (drops[rows, r] > 0), r - 1, r)
        return np.where(anyhit, q, _NONE).astype(np.int64)

    def _history_push(self, s: np.ndarray, cur: np.ndarray, new: np.ndarray) -> None:
        cur = np.clip(cur, 0, None)
        self.h_cur[s] = np.concatenate([self.h_cur[s][:, 1:], cur[:, None]], axis=1)
        self.h_drop[s] = np.concatenate([self.h_drop[s][:, 1:], (new < cur)[:, None]], axis=1)
        self.h_seen[s, cur] = True

    def _history_reset(self, s: np.ndarray) -> None:
        self.h_cur[s] = -1
        self.h_drop[s] = False
        self.h_seen[s] = False

    # -- AbandonRequestsRule ---------------------------------------------------------------
    def abandon(self, progress: Progress) -> np.ndarray:
        """dash.js AbandonRequestsRule: refetch a download that would take more than 1.8
        segment durations at the rung its measured rate affords, if that whole segment is
        smaller than what is left. Resets the switch history and deflates BOLA's placeholder
        (`BolaRule._onFragmentLoadingAbandoned`) for the rows that abandon."""
        n = np.asarray(progress.sessions).size
        out = np.full(n, -1, dtype=np.int64)
        if not self.abandonment or self.ladder is None:
            return out
        b = self.ladder.bitrates_bps
        s = np.asarray(progress.sessions, dtype=np.int64)
        done = np.asarray(progress.bytes_done, dtype=np.float64)
        total = np.asarray(progress.bytes_total, dtype=np.float64)
        elapsed = np.asarray(progress.elapsed_s, dtype=np.float64)
        rung = np.asarray(progress.rung, dtype=np.int64)
        buf = np.asarray(progress.buffer_s, dtype=np.float64)
        # a download this policy has not seen yet (its clock went back): forget the last one's start
        fresh = ~(elapsed >= self.last_e[s])
        self.first_t[s] = np.where(fresh, np.nan, self.first_t[s])
        self.traces[s] = np.where(fresh, 0, self.traces[s])
        self.units[s] = np.where(fresh, 0.0, self.units[s])
        self.last_e[s] = elapsed
        # a progress event (a trace of the request) when at least one more packet has arrived
        # since the last; the first one sets firstByteDate and its bytes are left out of the rate
        units = np.floor(done / max(1.0, float(self.progress_unit_bytes)))
        event = units > self.units[s]
        self.units[s] = np.where(event, units, self.units[s])
        self.traces[s] += event
        first = np.isnan(self.first_t[s]) & event
        self.first_t[s] = np.where(first, elapsed, self.first_t[s])
        self.first_b[s] = np.where(first, done, self.first_b[s])
        since = elapsed - self.first_t[s]  # NaN until bytes flow
        # the rule runs on progress events only (AbrController._onFragmentLoadProgress)
        live = (event & (buf <= float(self.buffer_time_default_s)) & (since > float(self.abandon_min_time_s))
                & (self.traces[s] >= int(self.abandon_min_samples))
                & (done > 0) & (done < total) & (rung > 0) & ~self.abandoned[s])
        if not live.any():
            return out
        with np.errstate(divide="ignore", invalid="ignore"):
            kbps = js_round((done - self.first_b[s]) * 8.0 / np.maximum(since * 1000.0, 1.0))
            projected = total * 8.0 / kbps / 1000.0
        slow = live & (projected >= float(self.abandon_multiplier) * progress.segment_duration_s)
        target = optimal_rung(kbps * 1000.0, b)
        mask = np.asarray(progress.mask, dtype=bool)
        idx = np.where(mask, np.arange(mask.shape[1]), -1)
        target = np.maximum.accumulate(idx, axis=1)[np.arange(n), target]
        new_total = total * b[np.maximum(target, 0)] / b[rung]
        ok = slow & (target >= 0) & (target < rung) & (total - done > new_total)
        out[ok] = target[ok]
        if ok.any():
            rows = s[ok]
            # the aborted request still ends in an HTTP request metric, which ThroughputModel
            # takes as a media-segment sample: the rate measured, over the time since the first event
            self._fold(rows, kbps[ok] * 1000.0, since[ok])
            self.abandoned[rows] = True
            self._history_reset(rows)
            t_abandon = np.nan_to_num(self.t_prev[rows], nan=0.0) + elapsed[ok]
            self.lock_until[rows] = t_abandon + float(self.abandon_lock_s)
            exists = (self.bola_state[rows] > 0) & (not self.one_bitrate)
            if exists.any():
                r = rows[exists]
                newq = target[ok][exists]
                want = np.where(newq > 0, self.min_level[newq], MINIMUM_BUFFER_S)
                cap = np.maximum(0.0, want - buf[ok][exists])
                self.placeholder[r] = np.minimum(self.placeholder[r], cap)
        return out
