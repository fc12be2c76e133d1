"""dash.js `LoLpWeightSelector` (lolp/LoLpWeightSelector.js): the dynamic weights of LoL+'s
self-organising map.

The candidates are every vector of four weights (throughput, latency, buffer, switch) from
{0.2, 0.4, 0.6, 0.8, 1} (625, in dash.js's order: the first weight varies slowest). For each
neuron (rung) and candidate, the QoE of downloading that rung next is evaluated with the
rebuffer weighted by 1 / buffer weight and the neuron's latency by 1 / latency weight; the
first (neuron, candidate) with the highest QoE whose constraints hold wins: the latency
within the target plus its change since the previous call, and the buffer after the
download at least `buffer_min_s`. None satisfying them: no new weights.

dash.js makes a new selector for every decision, so "the previous latency" is always 0 and
the latency constraint (latency ≤ target + |latency|) always holds. Only the buffer and
latency weights enter the QoE, so the winner's throughput and switch weights are the
first value, 0.2.
"""
from __future__ import annotations

import itertools

import numpy as np

from abr.algorithms.dashjs.lolp.qoe_evaluator import single_use_qoe

WEIGHT_VALUES = (0.2, 0.4, 0.6, 0.8, 1.0)
#: dash.js `_getPermutations(valueList, 4)`, in its order.
WEIGHT_OPTIONS = np.array(list(itertools.product(WEIGHT_VALUES, repeat=4)))


def next_buffer_s(buffer_s: np.ndarray, download_s: np.ndarray, segment_duration_s: float) -> np.ndarray:
    """getNextBuffer: one segment played during a download longer than a segment, else the
    buffer grows by the segment less the download time."""
    return np.where(download_s > segment_duration_s, buffer_s - segment_duration_s,
                    buffer_s + segment_duration_s - download_s)


def find_weight_vector(neuron_latency: np.ndarray, bitrates_bps: np.ndarray, qoe_bitrates: np.ndarray,
                       latency_s: np.ndarray, buffer_s: np.ndarray, throughput_bps: np.ndarray,
                       playback_rate: np.ndarray, segment_duration_s: float, target_latency_s: np.ndarray,
                       buffer_min_s: float, previous_latency_s: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """(weights (k, 4), found (k,)) for k rows; `neuron_latency` is (k, R), the neurons'
    latency states; `qoe_bitrates` the bitrates as the QoE sees them."""
    k, R = neuron_latency.shape
    L = segment_duration_s
    download = (bitrates_bps[None, :] * L) / throughput_bps[:, None]                       # (k, R)
    nxt = next_buffer_s(buffer_s[:, None], download, L)
    rebuffer = np.maximum(0.00001, download - nxt)
    v = np.asarray(WEIGHT_VALUES)
    wr = (1 / v)[None, None, None, :] * rebuffer[:, :, None, None]                     # (k, R, latency w, buffer w)
    wl = (1 / v)[None, None, :, None] * neuron_latency[:, :, None, None]
    min_kbps = float(np.min(bitrates_bps)) / 1000.0
    max_kbps = float(np.max(bitrates_bps)) / 1000.0
    qoe = single_use_qoe(qoe_bitrates[None, :, None, None], wr, wl, playback_rate[:, None, None, None],
                         L, min_kbps, max_kbps)
    delta = np.abs(latency_s - previous_latency_s)
    ok = ~(latency_s > target_latency_s + delta)[:, None] & (nxt >= buffer_min_s)          # (k, R)
    qoe = np.where(ok[:, :, None, None], qoe, -np.inf).reshape(k, -1)
    found = ok.any(axis=1)
    best = np.argmax(qoe, axis=1)                        # first in (neuron, latency w, buffer w) order
    il, ib = (best // len(v)) % len(v), best % len(v)
    weights = np.stack([np.full(k, v[0]), v[il], v[ib], np.full(k, v[0])], axis=1)
    return weights, found
