"""The one ABR interface: batch-first policies over arrays of sessions.

A policy is reset for `n` sessions and a ladder, then asked `select(obs)` once per
segment for the sessions that are active. `obs.sessions` says which of the `n` sessions
the rows belong to, so per-session state lives in arrays of length `n` inside the policy
and is indexed by `obs.sessions`. A real player is simply n = 1.

Units: seconds, bits per second, bytes (see DESIGN.md).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from abr.errors import PolicyOutputError


@dataclass(frozen=True)
class Ladder:
    """The representations a policy chooses among, lowest bitrate first."""

    bitrates_bps: np.ndarray
    segment_duration_s: float

    def __post_init__(self) -> None:
        b = np.asarray(self.bitrates_bps, dtype=np.float64)
        if b.ndim != 1 or b.size == 0 or np.any(np.diff(b) <= 0) or b[0] <= 0:
            raise ValueError("ladder bitrates must be positive and strictly increasing")
        object.__setattr__(self, "bitrates_bps", b)

    @property
    def n(self) -> int:
        return int(self.bitrates_bps.size)


@dataclass(frozen=True)
class Observation:
    """What a policy sees for the active sessions; every array's first axis is a session row.

    History arrays hold the most recent samples last and are NaN-padded on the left when a
    session has fewer samples than the window (all NaN before the first download).
    `next_sizes_bytes[i, h, r]` is the size of the (h+1)-th next segment at rung r; rows past
    the end of the content repeat the last segment, and `segments_left` says how many are
    real. `mask[i, r]` is False for rungs the device or the license forbid.

    The fields after `buffer_cap_s` are optional, for live and low-latency sessions; a
    session that does not know them leaves them out and gets the neutral value: NaN for
    `latency_s` and `target_latency_s` (not live), 1.0 for `playback_rate`. After
    construction they are always (n,) float arrays.

    Chunk timing (chunked transfer of CMAF low-latency segments): the session measures, the
    policy chooses how to turn the measurement into a throughput sample (its
    `chunk_estimator`: see `abr.estimators.chunked`). For the download each row completed
    since its previous decision: `chunk_bytes[i, c]` the bytes of its c-th chunk (a
    moof+mdat pair; for the downloaded-data method, what one read returned),
    `chunk_start_s` / `chunk_end_s` when that chunk's first / last byte arrived, in seconds
    since the request was sent, `chunk_buffer_s` the buffer level at the chunk's last byte;
    chunks left-aligned, NaN-padded on the right (the arrays are (n, C), C the most chunks
    of any row). `segment_available_s[i]` is how long that segment had been available at
    the origin when the request was sent (≥ the segment duration: all of it was there).
    Without chunk timing they are (n, 0) and NaN, and policies use `throughput_bps`.
    """

    sessions: np.ndarray            # (n,) int: which of the reset sessions these rows are
    buffer_s: np.ndarray            # (n,) float: playable buffer now
    last_rung: np.ndarray           # (n,) int: previous choice, -1 before the first segment
    throughput_bps: np.ndarray      # (n, H) float: measured throughput per past download
    download_time_s: np.ndarray     # (n, H) float: transfer time per past download (no latency)
    next_sizes_bytes: np.ndarray    # (n, horizon, rungs) float
    segments_left: np.ndarray       # (n,) int: segments still to fetch, including this one
    segment_index: np.ndarray       # (n,) int: index of the segment being chosen
    segment_duration_s: float
    playing: np.ndarray             # (n,) bool: playback has started
    mask: np.ndarray                # (n, rungs) bool: allowed rungs
    time_s: np.ndarray              # (n,) float: the session clock
    buffer_cap_s: np.ndarray        # (n,) float: buffer target / cap
    # -- optional: live sessions ---------------------------------------------------------------
    latency_s: np.ndarray | None = None         # (n,) float: live latency now (live edge − playhead), NaN if not live
    playback_rate: np.ndarray | None = None     # (n,) float: current playback rate (catch-up), 1.0 normal speed
    target_latency_s: np.ndarray | None = None  # (n,) float: the live latency target, NaN if not live
    # -- optional: chunk timing of the newest download (chunked transfer) -----------------------
    chunk_bytes: np.ndarray | None = None       # (n, C) float: bytes per chunk, NaN-padded; (n, 0) if unknown
    chunk_start_s: np.ndarray | None = None     # (n, C) float: first byte of the chunk, s since the request
    chunk_end_s: np.ndarray | None = None       # (n, C) float: last byte of the chunk, s since the request
    chunk_buffer_s: np.ndarray | None = None    # (n, C) float: buffer level when the chunk ended
    segment_available_s: np.ndarray | None = None  # (n,) float: how long the segment was available at the request
    # -- optional: request latency per past download (None: not known) -----------------------
    request_latency_s: np.ndarray | None = None    # (n, H) float: request → first byte, like download_time_s

    def __post_init__(self) -> None:
        n = int(np.asarray(self.sessions).size)
        for name, neutral in (("latency_s", np.nan), ("playback_rate", 1.0), ("target_latency_s", np.nan),
                              ("segment_available_s", np.nan)):
            value = getattr(self, name)
            value = np.full(n, neutral) if value is None else np.asarray(value, dtype=np.float64)
            object.__setattr__(self, name, value)
        chunks = np.full((n, 0), np.nan) if self.chunk_bytes is None else np.asarray(self.chunk_bytes, np.float64)
        object.__setattr__(self, "chunk_bytes", chunks)
        for name in ("chunk_start_s", "chunk_end_s", "chunk_buffer_s"):  # absent or empty: unknown
            value = getattr(self, name)
            value = None if value is None else np.asarray(value, dtype=np.float64)
            if value is None or (value.ndim == 2 and value.shape[1] == 0):
                value = np.full(chunks.shape, np.nan)
            if value.shape != chunks.shape:
                raise ValueError(f"Observation.{name} has shape {value.shape}, chunk_bytes {chunks.shape}")
            object.__setattr__(self, name, value)

    @property
    def n(self) -> int:
        return int(self.sessions.size)

    @property
    def last_throughput_bps(self) -> np.ndarray:
        return self.throughput_bps[:, -1]

    @property
    def last_download_time_s(self) -> np.ndarray:
        return self.download_time_s[:, -1]


@dataclass(frozen=True)
class Progress:
    """An in-flight download, offered to a policy's abandonment hook."""

    sessions: np.ndarray        # (n,) int
    rung: np.ndarray            # (n,) int: rung being fetched
    bytes_done: np.ndarray      # (n,) float
    bytes_total: np.ndarray     # (n,) float
    elapsed_s: np.ndarray       # (n,) float since the request was sent
    buffer_s: np.ndarray        # (n,) float: playable buffer now
    segment_duration_s: float
    sizes_bytes: np.ndarray     # (n, rungs) float: this segment's size at every rung
    mask: np.ndarray            # (n, rungs) bool
    request_latency_s: np.ndarray | None = None  # (n,) float: request → first byte (the elapsed time while
                                                 # none has come); None: not known


@dataclass(frozen=True)
class Param:
    """A documented policy parameter: name, default, unit and why it matters."""

    name: str
    default: Any
    unit: str
    doc: str


class Policy:
    """Base class. Subclasses declare PARAMS and implement `_reset` and `_select`.

    `select` applies the mask after `_select`: a masked choice falls to the highest allowed
    rung not above it, or the lowest allowed rung if there is none below.
    """

    name: ClassVar[str] = "policy"
    PARAMS: ClassVar[tuple[Param, ...]] = ()
    #: Rows of values the policy computed for its last decision, for dashboards and logs
    #: (e.g. {"predicted_bps": ...}); keys are free-form, values arrays over the rows.
    last_info: dict[str, np.ndarray]
    #: Seconds each row asks to wait before its request goes out (BOLA's and Sabre's
    #: "delay" when the buffer is above target, dash.js AAST's throughput-capacity delay),
    #: or None for no wait. `select` clears it
    #: before `_select`, which may set it; the session rules honour it on both clocks.
    last_delay_s: np.ndarray | None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        reserved = {"name", "params", "ladder", "n_sessions", "last_info", "last_delay_s", "PARAMS",
                    "ABANDON_IS_PURE", "ABANDON_SCANS"}
        for p in cls.PARAMS:  # a parameter stored as an attribute must not hide a method
            attr = getattr(cls, p.name, None)
            if p.name in reserved or callable(attr) or isinstance(attr, property):
                raise TypeError(f"{cls.__name__}: parameter name {p.name!r} is taken by the "
                                "Policy interface; choose another")

    def __init__(self, **params: Any) -> None:
        known = {p.name: p for p in self.PARAMS}
        unknown = set(params) - set(known)
        if unknown:
            raise ValueError(
                f"{self.name}: unknown parameter(s) {', '.join(sorted(unknown))}; "
                f"known: {', '.join(known) or 'none'}"
            )
        for p in self.PARAMS:
            value = params.get(p.name, p.default)
            if isinstance(value, str):
                value = coerce_param(p, value)
            setattr(self, p.name, value)
        self.params = {p.name: getattr(self, p.name) for p in self.PARAMS}
        self.last_info = {}
        self.last_delay_s = None
        self.n_sessions = 0
        self.ladder: Ladder | None = None

    def reset(self, n_sessions: int, ladder: Ladder) -> None:
        self.n_sessions = int(n_sessions)
        self.ladder = ladder
        self.last_info = {}
        self._reset(self.n_sessions, ladder)

    def select(self, obs: Observation) -> np.ndarray:
        """A rung per row of `obs`: the policy's own choice, checked, then moved off masked
        rungs. An answer that is not one integer rung in range per row raises
        `PolicyOutputError` naming the policy, the session and the value."""
        self.last_delay_s = None
        choice = np.asarray(self._select(obs))
        rungs = obs.mask.shape[1]
        if (choice.dtype.kind not in "iu" or choice.shape != (obs.n,)
                or (choice.size and (choice.min() < 0 or choice.max() >= rungs))):
            raise _bad_choice(self.name, obs, choice, rungs)
        return apply_mask(choice.astype(np.int64, copy=False), obs.mask)

    def abandon(self, progress: Progress) -> np.ndarray:
        """Rung to refetch at for each in-flight download, or -1 to carry on (default).

        A policy whose answer depends on the offer alone sets `ABANDON_IS_PURE` and
        implements `abandon_answer` (no state changes) and, for what an abandonment does to
        its state, `abandon_taken`; this method then needs no override."""
        if not self.ABANDON_IS_PURE:
            return np.full(progress.sessions.shape, -1, dtype=np.int64)
        out = np.asarray(self.abandon_answer(progress), dtype=np.int64)
        hit = out >= 0
        if hit.any():
            self.abandon_taken(progress, hit, out)
        return out

    #: True when `abandon_answer` is a function of the offer alone (it changes no state, and a
    #: rung it names is always below the one in flight): a simulator may then offer many
    #: points of a download's progress in one call and apply only the first answer per row
    #: with `abandon_taken` — the same result as offering them one by one, in fewer calls.
    ABANDON_IS_PURE: ClassVar[bool] = False

    #: True when `abandon` takes several progress points per row in one call — the offers
    #: grouped by row, in time order — and answers each as if they came one by one: a row's
    #: state runs through its offers, and its first abandonment ends its group (the offers
    #: after it answer -1 and change nothing). A simulator may then offer a stateful rule
    #: many points at once, as it does a pure one.
    ABANDON_SCANS: ClassVar[bool] = False

    def abandon_answer(self, progress: Progress) -> np.ndarray:
        """The rung each offer would be abandoned for (-1: carry on), without side effects."""
        return np.full(progress.sessions.shape, -1, dtype=np.int64)

    def abandon_taken(self, progress: Progress, rows: np.ndarray, rungs: np.ndarray) -> None:
        """The offers `progress` at the boolean `rows` were abandoned for `rungs[rows]`:
        update what the policy keeps (e.g. BOLA-E's placeholder). Nothing by default."""

    # -- for subclasses -----------------------------------------------------------------
    def _reset(self, n_sessions: int, ladder: Ladder) -> None:
        pass

    def _select(self, obs: Observation) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def describe(self) -> str:
        ps = ", ".join(f"{k}={v}" for k, v in self.params.items())
        return f"{self.name}({ps})" if ps else self.name


def _bad_choice(policy: str, obs: Observation, choice: np.ndarray, rungs: int) -> PolicyOutputError:
    """The one-line error for a malformed answer from `policy.select`: which session, what value."""
    head = f"policy {policy!r}"
    if choice.shape != (obs.n,):
        return PolicyOutputError(f"{head} returned an array of shape {choice.shape} for {obs.n} session(s); "
                                 f"select must return one rung per row", policy=policy)
    values = choice.tolist()
    if choice.dtype.kind in "iu":
        i = next(i for i, v in enumerate(values) if not 0 <= v < rungs)
        what = f"rung {values[i]}"
    else:
        bad = [i for i, v in enumerate(values) if not (isinstance(v, (int, float)) and not isinstance(v, bool)
                                                        and v == v and 0 <= v < rungs and v == int(v))]
        i = bad[0] if bad else 0
        v = values[i]
        what = ("NaN" if isinstance(v, float) and v != v else repr(v)) + f" (dtype {choice.dtype}; rungs are integers)"
    session = int(obs.sessions[i])
    return PolicyOutputError(
        f"{head} returned {what} for session {session} (segment {int(obs.segment_index[i])}); "
        f"this ladder has rungs 0..{rungs - 1}", policy=policy, session=session, value=values[i])


def coerce_param(p: Param, text: str) -> Any:
    """A parameter value given as text (command line, config file) in the default's type.

    Booleans accept true/false, yes/no, on/off, 1/0; a parameter whose default is None
    accepts "none" (or "") for None and otherwise a number when the text is one.
    """
    default = p.default
    low = text.strip().lower()
    if isinstance(default, bool):
        if low in ("1", "true", "yes", "on"):
            return True
        if low in ("0", "false", "no", "off"):
            return False
        raise ValueError(f"parameter {p.name}: expected true or false, got {text!r}")
    if default is None:
        if low in ("", "none", "null", "auto"):
            return None
        for conv in (int, float):
            try:
                return conv(text)
            except ValueError:
                pass
        return text
    if isinstance(default, str):
        return text
    try:
        return type(default)(text)
    except (TypeError, ValueError):
        raise ValueError(
            f"parameter {p.name}: expected {type(default).__name__}, got {text!r}") from None


def state_rows(sessions: np.ndarray, n: int) -> np.ndarray | slice:
    """How a policy indexes its per-session state for `sessions`: `slice(None)` when they
    are all `n` sessions in order (the simulator's lockstep asks every row at once), so
    state arrays are read and written in place rather than gathered and scattered (a
    dozen copies per decision in Sabre's rules); otherwise `sessions` itself. Strictly
    increasing, n of them, from 0 to n - 1: that is exactly 0..n-1."""
    s = sessions
    if (isinstance(s, np.ndarray) and s.ndim == 1 and s.size == n and n > 0 and s[0] == 0 and s[-1] == n - 1
            and bool((s[1:] > s[:-1]).all())):
        return slice(None)
    return s


def apply_mask(choice: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Move each choice to the highest allowed rung at or below it, else the lowest allowed.

    Vectorised: `allowed_below[i, r]` is the highest allowed rung <= r (or -1). A row with
    no allowed rung at all gets rung 0 (there is nothing better to say).
    """
    mask = np.asarray(mask, dtype=bool)
    n, rungs = mask.shape
    choice = np.clip(choice, 0, rungs - 1)
    if mask.all():  # the common case: nothing forbidden
        return choice.astype(np.int64, copy=False)
    idx = np.where(mask, np.arange(rungs), -1)
    allowed_below = np.maximum.accumulate(idx, axis=1)
    lowest_allowed = np.argmax(mask, axis=1)  # first True; 0 if none allowed
    out = allowed_below[np.arange(n), choice]
    return np.where(out >= 0, out, lowest_allowed).astype(np.int64)


def highest_below(rate_bps: np.ndarray, bitrates_bps: np.ndarray) -> np.ndarray:
    """Index of the highest rung whose bitrate is <= rate (0 if none): the usual rate rule."""
    idx = np.searchsorted(bitrates_bps, np.asarray(rate_bps, dtype=np.float64), side="right") - 1
    return np.clip(idx, 0, bitrates_bps.size - 1).astype(np.int64)
