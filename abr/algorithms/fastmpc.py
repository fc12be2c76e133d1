"""FastMPC: Yin et al., SIGCOMM 2015, §5 — MPC solved offline over a discretised state
(buffer level, predicted throughput, previous rung) and looked up at run time.

The table holds, for every grid point and every horizon length 1..H (the horizon shrinks
near the end of the content), the first rung of the best sequence under the same linear
QoE objective and buffer model as `mpc`, with segment sizes taken as nominal bitrate ×
duration (the table cannot know real sizes). Look-ups round buffer and throughput down
to the grid (the conservative side). The prediction is MPC's harmonic mean; `robust=true`
uses RobustMPC's discounted prediction instead.

Tables are cached on disk under $XDG_CACHE_HOME/abrlab (default ~/.cache/abrlab), one
file per ladder and parameter set, written atomically; an unwritable cache only costs
the rebuild (about a second for 6 rungs and the default grid).
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path

import numpy as np

from abr.algorithms.mpc import F32, MPC, MPC_PARAMS, chunk_rows, first_digit_min, get_tree, pick_first
from abr.base import Ladder, Observation, Param
from abr.registry import register

TABLE_VERSION = 2
_MEMORY: dict[str, np.ndarray] = {}


def clear_memory() -> None:
    """Forget the tables built in this process (the bench measures a fresh build)."""
    _MEMORY.clear()


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "abrlab"


def build_table(bitrates_bps: np.ndarray, seg_s: float, horizon: int, rebuf_penalty: float,
                smooth_penalty: float, buffers_s: np.ndarray, tputs_bps: np.ndarray) -> np.ndarray:
    """int8 table [h − 1, previous rung (R = none), buffer index, throughput index]."""
    b = np.asarray(bitrates_bps, dtype=np.float64)
    R, H = b.size, int(horizon)
    tree = get_tree(b, H, smooth_penalty)
    nb, nt = buffers_s.size, tputs_bps.size
    buf = np.repeat(buffers_s, nt)
    tput = np.tile(tputs_bps, nb)
    rows = buf.size
    # best cost per first digit, per level, with no previous rung
    M = np.empty((H, rows, R), dtype=F32)
    c = chunk_rows(R, H)
    nominal = b * seg_s / 8.0
    for lo in range(0, rows, c):
        hi = min(rows, lo + c)
        dt = (nominal[None, :] * 8.0 / tput[lo:hi, None]).astype(F32)
        dt = np.broadcast_to(dt[:, None, :], (hi - lo, H, R))
        last = np.full(hi - lo, -1, dtype=np.int64)
        for h, C in tree.levels(buf[lo:hi], dt, last, rebuf_penalty, seg_s, H):
            M[h, lo:hi] = first_digit_min(C, R)
    # the previous rung only adds its smoothness term to the first segment
    bm = b / 1e6
    bd = bm[::-1]
    pen = np.zeros((R + 1, R), dtype=F32)
    pen[:R] = smooth_penalty * np.abs(bd[None, :] - bm[:, None])
    table = np.empty((H, R + 1, rows), dtype=np.int8)
    for h in range(H):
        for last in range(R + 1):
            table[h, last] = R - 1 - pick_first(M[h] + pen[last][None, :])
    return table.reshape(H, R + 1, nb, nt)


@register("fastmpc")
class FastMPC(MPC):
    """MPC by table look-up over discretised buffer, throughput and previous rung."""

    PARAMS = MPC_PARAMS + (
        Param("robust", False, "bool", "use RobustMPC's discounted prediction"),
        Param("error_window", 5, "predictions", "prediction errors remembered when robust"),
        Param("buffer_max_s", 60.0, "s", "largest buffer level in the table"),
        Param("buffer_step_s", 0.5, "s", "buffer grid step (looked up rounding down)"),
        Param("tput_bins", 100, "bins", "throughput grid points, geometric"),
        Param("tput_min_ratio", 0.25, "x lowest bitrate", "lowest throughput in the grid"),
        Param("tput_max_ratio", 4.0, "x highest bitrate", "highest throughput in the grid"),
    )

    def _grid(self, ladder: Ladder) -> tuple[np.ndarray, np.ndarray]:
        step = float(self.buffer_step_s)
        if step <= 0 or float(self.buffer_max_s) < 0 or int(self.tput_bins) < 2:
            raise ValueError("fastmpc: need buffer_step_s > 0, buffer_max_s >= 0, tput_bins >= 2")
        nb = int(np.floor(float(self.buffer_max_s) / step + 1e-9)) + 1
        buffers = np.arange(nb) * step
        tmin = float(self.tput_min_ratio) * ladder.bitrates_bps[0]
        tmax = float(self.tput_max_ratio) * ladder.bitrates_bps[-1]
        if not 0 < tmin < tmax:
            raise ValueError("fastmpc: throughput grid must have 0 < min < max")
        tputs = tmin * (tmax / tmin) ** (np.arange(int(self.tput_bins)) / (int(self.tput_bins) - 1))
        return buffers, tputs

    def table_key(self, ladder: Ladder) -> str:
        spec = {"v": TABLE_VERSION, "bitrates_bps": [float(x) for x in ladder.bitrates_bps],
                "segment_s": float(ladder.segment_duration_s), "horizon": int(self.horizon),
                "rebuf": float(self.rebuf_penalty), "smooth": float(self.smooth_penalty),
                "bmax": float(self.buffer_max_s), "bstep": float(self.buffer_step_s),
                "nt": int(self.tput_bins), "tmin": float(self.tput_min_ratio),
                "tmax": float(self.tput_max_ratio)}
        return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:24]

    def _reset(self, n_sessions: int, ladder: Ladder) -> None:
        super()._reset(n_sessions, ladder)
        self.buffers, self.tputs = self._grid(ladder)
        self.log_tmin = float(np.log(self.tputs[0]))
        self.log_ratio = float(np.log(self.tputs[1] / self.tputs[0]))
        self.table = self._load_or_build(ladder)

    def _load_or_build(self, ladder: Ladder) -> np.ndarray:
        key = self.table_key(ladder)
        R, H = ladder.n, int(self.horizon)
        shape = (H, R + 1, self.buffers.size, self.tputs.size)
        table = _MEMORY.get(key)
        if table is not None:
            return table
        path = cache_dir() / f"fastmpc-{key}.npy"
        try:
            table = np.load(path, allow_pickle=False)
            if table.shape != shape or table.dtype != np.int8:
                table = None
        except (OSError, ValueError):
            table = None
        if table is None:
            table = build_table(ladder.bitrates_bps, float(ladder.segment_duration_s), H,
                                float(self.rebuf_penalty), float(self.smooth_penalty),
                                self.buffers, self.tputs)
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".fastmpc-", suffix=".npy")
                with os.fdopen(fd, "wb") as fh:
                    np.save(fh, table, allow_pickle=False)
                os.replace(tmp, path)
            except OSError:
                pass  # a read-only cache only costs a rebuild next time
        if len(_MEMORY) > 16:
            _MEMORY.clear()
        _MEMORY[key] = table
        return table

    def _plan(self, obs: Observation, rows: np.ndarray, pred: np.ndarray, heff: np.ndarray
              ) -> tuple[np.ndarray, np.ndarray]:
        R = self.ladder.n
        last = np.asarray(obs.last_rung, dtype=np.int64)[rows]
        li = np.where((last >= 0) & (last < R), last, R)
        bi = np.clip(np.floor(np.asarray(obs.buffer_s, dtype=np.float64)[rows]
                              / float(self.buffer_step_s) + 1e-9), 0, self.buffers.size - 1)
        with np.errstate(divide="ignore", invalid="ignore"):
            tj = np.floor((np.log(np.maximum(pred, 1e-9)) - self.log_tmin) / self.log_ratio + 1e-9)
        tj = np.clip(np.nan_to_num(tj, nan=0.0), 0, self.tputs.size - 1)
        q = self.table[heff - 1, li, bi.astype(np.int64), tj.astype(np.int64)].astype(np.int64)
        return q, np.full(rows.size, np.nan)
