"""QoE models; every score comes with its components, never only the sum.

- linear (MPC, Pensieve): Σ R_k − 4.3·Σ rebuffer_k − 1·Σ |R_k − R_{k−1}|, R in Mbit/s.
- log (MPC paper's QoE_log): utility ln(R_k / R_min), rebuffer weight 2.66, smoothness
  on |ln R_k − ln R_{k−1}|.
- hd (Pensieve's QoE_hd): utility from a table favouring HD rungs (1, 2, 3, 12, 15, 20 for
  Pensieve's six rungs; for other ladders chosen by rung height), rebuffer weight 8,
  smoothness on |u_k − u_{k−1}|.
- twitch (live; the ACM MMSys 2020 Twitch grand challenge "Adaptation Algorithms for
  Near-Second Latency", whose evaluation scores five metrics — bitrate, bitrate switches,
  rebuffering, live latency, playback speed — by the NQoE of Bentaleb et al.; the weights
  are those its authors ship in dash.js `LoLpQoEEvaluator`, "Source: Abdelhak Bentaleb,
  2020"), per segment k, bitrates R in kbit/s:
  Σ_k [D_k·R_k − R_max·E_k − γ(L_k)·L_k − R_min·|1 − P_k|] − Σ_k |R_k − R_{k−1}|,
  D_k the segment's duration (s), E_k its rebuffering (s), L_k the live latency and P_k the
  playback rate when it arrived, γ(L) = 0.05·R_min for L ≤ 1.1 s, else 0.1·R_max. The
  challenge sampled its statistics per 33 ms chunk; this sums per segment, as dash.js does.
  Outside live sessions the latency and speed terms are 0.
Rebuffer time is attributed to the segment whose download it happened during.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from netem.content import default_resolution

MODELS = ("linear", "log", "hd", "twitch")
#: the models with latency and playback-speed terms (their components are reported)
LIVE_MODELS = ("twitch",)
#: twitch: the latency threshold (s) and the penalty factors on R_min below it, R_max above
TWITCH_LATENCY_THRESHOLD_S = 1.1
TWITCH_LOW_LATENCY_FACTOR = 0.05
TWITCH_HIGH_LATENCY_FACTOR = 0.1
_HD_BY_HEIGHT = ((240, 1.0), (360, 2.0), (480, 3.0), (720, 12.0), (1080, 15.0))


@dataclass(frozen=True)
class QoE:
    model: str
    total: float
    utility: float
    rebuffer_penalty: float
    smoothness_penalty: float
    segments: int
    latency_penalty: float = 0.0
    speed_penalty: float = 0.0

    def as_dict(self) -> dict:
        parts = {"utility": self.utility, "rebuffer_penalty": self.rebuffer_penalty,
                 "smoothness_penalty": self.smoothness_penalty}
        if self.model in LIVE_MODELS:
            parts.update(latency_penalty=self.latency_penalty, speed_penalty=self.speed_penalty)
        return {"model": self.model, "total": self.total, "components": parts, "segments": self.segments}


def hd_utilities(bitrates_bps: np.ndarray, heights: np.ndarray | None = None) -> np.ndarray:
    b = np.asarray(bitrates_bps, dtype=float)
    if b.size == 6 and np.allclose(b, [300e3, 750e3, 1200e3, 1850e3, 2850e3, 4300e3]):
        return np.array([1.0, 2.0, 3.0, 12.0, 15.0, 20.0])
    if heights is None or np.all(np.asarray(heights) <= 0):
        heights = np.array([default_resolution(x)[1] for x in b])
    out = np.full(b.size, 20.0)
    for limit, u in reversed(_HD_BY_HEIGHT):
        out = np.where(np.asarray(heights) <= limit, u, out)
    return out


def rung_utilities(model: str, bitrates_bps: np.ndarray, heights: np.ndarray | None = None) -> tuple[np.ndarray, float]:
    """Per-rung utility and the rebuffer weight (utility per second of stall) of a model."""
    b = np.asarray(bitrates_bps, dtype=float)
    if model == "linear":
        return b / 1e6, 4.3
    if model == "log":
        return np.log(b / b[0]), 2.66
    if model == "hd":
        return hd_utilities(b, heights), 8.0
    if model == "twitch":
        return b / 1e3, float(b[-1] / 1e3)
    raise ValueError(f"unknown QoE model {model!r}; known: {', '.join(MODELS)}")


def score(model: str, rungs: np.ndarray, rebuffer_s: np.ndarray, bitrates_bps: np.ndarray,
          heights: np.ndarray | None = None, skip_first: bool = False,
          valid: np.ndarray | None = None, *, durations_s: np.ndarray | None = None,
          latency_s: np.ndarray | None = None, playback_rate: np.ndarray | None = None) -> np.ndarray:
    """Vectorised over sessions: `rungs` and `rebuffer_s` are (n, segments). Returns an
    (n, 6) array of total, utility, rebuffer penalty, smoothness penalty, latency penalty,
    speed penalty (the last two only for the live models; 0 otherwise).

    With `skip_first`, segment 1 is left out of every term (Pensieve sums over 2..N).
    `valid` (n, segments) marks the segments each session got (default: all). For `twitch`:
    `durations_s` (segments,) weigh the bitrate reward (default 1 s each), `latency_s` and
    `playback_rate` (n, segments) are each segment's live latency and rate (NaN or absent:
    no latency, normal speed).
    """
    u, w = rung_utilities(model, bitrates_bps, heights)
    rungs = np.atleast_2d(rungs)
    rebuffer_s = np.atleast_2d(rebuffer_s)
    util = u[rungs]
    smooth = np.empty_like(util)        # |u_k - u_{k-1}|, 0 for the first segment; written in place
    smooth[:, :1] = 0.0
    np.subtract(util[:, 1:], util[:, :-1], out=smooth[:, 1:])
    np.abs(smooth[:, 1:], out=smooth[:, 1:])
    lat = speed = None          # no latency or speed terms (VoD, or a model without them): 0 exactly
    if model in LIVE_MODELS:
        if durations_s is not None:
            util = util * np.asarray(durations_s, dtype=np.float64)[None, :util.shape[1]]
        low, high = float(u[0]), float(u[-1])
        if latency_s is not None:
            L = np.nan_to_num(np.atleast_2d(np.asarray(latency_s, dtype=np.float64)), nan=0.0)
            gamma = np.where(L <= TWITCH_LATENCY_THRESHOLD_S, TWITCH_LOW_LATENCY_FACTOR * low,
                             TWITCH_HIGH_LATENCY_FACTOR * high)
            lat = gamma * L
        if playback_rate is not None:
            P = np.nan_to_num(np.atleast_2d(np.asarray(playback_rate, dtype=np.float64)), nan=1.0)
            speed = low * np.abs(1.0 - P)
    if valid is not None:
        util = util * valid
        smooth[:, 1:] *= valid[:, 1:]
        rebuffer_s = rebuffer_s * valid
        lat = None if lat is None else lat * valid
        speed = None if speed is None else speed * valid
    first = 1 if skip_first else 0
    U = util[:, first:].sum(axis=1)
    RB = w * rebuffer_s[:, first:].sum(axis=1)
    SM = smooth[:, first:].sum(axis=1)
    # an absent term is a column of zeros, not a zero array summed (x - 0.0 is x, bit for bit)
    LA = np.zeros(U.shape) if lat is None else lat[:, first:].sum(axis=1)
    SP = np.zeros(U.shape) if speed is None else speed[:, first:].sum(axis=1)
    return np.column_stack([U - RB - SM - LA - SP, U, RB, SM, LA, SP])


def qoe_records(model: str, rows: np.ndarray, segments: int) -> list[QoE]:
    return [QoE(model, float(r[0]), float(r[1]), float(r[2]), float(r[3]), segments, float(r[4]), float(r[5]))
            for r in rows]
