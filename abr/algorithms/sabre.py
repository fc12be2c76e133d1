"""Sabre's own policies behind the batch interface: sabre-bola, sabre-bolae,
sabre-throughput, sabre-dynamic, sabre-dynamicdash.

Sabre (github.com/UMass-LIDS/sabre, `src/sabre.py`; Spiteri et al., MMSys 2018) runs one
session as a loop: wait for room in the buffer (telling the ABR how long: `report_delay`),
ask the ABR for (quality, delay), wait the delay, download (possibly abandoning), tell the
ABR (`report_download`), and fold the transfer into its estimate. Our sessions ask a
policy only `select` and `abandon`, so each policy here rebuilds Sabre's callbacks from
what it sees: a new throughput sample means a download completed (`report_download`
with the buffer as it was on arrival), and the session time not accounted for by its
own delay, abandoned attempts and the download is the full-buffer wait (`report_delay`).
The rules themselves are `abr.algorithms.sabre_rules`, which compute in Sabre's units
(ms, kbit/s, bits); this module converts at its edges.

Sabre's first segment is fetched at the lowest rung without asking the ABR (its
`get_first_quality`); these policies answer rung 0 while they have no estimate. The
request latency of each download comes from `Observation.request_latency_s` (and
`Progress.request_latency_s`; without it, the latency estimate stands in for the time to the
first byte). A policy's delay (Sabre's BOLA-O and BOLA-E pauses) is `last_delay_s`.
Under `--preset sabre` (Sabre's `-noa` run) and `sabre-abandon` (its default run, which
also decides afresh after an abandonment, as Sabre's loop does), Sabre's names bola,
bolae, throughput, dynamic and dynamicdash mean these policies; `abrlab fidelity sabre`
holds them to Sabre itself.

Not reproduced: Sabre's replacement strategies (-r), seeking (-s), the sliding-window
average (-ma sliding), its unfinished `bba`, and ABR modules loaded from a file; ties that
Sabre breaks by the last bit of its own arithmetic (BOLA-E's placeholder after an
abandonment) can go the other way.
"""
from __future__ import annotations

import numpy as np

from abr.algorithms.sabre_rules import BolaERule, BolaRule, SabreEstimate, ThroughputRule, to_kbps, to_ms
from abr.base import Ladder, Observation, Param, Policy, Progress, state_rows
from abr.estimators import newest_sample
from abr.registry import register

P_BUFFER = Param("buffer_size_s", None, "s", "Sabre's buffer size (-b, default 25 s), which sets "
                 "BOLA's target (None: the observation's buffer_cap_s)")
P_HALF_LIVES = (
    Param("fast_half_life_s", 3.0, "s", "the shorter EWMA half-life (Sabre -hl, default 3 8)"),
    Param("slow_half_life_s", 8.0, "s", "the longer EWMA half-life"),
)
P_GP = Param("gp", 5.0, "-", "γp (Sabre -gp, default 5); BOLA-E uses it only without the "
             "insufficient-buffer rule (as γp − 1)")
P_BASIC = Param("basic", False, "bool", "BOLA-BASIC: a fixed buffer target and no abandonment "
                "(Sabre -ab); off: the target shrinks near both ends of the video")
P_OSC = Param("osc", False, "bool", "BOLA-O (Sabre -ao): a step up past the throughput rung "
              "stops at that rung, with a delay; off: BOLA-U, the throughput rung + 1")
P_IBR = Param("insufficient_buffer_rule", True, "bool", "Sabre's insufficient-buffer rule "
              "(off: Sabre -noibr)")


def _newest_latency(obs: Observation) -> np.ndarray:
    lat = obs.request_latency_s
    if lat is None or lat.shape[1] == 0:
        return np.zeros(obs.n)
    x = np.asarray(lat[:, -1], dtype=np.float64)
    return np.nan_to_num(x) if not np.isfinite(x).all() else x.copy()


class SabrePolicy(Policy):
    """Sabre's loop around a rule: the estimate, the callbacks, the bookkeeping (seconds
    outside, Sabre's ms and kbit/s inside)."""

    def _reset(self, n_sessions: int, ladder: Ladder) -> None:
        self.p = float(to_ms(ladder.segment_duration_s))
        self.b = to_kbps(ladder.bitrates_bps)
        half_lives = (float(to_ms(self.fast_half_life_s)), float(to_ms(self.slow_half_life_s)))
        self.est = SabreEstimate(n_sessions, half_lives, self.p)
        self.t_prev = np.zeros(n_sessions)           # when this session last decided, s (0: the first request)
        self.delay_prev = np.zeros(n_sessions)       # the delay it asked for then, s
        self.aborted_s = np.zeros(n_sessions)        # time spent on abandoned attempts since, s
        self.seg_prev = np.full(n_sessions, -1, dtype=np.int64)
        self.lat_est = np.full(n_sessions, np.nan)  # the latency estimate (ms) as of the last decision
        self._reset_rules(n_sessions, ladder)

    def _buffer_size(self, obs: Observation) -> np.ndarray:
        """Sabre's buffer size (-b), ms."""
        if self.buffer_size_s is None:
            return to_ms(obs.buffer_cap_s)
        return np.full(obs.n, float(to_ms(self.buffer_size_s)))

    def _select(self, obs: Observation) -> np.ndarray:
        s = obs.sessions
        S = state_rows(s, self.n_sessions)             # the state's rows: a slice when every session decides
        tput, xfer, valid = newest_sample(obs.throughput_bps, obs.download_time_s)
        lat = _newest_latency(obs)
        k = np.asarray(obs.segment_index, dtype=np.int64)
        fresh = valid & (k != self.seg_prev[S])        # a download completed since the last decision
        spent = self.delay_prev[S] + self.aborted_s[S] + np.where(fresh, lat + xfer, 0.0)
        wait = np.maximum(obs.time_s - self.t_prev[S] - spent, 0.0)
        wait = np.where(wait > 1e-9, wait, 0.0)
        buf = np.asarray(obs.buffer_s, dtype=np.float64)
        self._before_decision(obs)
        arrived = fresh & (self.seg_prev[S] >= 0)      # Sabre reports every download but the first
        if arrived.any():
            self._report_download(s[arrived], np.asarray(obs.last_rung)[arrived], to_ms((lat + xfer)[arrived]),
                                  to_ms((buf + wait)[arrived]))
        if fresh.all():
            self.est.push(S, to_ms(xfer), to_kbps(tput), to_ms(lat))
        elif fresh.any():
            self.est.push(s[fresh], to_ms(xfer[fresh]), to_kbps(tput[fresh]), to_ms(lat[fresh]))
        self._report_delay(s, to_ms(wait))
        t_est, l_est = self.est.estimate(S)
        self.lat_est[S] = l_est
        have = ~np.isnan(t_est)
        if have.all():      # every row decides: no gathers, no scatters
            q, delay_ms = self._decide(obs, slice(None), to_ms(buf), t_est, l_est)
            q = np.asarray(q, dtype=np.int64)
            delay_ms = np.asarray(delay_ms, dtype=np.float64)
        else:
            q = np.zeros(obs.n, dtype=np.int64)
            delay_ms = np.zeros(obs.n)
            if have.any():
                rows = np.flatnonzero(have)
                q[rows], delay_ms[rows] = self._decide(obs, rows, to_ms(buf[rows]), t_est[rows], l_est[rows])
        delay = delay_ms / 1000.0
        self.t_prev[S] = obs.time_s
        self.delay_prev[S] = delay
        self.aborted_s[S] = 0.0
        self.seg_prev[S] = k
        self.last_delay_s = delay
        self.last_info = {"throughput_bps": t_est * 1000.0, "latency_s": l_est / 1000.0, "wait_s": wait,
                          "delay_s": delay, **self._info(s)}
        return q

    #: Every Sabre abandonment rule answers from the offer and from state that changes only
    #: at a decision or when an abandonment is taken (`abandon_taken`): a simulator may offer
    #: it many progress points at once.
    ABANDON_IS_PURE = True

    def abandon_answer(self, progress: Progress) -> np.ndarray:
        s = np.asarray(progress.sessions)
        if self.ladder is None:
            return np.full(s.shape, -1, dtype=np.int64)
        rung = np.asarray(progress.rung, dtype=np.int64)
        done = np.asarray(progress.bytes_done, dtype=np.float64) * 8.0
        size = np.asarray(progress.bytes_total, dtype=np.float64) * 8.0
        elapsed = np.asarray(progress.elapsed_s, dtype=np.float64)
        l_est = self.lat_est[s]
        ttfb = np.nan_to_num(l_est) if progress.request_latency_s is None else to_ms(progress.request_latency_s)
        return self._check_abandon(s, rung, done, size, to_ms(elapsed), ttfb, to_ms(progress.buffer_s), l_est)

    def abandon_taken(self, progress: Progress, rows: np.ndarray, rungs: np.ndarray) -> None:
        """Sabre's loop after an abandonment: the attempt's time is not a full-buffer wait,
        and the rule hears of it (BOLA's last rung, BOLA-E's placeholder)."""
        s = np.asarray(progress.sessions)[rows]
        self.aborted_s[s] += np.asarray(progress.elapsed_s, dtype=np.float64)[rows]
        self._report_abandon(s, np.asarray(progress.rung, dtype=np.int64)[rows],
                             np.asarray(rungs, dtype=np.int64)[rows], to_ms(np.asarray(progress.buffer_s)[rows]))

    def _rule_rows(self, obs: Observation, rows: np.ndarray | slice) -> np.ndarray | slice:
        """The sessions of `rows` as a rule indexes its state: a slice for every session."""
        return state_rows(obs.sessions, self.n_sessions) if isinstance(rows, slice) else obs.sessions[rows]

    # -- what each policy supplies (Sabre's units: ms, kbit/s, bits) --------------------------
    def _reset_rules(self, n: int, ladder: Ladder) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def _before_decision(self, obs: Observation) -> None:
        pass

    def _decide(self, obs: Observation, rows: np.ndarray, level: np.ndarray, tput: np.ndarray,
                lat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:  # pragma: no cover - abstract
        raise NotImplementedError

    def _report_download(self, s: np.ndarray, rung: np.ndarray, time: np.ndarray, level: np.ndarray) -> None:
        pass

    def _report_delay(self, s: np.ndarray, wait: np.ndarray) -> None:
        pass

    def _report_abandon(self, s: np.ndarray, rung: np.ndarray, to: np.ndarray, level: np.ndarray) -> None:
        pass

    def _check_abandon(self, s, rung, done, size, elapsed, ttfb, level, lat_est) -> np.ndarray:
        return np.full(s.size, -1, dtype=np.int64)

    def _info(self, s: np.ndarray) -> dict[str, np.ndarray]:
        return {}


def _bola_target(rule: BolaRule, policy: SabrePolicy, obs: Observation, rows: np.ndarray) -> np.ndarray:
    k = np.asarray(obs.segment_index, dtype=np.float64)[rows]
    n_seg = k + np.asarray(obs.segments_left, dtype=np.float64)[rows]
    return rule.target_ms(policy._buffer_size(obs)[rows], k, n_seg)


@register("sabre-throughput")
class SabreThroughput(SabrePolicy):
    """Sabre's ThroughputRule: 0.9 × the EWMA estimate after latency, insufficient-buffer rule."""

    PARAMS = (P_IBR, P_BUFFER) + P_HALF_LIVES

    def _reset_rules(self, n: int, ladder: Ladder) -> None:
        self.tput = ThroughputRule(n, self.b, self.p, self.insufficient_buffer_rule)

    def _decide(self, obs, rows, level, tput, lat):
        return self.tput.decide(self._rule_rows(obs, rows), level, tput, lat), np.zeros(level.size)

    def _check_abandon(self, s, rung, done, size, elapsed, ttfb, level, lat_est):
        return self.tput.check_abandon(rung, done, size, elapsed, ttfb, lat_est)


@register("sabre-bola")
class SabreBola(SabrePolicy):
    """Sabre's Bola: BOLA-U with a target shrinking near the video's ends (BOLA-O with osc)."""

    PARAMS = (P_GP, P_BASIC, P_OSC, P_BUFFER) + P_HALF_LIVES

    def _reset_rules(self, n: int, ladder: Ladder) -> None:
        self.bola = BolaRule(n, self.b, self.p, float(self.gp), self.basic, self.osc)

    def _decide(self, obs, rows, level, tput, lat):
        target = _bola_target(self.bola, self, obs, rows)
        return self.bola.decide(self._rule_rows(obs, rows), level, target, tput, lat,
                                np.asarray(obs.mask, bool)[rows])

    def _check_abandon(self, s, rung, done, size, elapsed, ttfb, level, lat_est):
        return self.bola.check_abandon(s, rung, done, size, level)

    def _report_abandon(self, s, rung, to, level):
        self.bola.report_abandon(s, to)

    def _info(self, s):
        return {"target_s": self.bola.target[s] / 1000.0}


class WithBolaE(SabrePolicy):
    """A Sabre policy holding Sabre's BolaEnh (`self.bolae`), which hears every report:
    its parameters from the buffer size, downloads, full-buffer waits and abandonments."""

    bolae: BolaERule

    def _before_decision(self, obs: Observation) -> None:
        self.bolae.set_params(obs.sessions, self._buffer_size(obs))

    def _report_download(self, s, rung, time, level):
        self.bolae.report_download(s, rung, time, level)

    def _report_delay(self, s, wait):
        self.bolae.report_delay(s, wait)

    def _report_abandon(self, s, rung, to, level):
        self.bolae.report_abandon(s, rung, to, level)


@register("sabre-bolae")
class SabreBolaE(WithBolaE):
    """Sabre's BolaEnh: BOLA-E with placeholder buffer, BOLA-U (BOLA-O with osc) and its
    insufficient-buffer rule."""

    PARAMS = (P_GP, P_OSC, P_IBR, P_BUFFER) + P_HALF_LIVES

    def _reset_rules(self, n: int, ladder: Ladder) -> None:
        self.bolae = BolaERule(n, self.b, self.p, float(self.gp), self.osc, self.insufficient_buffer_rule)

    def _decide(self, obs, rows, level, tput, lat):
        return self.bolae.decide(obs.sessions[rows], level, tput, lat, np.asarray(obs.mask, bool)[rows])

    def _check_abandon(self, s, rung, done, size, elapsed, ttfb, level, lat_est):
        return self.bolae.check_abandon(s, rung, done, size, elapsed, ttfb, level)

    def _info(self, s):
        return {"placeholder_s": self.bolae.placeholder[s] / 1000.0}


@register("sabre-dynamic")
class SabreDynamic(SabrePolicy):
    """Sabre's Dynamic: its Bola and ThroughputRule both decide every segment; BOLA's answer
    is taken once the buffer exceeds the threshold and BOLA asks no less, the throughput
    rule's again below the threshold when BOLA asks less; abandonment by the throughput rule."""

    PARAMS = (
        Param("threshold_s", 10.0, "s", "buffer level of the switch, both ways (Sabre: 10 s)"),
        P_GP, P_BASIC, P_OSC, P_IBR, P_BUFFER) + P_HALF_LIVES

    def _reset_rules(self, n: int, ladder: Ladder) -> None:
        self.bola = BolaRule(n, self.b, self.p, float(self.gp), self.basic, self.osc)
        self.tput = ThroughputRule(n, self.b, self.p, self.insufficient_buffer_rule)
        self.is_bola = np.zeros(n, dtype=bool)

    def _decide(self, obs, rows, level, tput, lat):
        s = self._rule_rows(obs, rows)
        target = _bola_target(self.bola, self, obs, rows)
        qb, db = self.bola.decide(s, level, target, tput, lat, np.asarray(obs.mask, bool)[rows])
        qt = self.tput.decide(s, level, tput, lat)
        thr = float(to_ms(self.threshold_s))
        cur = self.is_bola[s]
        now = np.where(cur, ~((level < thr) & (qb < qt)), (level > thr) & (qb >= qt))
        self.is_bola[s] = now
        return np.where(now, qb, qt), np.where(now, db, 0.0)

    def _check_abandon(self, s, rung, done, size, elapsed, ttfb, level, lat_est):
        return self.tput.check_abandon(rung, done, size, elapsed, ttfb, lat_est)

    def _info(self, s):
        return {"bola": self.is_bola[s].copy(), "target_s": self.bola.target[s] / 1000.0}


@register("sabre-dynamicdash")
class SabreDynamicDash(WithBolaE):
    """Sabre's DynamicDash: BolaEnh above 10 s of buffer until it falls below 5 s, Sabre's
    ThroughputRule otherwise; only the one in charge decides, both hear every report."""

    PARAMS = (
        Param("low_s", 5.0, "s", "back to the throughput rule below this buffer (Sabre: 5 s)"),
        Param("high_s", 10.0, "s", "BOLA-E above this buffer (Sabre: 10 s)"),
        P_GP, P_OSC, P_IBR, P_BUFFER) + P_HALF_LIVES

    def _reset_rules(self, n: int, ladder: Ladder) -> None:
        self.bolae = BolaERule(n, self.b, self.p, float(self.gp), self.osc, self.insufficient_buffer_rule)
        self.tput = ThroughputRule(n, self.b, self.p, self.insufficient_buffer_rule)
        self.is_bola = np.zeros(n, dtype=bool)

    def _decide(self, obs, rows, level, tput, lat):
        s = obs.sessions[rows]
        cur = self.is_bola[s]
        now = np.where(cur, level >= float(to_ms(self.low_s)), level > float(to_ms(self.high_s)))
        self.is_bola[s] = now
        q = np.zeros(level.size, dtype=np.int64)
        delay = np.zeros(level.size)
        if now.any():
            q[now], delay[now] = self.bolae.decide(s[now], level[now], tput[now], lat[now],
                                                   np.asarray(obs.mask, bool)[rows][now])
        if (~now).any():
            q[~now] = self.tput.decide(s[~now], level[~now], tput[~now], lat[~now])
        return q, delay

    def _check_abandon(self, s, rung, done, size, elapsed, ttfb, level, lat_est):
        bola = self.is_bola[s]
        out = np.full(s.size, -1, dtype=np.int64)
        tput = ~bola
        if tput.any():
            out[tput] = self.tput.check_abandon(rung[tput], done[tput], size[tput], elapsed[tput], ttfb[tput],
                                                lat_est[tput])
        if bola.any():
            out[bola] = self.bolae.check_abandon(s[bola], rung[bola], done[bola], size[bola], elapsed[bola],
                                                 ttfb[bola], level[bola])
        return out

    def _info(self, s):
        return {"bola": self.is_bola[s].copy(), "placeholder_s": self.bolae.placeholder[s] / 1000.0}
