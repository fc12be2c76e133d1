"""dash.js's low-latency rules as policies of their own: `l2a` (L2ARule) and `lolp`
(LoLpRule). dash.js documents both as tested standalone, every other rule deactivated
(Settings.js, `abr.rules`); so here each is the only rule: the first segment at the initial
bitrate, then the rule's request, or the current rung when it asks nothing.

Both read the live inputs of the observation: the playback rate (L2A, LoL+) and the live
latency (LoL+), with their neutral values (rate 1, latency 0) outside live sessions.
Throughput: dash.js's ThroughputModel (`throughput_model`), fed one sample per media
segment — from its chunk timing by `chunk_estimator` where the session reports it (dash.js's
low-latency FetchLoader), else the session's bytes / transfer time.
"""
from __future__ import annotations

import numpy as np

from abr.algorithms.dashjs.l2a_rule import L2ARule
from abr.algorithms.dashjs.lolp.lolp_rule import DWS_BUFFER_MIN_S, DWS_TARGET_LATENCY_S, LoLpRule
from abr.algorithms.dashjs.settings import INITIAL_PARAM, THROUGHPUT_PARAMS, policy_throughput_model
from abr.algorithms.dashjs.switch_request import SwitchRequest, js_round, optimal_rung
from abr.algorithms.dashjs.throughput_model import KBPS, add_media_segment, newest_media_sample
from abr.base import Ladder, Observation, Param, Policy
from abr.estimators import ChunkedSampler
from abr.registry import register

DASHJS_UNITS_DOC = ("reproduce dash.js's unit mixing ({}); false: kbit/s throughout, as the paper "
                    "writes it")


class StandaloneRulePolicy(Policy):
    """One dash.js rule alone. Subclasses set up `_reset_rule` and answer `_request` for the
    rows past their first segment, given the safe throughput (bit/s)."""

    PARAMS = THROUGHPUT_PARAMS + (INITIAL_PARAM,)

    def _reset(self, n_sessions: int, ladder: Ladder) -> None:
        self.model = policy_throughput_model(self, n_sessions)
        self.chunks = ChunkedSampler(n_sessions, self.chunk_estimator)
        self.last_sample_kbps = np.full(n_sessions, np.nan)   # the newest throughput entry
        self._reset_rule(n_sessions, ladder)

    def _reset_rule(self, n_sessions: int, ladder: Ladder) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def _request(self, obs: Observation, later: np.ndarray, safe_bps: np.ndarray) -> SwitchRequest:
        raise NotImplementedError  # pragma: no cover - abstract

    def _select(self, obs: Observation) -> np.ndarray:
        s = np.asarray(obs.sessions, dtype=np.int64)
        b = self.ladder.bitrates_bps
        last = np.asarray(obs.last_rung, dtype=np.int64)
        later = last >= 0
        tput, dl = newest_media_sample(obs, self.chunks, b)
        ok = add_media_segment(self.model, s, tput, dl)
        self.last_delay_s = self.chunks.delay_s(s, obs.buffer_s)
        self.last_sample_kbps[s] = np.where(ok, js_round(tput / KBPS), self.last_sample_kbps[s])
        est = self.model.estimate(s)
        safe = est / KBPS * float(self.safety) * KBPS   # getSafeAverageThroughput (kbit/s) × 1000
        req = self._request(obs, later, safe)
        q = np.where(later & req.asks, req.rung, np.clip(last, 0, b.size - 1))
        q = np.where(later, q, optimal_rung(np.full(s.size, float(self.initial_bps)), b))
        self.last_info = {"throughput_bps": est, "safe_throughput_bps": safe, "requested": req.rung,
                          **{f"reason_{k}": v for k, v in req.reason.items()}}
        return q


@register("l2a")
class L2A(StandaloneRulePolicy):
    """dash.js L2A-LL: online learning of a rung distribution with a Lagrangian buffer term."""

    PARAMS = (
        Param("horizon", 4.0, "segments", "optimisation horizon (HORIZON): steps to convergence"),
        Param("vl", None, "-", "cautiousness of the Lagrangian descent (VL; None: horizon^0.99)"),
        Param("alpha", None, "-", "step size of the descent (None: max(horizon, vl·√horizon))"),
        Param("react", 2.0, "-", "Q is raised to react × max(vl, Q) when the chosen bitrate reaches "
              "the throughput (REACT)"),
        Param("buffer_target_s", 1.5, "s", "buffer level that ends the startup phase (B_target)"),
        Param("dashjs_units", True, "bool", DASHJS_UNITS_DOC.format(
            "bit/s bitrates against kbit/s throughput in the Q update and the step-up check")),
    ) + StandaloneRulePolicy.PARAMS

    def _reset_rule(self, n_sessions: int, ladder: Ladder) -> None:
        horizon = float(self.horizon)
        if horizon <= 0:
            raise ValueError(f"l2a: horizon must be positive, got {self.horizon!r}")
        vl = horizon ** 0.99 if self.vl is None else float(self.vl)
        alpha = max(horizon ** 1, vl * np.sqrt(horizon)) if self.alpha is None else float(self.alpha)
        self.rule = L2ARule(n_sessions, ladder.bitrates_bps, horizon, vl, alpha, float(self.react),
                            float(self.buffer_target_s), bool(self.dashjs_units))

    def _request(self, obs: Observation, later: np.ndarray, safe_bps: np.ndarray) -> SwitchRequest:
        s = np.asarray(obs.sessions, dtype=np.int64)
        self.rule.on_segment_loaded(s, later)
        return self.rule.request(s, later, np.asarray(obs.buffer_s, dtype=np.float64), np.asarray(obs.last_rung),
                                 safe_bps, self.last_sample_kbps[s], obs.playback_rate,
                                 float(obs.segment_duration_s))


@register("lolp")
class LoLP(StandaloneRulePolicy):
    """dash.js LoL+: a self-organising map over the rungs with dynamically selected weights."""

    PARAMS = (
        Param("target_latency_s", DWS_TARGET_LATENCY_S, "s", "the weight selector's latency target (DWS_TARGET_LATENCY; "
              "dash.js uses this constant, not the player's live delay; None: the observation's "
              "target_latency_s, 1.5 s where that is NaN)"),
        Param("buffer_min_s", DWS_BUFFER_MIN_S, "s", "minimum buffer after a download (DWS_BUFFER_MIN): below it the "
              "rule down-shifts, and weights and rungs that would go below it are avoided"),
        Param("learning_rate", 0.01, "-", "how far a neuron moves towards a state, per update"),
        Param("neighbourhood_sigma", 0.1, "-", "width σ of the neighbourhood exp(−d²/2σ²)"),
        Param("seed", 0, "-", "seed of the random data the initial weights come from (k-means++ "
              "centres); the same for every session"),
        Param("dashjs_units", True, "bool", DASHJS_UNITS_DOC.format(
            "the QoE rewards the bitrate in bit/s against penalties in kbit/s")),
    ) + StandaloneRulePolicy.PARAMS

    def _reset_rule(self, n_sessions: int, ladder: Ladder) -> None:
        self.rule = LoLpRule(n_sessions, ladder.bitrates_bps, int(self.seed), float(self.learning_rate),
                             float(self.neighbourhood_sigma), float(self.buffer_min_s), bool(self.dashjs_units))

    def _request(self, obs: Observation, later: np.ndarray, safe_bps: np.ndarray) -> SwitchRequest:
        s = np.asarray(obs.sessions, dtype=np.int64)
        if self.target_latency_s is None:
            t = np.where(np.isfinite(obs.target_latency_s), obs.target_latency_s, DWS_TARGET_LATENCY_S)
        else:
            t = np.full(s.size, float(self.target_latency_s))
        return self.rule.request(s, later, safe_bps, obs.latency_s, np.asarray(obs.buffer_s, dtype=np.float64),
                                 obs.playback_rate, np.asarray(obs.last_rung), float(obs.segment_duration_s), t)
