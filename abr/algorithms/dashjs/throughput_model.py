"""dash.js 5's throughput estimate (`ThroughputModel.addEntry`, `ThroughputController.
getAverageThroughput` in EWMA mode), on `abr.estimators.DualEwma`.

Each media segment gives a sample of round(8 · bytes / transfer ms) kbit/s, folded into a
fast and a slow EWMA whose weight is `weight_per_ms` × transfer ms (0.0015,
`weightDownloadTimeMultiplicationFactor`): the half-lives 3 and 8 are in those units, i.e.
2 s and 5.33 s of transfer. The estimate is min(fast, slow) after the zero-start
correction, rounded to whole kbit/s; the *safe* estimate is `bandwidthSafetyFactor` (0.9)
times that (`getSafeAverageThroughput`). The same model serves every dash.js rule here
(dashjs, l2a, lolp).
"""
from __future__ import annotations

import numpy as np

from abr.base import Observation
from abr.estimators import ChunkedSampler, DualEwma

#: dash.js's EWMA unit: estimates are kept in whole kbit/s.
KBPS = 1000.0


def throughput_model(n: int, fast_half_life: float, slow_half_life: float,
                     weight_per_ms: float) -> DualEwma:
    """A fresh dash.js throughput model for `n` sessions (half-lives in units of weight)."""
    return DualEwma(n, fast_half_life, slow_half_life, weight_per_ms=weight_per_ms,
                    unit_bps=KBPS, whole_units=True)


def add_media_segment(model: DualEwma, sessions: np.ndarray, rate_bps: np.ndarray,
                      transfer_s: np.ndarray) -> np.ndarray:
    """ThroughputModel.addEntry for a media segment; rows without a positive, finite rate
    and transfer time (no sample) are left out. Returns which rows gave a sample."""
    ok = (np.isfinite(rate_bps) & (rate_bps > 0) & np.isfinite(transfer_s) & (transfer_s > 0))
    if ok.any():
        model.update(sessions, rate_bps, transfer_s, ok)
    return ok


def newest_media_sample(obs: Observation, chunks: ChunkedSampler | None = None,
                        ladder_bps: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(rate, transfer time) of the media segment each row downloaded since its previous
    decision; NaN for rows choosing their first segment (nothing downloaded yet). Where the
    session reports chunk timing, `chunks` turns it into the sample (dash.js's FetchLoader
    with chunked transfer: the download time it computes is the sample's EWMA weight)."""
    n = obs.n
    later = np.asarray(obs.last_rung) >= 0
    tput = obs.throughput_bps[:, -1] if obs.throughput_bps.shape[1] else np.full(n, np.nan)
    dl = obs.download_time_s[:, -1] if obs.download_time_s.shape[1] else np.full(n, np.nan)
    if chunks is not None and obs.chunk_bytes.shape[1]:
        rate, time_s, has = chunks.sample(obs, ladder_bps)
        tput, dl = np.where(has, rate, tput), np.where(has, time_s, dl)
    return np.where(later, tput, np.nan), np.where(later, dl, np.nan)
