"""MPC and RobustMPC: Yin, Jindal, Sekar and Sinopoli, "A Control-Theoretic Approach for
Dynamic Adaptive Video Streaming over HTTP", SIGCOMM 2015, with the semantics of
Pensieve's reference implementation where the paper is silent (Mao et al., SIGCOMM 2017;
github.com/hongzimao/pensieve, test/mpc.py).

At each decision:

* Prediction: the harmonic mean of the last 5 throughput samples. RobustMPC divides it by
  1 + the largest relative error |prediction − actual| / actual of the last 5
  predictions, the error at each step comparing the previous step's (undiscounted)
  harmonic mean with the newest sample, 0 at the first step (Pensieve).
* Horizon: the next min(5, segments left) segments.
* Objective: linear QoE over the horizon, Σ bitrate_Mbps − 4.3 · rebuffer_s
  − 1 · |Δ bitrate_Mbps|, the first Δ against the previous choice. The buffer evolves
  as in Pensieve: each download of size / predicted throughput drains it (rebuffering
  when it runs dry), then adds one segment duration; no buffer cap; the next segments'
  real sizes are used.
* Search: every rung sequence (rungs^horizon) is evaluated; the first rung of the best
  is fetched; ties go to the sequence Pensieve would keep (the last maximum in
  itertools.product order, i.e. the higher rungs). Sequences through masked rungs are
  excluded.

Vectorised: the sequences form a tree whose level h holds every prefix of length h + 1
(lexicographic, rungs in descending order so that the first minimum is Pensieve's last
maximum). Each level costs a few array passes over (sessions × rungs^(h+1)), sessions in
chunks that fit the CPU cache, float32, with workspaces kept between calls. The bitrate
and smoothness terms do not depend on the session and are folded into per-level
increment tables; only the buffer simulation is per session. The last level is only ever
minimised over, so a last segment that another is at least as good as in both terms (no
more costly, no slower, for every session of the block) is never evaluated
(`undominated_digits`); the minima, and so the choices, are bit for bit those of the full
search.
"""
from __future__ import annotations

import threading

import numpy as np

from abr.algorithms._common import P_INITIAL
from abr.base import Ladder, Observation, Param, Policy, highest_below
from abr.estimators import harmonic_mean, newest_sample
from abr.registry import register

F32 = np.float32
_MAX_SEQUENCES = 2_000_000  # rungs ** horizon beyond this is refused (memory and time)


class SequenceTree:
    """Everything about the rungs^horizon sequences that does not depend on a session.

    Digits are rungs in descending order (digit d = rung R − 1 − d). A prefix
    (d_0, …, d_h) of length h + 1 sits at index Σ d_j · R^j: the first segment's digit is
    the least significant, so appending a segment puts the new digit on top and every
    level is computed with long contiguous inner loops. `inc[p, d]` is the cost (negative
    QoE) of appending digit d after digit p; `inc0[l, d]` that of the first segment after
    previous rung l (row R: no previous segment, no smoothness term).
    """

    def __init__(self, bitrates_bps: np.ndarray, horizon: int, smooth_penalty: float) -> None:
        R = int(bitrates_bps.size)
        if R ** horizon > _MAX_SEQUENCES:
            raise ValueError(f"mpc: {R} rungs ** horizon {horizon} = {R ** horizon} sequences "
                             f"is too many (limit {_MAX_SEQUENCES}); shorten the horizon")
        self.R, self.H = R, int(horizon)
        bm = np.asarray(bitrates_bps, dtype=np.float64) / 1e6
        bd = bm[::-1]
        inc = -bd[None, :] + smooth_penalty * np.abs(bd[None, :] - bd[:, None])  # [p, d]
        self.incT = np.ascontiguousarray(inc.T).astype(F32)                       # [d, p]
        inc0 = np.empty((R + 1, R))
        inc0[:R] = -bd[None, :] + smooth_penalty * np.abs(bd[None, :] - bm[:, None])
        inc0[R] = -bd
        self.inc0 = inc0.astype(F32)
        self._args = (tuple(np.asarray(bitrates_bps, dtype=np.float64).tolist()), self.H,
                      float(smooth_penalty))
        self._local = threading.local()  # scratch arrays, one set per thread

    def __reduce__(self):  # pickles as its recipe; workspaces are per process and thread
        return (get_tree, (np.array(self._args[0]), self._args[1], self._args[2]))

    def workspace(self, c: int) -> list[np.ndarray]:
        w = getattr(self._local, "work", None)
        if w is None or w[0].size < c * self.R ** self.H:
            S = self.R ** self.H
            w = [np.empty(c * S, dtype=F32) for _ in range(3)]
            self._local.work = w
        return w

    def workspace_t(self, size: int) -> list[np.ndarray]:
        """Six float32 workspaces of at least `size` each for `solve`, one set per thread."""
        w = getattr(self._local, "work_t", None)
        if w is None or w[0].size < size:
            w = [np.empty(size, dtype=F32) for _ in range(6)]
            self._local.work_t = w
        return w

    def start(self, buffer_s: np.ndarray, dt_s: np.ndarray, last: np.ndarray, mu: float, seg_s: float,
              upto: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.float32]:
        """Level 0 for every row: (cost C (c, R), buffer Q (c, R) after it, the download
        times `dtd` (c, upto, R) in digit order scaled by `mu`, mu × segment duration)."""
        R = self.R
        c = buffer_s.shape[0]
        dtd = np.empty((c, upto, R), dtype=F32)
        np.multiply(dt_s[:, :upto, ::-1], mu, out=dtd, casting="unsafe")
        muL = F32(mu * seg_s)
        Q = (buffer_s * mu).astype(F32)[:, None]
        x = Q - dtd[:, 0, :]
        C = self.inc0[np.where(last >= 0, last, R)] - np.minimum(x, F32(0))
        Q = np.maximum(x, F32(0))
        Q += muL
        return C, Q, dtd, muL

    def grow(self, h: int, C: np.ndarray, Q: np.ndarray, dtd_h: np.ndarray, muL: np.float32, more: bool,
             out: tuple[np.ndarray, np.ndarray] | None = None) -> tuple[np.ndarray, np.ndarray | None]:
        """Level h from level h - 1: every prefix (C its cost, Q the buffer after it, (c, N))
        extended by every digit, with `dtd_h` (c, R) the download times at position h. Returns
        the costs (c, N·R) and, when `more` levels follow, the buffers after them. `out`: two
        workspaces of at least c·N·R floats (default: new arrays)."""
        R = self.R
        c, N = C.shape
        inner = N // R
        NR = N * R
        A = (C - Q).reshape(c, 1, R, inner)
        D = dtd_h[:, :, None] + self.incT[None, :, :]                   # (c, d, p)
        if out is None:
            X = np.empty((c, R, R, inner), dtype=F32)
            Y = np.empty((c, R, R, inner), dtype=F32)
        else:
            X = out[0][: c * NR].reshape(c, R, R, inner)
            Y = out[1][: c * NR].reshape(c, R, R, inner)
        np.add(A, D[:, :, :, None], out=X)
        np.add(C.reshape(c, 1, R, inner), self.incT[None, :, :, None], out=Y)
        np.maximum(X, Y, out=X)
        Qn = None
        if more:
            Qn = Q[:, None, :] - dtd_h[:, :, None]                        # (c, d, N)
            np.maximum(Qn, F32(0), out=Qn)
            Qn += muL
            Qn = Qn.reshape(c, NR)
        return X.reshape(c, NR), Qn

    def levels(self, buffer_s: np.ndarray, dt_s: np.ndarray, last: np.ndarray, mu: float,
               seg_s: float, upto: int):
        """Yield (h, cost) for h = 0 .. upto-1; cost is (c, R^(h+1)) float32, the negated
        QoE of each prefix of length h + 1 (a view into a reused workspace).

        `buffer_s` (c,), `dt_s` (c, H, R) download times per position and rung in rung
        order (inf where forbidden), `last` (c,) previous rung or -1.
        """
        c = buffer_s.shape[0]
        work = self.workspace(c)
        C, Q, dtd, muL = self.start(buffer_s, dt_s, last, mu, seg_s, upto)
        yield 0, C
        for h in range(1, upto):
            C, Q = self.grow(h, C, Q, dtd[:, h, :], muL, h + 1 < upto, (work[h % 2], work[2]))
            yield h, C


def first_digit_min(C: np.ndarray, R: int) -> np.ndarray:
    """(c, R): for each first digit, the least cost over all prefixes that start with it."""
    c = C.shape[0]
    while C.shape[1] > R:
        C = C.reshape(c, R, C.shape[1] // R).min(axis=1)
    return C


def chunk_rows(R: int, H: int) -> int:
    """Sessions per chunk: a level's arrays stay near 512 kB, inside a core's L2 cache
    (measured best at 16–24 sessions for 6 rungs, horizon 5)."""
    return int(max(1, min(256, (1 << 17) // max(1, R ** H))))


#: bytes of a level per block of `solve`: the widest array a block builds (R^(H-1) prefixes of
#: each of its sessions when the last level is reduced as it is built) near this size.
#: Measured on envivio (6 rungs, horizon 5): 512 kB (101 sessions) 10.0 µs per decision,
#: 1 MB 7.9 µs, 2 MB (404 sessions) 6.5 µs, 4 MB 7.1 µs — the last level's loops, one
#: (prefix digit, appended digit) pair at a time (`undominated_digits`), run over
#: R^(H-2) prefixes × the block's sessions, and want that long.
BLOCK_BYTES = 1 << 21


def block_rows(R: int, widest: int) -> int:
    """Sessions per block of `solve`: its widest arrays (R^widest float32 per session) near
    `BLOCK_BYTES`, at least 32 sessions (the inner loops run over sessions)."""
    return int(max(32, min(4096, BLOCK_BYTES // (4 * max(1, R ** max(widest, 0))))))


def _view(buf: np.ndarray, *shape: int) -> np.ndarray:
    """The first prod(shape) floats of a workspace, shaped."""
    return buf[: int(np.prod(shape))].reshape(shape)


def _grow_t(tree: SequenceTree, h: int, C: np.ndarray, Q: np.ndarray, dtd_h: np.ndarray, muL: np.float32,
            more: bool, work: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray | None]:
    """`SequenceTree.grow` with sessions innermost: C and Q are (N, c), `dtd_h` (R, c); the
    same sums and maxima per prefix, with every inner loop over the c sessions. Level h
    writes its costs to work[h % 2], its buffers to work[2 + h % 2], scratch to work[4:6]
    (the level before's are in the other two)."""
    R = tree.R
    N, c = C.shape
    inner = N // R
    A = np.subtract(C, Q, out=_view(work[5], N, c)).reshape(1, R, inner, c)
    D = dtd_h[:, None, :] + tree.incT[:, :, None]                       # (d, p, c)
    X = np.add(A, D[:, :, None, :], out=_view(work[h % 2], R, R, inner, c))
    Y = np.add(C.reshape(1, R, inner, c), tree.incT[:, :, None, None], out=_view(work[4], R, R, inner, c))
    np.maximum(X, Y, out=X)
    Qn = None
    if more:
        Qn = np.subtract(Q[None, :, :], dtd_h[:, None, :], out=_view(work[2 + h % 2], R, N, c))   # (d, N, c)
        np.maximum(Qn, F32(0), out=Qn)
        Qn += muL
        Qn = Qn.reshape(N * R, c)
    return X.reshape(N * R, c), Qn


def undominated_digits(incT: np.ndarray, dtd_h: np.ndarray) -> list[np.ndarray]:
    """Per last digit p of a prefix, the digits worth appending at the last level: those no
    other digit dominates for every session of the block.

    At the last level only the least cost over the appended digit d counts, and that cost,
    max(fl(fl(C − Q) + fl(dt_d + inc[d, p])), fl(C + inc[d, p])), never falls as dt_d or
    inc[d, p] grows (float addition and max are monotone). So a digit d2 with another d1 at
    most as costly in both, inc[d1, p] <= inc[d2, p] and dt_d1 <= dt_d2 for every session,
    can never be the only least one: leaving it out changes no minimum, bit for bit. Ties go
    to the lower rung (the larger digit), which keeps the relation a strict order. Whenever
    the previous rung is below the top, every rung above it costs the same (the bitrate gained
    is the smoothness paid) and only the lowest of them, the fastest, is kept: 21 of 36 pairs
    for 6 rungs. `incT` (d, p), `dtd_h` (d, c) the block's download times."""
    R = incT.shape[0]
    with np.errstate(invalid="ignore"):
        dt_le = np.all(dtd_h[:, None, :] <= dtd_h[None, :, :], axis=2)           # [d1, d2]
    inc = incT.T                                                                  # [p, d]
    le = inc[:, :, None] <= inc[:, None, :]                                       # [p, d1, d2]
    lt = inc[:, :, None] < inc[:, None, :]
    later = np.arange(R)[:, None] > np.arange(R)[None, :]                         # d1 > d2
    dominated = np.any(le & dt_le[None] & (lt | later[None]), axis=1)            # [p, d2]
    return [np.flatnonzero(~row) for row in dominated]


def _grow_min_t(tree: SequenceTree, h: int, C: np.ndarray, Q: np.ndarray, dtd_h: np.ndarray,
                work: list[np.ndarray]) -> np.ndarray:
    """The last level, reduced as it is built, sessions innermost: per prefix of the level
    before ((N, c) in), the least cost over the digit appended ((N, c) out, in work[5]) —
    what `_grow_t` then a minimum over its top digit give, the same sums and maxima one
    digit at a time, without the (N·R, c) arrays, and only for the digits that can be least
    (`undominated_digits`)."""
    R = tree.R
    N, c = C.shape
    inner = N // R
    A = np.subtract(C, Q, out=_view(work[2 + h % 2], N, c)).reshape(R, inner, c)
    Cr = C.reshape(R, inner, c)
    D = dtd_h[:, None, :] + tree.incT[:, :, None]                       # (d, p, c)
    X = _view(work[h % 2], inner, c)
    Y = _view(work[4], inner, c)
    best = _view(work[5], R, inner, c)
    for p, digits in enumerate(undominated_digits(tree.incT, dtd_h)):
        b = best[p]
        for i, d in enumerate(digits):
            np.add(A[p], D[d, p], out=X)
            np.add(Cr[p], tree.incT[d, p], out=Y)
            if i == 0:
                np.maximum(X, Y, out=b)
            else:
                np.maximum(X, Y, out=X)
                np.minimum(b, X, out=b)
    return best.reshape(N, c)


def _first_digit_min_t(C: np.ndarray, R: int) -> np.ndarray:
    """`first_digit_min` with sessions innermost: (N, c) -> (c, R)."""
    c = C.shape[1]
    while C.shape[0] > R:
        C = C.reshape(R, C.shape[0] // R, c).min(axis=0)
    return C.T


def solve(tree: SequenceTree, buffer_s: np.ndarray, dt_s: np.ndarray, last: np.ndarray,
          heff: np.ndarray, mu: float, seg_s: float) -> tuple[np.ndarray, np.ndarray]:
    """Best first rung and its QoE over the horizon for each row (see `SequenceTree.levels`).

    Among first rungs whose best sequences tie (within `TIE_TOLERANCE`), the highest wins
    (Pensieve keeps the last maximum in itertools.product order).

    Laid out with the sessions innermost ((prefix, session) arrays), so every numpy loop runs
    over a block's sessions rather than over a few rungs; when every row looks equally far
    ahead, the last level is reduced as it is built (`_grow_min_t`). Each prefix's
    cost is the same float32 arithmetic as `SequenceTree.levels` (elementwise, whatever the
    layout, and minima are exact), so the choices are the same.
    """
    n = buffer_s.shape[0]
    R, H = tree.R, tree.H
    if n == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0)
    M = np.zeros((n, R), dtype=F32)       # per row, the least cost per first digit (at its horizon)
    upto = int(heff.max())
    uniform = int(heff.min()) == upto
    dtd = np.empty((upto, R, n), dtype=F32)
    np.multiply(dt_s[:, :upto, ::-1].transpose(1, 2, 0), mu, out=dtd, casting="unsafe")
    muL = F32(mu * seg_s)
    widest = upto - 1 if uniform else upto
    c = block_rows(R, widest)
    # six workspaces of the widest level a block builds, kept per tree and thread: a decision
    # allocating and freeing megabytes per block spent as long in page faults as in arithmetic
    width = R ** widest * min(c, n)
    work = tree.workspace_t(width)
    for lo in range(0, n, c):
        hi = min(n, lo + c)
        he = heff[lo:hi]
        Q = (buffer_s[lo:hi] * mu).astype(F32)[None, :]
        x = Q - dtd[0, :, lo:hi]
        lst = last[lo:hi]
        C = tree.inc0[np.where(lst >= 0, lst, R)].T - np.minimum(x, F32(0))
        Q = np.maximum(x, F32(0))
        Q += muL
        top = upto if uniform else int(he.max())
        for h in range(top):
            if h:
                if uniform and h + 1 == top:
                    M[lo:hi] = _first_digit_min_t(_grow_min_t(tree, h, C, Q, dtd[h, :, lo:hi], work), R)
                    break
                C, Q = _grow_t(tree, h, C, Q, dtd[h, :, lo:hi], muL, h + 1 < top, work)
            if uniform:
                if h + 1 == top:
                    M[lo:hi] = _first_digit_min_t(C, R)
                continue
            rows = np.flatnonzero(he == h + 1)
            if rows.size:
                M[lo + rows] = _first_digit_min_t(C if rows.size == C.shape[1] else C[:, rows], R)
    k = pick_first(M)
    return R - 1 - k, -M[np.arange(n), k].astype(np.float64)


#: Costs this close to the best count as ties (QoE units, relative above 1): exact ties are
#: common — once the buffer is safe, every rung at or above the previous one scores the
#: same on the last step — and float rounding must not decide them.
TIE_TOLERANCE = 1e-4


def pick_first(M: np.ndarray) -> np.ndarray:
    """Per row, the smallest digit (highest rung) whose cost is within the tie tolerance
    of the row's least cost: Pensieve keeps the last maximum in itertools.product order."""
    m = M.min(axis=1, keepdims=True)
    tol = TIE_TOLERANCE * np.maximum(1.0, np.abs(m))
    return np.argmax(M <= m + tol, axis=1)


_TREES: dict[tuple, SequenceTree] = {}


def get_tree(bitrates_bps: np.ndarray, horizon: int, smooth_penalty: float) -> SequenceTree:
    key = (tuple(np.asarray(bitrates_bps, dtype=np.float64).tolist()), int(horizon),
           float(smooth_penalty))
    tree = _TREES.get(key)
    if tree is None:
        if len(_TREES) > 32:
            _TREES.clear()
        tree = _TREES[key] = SequenceTree(np.asarray(bitrates_bps), int(horizon),
                                          float(smooth_penalty))
    return tree


MPC_PARAMS = (
    Param("horizon", 5, "segments", "segments looked ahead (paper, Pensieve: 5)"),
    Param("window", 5, "samples", "throughput samples in the harmonic-mean prediction (5)"),
    Param("rebuf_penalty", 4.3, "QoE per s", "QoE lost per second of rebuffering (4.3)"),
    Param("smooth_penalty", 1.0, "QoE per Mbit/s", "QoE lost per Mbit/s of bitrate change (1)"),
    P_INITIAL,
)


@register("mpc")
class MPC(Policy):
    """Exhaustive model-predictive control over the horizon, harmonic-mean prediction."""

    PARAMS = MPC_PARAMS
    robust = False

    def _reset(self, n_sessions: int, ladder: Ladder) -> None:
        if int(self.horizon) < 1:
            raise ValueError(f"{self.name}: horizon must be at least 1")
        self.tree = get_tree(ladder.bitrates_bps, int(self.horizon), float(self.smooth_penalty))
        ew = int(getattr(self, "error_window", 5))
        self.prev_est = np.full(n_sessions, np.nan)
        self.errors = np.zeros((n_sessions, max(ew, 1)))
        self.err_pos = np.zeros(n_sessions, dtype=np.int64)

    def _predict(self, obs: Observation) -> tuple[np.ndarray, dict]:
        """(predicted throughput per row, info); NaN where nothing was measured yet."""
        hm, _ = harmonic_mean(obs.throughput_bps, int(self.window))
        if not self.robust:
            return hm, {"harmonic_bps": hm}
        s = obs.sessions
        x, _, new = newest_sample(obs.throughput_bps, obs.download_time_s)
        prev = self.prev_est[s]
        with np.errstate(divide="ignore", invalid="ignore"):
            err = np.where(np.isfinite(prev), np.abs(prev - x) / x, 0.0)
        if new.any():
            sv = s[new]
            self.errors[sv, self.err_pos[sv] % self.errors.shape[1]] = err[new]
            self.err_pos[sv] += 1
        max_err = self.errors[s].max(axis=1)
        self.prev_est[s] = np.where(np.isnan(hm), prev, hm)
        return hm / (1.0 + max_err), {"harmonic_bps": hm, "max_error": max_err}

    def _sizes(self, obs: Observation, H: int) -> np.ndarray:
        """(n, H, R) bytes of the next H segments; nominal bitrate × duration if unknown."""
        sz = np.asarray(obs.next_sizes_bytes)
        R = self.ladder.n
        if sz.ndim != 3 or sz.shape[1] == 0:
            nominal = self.ladder.bitrates_bps * obs.segment_duration_s / 8.0
            return np.broadcast_to(nominal, (obs.n, H, R))
        if sz.shape[1] >= H:
            return sz[:, :H, :]
        pad = np.repeat(sz[:, -1:, :], H - sz.shape[1], axis=1)
        return np.concatenate([sz, pad], axis=1)

    def _select(self, obs: Observation) -> np.ndarray:
        b = self.ladder.bitrates_bps
        H = int(self.horizon)
        pred, info = self._predict(obs)
        none = np.isnan(pred)
        q = highest_below(np.full(obs.n, float(self.initial_bps)), b)
        heff = np.clip(np.minimum(H, np.asarray(obs.segments_left)), 1, H).astype(np.int64)
        value = np.full(obs.n, np.nan)
        rows = np.flatnonzero(~none)
        if rows.size:
            q[rows], value[rows] = self._plan(obs, rows, pred[rows], heff[rows])
        info.update(predicted_bps=pred, horizon=heff, expected_qoe=value)
        self.last_info = info
        return q

    def _plan(self, obs: Observation, rows: np.ndarray, pred: np.ndarray, heff: np.ndarray
              ) -> tuple[np.ndarray, np.ndarray]:
        H = int(self.horizon)
        full = rows.size == obs.n
        sizes = self._sizes(obs, H)
        if not full:
            sizes = sizes[rows]
        bw = np.maximum(pred, 1.0)
        dt = np.asarray(sizes, dtype=F32) * (F32(8.0) / bw.astype(F32))[:, None, None]
        mask = np.asarray(obs.mask, dtype=bool)
        if not full:
            mask = mask[rows]
        if not mask.all():
            dt = np.where(mask[:, None, :], dt, F32(np.inf))
        buf = np.asarray(obs.buffer_s, dtype=np.float64)
        last = np.asarray(obs.last_rung, dtype=np.int64)
        if not full:
            buf, last = buf[rows], last[rows]
        last = np.where(last < self.ladder.n, last, -1)
        return solve(self.tree, buf, dt, last, heff, float(self.rebuf_penalty),
                     float(obs.segment_duration_s))


@register("robustmpc")
class RobustMPC(MPC):
    """MPC with the prediction divided by 1 + the max relative error of recent predictions."""

    PARAMS = MPC_PARAMS + (
        Param("error_window", 5, "predictions", "past prediction errors whose maximum "
              "discounts the prediction (paper, Pensieve: 5)"),
    )
    robust = True
