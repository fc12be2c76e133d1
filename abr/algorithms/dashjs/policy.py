"""The `dashjs` policy: dash.js 5's default adaptation, its rules combined as
`AbrController.checkPlaybackQuality` combines them (see the package docstring)."""
from __future__ import annotations

import numpy as np

from abr.algorithms.dashjs.abandon_requests_rule import AbandonRequestsRule
from abr.algorithms.dashjs.bola_rule import BolaRule
from abr.algorithms.dashjs.collection import RULE_INITIAL, RULE_NONE, RULES, dynamic_bola_mode, min_switch_request
from abr.algorithms.dashjs.insufficient_buffer_rule import InsufficientBufferRule
from abr.algorithms.dashjs.switch_history_rule import SwitchHistoryRule
from abr.algorithms.dashjs.switch_request import NO_CHANGE, SwitchRequest, no_change, optimal_rung
from abr.algorithms.dashjs.settings import INITIAL_PARAM, THROUGHPUT_PARAMS, policy_throughput_model
from abr.algorithms.dashjs.throughput_model import add_media_segment, newest_media_sample
from abr.algorithms.dashjs.throughput_rule import throughput_rule
from abr.base import Ladder, Observation, Param, Policy, Progress
from abr.estimators import ChunkedSampler
from abr.registry import register

#: The rules whose requests are combined, in dash.js's order (their ids in RULES).
_RULE_IDS = (1, 2, 3, 4)

__all__ = ["DashJs", "RULES"]


@register("dashjs")
class DashJs(Policy):
    """dash.js 5 default ABR: DYNAMIC (throughput rule ↔ BOLA), insufficient-buffer,
    switch-history and abandonment rules, with dash.js's shipped settings. In low-latency
    mode (chunked segments) the insufficient-buffer rule is off, as dash.js 5 skips it there."""

    ABANDON_SCANS = True    # the abandonment rule runs through many progress points per call

    PARAMS = (
        Param("strategy", "dynamic", "-", "dynamic (dash.js default: BOLA and throughput rule both "
              "active), bola (only BolaRule) or throughput (only ThroughputRule)"),
    ) + THROUGHPUT_PARAMS + (INITIAL_PARAM,) + (
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
        self.model = policy_throughput_model(self, n)
        self.chunks = ChunkedSampler(n, self.chunk_estimator)
        # DYNAMIC mode (AbrController.registerStreamType: BOLA first only when it is the only rule)
        self.bola_mode = np.full(n, strategy == "bola")
        self.bola = BolaRule(n, ladder.bitrates_bps, float(self.buffer_time_default_s))
        self.ibr = InsufficientBufferRule(n, float(self.ibr_safety), int(self.ibr_ignore_segments))
        # dash.js's low-latency mode (PlaybackController.getLowLatencyModeEnabled): on for a stream
        # whose segments come chunked (availabilityTimeComplete="false", which our origin writes with
        # chunked delivery); a row is in it once a download reported chunk timing
        self.low_latency = np.zeros(n, dtype=bool)
        self.history = SwitchHistoryRule(n, R, int(self.switch_history_samples),
                                         float(self.switch_history_threshold))
        self.abandon_rule = AbandonRequestsRule(
            n, float(self.buffer_time_default_s), float(self.abandon_multiplier),
            float(self.abandon_min_time_s), int(self.abandon_min_samples), float(self.progress_unit_bytes))
        # ABANDON_LOAD (AbrController.abandonmentStateDict) holds until this session time
        self.lock_until = np.full(n, -np.inf)
        # per-session clock and playback state of the previous decision
        self.t_prev = np.full(n, np.nan)
        self.playing_prev = np.zeros(n, dtype=bool)
        # the furthest segment decided for (fast switching's re-fetches are before it)
        self.furthest = np.full(n, -1, dtype=np.int64)

    # -- views of the rules' state (dashboards, tests) --------------------------------------
    @property
    def gp(self) -> float:
        return self.bola.gp

    @property
    def Vp(self) -> float:
        return self.bola.Vp

    @property
    def min_level(self) -> np.ndarray:
        return self.bola.min_level

    @property
    def bola_state(self) -> np.ndarray:
        return self.bola.state

    @property
    def placeholder(self) -> np.ndarray:
        return self.bola.placeholder

    @property
    def h_cur(self) -> np.ndarray:
        return self.history.current

    @property
    def traces(self) -> np.ndarray:
        return self.abandon_rule.traces

    def _history_push(self, s: np.ndarray, cur: np.ndarray, new: np.ndarray) -> None:
        self.history.push(s, cur, new)

    def _history_request(self, s: np.ndarray, R: int) -> np.ndarray:
        return self.history.request(s, R).rung

    def estimate_bps(self, s: np.ndarray) -> np.ndarray:
        """ThroughputController.getAverageThroughput (EWMA mode), bit/s; NaN before a sample."""
        return self.model.estimate(s)

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
        tput, dl = newest_media_sample(obs, self.chunks, b)
        add_media_segment(self.model, s, tput, dl)
        self.last_delay_s = self.chunks.delay_s(s, buf)
        est = self.estimate_bps(s)
        safe = est * float(self.safety)

        idle, elapsed = self._idle(s, now, dl, later & playing, later)
        self.abandon_rule.on_new_request(s)  # a new download follows this decision
        # the previous segment re-fetched a buffered one (fast switching) when it was not past
        # the furthest segment decided for before (a decision for segment i follows the load of
        # i - 1; segment 0 is only ever decided first, so an observation that says 0 later does
        # not number its segments)
        index = np.asarray(obs.segment_index, dtype=np.int64)
        replaced = later & (index > 0) & (index <= self.furthest[s])
        self.furthest[s] = np.maximum(self.furthest[s], index)
        # buffer just before the previous segment was appended, and just after (a re-fetched
        # segment does not grow it)
        pre = np.maximum(buf + idle - np.where(replaced, 0.0, L), 0.0)
        after = buf + idle
        self.ibr.on_bytes_appended(s, later)
        # BUFFER_EMPTY during the download (never at playback time 0)
        empty_event = later & self.playing_prev[s] & (pre <= float(self.stall_threshold_s))
        if self._strategy == "dynamic":
            self.bola_mode[s] = dynamic_bola_mode(self.bola_mode[s], later, pre, after,
                                                  float(self.hybrid_switch_buffer_s))
        self.bola.on_segment_loaded(s, later, empty_event, pre, elapsed, idle, last, np.where(replaced, L, 0.0))

        # the rules' requests
        use_bola = self.bola_mode[s] & later & (not self.bola.one_bitrate)
        use_tput = ~self.bola_mode[s] & later
        if self._strategy == "bola":
            use_tput[:] = False
        loaded = buf > float(self.stall_threshold_s)
        locked = later & (now < self.lock_until[s])       # ABANDON_LOAD after an abandonment
        # ThroughputRule: BUFFER_LOADED, or any buffer on a dynamic (live) stream
        live = np.isfinite(np.asarray(obs.target_latency_s, dtype=np.float64))
        req_tput = throughput_rule(safe, loaded | live, locked, b)
        req_tput.rung = np.where(use_tput, req_tput.rung, NO_CHANGE)
        req_bola = self.bola.request(s, use_bola, buf, now, last, idle, safe, L)
        self.low_latency[s] |= np.isfinite(obs.chunk_bytes).any(axis=1)
        if self.insufficient_buffer_rule:
            req_ibr = self.ibr.request(s, later, playing, loaded, est, buf, L, b)
            # InsufficientBufferRule._shouldExecuteRule: the rule does not run in low-latency mode
            ll = self.low_latency[s]
            if ll.any():
                req_ibr.rung = np.where(ll, NO_CHANGE, req_ibr.rung)
                req_ibr.reason["bitrate_bps"] = np.where(ll, np.nan, req_ibr.reason["bitrate_bps"])
        else:
            req_ibr = SwitchRequest(no_change(n), {"bitrate_bps": np.full(n, np.nan)})
        if self.switch_history_rule:
            req_hist = self.history.request(s, R)
            req_hist.rung = np.where(later, req_hist.rung, NO_CHANGE)
        else:
            req_hist = SwitchRequest(no_change(n))

        q, rule, any_req = min_switch_request([req_tput, req_bola, req_ibr, req_hist], _RULE_IDS, last, R)
        # while ABANDON_LOAD holds, a request to go up is not applied (checkPlaybackQuality)
        up_blocked = locked & (q > last)
        q = np.where(up_blocked, last, q)
        rule = np.where(up_blocked, RULE_NONE, rule)
        # the first segment: the initial bitrate
        q = np.where(first, optimal_rung(np.full(n, float(self.initial_bps)), b), q)
        rule = np.where(first, RULE_INITIAL, rule)

        # SwitchRequestHistory.push(current, new) whenever a rule asked for something
        pushed = later & any_req
        if pushed.any():
            self.history.push(s[pushed], last[pushed], q[pushed])

        self.t_prev[s] = now
        self.playing_prev[s] = playing
        self.last_info = {
            "throughput_bps": est, "safe_throughput_bps": safe, "bola": self.bola_mode[s].copy(),
            "placeholder_s": self.bola.placeholder[s].copy(), "delay_s": req_bola.reason["delay_s"],
            "ibr_bound_bps": req_ibr.reason["bitrate_bps"],
            "rule": rule, "req_throughput": req_tput.rung, "req_bola": req_bola.rung, "req_ibr": req_ibr.rung,
            "req_history": req_hist.rung,
        }
        return q

    def _idle(self, s: np.ndarray, now: np.ndarray, dl: np.ndarray, counted: np.ndarray,
              later: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(idle time, time since the previous decision) per row. The idle time BOLA absorbs
        is the time between this decision and the previous download's end beyond the
        download itself, in whole schedule ticks (the rest is latency, per-request overhead
        and any init-segment request, which dash.js also makes between a decision and its
        media request); 0 where not `counted` (before playback, the first segment)."""
        elapsed = np.where(later, now - self.t_prev[s], 0.0)
        elapsed = np.where(np.isfinite(elapsed), np.maximum(elapsed, 0.0), 0.0)
        beyond = np.maximum(elapsed - np.nan_to_num(dl), 0.0)
        tick = float(self.schedule_interval_s)
        idle = np.floor(beyond / tick + 1e-9) * tick if tick > 0 else beyond
        return np.where(counted, idle, 0.0), elapsed

    # -- AbandonRequestsRule ---------------------------------------------------------------
    def abandon(self, progress: Progress) -> np.ndarray:
        """dash.js AbandonRequestsRule, and what an abandonment does to the rest: the aborted
        request is a throughput sample all the same (dash.js records its HTTP request metric
        before it ignores the abort: the rate measured, over the time since the first
        progress event), the switch history is reset, BOLA's placeholder deflated, and
        ABANDON_LOAD holds for `abandon_lock_s`."""
        n = np.asarray(progress.sessions).size
        if not self.abandonment or self.ladder is None:
            return np.full(n, -1, dtype=np.int64)
        req = self.abandon_rule.should_abandon(progress, self.ladder.bitrates_bps)
        ok = req.asks
        if ok.any():
            s = np.asarray(progress.sessions, dtype=np.int64)
            rows = s[ok]
            add_media_segment(self.model, rows, req.reason["throughput_bps"][ok], req.reason["measured_s"][ok])
            self.history.reset(rows)
            t_abandon = np.nan_to_num(self.t_prev[rows], nan=0.0) + np.asarray(progress.elapsed_s, dtype=np.float64)[ok]
            self.lock_until[rows] = t_abandon + float(self.abandon_lock_s)
            self.bola.on_abandon(rows, req.rung[ok], np.asarray(progress.buffer_s, dtype=np.float64)[ok])
        return req.rung
