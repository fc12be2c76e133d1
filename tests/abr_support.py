"""Support for the ABR tests: random ladders and a tiny, self-consistent session model that
produces Observations the way the simulator contract says (one new completed download
per select since the session's previous call, newest sample last, NaN-padded history).

It also holds the plain-Python references the tests compare against; nothing here
imports the code under test beyond the `abr` data classes.
"""
from __future__ import annotations

import dataclasses
import itertools

import numpy as np
import pytest

from abr import Ladder, Observation

PENSIEVE = Ladder(np.array([300e3, 750e3, 1200e3, 1850e3, 2850e3, 4300e3]), 4.0)

#: small grids keep FastMPC table builds in tests to milliseconds
TEST_PARAMS = {"fastmpc": {"buffer_max_s": 40.0, "buffer_step_s": 2.0, "tput_bins": 24}}


@pytest.fixture(autouse=True)
def abr_cache(tmp_path_factory, monkeypatch):
    """FastMPC tables go to a per-run temporary cache, never the user's ~/.cache.
    Modules import this fixture to use it."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.getbasetemp() / "abr-cache"))


def random_ladder(rng: np.random.Generator, max_rungs: int = 6) -> Ladder:
    r = int(rng.integers(1, max_rungs + 1))
    kbps = np.sort(rng.choice(np.arange(100, 8000, 50), size=r, replace=False))
    return Ladder(kbps * 1e3, float(rng.choice([1.0, 2.0, 4.0, 6.0])))


class Sessions:
    """n sessions streaming `segments` segments through random bandwidth, in lockstep steps
    where a random subset of sessions is active (each active session makes one decision)."""

    MAX_CHUNKS = 8

    def __init__(self, rng: np.random.Generator, ladder: Ladder, n: int, segments: int = 30,
                 history: int = 8, horizon: int = 5, masks: bool = True) -> None:
        self.rng, self.ladder, self.n = rng, ladder, n
        self.R, self.L = ladder.n, ladder.segment_duration_s
        self.H, self.horizon = history, horizon
        self.segments = segments
        noise = rng.uniform(0.7, 1.3, (n, segments, self.R))
        self.sizes = np.round(ladder.bitrates_bps[None, None, :] * self.L / 8.0 * noise)
        self.mean_bw = rng.lognormal(np.log(ladder.bitrates_bps.mean()), 0.8, n)
        self.cap = rng.choice([10.0, 20.0, 30.0, 60.0], n)
        self.buffer = np.zeros(n)
        self.time = np.zeros(n)
        self.last = np.full(n, -1, dtype=np.int64)
        self.index = np.zeros(n, dtype=np.int64)
        self.tput = np.full((n, history), np.nan)
        self.dl = np.full((n, history), np.nan)
        self.playing = np.zeros(n, dtype=bool)
        self.mask = np.ones((n, self.R), dtype=bool)
        if masks and self.R > 1:
            for i in range(n):
                kind = rng.integers(0, 4)
                if kind == 1:    # device cap: top rungs forbidden
                    self.mask[i, rng.integers(1, self.R):] = False
                elif kind == 2:  # random holes
                    self.mask[i] = rng.random(self.R) < 0.6
                elif kind == 3:  # everything but the lowest forbidden
                    self.mask[i, 1:] = False
        # live inputs: some sessions live (latency, catch-up rate, target), the others VoD
        self.live = rng.random(n) < 0.7
        self.latency = np.where(self.live, rng.uniform(0.5, 6.0, n), np.nan)
        self.rate = np.where(self.live, rng.choice([0.95, 1.0, 1.05, 1.2], n), 1.0)
        self.target = np.where(self.live, rng.uniform(1.0, 4.0, n), np.nan)
        # live segments come in chunks, paced by the encoder (chunk timing of the newest download)
        self.n_chunks = rng.integers(2, self.MAX_CHUNKS + 1, n)
        self.chunk_bytes = np.full((n, self.MAX_CHUNKS), np.nan)
        self.chunk_start = np.full((n, self.MAX_CHUNKS), np.nan)
        self.chunk_end = np.full((n, self.MAX_CHUNKS), np.nan)
        self.chunk_buffer = np.full((n, self.MAX_CHUNKS), np.nan)
        self.available = np.full(n, np.nan)

    def active(self) -> np.ndarray:
        live = np.flatnonzero(self.index < self.segments)
        pick = self.rng.random(live.size) < 0.75
        return live[pick]

    def observe(self, rows: np.ndarray) -> Observation:
        idx = self.index[rows]
        h = np.minimum(idx[:, None] + np.arange(self.horizon)[None, :], self.segments - 1)
        nxt = self.sizes[rows[:, None], h]  # (k, horizon, R)
        return Observation(
            sessions=rows.copy(), buffer_s=self.buffer[rows].copy(),
            last_rung=self.last[rows].copy(), throughput_bps=self.tput[rows].copy(),
            download_time_s=self.dl[rows].copy(), next_sizes_bytes=nxt,
            segments_left=self.segments - idx, segment_index=idx.copy(),
            segment_duration_s=self.L, playing=self.playing[rows].copy(),
            mask=self.mask[rows].copy(), time_s=self.time[rows].copy(),
            buffer_cap_s=self.cap[rows].copy(), latency_s=self.latency[rows].copy(),
            playback_rate=self.rate[rows].copy(), target_latency_s=self.target[rows].copy(),
            chunk_bytes=self.chunk_bytes[rows].copy(), chunk_start_s=self.chunk_start[rows].copy(),
            chunk_end_s=self.chunk_end[rows].copy(), chunk_buffer_s=self.chunk_buffer[rows].copy(),
            segment_available_s=self.available[rows].copy())

    def download(self, rows: np.ndarray, rungs: np.ndarray) -> None:
        """Fetch the chosen rungs: update buffer, clock and history."""
        for i, q in zip(rows.tolist(), np.asarray(rungs).tolist()):
            size = self.sizes[i, self.index[i], q]
            bw = self.mean_bw[i] * self.rng.lognormal(0.0, 0.5)
            t = size * 8.0 / bw
            latency = 0.05
            if self.live[i]:
                t = self._chunked(i, size, bw, latency)
            self.time[i] += latency + t
            rebuffer = max(latency + t - self.buffer[i], 0.0) if self.playing[i] else 0.0
            if self.playing[i]:
                self.buffer[i] = max(self.buffer[i] - latency - t, 0.0)
            self.buffer[i] += self.L
            self.playing[i] = self.playing[i] or self.buffer[i] >= self.L
            if self.buffer[i] > self.cap[i]:  # wait for room
                wait = self.buffer[i] - self.cap[i]
                self.time[i] += wait
                self.buffer[i] = self.cap[i]
            self.tput[i, :-1] = self.tput[i, 1:]
            self.dl[i, :-1] = self.dl[i, 1:]
            self.tput[i, -1] = size * 8.0 / t
            self.dl[i, -1] = t
            self.last[i] = q
            self.index[i] += 1
            if self.live[i]:  # the latency follows the stalls; the catch-up rate wanders
                self.latency[i] = max(0.2, self.latency[i] + rebuffer - 0.05 * (self.rate[i] - 1.0) * t)
                self.rate[i] = self.rng.choice([0.95, 1.0, 1.05, 1.2])


    def _chunked(self, i: int, size: float, bw: float, latency: float) -> float:
        """Chunk timing of a live download: chunk j is complete at the origin (j+1)·L/k − a
        after the request (a: how long the segment had been available), goes out when both
        it and the link are ready; returns the transfer time (first byte to last)."""
        k = int(self.n_chunks[i])
        a = float(self.rng.uniform(0.0, 1.5)) * self.L
        each = size / k
        row = np.full(self.MAX_CHUNKS, np.nan)
        start, end, level = row.copy(), row.copy(), row.copy()
        ready_link = latency
        for j in range(k):
            start[j] = max(ready_link, (j + 1) * self.L / k - a)
            end[j] = ready_link = start[j] + each * 8.0 / bw
            level[j] = max(self.buffer[i] - end[j], 0.0) if self.playing[i] else self.buffer[i]
        self.chunk_bytes[i] = np.where(np.arange(self.MAX_CHUNKS) < k, each, np.nan)
        self.chunk_start[i], self.chunk_end[i], self.chunk_buffer[i] = start, end, level
        self.available[i] = a
        return end[k - 1] - latency


def take_rows(obs: Observation, rows: np.ndarray) -> Observation:
    """The observation restricted to some rows (every per-row array indexed by `rows`)."""
    rows = np.asarray(rows)
    kw = {}
    for f in dataclasses.fields(obs):
        v = getattr(obs, f.name)
        kw[f.name] = v[rows] if isinstance(v, np.ndarray) else v
    return Observation(**kw)


def single(obs: Observation, row: int) -> Observation:
    """Row `row` of an observation as a one-session observation for a fresh policy."""
    return dataclasses.replace(take_rows(obs, np.array([row])), sessions=np.array([0]))


def brute_force_mpc(bitrates_bps, sizes_bytes, buffer_s, bw_bps, last, horizon, seg_s,
                    rebuf_penalty=4.3, smooth_penalty=1.0, allowed=None):
    """Pensieve test/mpc.py's search in plain Python: best reward per first rung."""
    R = len(bitrates_bps)
    best = {}
    for combo in itertools.product(range(R), repeat=horizon):
        if allowed is not None and not all(allowed[r] for r in combo):
            continue
        buf, rebuf, bsum, smooth, prev = buffer_s, 0.0, 0.0, 0.0, last
        for pos, r in enumerate(combo):
            dt = sizes_bytes[pos][r] * 8.0 / bw_bps
            if buf < dt:
                rebuf += dt - buf
                buf = 0.0
            else:
                buf -= dt
            buf += seg_s
            bsum += bitrates_bps[r] / 1e6
            if prev >= 0:
                smooth += abs(bitrates_bps[r] - bitrates_bps[prev]) / 1e6
            prev = r
        reward = bsum - rebuf_penalty * rebuf - smooth_penalty * smooth
        if combo[0] not in best or reward > best[combo[0]]:
            best[combo[0]] = reward
    return best


#: dash.js's reference stream (bbb, 3 s segments), the ladder of the dash.js policy tests
BBB_KBPS = [230, 331, 477, 688, 991, 1427, 2056, 2962, 5027, 6000]  # 3 s segments
BBB = Ladder(np.array(BBB_KBPS, dtype=float) * 1000.0, 3.0)


def dashjs_obs(buffer_s, last, samples=(), times=(), t=0.0, playing=True, cap=18.0, ladder=BBB):
    """One session's Observation as dash.js sees it: `samples` throughputs (bits/s) that took
    `times` seconds, newest last."""
    H = 8
    tp = np.full((1, H), np.nan)
    dl = np.full((1, H), np.nan)
    if samples:
        tp[0, -len(samples):] = samples
        dl[0, -len(samples):] = times
    R = ladder.n
    return Observation(
        sessions=np.array([0]), buffer_s=np.array([float(buffer_s)]), last_rung=np.array([last]),
        throughput_bps=tp, download_time_s=dl,
        next_sizes_bytes=np.tile(ladder.bitrates_bps * ladder.segment_duration_s / 8, (1, 5, 1)),
        segments_left=np.array([10]), segment_index=np.array([0]),
        segment_duration_s=ladder.segment_duration_s, playing=np.array([playing]),
        mask=np.ones((1, R), bool), time_s=np.array([float(t)]), buffer_cap_s=np.array([cap]))
