"""dash.js `LearningAbrController` (lolp/LearningAbrController.js): LoL+'s self-organising
map (SOM), vectorised over sessions.

One neuron per rung, its state (throughput, latency, rebuffer, switch) starting at
(bitrate / ‖bitrates‖, 0, 0, 0). Per decision, with the safe throughput c (bit/s):

* If the current rung's download (bitrate × segment duration / c) would leave less than
  `buffer_min_s` of buffer: down-shift to the highest rung below the current one whose
  bitrate is under c (or stay), and learn nothing.
* Else the weights come from the dynamic weight selector (initially, and while it finds
  none, the last of the k-means++ centres of random data), and the winner is the neuron
  nearest to (c / ‖bitrates‖ — or the largest throughput state when that exceeds 1 —, 0,
  0, 0) in the weighted distance, where a rung above c − 10 kbit/s or whose download would
  leave the buffer under `buffer_min_s` gets throughput weight 100 (not the lowest rung).
* Then the map learns: every neuron moves towards the measured state (the current neuron
  as winner) and towards the target state (latency and rebuffer 0, the chosen neuron as
  winner), by learning rate 0.01 × exp(−d² / (2·0.1²)), d its distance to the winner —
  neuron by neuron in ladder order, as dash.js mutates them in place (neurons after the
  winner see its updated state).

Randomness: dash.js draws the k-means++ data with Math.random(); here a counter-based
stream keyed by `seed` draws it, the same for every session, so a session's choices do
not depend on the batch around it. (Those initial weights are in practice never used: once
the buffer is not low, the current rung itself meets the selector's buffer constraint and
its latency constraint cannot fail, so the selector always finds weights. They are kept as
dash.js has them.)
"""
from __future__ import annotations

import numpy as np

from abr.algorithms._common import uniform_stream
from abr.algorithms.dashjs.lolp.weight_selector import find_weight_vector, next_buffer_s

#: LearningAbrController's constants.
LATENCY_NORMALIZATION_S = 100.0
THROUGHPUT_DELTA_BPS = 10_000.0      # "10K + video encoding is the recommended throughput"
LOW_BUFFER_THROUGHPUT_WEIGHT = 100.0


def weighted_distance(a: np.ndarray, b: np.ndarray, w: np.ndarray) -> np.ndarray:
    """_getDistance over the last axis: sign · √|Σ w_i (a_i − b_i)²|, summed in order."""
    terms = w * (a - b) ** 2
    total = terms[..., 0]
    for i in range(1, terms.shape[-1]):
        total = total + terms[..., i]
    return np.where(total < 0, -1.0, 1.0) * np.sqrt(np.abs(total))


def kmeans_pp_last_center(n_neurons: int, max_throughput: float, seed: int) -> np.ndarray:
    """_getInitialKmeansPlusPlusCenters(...)[-1]: k-means++-style centres (the farthest point
    each time) of n² random points, sorted by distance to the least similar centre; the
    last one (the farthest from it)."""
    m = n_neurons * n_neurons
    data = uniform_stream(np.full(4 * m, int(seed)), np.arange(4 * m)).reshape(m, 4)
    data[:, 0] = data[:, 0] * max_throughput
    ones = np.ones(4)
    centers = [0]
    for _ in range(1, n_neurons):
        d = np.stack([weighted_distance(data, data[c], ones) for c in centers])   # (centres, points)
        centers.append(int(np.argmax(d.min(axis=0))))
    C = data[centers]
    pair = np.stack([weighted_distance(C, C[i], ones) for i in range(len(C))])    # (i, j)
    spread = np.array([sum(pair[i, j] for j in range(len(C)) if j != i) for i in range(len(C))])
    first = int(np.argmax(spread))
    rest = [i for i in range(len(C)) if i != first]
    if not rest:
        return C[first].copy()
    order = np.argsort(pair[first, rest], kind="stable")
    return C[rest[order[-1]]].copy()


class LearningAbrController:
    """The SOM for a ladder and its per-session state: neurons (n, R, 4) and weights (n, 4)."""

    def __init__(self, n: int, bitrates_bps: np.ndarray, seed: int, learning_rate: float,
                 sigma: float, buffer_min_s: float) -> None:
        b = bitrates_bps
        R = b.size
        self.bitrates_bps = b
        self.norm = float(np.sqrt(np.add.accumulate(b ** 2)[-1]))          # _getMagnitude
        self.learning_rate, self.sigma = float(learning_rate), float(sigma)
        self.buffer_min_s = float(buffer_min_s)
        self.neurons = np.zeros((n, R, 4))
        self.neurons[:, :, 0] = b / self.norm
        self.initial_weights = kmeans_pp_last_center(R, float(np.max(b / self.norm)), seed)
        self.weights = np.zeros((n, 4))
        self.has_weights = np.zeros(n, dtype=bool)

    def next_quality(self, s: np.ndarray, throughput_bps: np.ndarray, latency_s: np.ndarray,
                     buffer_s: np.ndarray, playback_rate: np.ndarray, current: np.ndarray,
                     segment_duration_s: float, qoe_bitrates: np.ndarray,
                     target_latency_s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """getNextQuality for sessions `s`: (rung, whether the map chose it — False where it
        down-shifted for a low buffer). `qoe_bitrates` are the bitrates as the weight
        selector's QoE sees them, `target_latency_s` its latency target per row."""
        b = self.bitrates_bps
        L = segment_duration_s
        state = self.neurons[s]
        thr_n = throughput_bps / self.norm
        thr_n = np.where(thr_n > 1, np.maximum(0.0, state[:, :, 0].max(axis=1)), thr_n)
        latency_n = latency_s / LATENCY_NORMALIZATION_S
        download = (b[current] * L) / throughput_bps
        rebuffer = np.maximum(0, download - buffer_s)
        low = buffer_s - download < self.buffer_min_s
        # down-shift: the highest rung below the current one whose bitrate is under the throughput
        below = (b[None, :] < b[current][:, None]) & (throughput_bps[:, None] > b[None, :])
        down = np.where(below.any(axis=1), b.size - 1 - np.argmax(below[:, ::-1], axis=1), current)
        rung = down.astype(np.int64)
        m = np.flatnonzero(~low)
        if m.size:
            rung[m] = self._learn(s[m], state[m], thr_n[m], latency_n[m], latency_s[m], buffer_s[m],
                                  rebuffer[m], throughput_bps[m], playback_rate[m], current[m], L, qoe_bitrates,
                                  target_latency_s[m])
        return rung, ~low

    def _learn(self, s: np.ndarray, state: np.ndarray, thr_n: np.ndarray, latency_n: np.ndarray,
               latency_s: np.ndarray, buf: np.ndarray, rebuffer: np.ndarray, thr: np.ndarray,
               rate: np.ndarray, cur: np.ndarray, L: float, qoe_bitrates: np.ndarray,
               target_latency_s: np.ndarray) -> np.ndarray:
        """Weights, winner and the map's update for the rows whose buffer is not low."""
        b = self.bitrates_bps
        k, R = s.size, b.size
        # dynamic weights (_dynamicWeightSelection)
        w = np.where(self.has_weights[s][:, None], self.weights[s], self.initial_weights[None, :])
        found_w, found = find_weight_vector(state[:, :, 1], b, qoe_bitrates, latency_s, buf, thr, rate, L,
                                            target_latency_s, self.buffer_min_s)
        w = np.where(found[:, None], found_w, w)
        self.weights[s] = w
        self.has_weights[s] = True
        # the winner: nearest neuron to the target state under the weights
        nxt = next_buffer_s(buf[:, None], (b[None, :] * L) / thr[:, None], L)
        heavy = ((b[None, :] > thr[:, None] - THROUGHPUT_DELTA_BPS) | (nxt < self.buffer_min_s)) \
            & (b[None, :] != np.min(b))
        dw = np.broadcast_to(w[:, None, :], (k, R, 4)).copy()
        dw[:, :, 0] = np.where(heavy, LOW_BUFFER_THROUGHPUT_WEIGHT, dw[:, :, 0])
        target = np.zeros((k, 1, 4))
        target[:, 0, 0] = thr_n
        win = np.argmin(weighted_distance(state, target, dw), axis=1)
        switch = np.abs(b[cur] - b[win]) / self.norm
        measured = np.stack([thr_n, latency_n, rebuffer, switch], axis=1)
        wanted = np.stack([thr_n, np.zeros(k), np.zeros(k), switch], axis=1)
        self._update(state, cur, measured)
        self._update(state, win, wanted)
        self.neurons[s] = state
        return win.astype(np.int64)

    def _update(self, state: np.ndarray, winner: np.ndarray, x: np.ndarray) -> None:
        """_updateNeurons, in place, neuron by neuron (the winner's state as it is by then)."""
        rows = np.arange(state.shape[0])
        ones = np.ones(4)
        for i in range(state.shape[1]):
            d = weighted_distance(state[:, i], state[rows, winner], ones)
            hood = np.exp(-1 * d ** 2 / (2 * self.sigma ** 2))
            state[:, i] = state[:, i] + (x - state[:, i]) * self.learning_rate * hood[:, None]
